"""CNR and mIoU under each convention: hand-computed cases (including where the conventions
disagree), NaN (pixels a cropping model did not see), the means, and agreement with a
transcription of AFLoc's own evaluation arithmetic on random maps (`hi-ml` in detail:
test_convention_himl.py)."""

from __future__ import annotations

import copy
import math
from math import ceil, floor
from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.evaluation import evaluate
from lesionloc_runtime.evaluation.conventions import (
    AFLOC,
    AFLOC_THRESHOLDS,
    LESIONLOC,
    AflocGrid,
    Convention,
    ConventionScores,
    SampleTruth,
    afloc_scores,
    lesionloc_scores,
    mean_over_groups,
    mean_over_samples,
    score_conventions,
)
from lesionloc_runtime.evaluation.records import AnnotatedImage, DatasetStream, Grounding, ReadLog
from lesionloc_runtime.metrics import boxes_to_mask, score_heatmap

S = 224  # an image the size of AFLoc's grid: its letterbox is the identity


def every(heat: np.ndarray, boxes: list[Box], height: int = S, width: int = S
          ) -> dict[str, ConventionScores]:
    """Every convention on one heatmap of a (height, width) image, scored at full size."""
    scores = score_heatmap(heat, boxes_to_mask(boxes, height, width))
    grid = AflocGrid.for_image(height, width)
    return score_conventions(scores, grid.heatmap(heat), heat,
                             SampleTruth(height, width, tuple(boxes)))


def columns(values_even: float, values_odd: float) -> np.ndarray:
    """A map whose even columns hold one value and odd columns the other."""
    heat = np.full((S, S), values_even, np.float32)
    heat[:, 1::2] = values_odd
    return heat


# -- hand-computed cases -------------------------------------------------------------------


def test_a_box_darker_than_its_surround_has_positive_cnr_negative_only_for_afloc():
    # Outside: columns alternate 0 and 2 (mean 1, variance 1) over the whole image and over
    # AFLoc's centre square alike (both have an even number of columns, the box removes as
    # many even columns as odd). Inside: -1 and 1 (mean 0, variance 1).
    box = Box(100, 100, 10, 10)
    heat = columns(0.0, 2.0)
    heat[100:110, 100:110] = columns(-1.0, 1.0)[100:110, 100:110]
    scores = every(heat, [box])
    assert scores["lesionloc"].cnr == pytest.approx(1 / math.sqrt(2))  # |0 - 1| / sqrt(1 + 1)
    assert scores["hi-ml"].cnr == pytest.approx(1 / math.sqrt(2))  # one box: the same
    assert scores["afloc"].cnr == pytest.approx(-1 / math.sqrt(2))  # (0 - 1) / sqrt(1 + 1)


def test_afloc_leaves_pixels_inside_two_boxes_of_a_phrase_out_of_its_cnr():
    # Boxes over columns 100-109 and 106-115, rows 100-109: columns 106-109 are in both.
    # Outside: 0/2 (mean 1, variance 1). Pixels in one box: 3/5 (mean 4, variance 1); the 40
    # pixels in both: 4. lesionloc's inside is all 160 (variance 120 / 160 = 0.75); AFLoc's
    # is the 120 pixels in exactly one box (gtmask == 1 of the summed masks).
    boxes = [Box(100, 100, 10, 10), Box(106, 100, 10, 10)]
    heat = columns(0.0, 2.0)
    heat[100:110, 100:116] = columns(3.0, 5.0)[100:110, 100:116]
    heat[100:110, 106:110] = 4.0
    scores = every(heat, boxes)
    assert scores["lesionloc"].cnr == pytest.approx(3 / math.sqrt(1.75))
    assert scores["afloc"].cnr == pytest.approx(3 / math.sqrt(2))
    # hi-ml, box by box: the first (60 px of 3/5 and the 40 of 4: mean 4, variance 0.6)
    # against everything else, the second box's own 60 px included; then the second box's
    # own 60 px (mean 4, variance 1) against the rest (mean 1, variance 1)
    n_out = S * S - 100
    mean_out = (60 * 4 + n_out - 60) / n_out
    var_out = (60 * 17 + (n_out - 60) * 2) / n_out - mean_out**2
    first = (4 - mean_out) / math.sqrt(0.6 + var_out)
    assert scores["hi-ml"].cnr == pytest.approx((first + 3 / math.sqrt(2)) / 2)
    # Both IoUs take the 160 pixels of either box as the truth. At t = 0.5 lesionloc keeps
    # values >= 2.5 of [0, 5] (all 160); AFLoc keeps > 0.5 of [-1, 1], i.e. > 3.75: the 60
    # pixels holding 3 are dropped, IoU 100 / 160.
    assert scores["lesionloc"].ious[-1] == 1.0
    assert scores["afloc"].ious[-1] == pytest.approx(100 / 160)


def test_miou_thresholds_mean_different_things_in_each_convention():
    # The box holds 1.0, a decoy square 0.62 and another 0.75 (each 100 px like the box), the
    # rest 0. lesionloc scales to [0, 1] and keeps >= t: both squares at every t, IoU
    # 100 / 300. AFLoc scales to [-1, 1] and keeps > t: the decoy (0.24) only at t = 0.1 and
    # 0.2, the other square (exactly 0.5) up to t = 0.4 but not at 0.5.
    heat = np.zeros((S, S), np.float32)
    heat[100:110, 100:110] = 1.0
    heat[60:70, 60:70] = 0.62
    heat[150:160, 60:70] = 0.75
    scores = every(heat, [Box(100, 100, 10, 10)])
    assert scores["lesionloc"].ious == pytest.approx((1 / 3,) * 5)
    assert scores["hi-ml"].ious == pytest.approx((1 / 3,) * 5)  # all three above 0.5, raw
    assert scores["lesionloc"].miou == pytest.approx(1 / 3)
    assert scores["afloc"].ious == pytest.approx((1 / 3, 1 / 3, 0.5, 0.5, 1.0))
    assert scores["afloc"].miou == pytest.approx((2 / 3 + 1 + 1) / 5)


def test_a_constant_heatmap_has_no_contrast_and_predicts_nothing():
    scores = every(np.full((S, S), 0.3, np.float32), [Box(100, 100, 10, 10)])
    assert scores["lesionloc"].cnr == 0.0 and scores["lesionloc"].ious == (0.0,) * 5
    assert scores["afloc"].cnr == 0.0
    assert all(math.isnan(v) for v in scores["afloc"].ious)  # AFLoc: no prediction, no IoU
    # hi-ml thresholds the raw map: 0.3 is above 0.1 and 0.2 (everything is predicted) and
    # not above 0.3
    assert scores["hi-ml"].cnr == 0.0
    assert scores["hi-ml"].ious == pytest.approx((100 / S**2,) * 2 + (0.0,) * 3)


def test_a_box_in_aflocs_margin_is_undefined_there_and_scored_by_lesionloc():
    heat = columns(0.0, 0.2)  # outside: mean 0.1, variance 0.01
    heat[2:10, 2:10] = 1.0
    scores = every(heat, [Box(2, 2, 8, 8)])  # wholly within the 14 px AFLoc does not score
    assert scores["lesionloc"].cnr == pytest.approx(0.9 / 0.1)
    assert scores["hi-ml"].cnr == pytest.approx(0.9 / 0.1)
    assert math.isnan(scores["afloc"].cnr) and math.isnan(scores["afloc"].miou)


def test_afloc_letterbox_scales_floors_and_centres_the_boxes_of_a_wide_image():
    # 448 x 300 (w x h): scale 0.5, content 224 x int(150.0) = 150 rows, 37 above (74 // 2)
    grid = AflocGrid.for_image(300, 448)
    assert (grid.scale, grid.height, grid.width, grid.top, grid.left) == (0.5, 150, 224, 37, 0)
    assert grid.box(Box(101, 51, 21, 9.5)) == (50, 62, 10, 4)  # floor(25.5 + 37) = 62
    tall = AflocGrid.for_image(1000, 700)  # the width is padded: int(700 * 0.224) = 156
    assert (tall.height, tall.width, tall.top, tall.left) == (224, 156, 0, 34)
    heat = tall.heatmap(np.ones((1000, 700), np.float32))
    seen = ~np.isnan(heat)
    # AFLoc's margin (14 px) and the padding (34 px) on the left and right; margin above
    assert seen[14:210, 34:190].all() and seen.sum() == 196 * 156


def test_a_mask_is_letterboxed_onto_aflocs_grid_like_the_scoring_grid():
    mask = np.zeros((300, 448), bool)
    mask[100:160, 200:300] = True
    count = AflocGrid.for_image(300, 448).truth(SampleTruth(300, 448, mask=mask))
    assert count.dtype == np.int16 and count.max() == 1
    assert count[37 + 50:37 + 80, 100:150].all() and count.sum() == 30 * 50


# -- NaN: pixels outside the region a cropping model saw -----------------------------------


def test_afloc_leaves_nan_pixels_out_like_its_margin():
    rng = np.random.default_rng(3)
    heat = rng.normal(size=(S, S)).astype(np.float32)
    cover = AflocGrid.for_image(S, S).coverage([Box(90, 80, 40, 30)])
    cropped = heat.copy()
    cropped[:, :60] = np.nan  # the model saw columns 60 on
    grid = AflocGrid.for_image(S, S)
    seen = ~np.isnan(grid.heatmap(cropped))
    assert seen.sum() == 196 * (210 - 60)
    direct = afloc_scores(grid.heatmap(cropped), cover)
    reference = _afloc_sample(cropped, cover)  # AFLoc's own code on the NaN map
    assert direct.cnr == pytest.approx(reference.cnr, rel=1e-5)
    assert direct.ious == reference.ious
    assert direct != afloc_scores(grid.heatmap(heat), cover)  # the unseen band mattered


def same(a: ConventionScores, b: ConventionScores) -> bool:
    return np.array_equal([a.cnr, *a.ious], [b.cnr, *b.ious], equal_nan=True)


def _write_image(path: Path, height: int = 96, width: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.tile(np.arange(width, dtype=np.uint8), (height, 1)))
    return path


class FixedProvider:
    """Returns the same heatmap for every prompt."""

    def __init__(self, heat: np.ndarray) -> None:
        self.heat = heat

    def heatmaps(self, image, texts):
        return np.stack([self.heat] * len(texts))


def _stream(tmp_path: Path, boxes: tuple[Box, ...]) -> DatasetStream:
    path = _write_image(tmp_path / "a.png")
    item = AnnotatedImage("a", path, (Grounding("a finding", "finding", boxes),))
    return DatasetStream("test", tmp_path, tmp_path / "a.csv", "all", iter([item]), 1, ReadLog())


def _crop_heatmap() -> np.ndarray:
    """A centre-crop model's map of a 96 x 128 image: NaN in 16 columns left and right."""
    rng = np.random.default_rng(5)
    heat = cv2.GaussianBlur(rng.normal(size=(96, 128)).astype(np.float32), (0, 0), 4)
    heat[:, :16] = np.nan
    heat[:, 112:] = np.nan
    return heat


def test_lesionloc_scores_unseen_pixels_as_the_lowest_value(tmp_path: Path) -> None:
    heat, box = _crop_heatmap(), Box(10, 30, 40, 30)  # partly in the unseen columns
    run = evaluate(_stream(tmp_path, (box,)), FixedProvider(heat), progress=False)
    [sample] = run.samples
    lowest = np.where(np.isnan(heat), np.nanmin(heat), heat)
    expected = score_heatmap(lowest, boxes_to_mask([box], 96, 128))
    assert sample.scores == expected
    assert same(sample.conventions["lesionloc"], lesionloc_scores(expected))
    grid = AflocGrid.for_image(96, 128)
    assert same(sample.conventions["afloc"],
                afloc_scores(grid.heatmap(heat), grid.coverage([box])))
    assert not run.log.issues


def test_truth_the_model_never_saw_is_a_miss_under_lesionloc(tmp_path: Path) -> None:
    heat, box = _crop_heatmap(), Box(2, 30, 10, 30)  # wholly in the unseen columns
    run = evaluate(_stream(tmp_path, (box,)), FixedProvider(heat), progress=False)
    [sample] = run.samples
    assert sample.scores.pointing_game == 0.0 and sample.scores.recall == 0.0
    assert math.isnan(sample.conventions["afloc"].cnr)  # AFLoc's code leaves it undefined


@pytest.mark.parametrize("case, message", [
    ("infinite", "infinite values"),
    ("all-nan", "no finite value"),
])
def test_samples_the_model_cannot_score_are_skipped_with_the_reason(
    tmp_path: Path, case: str, message: str
) -> None:
    heat, box = _crop_heatmap(), Box(2, 30, 10, 30)
    if case == "infinite":
        heat[50, 50] = np.inf
    elif case == "all-nan":
        heat[:] = np.nan
    run = evaluate(_stream(tmp_path, (box,)), FixedProvider(heat), progress=False)
    assert not run.samples and run.log.skipped_samples == 1
    [issue] = run.log.issues
    assert issue.kind == "skipped" and message in issue.message


# -- the means -----------------------------------------------------------------------------


def test_means_skip_undefined_values_per_threshold_then_average_categories() -> None:
    two = Convention("two", (0.1, 0.2), "", "")
    nan = float("nan")
    a = mean_over_samples([ConventionScores(1.0, (0.2, nan)), ConventionScores(nan, (0.4, 0.6))],
                          two)
    b = mean_over_samples([ConventionScores(3.0, (1.0, nan))], two)
    assert a.cnr == 1.0 and a.ious == pytest.approx((0.3, 0.6))
    assert (a.undefined_cnr, a.undefined_ious) == (1, 1)
    assert b.cnr == 3.0 and b.ious[0] == 1.0 and math.isnan(b.ious[1])
    macro = mean_over_groups([a, b], two)
    assert macro.cnr == 2.0 and macro.ious == pytest.approx((0.65, 0.6))
    assert macro.miou == pytest.approx(0.625) and (macro.undefined_cnr, macro.undefined_ious) \
        == (1, 2)
    assert math.isnan(mean_over_samples([], two).cnr)


def test_lesionloc_means_equal_averaging_each_samples_miou() -> None:
    rng = np.random.default_rng(2)
    samples = [ConventionScores(float(c), tuple(rng.random(5))) for c in rng.random(7)]
    means = mean_over_samples(samples, LESIONLOC)
    assert means.miou == pytest.approx(np.mean([s.miou for s in samples]))
    assert means.cnr == pytest.approx(np.mean([s.cnr for s in samples]))


# -- agreement with AFLoc's own arithmetic (github.com/YH0517/AFLoc 940e3d7), transcribed ---
# numpy stands in for torch: F.pad(x2d, (l, r, t, b)) is np.pad(x2d, ((t, b), (l, r))).


def _norm_heatmap(heatmap_, nan, mode=0):  # eval/utils.py
    heatmap = copy.deepcopy(heatmap_)
    heatmap_wo_nan = heatmap[~nan]
    if heatmap_wo_nan.max() - heatmap_wo_nan.min() == 0:
        return heatmap_wo_nan
    heatmap_wo_nan = (heatmap_wo_nan - heatmap_wo_nan.min()) / (
        heatmap_wo_nan.max() - heatmap_wo_nan.min())
    if mode == 0:
        heatmap_wo_nan = heatmap_wo_nan * 2 - 1
    heatmap[~nan] = heatmap_wo_nan
    return heatmap


def _compute_iou(gtmask_, premask_, nan, only_pos=True):  # eval/metric.py
    gtmask = gtmask_[~nan]
    premask = premask_[~nan]
    intersection = np.logical_and(gtmask, premask)
    union = np.logical_or(gtmask, premask)
    if only_pos:
        if np.sum(premask) == 0 or np.sum(gtmask) == 0:
            return np.nan
        return np.sum(intersection) / (np.sum(union))
    return np.nan if np.sum(union) == 0 else np.sum(intersection) / (np.sum(union))


def _compute_cnr(gtmask_, heatmap_, nan):  # eval/metric.py
    heatmap = _norm_heatmap(heatmap_, nan)
    heatmap_wo_nan = heatmap[~nan]
    gtmask_wo_nan = gtmask_[~nan]
    A = heatmap_wo_nan[gtmask_wo_nan == 1]
    A_ = heatmap_wo_nan[gtmask_wo_nan == 0]
    meanA, meanA_, varA, varA_ = A.mean(), A_.mean(), A.var(), A_.var()
    if varA + varA_ == 0:
        return 0
    return (meanA - meanA_) / pow((varA + varA_), 0.5)


def _set_margin(similarity_map, width=224, height=224, resize_size=512, crop_size=448):
    smallest_dimension = min(height, width)  # eval/common.py
    cropped_size_orig_space = int(crop_size * smallest_dimension / resize_size)
    target_size = cropped_size_orig_space, cropped_size_orig_space
    margin_w, margin_h = (width - target_size[0]), (height - target_size[1])
    margins_for_pad = (floor(margin_w / 2), ceil(margin_w / 2), floor(margin_h / 2),
                       ceil(margin_h / 2))
    mask = np.pad(np.zeros(target_size, np.float32),
                  ((margins_for_pad[2], margins_for_pad[3]), (margins_for_pad[0],
                                                              margins_for_pad[1])),
                  constant_values=np.nan)
    similarity_map[np.isnan(mask)] = float("NaN")
    return similarity_map


def _box_transfer(box, w, h, scale):  # eval/box_transfer.py
    size = (h, w)
    max_dim = max(size)
    max_ind = size.index(max_dim)
    box = np.array(box)
    if max_ind == 0:
        wpercent = scale / float(size[0])
        hsize = int(float(size[1]) * float(wpercent))
        desireable_size = (scale, hsize)
        box = box * wpercent
    else:
        hpercent = scale / float(size[1])
        wsize = int(float(size[0]) * float(hpercent))
        desireable_size = (wsize, scale)
        box = box * hpercent
    if max_ind == 0:
        pad_size = scale - desireable_size[1]
        left, top = int(np.floor(pad_size / 2)), 0
    else:
        pad_size = scale - desireable_size[0]
        top, left = int(np.floor(pad_size / 2)), 0
    box[0] = int(np.floor(box[0] + left))
    box[1] = int(np.floor(box[1] + top))
    box[2] = int(np.floor(box[2]))
    box[3] = int(np.floor(box[3]))
    return box.astype(np.int32)


def _box2mask(box, w, h):  # eval/box_transfer.py
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[box[1]:box[1] + box[3], box[0]:box[0] + box[2]] = 1
    return mask


def _afloc_sample(hmap: np.ndarray, gtmask: np.ndarray) -> ConventionScores:
    """One sample of eval/common.py Pipeline.test with margin=True (inference.py)."""
    hmap = _set_margin(hmap.copy())
    nan = np.isnan(hmap)
    heatmap = _norm_heatmap(hmap, nan, mode=0)
    ious = []
    for threshold in list(np.arange(0.1, 0.6, 0.1)):
        # NumPy 1.x, which AFLoc ran, compared a float32 map with a float64 scalar in float32
        mask = np.where(heatmap > np.float32(threshold), 1, 0)
        ious.append(float(_compute_iou(gtmask, mask, nan)))
    return ConventionScores(float(_compute_cnr(gtmask, heatmap, nan)), tuple(ious))


def _random_boxes(rng: np.random.Generator, height: int, width: int, n: int) -> list[Box]:
    boxes = []
    for _ in range(n):
        w, h = rng.uniform(0.05, 0.5) * width, rng.uniform(0.05, 0.5) * height
        boxes.append(Box(round(rng.uniform(0, width - w)), round(rng.uniform(0, height - h)),
                         round(w), round(h)))
    return boxes


def test_box_coverage_equals_aflocs_box_transfer_and_summed_masks() -> None:
    rng = np.random.default_rng(0)
    for height, width in [(3056, 2544), (2544, 3056), (2048, 2048), (1713, 2021), (96, 128)]:
        for _ in range(20):
            boxes = _random_boxes(rng, height, width, int(rng.integers(1, 4)))
            theirs = sum(_box2mask(_box_transfer(list(b.xywh), width, height, 224), 224, 224)
                         for b in boxes)
            ours = AflocGrid.for_image(height, width).coverage(boxes)
            assert np.array_equal(ours, theirs), (height, width, boxes)


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:Degrees of freedom",
                            "ignore:invalid value encountered")
def test_afloc_scores_equal_aflocs_code_on_random_maps() -> None:
    rng = np.random.default_rng(1)
    grid = AflocGrid.for_image(S, S)
    defined = signs = 0
    for trial in range(60):
        heat = cv2.GaussianBlur(rng.normal(size=(S, S)).astype(np.float32), (0, 0),
                                float(rng.uniform(1, 12)))
        if trial % 3 == 0:  # an unseen band, as a cropping model leaves it
            heat[:, : int(rng.integers(10, 80))] = np.nan
        cover = grid.coverage(_random_boxes(rng, S, S, int(rng.integers(1, 4))))
        ours = afloc_scores(grid.heatmap(heat), cover)
        theirs = _afloc_sample(heat, cover.astype(np.uint8))
        assert ours.cnr == pytest.approx(theirs.cnr, rel=1e-5, abs=1e-6, nan_ok=True)
        assert np.array_equal(ours.ious, theirs.ious, equal_nan=True)
        defined += sum(not math.isnan(v) for v in ours.ious)
        signs += ours.cnr < 0
    assert defined > 100 and 0 < signs < 60  # the cases cover defined IoUs and both signs


def _dict_mean(d: dict, sep: bool = False):  # eval/common.py
    if sep:
        return {k: np.nanmean(v, keepdims=True) for k, v in d.items()}
    return np.nanmean([np.nanmean(v) for v in d.values()])


def test_macro_means_equal_aflocs_table_on_random_samples() -> None:
    rng = np.random.default_rng(4)
    categories: dict[str, list[ConventionScores]] = {}
    for name in ("Atelectasis", "Cardiomegaly", "Edema", "Pneumonia"):
        samples = []
        for _ in range(int(rng.integers(1, 6))):
            ious = tuple(float("nan") if rng.random() < 0.2 else float(rng.random())
                         for _ in AFLOC_THRESHOLDS)
            samples.append(ConventionScores(float(rng.normal()), ious))
        categories[name] = samples
    groups = [mean_over_samples(s, AFLOC) for s in categories.values()]
    macro = mean_over_groups(groups, AFLOC)
    # Pipeline.test: per threshold, dict_mean of the category lists; then np.mean over them
    iou_thre_cat = [_dict_mean({k: [s.ious[t] for s in v] for k, v in categories.items()})
                    for t in range(len(AFLOC_THRESHOLDS))]
    cnr = _dict_mean({k: [s.cnr for s in v] for k, v in categories.items()})
    assert macro.miou == pytest.approx(np.mean(iou_thre_cat))
    assert macro.cnr == pytest.approx(cnr)
    for (name, samples), group in zip(categories.items(), groups, strict=True):
        per_threshold = [_dict_mean({name: [s.ious[t] for s in samples]}, sep=True)[name][0]
                         for t in range(len(AFLOC_THRESHOLDS))]
        # the per-category "mean" row of metric.csv: a pandas mean, which skips NaN
        assert group.miou == pytest.approx(np.nanmean(per_threshold))
