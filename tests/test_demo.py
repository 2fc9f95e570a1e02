"""The embedded demo model and the README's quick start: the bundle ships, verifies, stays
small, says what it is, and localizes its example studies the way it did when it was built
(canonical values: a silent change of preprocessing or export shows up here; rebuilding the
demo model with scripts/make_demo_model.sh means updating them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.localizer import DEMO_BUNDLE, DEMO_EXAMPLES, Localizer

BIN = Path(sys.executable).parent


def test_demo_bundle_ships_verified_small_and_marked_as_demo():
    bundle = ModelBundle.load(DEMO_BUNDLE)
    assert bundle.is_demo and bundle.quantization == "int8"
    assert "phantom" in bundle.card["trained_on"]
    size = sum(p.stat().st_size for p in DEMO_BUNDLE.iterdir())
    assert size <= 15 * 2**20
    assert bundle.card["parity"]["passed"]
    assert "Not for clinical use" in (DEMO_BUNDLE / "MODEL_CARD.md").read_text()


def test_quick_start_command_runs_the_demo_on_the_example(tmp_path):
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(DEMO_EXAMPLES / "example1.dcm"),
                           "--report", str(DEMO_EXAMPLES / "example1.txt"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("DEMO MODEL")
    assert f"open {tmp_path / 'example1' / 'study.html'}" in proc.stdout
    doc = json.loads((tmp_path / "example1" / "study.json").read_text())
    assert doc["model"]["demo"] is True and doc["notice"].startswith("DEMO MODEL")
    assert len(list((tmp_path / "example1").glob("sentence_*_layer.png"))) == sum(
        s["kind"] == "finding" for s in doc["sentences"])
    assert (tmp_path / "example1" / "study.html").stat().st_size > 0
    assert not list((tmp_path / "example1").glob("summary.png"))  # only with --overlays


def test_the_summary_marks_a_hedged_finding_with_a_question_mark(tmp_path):
    report = tmp_path / "report.txt"
    report.write_text("FINDINGS: Possible small left pleural effusion. Right lower lobe "
                      "consolidation. No pneumothorax.\n")
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(DEMO_EXAMPLES / "example1.dcm"),
                           "--report", str(report), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[1].split()[0] for line in lines] == ["finding?", "finding",
                                                                  "negated"]
    doc = json.loads((tmp_path / "out" / "example1" / "study.json").read_text())
    assert [s["uncertain"] for s in doc["sentences"]] == [True, False, False]


def _distance(x: float, y: float, box: list[float]) -> float:
    bx, by, bw, bh = box
    return float(np.hypot(max(bx - x, 0.0, x - bx - bw), max(by - y, 0.0, y - by - bh)))


@pytest.mark.parametrize("example", ["example1", "example2"])
def test_demo_points_next_to_the_lesions_of_its_examples(example):
    """A peak can miss a small box by a little: require every peak within one patch of its
    ground truth (a patch is the bundle's grid stride on the original image, 26 px here),
    two for nodules (the demo model's weakest finding type, see BENCHMARKS.md)."""
    truth = json.loads((DEMO_EXAMPLES / f"{example}.truth.json").read_text())
    localizer = Localizer.load()
    result = localizer.localize(DEMO_EXAMPLES / f"{example}.dcm", DEMO_EXAMPLES / f"{example}.txt")
    patch = result.letterbox.orig_width / result.letterbox.new_width * localizer.bundle.grid_stride
    by_text = {s.text: s for s in result.sentences}
    for item in truth:
        sentence = by_text[" ".join(item["text"].split())]
        x, y, _ = sentence.peak
        nearest = min(_distance(x, y, box) for box in item["boxes"])
        allowed = patch * (2 if item["finding"] == "nodule" else 1)
        assert nearest <= allowed, (item["text"], nearest, allowed)


def test_demo_canonical_scores_of_example1():
    result = Localizer.load().localize(DEMO_EXAMPLES / "example1.dcm", DEMO_EXAMPLES / "example1.txt")
    scores = {s.text: round(s.score, 2) for s in result.sentences}
    assert scores == pytest.approx(CANONICAL_EXAMPLE1, abs=0.02)


CANONICAL_EXAMPLE1 = {  # scores of the bundle built on 2026-11-27 (runs/demo/full, step 1500)
    "Heart size is normal.": -0.43,
    "The cardiomediastinal silhouette is within normal limits.": -0.62,
    "Small amount of right pleural fluid.": 0.75,
    "Bilateral mid lung atelectasis with volume loss.": 0.14,
    "There is a 5 mm nodule in the right mid lung zone.": 0.25,
    "The lungs are otherwise clear.": -0.63,
    "No focal consolidation.": -0.45,
    "Right pleural effusion.": 0.55,
    "Right mid lung pulmonary nodule.": 0.4,
    "Bilateral mid lung atelectasis.": 0.5,
}
