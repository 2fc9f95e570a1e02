"""Phantom data set: record format, grounding, radiological convention, determinism, splits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionloc_runtime.errors import ConfigError
from lesionloc_runtime.imageio import read_image
from lesionloc_train.phantoms import generate_dataset, load_manifest, render_study
from lesionloc_train.phantoms.canvas import pixel_spacing_mm
from lesionloc_train.phantoms.findings import FindingPlan
from lesionloc_train.phantoms.phrases_trained import NORMAL
from lesionloc_train.phantoms.render import cardiothoracic_ratio

SIZE = 256
RECORD_KEYS = {"study_id", "split", "image", "image_png", "report", "width", "height",
               "pixel_spacing_mm", "sentences", "style", "film", "devices", "overlays"}
SENTENCE_KEYS = {"text", "section", "kind", "finding", "side", "zone", "boxes"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("phantoms") / "set"
    generate_dataset(out, 20, seed=11, width=SIZE, height=SIZE, workers=1)
    return out, load_manifest(out)


def is_lesion(sentence: dict) -> bool:
    """A sentence that states a lesion (devices are findings in a report, not lesions)."""
    return sentence["kind"] == "finding" and sentence["finding"] != "device"


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_manifest_records_follow_the_spec_format(dataset):
    root, records = dataset
    assert [r["study_id"] for r in records] == [f"p{i:06d}" for i in range(1, 21)]
    for rec in records:
        assert RECORD_KEYS <= set(rec)
        assert rec["split"] in ("train", "val", "test")
        assert rec["image"] == f"images/{rec['study_id']}.dcm"
        assert rec["image_png"] == f"images/{rec['study_id']}.png"
        assert rec["report"] == f"reports/{rec['study_id']}.txt"
        for key in ("image", "image_png", "report"):
            assert (root / rec[key]).is_file()
        assert (rec["width"], rec["height"]) == (SIZE, SIZE)
        assert rec["pixel_spacing_mm"] == pytest.approx(0.175 * 2048 / SIZE)
        for s in rec["sentences"]:
            assert SENTENCE_KEYS <= set(s)
            assert s["section"] in ("findings", "impression")
            assert s["kind"] in ("finding", "negated", "normal")
            if is_lesion(s):
                assert s["finding"] and s["boxes"]
                assert (root / s["mask"]).is_file()
            else:
                assert s["boxes"] == [] and "mask" not in s


def test_pixel_spacing_is_0175_mm_at_2048_and_scales_with_the_short_side():
    assert pixel_spacing_mm(2048, 2048) == pytest.approx(0.175)
    assert pixel_spacing_mm(512, 512) == pytest.approx(0.7)
    assert pixel_spacing_mm(2500, 2048) == pytest.approx(0.175)
    assert pixel_spacing_mm(2048, 2500) == pytest.approx(0.175)


def test_every_sentence_text_appears_verbatim_in_its_report(dataset):
    root, records = dataset
    for rec in records:
        report = (root / rec["report"]).read_text(encoding="utf-8")
        pos = 0
        for s in rec["sentences"]:
            found = report.find(s["text"], pos)
            assert found >= 0, (rec["study_id"], s["text"])
            pos = found + len(s["text"])
            assert s["text"].endswith(".")
            assert not re.match(r"\d+\.\s", s["text"]), "list numbers are not sentence text"
            assert s["text"] == s["text"].strip()
        texts = [s["text"] for s in rec["sentences"]]
        assert len(texts) == len(set(texts)), "sentence texts are unique within a report"


def test_report_sections_come_in_the_spec_order(dataset):
    root, records = dataset
    order = ["EXAMINATION:", "INDICATION:", "COMPARISON:", "FINDINGS:", "IMPRESSION:"]
    for rec in records:
        report = (root / rec["report"]).read_text(encoding="utf-8")
        positions = [report.find(h) for h in order if h in report]
        assert positions == sorted(positions)
        assert "FINDINGS:" in report or "IMPRESSION:" in report


def test_ground_truth_sentences_spell_sides_and_never_use_r_or_l(dataset):
    _, records = dataset
    for rec in records:
        for s in rec["sentences"]:
            if s["kind"] != "finding":
                continue
            assert not re.search(r"\b[RL]\b", s["text"])
            if s["finding"] == "device":
                continue
            if s["finding"] == "cardiomegaly":
                assert s["side"] is None and s["zone"] is None
                continue
            assert s["side"] in ("right", "left", "bilateral")
            words = s["text"].lower()
            if s["side"] == "bilateral":
                assert "bilateral" in words and len(s["boxes"]) == 2
            elif s["zone"] != "lingula":
                assert s["side"] in words and len(s["boxes"]) == 1


def test_normal_studies_say_so_and_impressions_share_the_findings_boxes(dataset):
    _, records = dataset
    normal = 0
    for rec in records:
        finding_boxes = {(s["finding"], json.dumps(s["boxes"])) for s in rec["sentences"]
                         if is_lesion(s) and s["section"] == "findings"}
        if not any(is_lesion(s) for s in rec["sentences"]):
            normal += 1
            impression = [s for s in rec["sentences"] if s["section"] == "impression"
                          and s["finding"] != "device"]
            assert [s["text"] for s in impression] in ([], *([t] for t in NORMAL["impression"]))
        for s in rec["sentences"]:
            if is_lesion(s) and s["section"] == "impression" and finding_boxes:
                assert (s["finding"], json.dumps(s["boxes"])) in finding_boxes
    assert 0 < normal < len(records)


def test_boxes_lie_inside_the_image_and_are_the_tight_boxes_of_the_masks(dataset):
    root, records = dataset
    for rec in records:
        w, h = rec["width"], rec["height"]
        for s in rec["sentences"]:
            for x, y, bw, bh in s["boxes"]:
                assert all(isinstance(v, int) for v in (x, y, bw, bh))
                assert 0 <= x and 0 <= y and bw >= 1 and bh >= 1
                assert x + bw <= w and y + bh <= h
            if is_lesion(s):
                mask = cv2.imread(str(root / s["mask"]), cv2.IMREAD_UNCHANGED)
                assert mask.shape == (h, w) and mask.dtype == np.uint8
                ys, xs = np.nonzero(mask)
                xs0 = min(b[0] for b in s["boxes"])
                ys0 = min(b[1] for b in s["boxes"])
                xs1 = max(b[0] + b[2] for b in s["boxes"])
                ys1 = max(b[1] + b[3] for b in s["boxes"])
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (xs0, ys0, xs1, ys1)


@pytest.mark.parametrize("finding", ["nodule", "mass", "consolidation"])
def test_right_upper_lobe_findings_lie_in_the_image_left_upper_third_of_the_right_lung(finding):
    for seed in range(3):
        study = render_study(np.random.default_rng(seed), 384, 384,
                             plans=[FindingPlan(finding, "right", "upper")])
        (box,) = study.findings[0].boxes
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        right = study.lungs["right"]
        assert cx < 384 / 2, "the patient's right is the image left"
        assert right.left <= cx <= right.right
        y0, y1 = right.zone_rows("upper")
        assert y0 <= cy <= y1


def test_left_lower_findings_lie_in_the_image_right_half():
    study = render_study(np.random.default_rng(5), 384, 384,
                         plans=[FindingPlan("nodule", "left", "lower"),
                                FindingPlan("effusion", "right", "lower", "moderate")])
    nodule, effusion = study.findings
    assert nodule.boxes[0][0] > 384 / 2
    y0, y1 = study.lungs["left"].zone_rows("lower")
    assert y0 <= nodule.boxes[0][1] + nodule.boxes[0][3] / 2 <= y1
    assert effusion.boxes[0][0] + effusion.boxes[0][2] < 384 / 2


def test_the_heart_bulges_to_the_image_right_and_its_box_is_cardiomegaly():
    for seed in range(3):
        study = render_study(np.random.default_rng(seed), 320, 320,
                             plans=[FindingPlan("cardiomegaly", None, None, "moderate")])
        (heart,) = study.findings
        ys, xs = np.nonzero(heart.mask)
        assert xs.mean() > 320 / 2
        assert heart.side is None and heart.zone is None
        assert heart.ratio > 0.55
    normal = render_study(np.random.default_rng(0), 320, 320, plans=[])
    assert cardiothoracic_ratio(normal.heart, normal.lungs) < 0.5


def test_same_seed_gives_byte_identical_files_with_any_worker_count(tmp_path):
    generate_dataset(tmp_path / "a", 6, seed=3, width=200, height=160, workers=1)
    generate_dataset(tmp_path / "b", 6, seed=3, width=200, height=160, workers=2)
    generate_dataset(tmp_path / "c", 6, seed=4, width=200, height=160, workers=1)
    a, b, c = (all_files(tmp_path / d) for d in "abc")
    assert a == b
    assert a["images/p000001.dcm"] != c["images/p000001.dcm"], "another seed, other studies"


def test_splits_partition_the_studies(dataset):
    _, records = dataset
    by_split: dict[str, set[str]] = {}
    for rec in records:
        by_split.setdefault(rec["split"], set()).add(rec["study_id"])
    assert set(by_split) == {"train", "val", "test"}
    assert sum(len(v) for v in by_split.values()) == len(records)
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"]
                or by_split["val"] & by_split["test"])
    assert (len(by_split["train"]), len(by_split["val"]), len(by_split["test"])) == (16, 2, 2)


@pytest.mark.parametrize("width,height", [(320, 256), (256, 320)])
def test_non_square_images(tmp_path, width, height):
    generate_dataset(tmp_path, 3, seed=1, width=width, height=height, workers=1)
    for rec in load_manifest(tmp_path):
        assert (rec["width"], rec["height"]) == (width, height)
        assert rec["pixel_spacing_mm"] == pytest.approx(0.175 * 2048 / min(width, height))
        for key in ("image", "image_png"):
            assert read_image(tmp_path / rec[key]).pixels.shape == (height, width)


def test_a_2500_by_2048_study_renders_with_findings_inside_its_lungs():
    plans = [FindingPlan("mass", "left", "upper"), FindingPlan("effusion", "right", "lower",
                                                               "small")]
    study = render_study(np.random.default_rng(0), 2500, 2048, plans=plans)
    assert study.image.shape == (2048, 2500)
    mass, effusion = study.findings
    x, y, w, h = mass.boxes[0]
    assert x > 1250 and 30 / 0.175 * 0.9 <= max(w, h) <= 60 / 0.175 * 1.5


def test_no_png_writes_dicom_only(tmp_path):
    generate_dataset(tmp_path, 2, seed=0, width=160, height=160, write_png=False, workers=1)
    rec = load_manifest(tmp_path)[0]
    assert rec["image_png"] is None
    assert not list((tmp_path / "images").glob("*.png"))


def test_existing_output_needs_overwrite(tmp_path):
    generate_dataset(tmp_path, 2, seed=0, width=160, height=160, workers=1)
    with pytest.raises(ConfigError, match="--overwrite"):
        generate_dataset(tmp_path, 2, seed=0, width=160, height=160, workers=1)
    (tmp_path / "notes.txt").write_text("mine")
    generate_dataset(tmp_path, 1, seed=1, width=160, height=160, workers=1, overwrite=True)
    assert len(load_manifest(tmp_path)) == 1
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["p000001.dcm",
                                                                      "p000001.png"]
    assert (tmp_path / "notes.txt").read_text() == "mine", "only generator files are replaced"


@pytest.mark.parametrize("kwargs,message", [
    ({"n": 0}, "at least 1"),
    ({"split_fractions": (0.5, 0.5)}, "three"),
    ({"split_fractions": (0.9, 0.2, 0.1)}, "sum to 1"),
    ({"split_fractions": (1.2, -0.1, -0.1)}, "non-negative"),
    ({"width": 40}, "between"),
])
def test_bad_arguments_raise_config_errors(tmp_path, kwargs, message):
    args = {"n": 2, "seed": 0, "width": 160, "height": 160} | kwargs
    with pytest.raises(ConfigError, match=message):
        generate_dataset(tmp_path / "x", **args)


def test_a_full_disk_is_an_output_error(tmp_path, monkeypatch):
    """`lesionloc-train synth` onto a full disk ended with an OSError traceback."""
    import errno

    from lesionloc_runtime.errors import OutputError
    from lesionloc_train.phantoms import dataset

    def full(job):
        raise OSError(errno.ENOSPC, "No space left on device", f"{job.out_dir}/images/p000001.dcm")

    monkeypatch.setattr(dataset, "make_study", full)
    with pytest.raises(OutputError, match=r"cannot write .*/p000001.dcm: No space left"):
        generate_dataset(tmp_path / "ph", n=4, width=128, height=128, workers=1)
