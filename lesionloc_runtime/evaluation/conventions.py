"""CNR and mIoU under each published convention, so that `lesionloc-evaluate` can be compared
with each paper's own table: `lesionloc` (lesionloc_runtime.metrics), `afloc` (AFLoc's
evaluation code) and `hi-ml` (BioViL's definition as a public reproduction computes it).
docs/evaluation.md names the code each one follows and every choice made where it is silent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import ceil, floor

import numpy as np

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.evaluation.resample import resize_heatmap, resize_mask
from lesionloc_runtime.metrics import (
    MIOU_THRESHOLDS,
    LocalizationScores,
    boxes_to_mask,
    contrast_of_moments,
    contrast_of_regions,
)

__all__ = [
    "AFLOC",
    "AFLOC_THRESHOLDS",
    "CONVENTIONS",
    "HIML",
    "HIML_THRESHOLDS",
    "LESIONLOC",
    "AflocGrid",
    "Convention",
    "ConventionMeans",
    "ConventionScores",
    "SampleTruth",
    "afloc_scores",
    "himl_regions",
    "himl_scores",
    "lesionloc_scores",
    "mean_over_groups",
    "mean_over_samples",
    "score_conventions",
]

# AFLoc scores every map on its 224 px letterbox of the image, and (inference.py runs the
# pipeline with margin=True) only inside the centre square that BioViL's resize to 512 and
# crop to 448 would keep: int(448 * 224 / 512) = 196 px, 14 px off each edge.
_AFLOC_SIZE = 224
_AFLOC_RESIZE, _AFLOC_CROP = 512, 448
# np.arange(0.1, 0.6, 0.1) as eval/common.py builds it (its third value is 0.30000000000000004),
# as Python floats: `map > t` then compares in float32, as the NumPy 1.x that AFLoc ran did
# with a float64 scalar (NumPy 2 would compare in float64 and differ at exact ties).
AFLOC_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.arange(0.1, 0.6, 0.1))
# hi-ml thresholds the raw similarity map; `map > t` compares in the map's float32, where
# 0.3 and np.arange's 0.30000000000000004 are the same number.
HIML_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class Convention:
    """How one paper computes CNR and mIoU, stated in every output beside its columns."""

    name: str
    thresholds: tuple[float, ...]  # mIoU averages the IoU at each of these
    definition: str
    source: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "miou_thresholds": [round(t, 6) for t in self.thresholds],
                "definition": self.definition, "source": self.source}


LESIONLOC = Convention(
    "lesionloc", MIOU_THRESHOLDS,
    "on the scoring grid, unseen pixels at the map's lowest value: CNR = |mean_in - mean_out| / "
    "sqrt(var_in + var_out), in = the union of the boxes or the mask, out = the rest; mIoU = "
    "mean IoU of (heatmap min-max scaled to [0, 1]) >= t over t = 0.1, 0.2, 0.3, 0.4, 0.5",
    "lesionloc_runtime/metrics.py: contrast_to_noise_ratio, score_heatmap",
)
AFLOC = Convention(
    "afloc", AFLOC_THRESHOLDS,
    "on AFLoc's 224 px letterbox, over the centre 196 px square and the pixels the model saw: "
    "heatmap min-max scaled to [-1, 1]; CNR = (mean_in - mean_out) / sqrt(var_in + var_out), "
    "signed, in = pixels inside exactly one box, out = pixels in none; IoU of heatmap > t for "
    "t = 0.1, 0.2, 0.3, 0.4, 0.5, undefined when nothing is predicted or no box pixel is "
    "scored; undefined values are left out of every mean",
    "github.com/YH0517/AFLoc 940e3d7: eval/metric.py, eval/common.py, eval/utils.py, "
    "eval/box_transfer.py, inference.py",
)
HIML = Convention(
    "hi-ml", HIML_THRESHOLDS,
    "on the image's own pixels, the raw heatmap (not rescaled), pixels the model did not see "
    "(NaN) left out of CNR: for each box in turn, |mean_in - mean_out| / sqrt(var_in + "
    "var_out), population variances, in = the box without the earlier boxes of the phrase, "
    "out = every pixel in neither this box nor an earlier one; a box without in or out "
    "pixels scores 0; the phrase's CNR is the mean over its boxes, undefined if one is "
    "infinite; mIoU = mean IoU of heatmap > t for t = 0.1, 0.2, 0.3, 0.4, 0.5 against the "
    "union of the boxes, an unseen pixel never predicted",
    "BioViL's definition (Boecking et al. 2022) as github.com/vios-s/ldm-phrase-grounding "
    "metrics/eval_metrics.py computes it; Microsoft's own scoring code is not public",
)
CONVENTIONS: tuple[Convention, ...] = (LESIONLOC, AFLOC, HIML)


@dataclass(frozen=True)
class ConventionScores:
    """CNR and the IoU at each of a convention's thresholds for one sample; NaN where the
    convention leaves a value undefined (every mean leaves it out, as AFLoc's np.nanmean)."""

    cnr: float
    ious: tuple[float, ...]

    @property
    def miou(self) -> float:
        return _nanmean(self.ious)


@dataclass(frozen=True)
class ConventionMeans:
    """A convention's CNR and IoU per threshold averaged over a group of samples, and how many
    undefined values (CNRs; IoUs over all thresholds) were left out."""

    cnr: float
    ious: tuple[float, ...]
    undefined_cnr: int = 0
    undefined_ious: int = 0

    @property
    def miou(self) -> float:
        return _nanmean(self.ious)

    def to_dict(self) -> dict[str, object]:
        return {"iou_by_threshold": [_finite(v) for v in self.ious],
                "undefined": {"cnr": self.undefined_cnr, "iou": self.undefined_ious}}


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the defined (non-NaN) values; NaN when there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def mean_over_samples(scores: Sequence[ConventionScores], convention: Convention
                      ) -> ConventionMeans:
    """A category's (or all samples') means: CNR and, per threshold, IoU over the samples."""
    cnrs = [s.cnr for s in scores]
    columns = [[s.ious[k] for s in scores] for k in range(len(convention.thresholds))]
    return ConventionMeans(_nanmean(cnrs), tuple(_nanmean(c) for c in columns),
                           sum(math.isnan(v) for v in cnrs),
                           sum(math.isnan(v) for c in columns for v in c))


def mean_over_groups(groups: Sequence[ConventionMeans], convention: Convention
                     ) -> ConventionMeans:
    """The macro mean: per threshold, the mean of the category means (AFLoc's dict_mean per
    threshold, then the mean over thresholds; for `lesionloc` the same as averaging mIoUs)."""
    n = len(convention.thresholds)
    return ConventionMeans(_nanmean([g.cnr for g in groups]),
                           tuple(_nanmean([g.ious[k] for g in groups]) for k in range(n)),
                           sum(g.undefined_cnr for g in groups),
                           sum(g.undefined_ious for g in groups))


@dataclass(frozen=True)
class SampleTruth:
    """A sample's ground truth on its image: its boxes in image pixels when it was annotated
    as boxes (AFLoc draws boxes on its own grid), else its mask on the image."""

    height: int
    width: int
    boxes: tuple[Box, ...] = ()
    mask: np.ndarray | None = field(default=None, repr=False)


def lesionloc_scores(scores: LocalizationScores) -> ConventionScores:
    """Ours are the runtime's metrics: score_heatmap already computed them."""
    return ConventionScores(scores.cnr, scores.ious)


def _afloc_region() -> np.ndarray:
    """eval/common.py set_margin(width=224, height=224, resize_size=512, crop_size=448)."""
    side = int(_AFLOC_CROP * _AFLOC_SIZE / _AFLOC_RESIZE)
    margin = _AFLOC_SIZE - side
    region = np.zeros((_AFLOC_SIZE, _AFLOC_SIZE), bool)
    region[floor(margin / 2):_AFLOC_SIZE - ceil(margin / 2),
           floor(margin / 2):_AFLOC_SIZE - ceil(margin / 2)] = True
    return region


_AFLOC_REGION = _afloc_region()


@dataclass(frozen=True)
class AflocGrid:
    """AFLoc's letterbox of one image onto 224 x 224 (eval/box_transfer.py box_transfer): the
    long side scaled to 224, the short one truncated to whole pixels and centred with
    floor(pad / 2) before it."""

    scale: float
    height: int  # the image's extent on the grid
    width: int
    top: int
    left: int

    @classmethod
    def for_image(cls, height: int, width: int) -> AflocGrid:
        if height >= width:  # box_transfer takes a square image as the taller kind
            scale = _AFLOC_SIZE / float(height)
            new_h, new_w = _AFLOC_SIZE, int(float(width) * scale)
        else:
            scale = _AFLOC_SIZE / float(width)
            new_h, new_w = int(float(height) * scale), _AFLOC_SIZE
        new_h, new_w = max(1, new_h), max(1, new_w)  # a sliver of an image keeps one pixel
        return cls(scale, new_h, new_w, (_AFLOC_SIZE - new_h) // 2, (_AFLOC_SIZE - new_w) // 2)

    def box(self, box: Box) -> tuple[int, int, int, int]:
        """`(x, y, w, h)` on the grid: scaled, shifted by the padding, each floored."""
        x, y, w, h = (v * self.scale for v in box.xywh)
        return floor(x + self.left), floor(y + self.top), floor(w), floor(h)

    def coverage(self, boxes: Sequence[Box]) -> np.ndarray:
        """How many of the boxes cover each grid pixel: box2mask per box, summed per phrase
        (eval/utils.py get_annotation adds the masks of one label_text)."""
        count = np.zeros((_AFLOC_SIZE, _AFLOC_SIZE), np.int16)
        for box in boxes:
            x, y, w, h = self.box(box)
            # a box reaching above or left of the image is clipped; AFLoc's slice from a
            # negative index would drop it (no MS-CXR box does)
            count[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] += 1
        return count

    def truth(self, truth: SampleTruth) -> np.ndarray:
        """Coverage counts of the sample's boxes, or its mask letterboxed (0 or 1; AFLoc's
        code scores boxes only, so a mask follows the scoring grid's rule)."""
        if truth.boxes or truth.mask is None:
            return self.coverage(truth.boxes)
        count = np.zeros((_AFLOC_SIZE, _AFLOC_SIZE), np.int16)
        count[self.top:self.top + self.height, self.left:self.left + self.width] = \
            resize_mask(np.asarray(truth.mask, bool), (self.height, self.width))
        return count

    def heatmap(self, heatmap: np.ndarray) -> np.ndarray:
        """float32 224 x 224: the heatmap area-averaged onto the grid, NaN on the letterbox
        padding (our heatmaps exist on the image only) and outside the centre square."""
        grid = np.full((_AFLOC_SIZE, _AFLOC_SIZE), np.nan, np.float32)
        grid[self.top:self.top + self.height, self.left:self.left + self.width] = \
            resize_heatmap(np.asarray(heatmap, np.float32), (self.height, self.width))
        grid[~_AFLOC_REGION] = np.nan
        return grid


def afloc_scores(heatmap: np.ndarray, coverage: np.ndarray) -> ConventionScores:
    """AFLoc's CNR and IoUs of a 224 x 224 heatmap (NaN pixels are not scored) against box
    coverage counts: eval/common.py Pipeline.test with eval/utils.py norm_heatmap (mode 0)
    and eval/metric.py compute_cnr and compute_iou (only_pos)."""
    undefined = tuple(float("nan") for _ in AFLOC_THRESHOLDS)
    scored = ~np.isnan(heatmap)
    values = np.asarray(heatmap, np.float32)[scored]
    cover = coverage[scored]
    if values.size == 0:
        return ConventionScores(float("nan"), undefined)
    lo, hi = values.min(), values.max()
    if hi - lo == 0:
        # norm_heatmap returns a flat copy here and compute_cnr then fails on it: a constant
        # map has no contrast and predicts no pixel
        return ConventionScores(
            contrast_of_regions(values[cover == 1], values[cover == 0], absolute=False),
            undefined)
    norm = (values - lo) / (hi - lo) * 2 - 1  # float32 throughout, as in norm_heatmap
    # compute_cnr: A is gtmask == 1, so a pixel inside two boxes of the phrase is in neither
    cnr = contrast_of_regions(norm[cover == 1], norm[cover == 0], absolute=False)
    truth = cover > 0
    n_truth = int(np.count_nonzero(truth))
    ious = []
    for t in AFLOC_THRESHOLDS:
        pred = norm > t
        n_pred = int(np.count_nonzero(pred))
        if n_pred == 0 or n_truth == 0:
            ious.append(float("nan"))
            continue
        inter = int(np.count_nonzero(pred & truth))
        ious.append(inter / (n_pred + n_truth - inter))
    return ConventionScores(cnr, tuple(ious))


def himl_regions(truth: SampleTruth) -> list[np.ndarray]:
    """The sample's regions on its image, in order: one per box (the pixels whose centre is
    inside, metrics.boxes_to_mask: the slice [y:y+h, x:x+w] of an integer box), or its mask
    as one region. A box wholly outside the image is dropped, as the runner reports it
    unscored."""
    if not truth.boxes and truth.mask is not None:
        return [np.asarray(truth.mask, bool)]
    return [boxes_to_mask([box], truth.height, truth.width) for box in truth.boxes
            if not box.lies_outside(truth.width, truth.height)]


def _himl_box_cnr(inside: np.ndarray, outside: np.ndarray) -> float:
    """One box's CNR as the reproduction computes it: nan_to_num of |mu_in - mu_out| /
    sqrt(var_in + var_out) over the finite values given."""
    if inside.size == 0 or outside.size == 0:
        return 0.0  # nanmean of no value is NaN, and nan_to_num makes the CNR 0
    if inside.min() == inside.max() and outside.min() == outside.max():
        # 0 / 0 is NaN, made 0; a difference over 0 is infinite: nan_to_num would make it the
        # largest float of the reproduction's dtype, and the caller calls the phrase undefined
        return 0.0 if inside[0] == outside[0] else math.inf
    return contrast_of_regions(inside, outside)


def himl_scores(heatmap: np.ndarray, truth: SampleTruth) -> ConventionScores:
    """The `hi-ml` CNR and IoUs of a heatmap on the sample's image (NaN: unseen). Each box
    is scored as if set to NaN after it: a later box's inside leaves out the earlier boxes,
    and its outside leaves out them and itself. A box's outside (nearly the whole map) is not
    copied: its count, sum and squares are every seen pixel's less the boxes' so far, which
    lie in the regions' frame, as do the IoUs' overlaps. A 2048 px map: 19 ms against 43 with
    the outside copied and whole masks compared (1 box), 23 against 85 (3 boxes); the same
    IoUs, CNRs within 1e-13 on 400 random maps (docs/evaluation.md)."""
    heat = np.asarray(heatmap, np.float32)
    if heat.shape != (truth.height, truth.width):
        raise ValueError(f"heatmap {heat.shape} and image {(truth.height, truth.width)} differ")
    regions = himl_regions(truth)
    if not regions:
        return ConventionScores(math.nan, tuple(math.nan for _ in HIML_THRESHOLDS))
    union = np.logical_or.reduce(regions)
    rows, cols = (np.flatnonzero(union.any(axis=k)) for k in (1, 0))  # the regions' frame
    frame = tuple(slice(a[0], a[-1] + 1) if a.size else slice(0, 0) for a in (rows, cols))
    finite = np.isfinite(heat)
    seen = heat.reshape(-1) if finite.all() else heat[finite]
    # sums about a value near the mean (of a sample: any such value keeps them exact enough)
    pivot = float(seen[:: max(1, seen.size // 4096)].mean(dtype=np.float64)) if seen.size else 0.0
    total = _centred_sums(seen, pivot)  # of every seen pixel: (count, sum, sum of squares)
    removed = np.zeros(3)
    left, inner = finite[frame].copy(), heat[frame]  # seen, and in no box scored so far
    cnrs = []
    for region in regions:
        inside = inner[region[frame] & left]
        left &= ~region[frame]
        removed += (box := _centred_sums(inside, pivot))
        if inside.size == 0 or total[0] == removed[0]:
            cnrs.append(0.0)  # nanmean of no value is NaN, and nan_to_num makes the CNR 0
        elif inside.min() == inside.max():  # the rare case the exact values decide
            cnrs.append(_himl_box_cnr(inside, _outside(heat, finite, frame, left)))
        else:
            cnrs.append(contrast_of_moments(*_moments(box), *_moments(total - removed)))
    cnr = math.nan if math.inf in cnrs else float(np.mean(cnrs))
    truth_in_frame, n_truth = union[frame], int(np.count_nonzero(union))
    ious = []
    for t in HIML_THRESHOLDS:  # False where NaN: unseen truth is missed
        n_pred = int(np.count_nonzero(heat > np.float32(t)))
        overlap = int(np.count_nonzero((inner > np.float32(t)) & truth_in_frame))
        n_union = n_pred + n_truth - overlap
        ious.append(overlap / n_union if n_union else math.nan)
    return ConventionScores(cnr, tuple(ious))


_SUM_BLOCK = 1 << 15  # values per block of `_centred_sums`: its float64 copy stays in L2


def _centred_sums(values: np.ndarray, pivot: float) -> np.ndarray:
    """[count, sum of (x - pivot), sum of (x - pivot)^2] of float32 values, in float64 (numpy's
    pairwise sums; not BLAS, whose threads spin on the core the evaluation's loading needs)."""
    sums = np.array([values.size, 0.0, 0.0])
    buffer = np.empty(min(_SUM_BLOCK, values.size))
    for start in range(0, values.size, _SUM_BLOCK):
        block = buffer[:min(_SUM_BLOCK, values.size - start)]
        block[...] = values[start:start + _SUM_BLOCK]
        block -= pivot  # in float64
        sums[1] += block.sum()
        sums[2] += np.square(block, out=block).sum()
    return sums


def _moments(sums: np.ndarray) -> tuple[float, float]:
    """(mean - pivot, population variance) from `_centred_sums`' (count, sum, squares)."""
    mean = float(sums[1] / sums[0])
    return mean, max(float(sums[2] / sums[0]) - mean * mean, 0.0)


def _outside(heat: np.ndarray, finite: np.ndarray, frame: tuple[slice, ...],
             left: np.ndarray) -> np.ndarray:
    """The seen pixels in no box scored so far (`left`, inside the regions' frame)."""
    keep = finite.copy()
    keep[frame] = left
    return heat[keep]


def score_conventions(lesionloc: LocalizationScores, afloc_heatmap: np.ndarray,
                      image_heatmap: np.ndarray, truth: SampleTruth
                      ) -> dict[str, ConventionScores]:
    """One sample under every convention, keyed by name. `afloc_heatmap` is AflocGrid.heatmap
    of the sample's heatmap (computed once per prompt by the caller); `image_heatmap` is the
    heatmap on the image's own pixels."""
    grid = AflocGrid.for_image(truth.height, truth.width)
    return {LESIONLOC.name: lesionloc_scores(lesionloc),
            AFLOC.name: afloc_scores(afloc_heatmap, grid.truth(truth)),
            HIML.name: himl_scores(image_heatmap, truth)}


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(float(value), 6)
