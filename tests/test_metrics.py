"""The localization metrics against cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lesionloc_runtime import metrics as M

# A 4x4 heatmap and a 2x2 ground truth in its top-left corner.
HEAT = np.array([[0.9, 0.8, 0.1, 0.0],
                 [0.7, 0.6, 0.2, 0.1],
                 [0.1, 0.3, 0.0, 0.0],
                 [0.0, 0.2, 0.1, 0.4]], dtype=np.float32)
MASK = M.boxes_to_mask([[0, 0, 2, 2]], 4, 4)


def test_boxes_to_mask_uses_pixel_centres_and_never_loses_a_thin_box():
    mask = M.boxes_to_mask([[0.6, 1.4, 2.0, 1.0]], 4, 5)  # centres 1.5 and 2.5 in x, 1.5 in y
    assert np.argwhere(mask).tolist() == [[1, 1], [1, 2]]
    thin = M.boxes_to_mask([[2.2, 0.0, 0.3, 4.0]], 4, 4)
    assert thin[:, 2].all() and thin.sum() == 4
    assert MASK.sum() == 4 and MASK[:2, :2].all()


def test_pointing_game_hit_miss_and_ties_at_chance():
    assert M.pointing_game(HEAT, MASK) == 1.0
    assert M.pointing_game(HEAT, ~MASK) == 0.0
    uniform = np.ones((4, 4))
    assert M.pointing_game(uniform, MASK) == pytest.approx(4 / 16)  # area fraction = chance
    two_peaks = np.zeros((4, 4))
    two_peaks[0, 0] = two_peaks[3, 3] = 1.0
    assert M.pointing_game(two_peaks, MASK) == 0.5


def test_contrast_to_noise_ratio_by_hand():
    inside = np.array([0.9, 0.8, 0.7, 0.6])
    outside = np.array([0.1, 0.0, 0.2, 0.1, 0.1, 0.3, 0.0, 0.0, 0.0, 0.2, 0.1, 0.4])
    want = abs(inside.mean() - outside.mean()) / math.sqrt(inside.var() + outside.var())
    assert M.contrast_to_noise_ratio(HEAT, MASK) == pytest.approx(want, rel=1e-6)
    # affine invariant, 0 for a constant heatmap
    assert M.contrast_to_noise_ratio(3 * HEAT - 1, MASK) == pytest.approx(want, rel=1e-5)
    assert M.contrast_to_noise_ratio(np.ones((4, 4)), MASK) == 0.0
    # the shared arithmetic keeps the sign when asked, and an empty region is undefined
    assert M.contrast_of_regions(outside, inside, absolute=False) == pytest.approx(-want)
    assert math.isnan(M.contrast_of_regions(inside[:0], outside))


def test_iou_dice_precision_recall_by_hand():
    # min-max normalized = HEAT / 0.9; >= 0.5 keeps 0.9, 0.8, 0.7, 0.6 (0.6/0.9 = 0.67)
    assert M.iou(HEAT, MASK, 0.5) == 1.0
    assert M.dice(HEAT, MASK, 0.5) == 1.0
    # >= 0.3 adds 0.3 (0.33) and 0.4 (0.44): 6 predicted, 4 right
    assert M.iou(HEAT, MASK, 0.3) == pytest.approx(4 / 6)
    assert M.dice(HEAT, MASK, 0.3) == pytest.approx(2 * 4 / (6 + 4))
    assert M.precision_recall(HEAT, MASK, 0.3) == pytest.approx((4 / 6, 1.0))
    # >= 0.75 keeps 0.9 and 0.8 (0.89) and 0.7 (0.78)
    assert M.precision_recall(HEAT, MASK, 0.75) == pytest.approx((1.0, 3 / 4))
    # a constant heatmap predicts nothing
    assert M.iou(np.ones((4, 4)), MASK) == 0.0 and M.dice(np.ones((4, 4)), MASK) == 0.0


def test_mean_iou_averages_thresholds_point_one_to_point_five():
    # normalized values: 0.1 -> .11, 0.2 -> .22, 0.3 -> .33, 0.4 -> .44, rest >= .67
    # t=0.1: 0.1 x4, 0.2 x2, 0.3, 0.4 plus the 4 true: 12 predicted -> 4/12
    # t=0.2: 0.2 x2, 0.3, 0.4 + 4 -> 4/8; t=0.3: 0.3, 0.4 + 4 -> 4/6; t=0.4: 0.4 + 4 -> 4/5
    # t=0.5: 4/4
    want = np.mean([4 / 12, 4 / 8, 4 / 6, 4 / 5, 1.0])
    assert M.mean_iou(HEAT, MASK) == pytest.approx(want)


def test_auroc_by_hand_with_ties():
    heat = np.array([[3, 1], [2, 2]], dtype=np.float32)
    mask = np.array([[True, False], [True, False]])
    # positives {3, 2}, negatives {1, 2}: pairs (3>1, 3>2, 2>1, 2=2 counts 1/2) = 3.5 / 4
    assert M.auroc(heat, mask) == pytest.approx(3.5 / 4)
    assert M.auroc(HEAT, MASK) == 1.0
    assert M.auroc(np.ones((4, 4)), MASK) == 0.5
    assert M.auroc(HEAT, np.zeros((4, 4), bool)) == 0.5


def test_auroc_is_the_share_of_inside_outside_pairs_ordered_right():
    """Against the definition itself, every pair counted (ties one half), on small random maps
    with many tied values."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        shape = tuple(rng.integers(1, 12, 2))
        heat = np.round(rng.standard_normal(shape) * rng.choice([1, 3, 20])) / 3
        mask = rng.random(shape) < rng.random()
        inside, outside = heat[mask][:, None], heat[~mask][None, :]
        if not inside.size or not outside.size:
            assert M.auroc(heat, mask) == 0.5
            continue
        pairs = (inside > outside).sum() + 0.5 * (inside == outside).sum()
        assert M.auroc(heat, mask) == pytest.approx(pairs / (inside.size * outside.size), abs=1e-15)


def test_peak_distance_pair_by_pair_is_the_distance_transforms(monkeypatch):
    """The two ways `_peak_distance` measures (pairs for a few peaks, OpenCV's exact distance
    transform for many) agree, ties at the maximum averaged alike."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        shape = tuple(rng.integers(2, 40, 2))
        heat = np.round(rng.standard_normal(shape) * rng.choice([0.3, 4]))
        mask = rng.random(shape) < rng.choice([0.02, 0.3])
        direct = M.peak_distance(heat, mask)
        monkeypatch.setattr(M, "_PAIRS_MEASURED", 0)
        transform = M.peak_distance(heat, mask)
        monkeypatch.undo()
        assert direct == pytest.approx(transform, rel=1e-6, nan_ok=True)


def test_peak_distance_by_hand():
    mask = np.zeros((100, 200), bool)
    mask[40:60, 100:120] = True
    heat = np.zeros((100, 200))
    heat[50, 50] = 1.0  # 50 px left of the box, on the long side of 200
    assert M.peak_distance(heat, mask) == pytest.approx(50 / 200)
    heat[50, 50], heat[0, 0] = 0.0, 1.0  # diagonal: 40 rows above, 100 columns left
    assert M.peak_distance(heat, mask) == pytest.approx(np.hypot(40, 100) / 200, rel=1e-6)
    heat[0, 0], heat[45, 110] = 0.0, 1.0
    assert M.peak_distance(heat, mask) == 0.0  # on the truth
    heat[50, 50] = 1.0  # tied with the hit: averaged, as the pointing game averages ties
    assert M.peak_distance(heat, mask) == pytest.approx(25 / 200)
    assert np.isnan(M.peak_distance(heat, np.zeros_like(mask)))


def test_score_heatmap_equals_the_single_metrics():
    rng = np.random.default_rng(0)
    for trial in range(12):
        heat = rng.random((30, 40)).astype(np.float32)
        if trial % 3 == 0:
            heat = np.round(heat * 4) / 4  # many ties
        mask = M.boxes_to_mask([[5, 6, 10, 8]], 30, 40)
        scores = M.score_heatmap(heat, mask, 0.4)
        assert scores.pointing_game == M.pointing_game(heat, mask)
        assert scores.peak_distance == pytest.approx(M.peak_distance(heat, mask))
        assert scores.cnr == pytest.approx(M.contrast_to_noise_ratio(heat, mask))
        assert scores.miou == pytest.approx(M.mean_iou(heat, mask))
        assert scores.ious == pytest.approx([M.iou(heat, mask, t) for t in M.MIOU_THRESHOLDS])
        assert scores.iou == pytest.approx(M.iou(heat, mask, 0.4))
        assert scores.dice == pytest.approx(M.dice(heat, mask, 0.4))
        assert scores.auroc == pytest.approx(M.auroc(heat, mask))
        assert (scores.precision, scores.recall) == pytest.approx(M.precision_recall(heat, mask, 0.4))


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        M.score_heatmap(np.zeros((3, 3)), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="NaN"):
        M.pointing_game(np.full((2, 2), np.nan), np.ones((2, 2), bool))
