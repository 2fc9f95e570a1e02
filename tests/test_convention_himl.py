"""The `hi-ml` CNR and mIoU (BioViL's definition as github.com/vios-s/ldm-phrase-grounding
computes it): hand-computed cases, its per-box CNR with each box set to NaN after scoring,
unseen (NaN) pixels, and agreement with a numpy transcription of that code on random maps."""

from __future__ import annotations

import math
from math import ceil, floor
from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.evaluation import evaluate
from lesionloc_runtime.evaluation.conventions import (
    HIML,
    HIML_THRESHOLDS,
    ConventionScores,
    SampleTruth,
    himl_regions,
    himl_scores,
    mean_over_samples,
)
from lesionloc_runtime.evaluation.records import AnnotatedImage, DatasetStream, Grounding, ReadLog


def himl(heat: np.ndarray, *boxes: Box) -> ConventionScores:
    return himl_scores(heat, SampleTruth(heat.shape[0], heat.shape[1], tuple(boxes)))


def rows(even: float, odd: float, height: int = 10, width: int = 40) -> np.ndarray:
    """A map whose even rows hold one value and odd rows the other: any set of whole columns
    of it has their mean and, when they differ by 2, variance 1."""
    heat = np.full((height, width), even, np.float32)
    heat[1::2] = odd
    return heat


def two_box_map() -> np.ndarray:
    """Box A (columns 0-9) holds 4; box B (columns 5-14) overlaps it in columns 5-9 and holds
    2/4 by row in columns 10-14 (mean 3, variance 1); the rest is 0/2 (mean 1, variance 1)."""
    heat = rows(0.0, 2.0)
    heat[:, 10:15] = rows(2.0, 4.0)[:, 10:15]
    heat[:, 0:10] = 4.0
    return heat


A, B = Box(0, 0, 10, 10), Box(5, 0, 10, 10)


# -- hand-computed cases -------------------------------------------------------------------


def test_one_box_scores_the_absolute_contrast_of_the_raw_map() -> None:
    heat = rows(0.0, 2.0)  # outside: mean 1, variance 1
    heat[:, 10:20] = rows(-1.0, 1.0)[:, 10:20]  # inside: mean 0, variance 1; darker
    assert himl(heat, Box(10, 0, 10, 10)).cnr == pytest.approx(1 / math.sqrt(2))


def test_each_box_is_scored_against_the_rest_then_removed_from_the_later_boxes() -> None:
    heat = two_box_map()
    # A first: in = A (100 px of 4, variance 0); out = B's own 50 px (mean 3, E[x^2] 10) and
    # the 250 others (mean 1, E[x^2] 2): mean 4/3, variance 10/3 - 16/9 = 14/9, so CNR
    # (8/3) / sqrt(14/9) = 8 / sqrt(14). Then B: in = its columns 10-14 only (A's are NaN
    # now), mean 3, variance 1; out = the 250 others: CNR 2 / sqrt(2).
    assert himl(heat, A, B).cnr == pytest.approx((8 / math.sqrt(14) + math.sqrt(2)) / 2)
    # B first: in = 50 px of 4 and 50 of B's own (mean 3.5, variance 0.75); out = A's own
    # 50 px of 4 and the 250 others (mean 1.5, variance 13/3 - 2.25 = 25/12). Then A: in =
    # its columns 0-4 (4, constant), out = the 250 others: CNR 3 / 1.
    assert himl(heat, B, A).cnr == pytest.approx((2 / math.sqrt(0.75 + 25 / 12) + 3) / 2)


def test_unseen_pixels_are_left_out_of_cnr_and_unseen_truth_is_missed() -> None:
    heat = rows(0.0, 2.0)
    heat[:, 10:20] = 5.0
    heat[:, 10:20:2] = 7.0  # inside: 5/7 by column, mean 6, variance 1
    heat[:, 15:] = np.nan  # the model saw columns 0-14: half the box, and the 100 px before it
    # inside: columns 10-14 (7, 5, 7, 5, 7: mean 6.2, variance 0.96); out: 0/2, mean 1, var 1
    scores = himl(heat, Box(10, 0, 10, 10))
    assert scores.cnr == pytest.approx(5.2 / math.sqrt(1.96))
    # every t predicts the 50 seen box pixels and the 50 outside holding 2; the 50 unseen box
    # pixels are never above t but stay in the truth: IoU 50 / (100 + 50)
    assert scores.ious == pytest.approx((1 / 3,) * 5)


def test_a_box_the_model_never_saw_scores_zero_and_still_counts_in_the_mean() -> None:
    heat = rows(0.0, 2.0)
    heat[:, 10:20] = rows(-1.0, 1.0)[:, 10:20]
    heat[:, 30:] = np.nan
    scores = himl(heat, Box(10, 0, 10, 10), Box(32, 2, 5, 5))
    # out of the first box: the 200 seen pixels of 0/2 (columns 0-9 and 20-29)
    assert scores.cnr == pytest.approx((1 / math.sqrt(2) + 0.0) / 2)


def test_a_box_inside_an_earlier_one_has_no_pixels_and_scores_zero() -> None:
    heat = two_box_map()
    # A against columns 10-39 as above (8 / sqrt(14)); the second box's pixels are all NaN
    assert himl(heat, A, Box(2, 2, 4, 4)).cnr == pytest.approx(8 / math.sqrt(14) / 2)


def test_a_constant_map_predicts_everything_or_nothing_at_raw_thresholds() -> None:
    heat = np.full((10, 40), 0.25, np.float32)
    scores = himl(heat, Box(0, 0, 10, 10))
    assert scores.cnr == 0.0  # 0 / 0 is NaN, which nan_to_num makes 0
    assert scores.ious == pytest.approx((0.25, 0.25, 0.0, 0.0, 0.0))  # 100 / 400 px


def test_a_threshold_equal_to_a_value_does_not_predict_it() -> None:
    heat = np.zeros((10, 40), np.float32)
    heat[:, :10] = 0.3  # 0.3 in float32, as `map > 0.3` compares it
    assert himl(heat, Box(0, 0, 10, 10)).ious == (1.0, 1.0, 0.0, 0.0, 0.0)


def test_miou_follows_the_maps_scale_and_cnr_does_not() -> None:
    heat = rows(0.0, 0.005)
    heat[:, :10] = 0.045
    box = Box(0, 0, 10, 10)
    small, large = himl(heat, box), himl(heat * 10, box)
    assert small.cnr == pytest.approx(large.cnr)
    assert small.ious == (0.0,) * 5  # nothing above 0.1: a low-similarity map finds nothing
    assert large.ious == (1.0, 1.0, 1.0, 1.0, 0.0)


def test_two_constant_regions_that_differ_leave_the_cnr_undefined() -> None:
    heat = np.zeros((10, 40), np.float32)
    heat[:, :10] = 1.0
    scores = himl(heat, Box(0, 0, 10, 10))
    assert math.isnan(scores.cnr) and scores.ious == (1.0,) * 5
    means = mean_over_samples([scores, ConventionScores(2.0, scores.ious)], HIML)
    assert means.cnr == 2.0 and means.undefined_cnr == 1


def test_a_mask_is_one_region() -> None:
    heat = rows(0.0, 2.0)
    mask = np.zeros((10, 40), bool)
    mask[:, 10:20] = True
    heat[mask] = 4.0
    scores = himl_scores(heat, SampleTruth(10, 40, mask=mask))
    assert scores.cnr == pytest.approx(3.0)
    assert scores.ious == (100 / 250,) * 5  # the mask and the 150 px holding 2


def test_box_pixels_follow_the_pixel_centre_rule_and_boxes_off_the_image_are_dropped() -> None:
    truth = SampleTruth(10, 40, (Box(2.4, 1.6, 3.2, 2.0), Box(50, 2, 5, 5), Box(38, 8, 9, 9)))
    first, last = himl_regions(truth)
    assert np.argwhere(first).min(0).tolist() == [2, 2] and first.sum() == 2 * 4
    assert last.sum() == 2 * 2  # clipped to the image, as slicing past its edge is


# -- inside the evaluation loop ------------------------------------------------------------


class FixedProvider:
    def __init__(self, heat: np.ndarray) -> None:
        self.heat = heat

    def heatmaps(self, image, texts):
        return np.stack([self.heat] * len(texts))


def test_the_evaluation_scores_hi_ml_on_the_images_own_pixels(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.tile(np.arange(128, dtype=np.uint8), (96, 1)))
    boxes = (Box(10, 30, 40, 30), Box(40, 20, 30, 50))
    item = AnnotatedImage("a", path, (Grounding("a finding", "finding", boxes),))
    data = DatasetStream("test", tmp_path, tmp_path / "a.csv", "all", iter([item]), 1,
                         ReadLog())
    rng = np.random.default_rng(5)
    heat = cv2.GaussianBlur(rng.normal(0.3, 0.3, (96, 128)).astype(np.float32), (0, 0), 3)
    heat[:, :16] = heat[:, 112:] = np.nan  # a centre crop
    run = evaluate(data, FixedProvider(heat), score_size=32, progress=False)
    assert not run.log.issues
    [sample] = run.samples
    expected = himl_scores(heat, SampleTruth(96, 128, boxes))
    assert np.array_equal([sample.conventions["hi-ml"].cnr, *sample.conventions["hi-ml"].ious],
                          [expected.cnr, *expected.ious])
    assert sample.conventions["hi-ml"].cnr != sample.conventions["lesionloc"].cnr


# -- agreement with the reproduction's arithmetic, transcribed to numpy ---------------------
# Its CNR as the brief of this work quotes it; nanvar is taken as the population variance
# (the common torch recipe `(x - x.nanmean()).square().nanmean()`). It is run in float64 so
# the comparison tests the logic, not float32 rounding; thresholds compare the float32 map.


def _nanvar(values: np.ndarray) -> float:
    return float(np.nanmean(np.square(values - np.nanmean(values))))


def _reproduction_cnr(sim_map: np.ndarray, bboxes: list[tuple[int, int, int, int]]) -> float:
    sim_map = sim_map.astype(np.float64)  # a copy, made once
    cnrs = []
    for bbox in bboxes:
        x, y, w, h = bbox
        area_in = sim_map[y:y + h, x:x + w]
        mu_in, var_in = np.nanmean(area_in), _nanvar(area_in)
        sim_map[y:y + h, x:x + w] = np.nan
        mu_out, var_out = np.nanmean(sim_map), _nanvar(sim_map)
        cnr = np.abs(mu_in - mu_out) / np.sqrt(var_in + var_out)
        cnrs.append(np.nan_to_num(cnr))
    return float(np.mean(cnrs))


def _reproduction_ious(sim_map: np.ndarray, bboxes: list[tuple[int, int, int, int]]
                       ) -> tuple[float, ...]:
    gt = np.zeros(sim_map.shape, bool)
    for x, y, w, h in bboxes:
        gt[y:y + h, x:x + w] = True
    ious = []
    for t in (0.1, 0.2, 0.3, 0.4, 0.5):
        pred = sim_map > t
        ious.append(float(np.sum(pred & gt) / np.sum(pred | gt)))
    return tuple(ious)


def _crop_nan(heat: np.ndarray, resize: int, crop: int) -> None:
    """NaN outside hi-ml's centre crop (inference_engine.py convert_similarity_to_image_size)."""
    height, width = heat.shape
    side = int(crop * min(height, width) / resize)
    top, left = floor((height - side) / 2), floor((width - side) / 2)
    keep = np.zeros(heat.shape, bool)
    keep[top:height - ceil((height - side) / 2), left:width - ceil((width - side) / 2)] = True
    heat[~keep] = np.nan


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_hi_ml_scores_equal_the_reproductions_on_random_maps() -> None:
    rng = np.random.default_rng(7)
    overlaps = unseen_boxes = 0
    for trial in range(60):
        height, width = [(96, 128), (128, 96), (120, 120)][trial % 3]
        heat = cv2.GaussianBlur(rng.normal(size=(height, width)).astype(np.float32), (0, 0),
                                float(rng.uniform(1, 8)))
        heat = (heat / np.abs(heat).max() * rng.uniform(0.2, 0.8) + rng.uniform(0, 0.4)
                ).astype(np.float32)
        if trial % 2:
            _crop_nan(heat, 512, int(rng.choice([448, 480, 320])))
        bboxes = []
        for _ in range(int(rng.integers(1, 4))):
            w, h = int(rng.integers(3, width // 2)), int(rng.integers(3, height // 2))
            bboxes.append((int(rng.integers(0, width - 2)), int(rng.integers(0, height - 2)),
                           w, h))  # some reach past the right or bottom edge
        ours = himl_scores(heat, SampleTruth(height, width, tuple(Box(*b) for b in bboxes)))
        assert ours.cnr == pytest.approx(_reproduction_cnr(heat, bboxes), rel=1e-9, abs=1e-12)
        assert ours.ious == _reproduction_ious(heat, bboxes)
        regions = himl_regions(SampleTruth(height, width, tuple(Box(*b) for b in bboxes)))
        overlaps += any((a & b).any() for i, a in enumerate(regions) for b in regions[i + 1:])
        unseen_boxes += any(np.isnan(heat[r]).all() for r in regions)
    assert overlaps > 5 and unseen_boxes > 0  # the quirks this convention has were exercised


def test_the_convention_names_its_thresholds_and_sources() -> None:
    assert HIML.name == "hi-ml" and HIML.thresholds == HIML_THRESHOLDS
    assert "ldm-phrase-grounding" in HIML.source and "not public" in HIML.source


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_a_flat_box_or_a_flat_outside_scores_as_the_reproduction() -> None:
    """A box whose pixels are all equal goes through the exact values (the rest of the map may
    be flat too); a flat map outside the boxes is a variance of zero, not a rounding of it."""
    rng = np.random.default_rng(11)
    heat = cv2.GaussianBlur(rng.normal(size=(96, 128)).astype(np.float32), (0, 0), 3.0)
    cases = []
    flat_box = heat.copy()
    flat_box[10:30, 20:50] = 0.25  # box 1 flat, box 2 not
    cases.append((flat_box, [(20, 10, 30, 20), (70, 40, 30, 30)]))
    flat_outside = np.full_like(heat, 0.5)
    flat_outside[40:70, 70:100] = heat[40:70, 70:100]  # only box 2 varies
    cases.append((flat_outside, [(70, 40, 30, 30), (5, 5, 10, 10)]))
    for sim_map, bboxes in cases:
        ours = himl_scores(sim_map, SampleTruth(96, 128, tuple(Box(*b) for b in bboxes)))
        assert ours.cnr == pytest.approx(_reproduction_cnr(sim_map, bboxes), rel=1e-9, abs=1e-12)
        assert ours.ious == _reproduction_ious(sim_map, bboxes)
