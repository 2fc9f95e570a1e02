"""What real films carry: markers, burned-in text, collimation, devices, portable geometry and
acquisition; each switch changes only its own part of the film and is recorded."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pydicom
import pytest

from lesionloc_runtime.errors import ConfigError
from lesionloc_train.phantoms import generate_dataset, load_manifest, render_study
from lesionloc_train.phantoms.devices import DEVICE_TYPES
from lesionloc_train.phantoms.findings import FindingPlan
from lesionloc_train.phantoms.lettering import FONTS_HELDOUT, FONTS_TRAINED
from lesionloc_train.phantoms.options import PhantomOptions, StudyStreams
from lesionloc_train.phantoms.render import cardiothoracic_ratio

SIZE = 320
SEEDS = range(24)


def streams(seed: int) -> StudyStreams:
    return StudyStreams(*(np.random.default_rng([seed, k]) for k in (3, 4, 5)))


def render(seed: int, options: PhantomOptions, plans: list[FindingPlan] | None = None):
    return render_study(np.random.default_rng([seed, 0]), SIZE, SIZE, plans=plans,
                        options=options, streams=streams(seed))


@pytest.fixture(scope="module")
def pairs():
    """The same studies with everything and without markers, text and devices."""
    full = PhantomOptions()
    bare = full.without(["markers", "text", "devices"])
    return [(render(s, full), render(s, bare)) for s in SEEDS]


def _box_mask(boxes: list[list[int]], shape: tuple[int, int], grow: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        mask[max(0, y - grow):y + h + grow, max(0, x - grow):x + w + grow] = True
    return mask


def test_switching_off_markers_text_and_devices_changes_nothing_else(pairs):
    """Devices, markers and text draw from their own streams, and the processing's statistics
    ignore metal: outside the devices' surroundings and the overlay boxes, pixels agree."""
    changed = 0
    for with_all, bare in pairs:
        assert bare.devices == [] and all(o.type not in ("marker", "text") for o in bare.overlays)
        assert [f.boxes for f in with_all.findings] == [f.boxes for f in bare.findings]
        assert with_all.film == bare.film
        near = np.zeros((SIZE, SIZE), np.uint8)
        for device in with_all.devices:
            near |= device.mask.astype(np.uint8)
        # edge enhancement and blur spread a device over a few percent of the image
        near = cv2.dilate(near, np.ones((61, 61), np.uint8)) > 0
        near |= _box_mask([o.box for o in with_all.overlays if o.type in ("marker", "text")],
                          near.shape, 2)
        # less than one 12-bit stored step (the far tails of the processing's blurs)
        assert np.abs(with_all.image - bare.image)[~near].max() < 1 / 4095
        changed += bool(with_all.devices or with_all.overlays)
    assert changed >= len(SEEDS) // 2


def test_markers_and_text_never_cover_the_lungs_heart_or_a_finding(pairs):
    found = set()
    for study, _ in pairs:
        lungs = study.lungs["right"].mask | study.lungs["left"].mask | study.heart
        for overlay in study.overlays:
            found.add(overlay.type)
            if overlay.type in ("marker", "text", "ruler"):
                x, y, w, h = overlay.box
                assert not lungs[y:y + h, x:x + w].any(), overlay
                for finding in study.findings:
                    assert not finding.mask[y:y + h, x:x + w].any()
    assert {"marker", "text"} <= found


def test_a_marker_box_holds_the_letter_it_names():
    hits = 0
    for seed in SEEDS:
        study = render(seed, PhantomOptions(text=False, collimation=False))
        bare = render(seed, PhantomOptions(text=False, collimation=False, markers=False))
        for overlay in study.overlays:
            x, y, w, h = overlay.box
            assert overlay.text[0] in "LR"
            inside = np.abs(study.image - bare.image)[y:y + h, x:x + w]
            assert study.image[y:y + h, x:x + w].max() >= 0.84  # a lead letter shows white
            assert inside.max() > 0.05
            hits += 1
    assert hits >= len(SEEDS) * 0.7


def test_device_regions_are_where_the_metal_is(pairs):
    kinds = set()
    for with_all, bare in pairs:
        for device in with_all.devices:
            kinds.add(device.type)
            x, y, w, h = device.box
            assert 0 <= x and 0 <= y and x + w <= SIZE and y + h <= SIZE
            diff = (with_all.image - bare.image)[device.mask]
            assert diff.mean() > 0.02, device.type  # devices are denser than what they cover
    assert len(kinds) >= 3


def test_an_ap_film_magnifies_the_heart_and_stays_below_cardiomegaly():
    portable = PhantomOptions()
    flat = PhantomOptions(portable=False)
    ratios = []
    for seed in range(40):
        study = render(seed, portable, plans=[])
        if study.film.view != "AP":
            continue
        plain = render(seed, flat, plans=[])
        assert plain.film.view == "PA" and plain.film.extra_rotation_deg == 0.0
        ap = cardiothoracic_ratio(study.heart, study.lungs)
        pa = cardiothoracic_ratio(plain.heart, plain.lungs)
        ratios.append(ap / pa)
        assert ap < 0.55, "a normal heart on an AP film is not called enlarged"
    assert ratios and min(ratios) > 1.02


def test_rotation_reaches_ten_degrees_and_no_further():
    angles = [render(seed, PhantomOptions(), plans=[]).anatomy.frame.rotation_deg
              for seed in range(40)]
    assert max(abs(a) for a in angles) <= 10.0
    assert max(abs(a) for a in angles) > 5.0


def test_acquisition_variants_appear_and_switch_off():
    films = [render(seed, PhantomOptions(), plans=[]).film for seed in range(40)]
    assert {f.exposure for f in films} == {"normal", "under", "over"}
    assert any(f.grid_period_px for f in films) and any(f.resolution < 1 for f in films)
    plain = render(1, PhantomOptions(acquisition=False, portable=False), plans=[]).film
    assert plain.record(0.0) == {"view": "PA", "portable": False, "position": "upright",
                                 "rotation_deg": 0.0, "exposure": "normal", "grid_lines": False,
                                 "resolution": 1.0, "extra_noise": 0.0}


def test_heldout_style_writes_in_typefaces_training_never_uses(monkeypatch):
    import lesionloc_train.phantoms.lettering as lettering

    used: list[int] = []
    original = lettering.text_mask

    def spy(text, height, font, *args, **kwargs):
        used.append(font)
        return original(text, height, font, *args, **kwargs)

    monkeypatch.setattr(lettering, "text_mask", spy)
    for module in ("markers", "annotations"):
        monkeypatch.setattr(f"lesionloc_train.phantoms.{module}.text_mask", spy)
    for seed in range(8):
        render(seed, PhantomOptions(style="heldout"))
    assert used and set(used) <= set(FONTS_HELDOUT)
    used.clear()
    for seed in range(8):
        render(seed, PhantomOptions())
    assert used and set(used) <= set(FONTS_TRAINED)


def test_unknown_feature_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown phantom feature"):
        PhantomOptions().without(["markers", "lasers"])
    with pytest.raises(ConfigError, match="style"):
        PhantomOptions(style="other")


@pytest.fixture(scope="module")
def film_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("film") / "set"
    generate_dataset(out, 16, seed=3, width=256, height=256, workers=1)
    return out, load_manifest(out)


def test_manifest_records_film_devices_and_overlays(film_set):
    root, records = film_set
    info = json.loads((root / "generator.json").read_text())
    assert info["version"] == 2 and info["options"] == PhantomOptions().as_dict()
    for rec in records:
        assert rec["style"] == "trained"
        assert set(rec["film"]) >= {"view", "portable", "rotation_deg", "exposure"}
        for device in rec["devices"]:
            assert device["type"] in DEVICE_TYPES and len(device["box"]) == 4
        for overlay in rec["overlays"]:
            assert overlay["type"] in ("marker", "text", "ruler", "collimation")
        ds = pydicom.dcmread(root / rec["image"], stop_before_pixels=True)
        assert ds.ViewPosition == rec["film"]["view"]
        burned = any(o["type"] == "text" for o in rec["overlays"])
        assert ds.BurnedInAnnotation == ("YES" if burned else "NO")


def test_device_sentences_name_their_device_and_carry_no_lesion_boxes(film_set):
    _, records = film_set
    seen = 0
    for rec in records:
        boxes = {d["type"]: d["box"] for d in rec["devices"]}
        for s in rec["sentences"]:
            if s.get("device"):
                seen += 1
                assert s["kind"] == "finding" and s["finding"] == "device"
                assert s["boxes"] == [] and s["device_boxes"] == [boxes[s["device"]]]
    assert seen


def test_a_bare_set_records_no_devices_or_overlays(tmp_path):
    options = PhantomOptions().without(PhantomOptions.switches())
    generate_dataset(tmp_path, 4, seed=3, width=160, height=160, workers=1, options=options)
    for rec in load_manifest(tmp_path):
        assert rec["devices"] == [] and rec["overlays"] == []
        assert rec["film"]["view"] == "PA" and not any(s.get("device") for s in rec["sentences"])


def test_the_generator_imports_without_torch():
    code = ("import sys, lesionloc_train.phantoms, lesionloc_train.phantoms.cli, "
            "lesionloc_train.phantoms.preview; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'lesionloc_export')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"



def test_the_summary_counts_lesions_not_devices(tmp_path):
    summary = generate_dataset(tmp_path, 12, seed=3, width=160, height=160, workers=1)
    records = load_manifest(tmp_path)
    lesions = [r for r in records if any(s["kind"] == "finding" and s["finding"] != "device"
                                         for s in r["sentences"])]
    assert summary.normal == len(records) - len(lesions)
    assert "device" not in summary.findings
