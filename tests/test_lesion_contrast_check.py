"""scripts/lesion_contrast_check.py: a lesion's contrast against a ring around it in the
encoder's input, by hand on arrays and end to end on a phantom set with the demo model's
preprocessing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from lesionloc_runtime.geometry import CentreCrop, Letterbox
from lesionloc_runtime.localizer import DEMO_BUNDLE

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lesion_contrast_check.py"
spec = importlib.util.spec_from_file_location("lesion_contrast_check", SCRIPT)
check = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = check
spec.loader.exec_module(check)


def test_a_bright_square_stands_out_and_flat_noise_does_not():
    rng = np.random.default_rng(0)
    picture = rng.normal(0.0, 1.0, (64, 64))
    assert abs(check.box_contrast(picture, (28, 28, 36, 36))) < 0.6
    picture[28:36, 28:36] += 3.0
    assert check.box_contrast(picture, (28, 28, 36, 36)) == pytest.approx(3.0, abs=0.6)
    picture[28:36, 28:36] -= 6.0  # darker than its surroundings: negative
    assert check.box_contrast(picture, (28, 28, 36, 36)) < -2.0
    picture[0:4, 0:4] += 5.0  # at a corner the ring is clipped to the picture, still measured
    assert check.box_contrast(picture, (0, 0, 4, 4)) > 2.0


def test_boxes_map_into_the_input_through_the_bundles_geometry():
    box = Letterbox.fit(400, 200, 100, 1)  # quartered: 100 x 50 in the middle
    assert check.input_box([40, 20, 80, 40], box, 100) == (10, box.pad_y + 5, 30, box.pad_y + 15)
    crop = CentreCrop.fit(400, 200, 100, 100)  # shorter side to 100, then the middle 100 x 100
    assert check.input_box([0, 0, 40, 40], crop, 100) == (0, 0, 0, 20)  # cut away on the left
    assert check.input_box([180, 80, 40, 40], crop, 100) == (40, 40, 60, 60)


def test_every_finding_type_of_a_phantom_set_is_measured(phantom_set):
    found = check.contrasts(phantom_set, DEMO_BUNDLE)
    assert found and all(np.isfinite(c) and width >= 1
                         for values in found.values() for c, width in values)
    assert "nodule" in found and len(found) > 1
    assert check.contrasts(phantom_set, DEMO_BUNDLE, {"nodule"}) == {"nodule": found["nodule"]}
