"""Localization metrics as the field defines them (numpy only), used by training validation,
the benchmarks and `lesionloc-evaluate`: pointing game, peak distance, CNR, mIoU, IoU,
Dice, AUROC, precision and recall. A heatmap and a ground-truth mask share one pixel grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from lesionloc_runtime.boxes import Box, xywh

__all__ = [
    "DEFAULT_THRESHOLD",
    "METRIC_NAMES",
    "MIOU_THRESHOLDS",
    "LocalizationScores",
    "auroc",
    "boxes_to_mask",
    "contrast_of_moments",
    "contrast_of_regions",
    "contrast_to_noise_ratio",
    "dice",
    "iou",
    "mean_iou",
    "mean_scores",
    "peak_distance",
    "pointing_game",
    "precision_recall",
    "score_heatmap",
    "unseen_as_lowest",
]

MIOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_THRESHOLD = 0.5


def boxes_to_mask(
    boxes: Sequence[Box | Sequence[float]], height: int, width: int
) -> np.ndarray:
    """Union of boxes (Box or `[x, y, w, h]`, pixels, top-left origin) as a boolean (height,
    width) mask.

    A pixel belongs to a box when its centre lies inside it; a box thinner than one pixel
    still marks the pixel it sits on, so no ground truth is ever empty by rounding.
    """
    mask = np.zeros((height, width), dtype=bool)
    for box in boxes:
        x, y, w, h = xywh(box)
        x0 = int(np.clip(np.ceil(x - 0.5), 0, width))
        y0 = int(np.clip(np.ceil(y - 0.5), 0, height))
        x1 = int(np.clip(np.ceil(x + w - 0.5), 0, width))
        y1 = int(np.clip(np.ceil(y + h - 0.5), 0, height))
        if x1 <= x0 and 0 <= x < width:
            x0, x1 = int(x), int(x) + 1
        if y1 <= y0 and 0 <= y < height:
            y0, y1 = int(y), int(y) + 1
        mask[y0:y1, x0:x1] = True
    return mask


def _check(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    heatmap = np.asarray(heatmap, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if heatmap.shape != mask.shape:
        raise ValueError(f"heatmap {heatmap.shape} and mask {mask.shape} differ in shape")
    if not np.isfinite(heatmap).all():
        raise ValueError("heatmap contains NaN or inf")
    return heatmap, mask


def unseen_as_lowest(heatmap: np.ndarray) -> np.ndarray:
    """A heatmap with NaN where the model saw nothing (outside a centre crop) scored over the
    whole image: those pixels take the lowest value the model gave, so ground truth there
    counts as missed. All-NaN or infinite maps are returned as they are (and refused)."""
    nan = np.isnan(heatmap)
    if not nan.any() or nan.all() or np.isinf(heatmap).any():
        return heatmap
    return np.where(nan, np.nanmin(heatmap), heatmap).astype(heatmap.dtype, copy=False)


def _minmax_normalize(heatmap: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant heatmap becomes all zeros (it localizes nothing)."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    lo, hi = float(heatmap.min()), float(heatmap.max())
    if hi - lo <= 0:
        return np.zeros_like(heatmap)
    return (heatmap - lo) / (hi - lo)


def pointing_game(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Pointing game (Zhang et al. 2016, as used for CXR by MedKLIP): a hit when the heatmap's
    peak lies inside the ground truth. Ties at the maximum are scored as the fraction of
    maximal pixels inside the mask, i.e. the expected hit under random tie-breaking, so a
    constant heatmap scores the mask's area fraction (chance), not a corner pixel's luck."""
    heatmap, mask = _check(heatmap, mask)
    peak = heatmap == heatmap.max()
    return float(mask[peak].mean())


def peak_distance(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """How far the heatmap's peak lies from the ground truth: the distance from the peak
    pixel to the nearest ground-truth pixel (centre to centre), as a fraction of the grid's
    long side: 0 on the truth; times the image's long side in mm gives millimetres. The
    pointing game only says hit or miss, which cannot tell a peak one cell beside a 7 mm
    nodule from one on the wrong lung. Ties at the maximum are averaged, as the pointing
    game averages them; NaN when the mask is empty."""
    heatmap, mask = _check(heatmap, mask)
    return _peak_distance(heatmap == heatmap.max(), mask)


# Up to this many (peak pixel off the truth, truth pixel) pairs, the distances are measured
# pair by pair; beyond (a flat heatmap's many peaks), by a distance transform of the grid.
_PAIRS_MEASURED = 1 << 22


def _peak_distance(peak: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    if mask[peak].all():
        return 0.0
    away = np.argwhere(peak & ~mask)  # peak pixels on the truth add 0 to the mean
    truth = np.argwhere(mask)
    if len(away) * len(truth) <= _PAIRS_MEASURED:
        nearest = [np.sqrt(np.min(np.sum((truth - pixel) ** 2, axis=1))) for pixel in away]
        return float(np.sum(nearest)) / int(peak.sum()) / max(mask.shape)
    # Euclidean distance of every pixel to the nearest truth pixel, in one pass (OpenCV's
    # DIST_MASK_PRECISE: exact)
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return float(distance[peak].mean()) / max(mask.shape)


def contrast_of_regions(inside: np.ndarray, outside: np.ndarray, absolute: bool = True) -> float:
    """(mu_in - mu_out) / sqrt(var_in + var_out) of two sets of heatmap values (population
    variances), its absolute value unless `absolute` is False; 0 when both sets are constant,
    NaN when either is empty. The arithmetic of every CNR convention."""
    inside, outside = np.asarray(inside), np.asarray(outside)
    if inside.size == 0 or outside.size == 0:
        return float("nan")
    # float64 accumulators, without a float64 copy of a full-resolution float32 map
    return contrast_of_moments(float(inside.mean(dtype=np.float64)),
                               float(inside.var(dtype=np.float64)),
                               float(outside.mean(dtype=np.float64)),
                               float(outside.var(dtype=np.float64)), absolute)


def contrast_of_moments(mean_in: float, var_in: float, mean_out: float, var_out: float,
                        absolute: bool = True) -> float:
    """`contrast_of_regions` from each region's mean and population variance (for a caller
    that has them without the values, as the hi-ml convention's outside of a box)."""
    denom = math.sqrt(var_in + var_out)
    if denom == 0.0:
        return 0.0
    diff = mean_in - mean_out
    return (abs(diff) if absolute else diff) / denom


def contrast_to_noise_ratio(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """CNR = |mu_in - mu_out| / sqrt(var_in + var_out) of the heatmap inside the ground truth
    against the rest of the image (the MS-CXR protocol, Boecking et al. 2022, BioViL).
    Invariant to affine rescaling of the heatmap; 0 when both regions are constant or one
    is empty."""
    heatmap, mask = _check(heatmap, mask)
    cnr = contrast_of_regions(heatmap[mask], heatmap[~mask])
    return 0.0 if np.isnan(cnr) else cnr


def _overlap(pred: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    inter = int(np.count_nonzero(pred & mask))
    return inter, int(np.count_nonzero(pred)), int(np.count_nonzero(mask))


def iou(heatmap: np.ndarray, mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Intersection over union of (min-max normalized heatmap >= threshold) with the mask."""
    heatmap, mask = _check(heatmap, mask)
    pred = _minmax_normalize(heatmap) >= threshold
    if not pred.any() and heatmap.max() == heatmap.min():
        pred = np.zeros_like(mask)  # a constant heatmap predicts nothing
    inter, n_pred, n_mask = _overlap(pred, mask)
    union = n_pred + n_mask - inter
    return inter / union if union else 0.0


def mean_iou(
    heatmap: np.ndarray, mask: np.ndarray, thresholds: Sequence[float] = MIOU_THRESHOLDS
) -> float:
    """mIoU: IoU averaged over thresholds 0.1..0.5 of the MIN-MAX NORMALIZED heatmap (the
    MS-CXR protocol thresholds a similarity map; we normalize first so the thresholds mean
    the same for every model and the numbers are comparable across bundles)."""
    return float(np.mean([iou(heatmap, mask, t) for t in thresholds]))


def dice(heatmap: np.ndarray, mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Dice = 2|P & G| / (|P| + |G|) with P the min-max normalized heatmap >= threshold."""
    heatmap, mask = _check(heatmap, mask)
    pred = _minmax_normalize(heatmap) >= threshold
    if heatmap.max() == heatmap.min():
        pred = np.zeros_like(mask)
    inter, n_pred, n_mask = _overlap(pred, mask)
    total = n_pred + n_mask
    return 2.0 * inter / total if total else 0.0


def precision_recall(
    heatmap: np.ndarray, mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> tuple[float, float]:
    """Pixel precision and recall of (min-max normalized heatmap >= threshold) vs the mask."""
    heatmap, mask = _check(heatmap, mask)
    pred = _minmax_normalize(heatmap) >= threshold
    if heatmap.max() == heatmap.min():
        pred = np.zeros_like(mask)
    inter, n_pred, n_mask = _overlap(pred, mask)
    return (inter / n_pred if n_pred else 0.0), (inter / n_mask if n_mask else 0.0)


def auroc(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Area under the ROC curve of heatmap values as a pixel classifier of the mask
    (Mann-Whitney U: each pixel of the mask counts the pixels outside it with a lower value,
    and half of those with the same value); 0.5 is chance."""
    heatmap, mask = _check(heatmap, mask)
    scores, labels = heatmap.ravel(), mask.ravel()
    inside, outside = np.sort(scores[labels]), np.sort(scores[~labels])
    if not inside.size or not outside.size:
        return 0.5
    # whole counts: below (and below or equal) summed once each is twice U, exactly
    below = int(np.searchsorted(outside, inside, side="left").sum())
    not_above = int(np.searchsorted(outside, inside, side="right").sum())
    return (below + not_above) / (2.0 * inside.size * outside.size)


@dataclass(frozen=True)
class LocalizationScores:
    """All metrics of one heatmap against one ground truth."""

    pointing_game: float
    peak_distance: float  # peak_distance(): a fraction of the grid's long side, 0 on the truth
    cnr: float
    miou: float
    iou: float
    dice: float
    auroc: float
    precision: float
    recall: float
    threshold: float
    ious: tuple[float, ...] = ()  # IoU at each of MIOU_THRESHOLDS, whose mean is `miou`

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "ious"}


def score_heatmap(
    heatmap: np.ndarray, mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> LocalizationScores:
    """Every metric of this module for one heatmap, thresholded metrics at `threshold`.
    Same definitions as the functions above, computed with one normalization and one pass
    per threshold (this runs for every sentence of every benchmark study)."""
    heatmap, mask = _check(heatmap, mask)
    values = heatmap.astype(np.float32)
    lo, hi = float(values.min()), float(values.max())
    constant = hi <= lo
    norm = np.zeros_like(values) if constant else (values - lo) / np.float32(hi - lo)
    n_mask = int(np.count_nonzero(mask))

    def overlap(t: float) -> tuple[int, int]:
        if constant:
            return 0, 0
        pred = norm >= t
        return int(np.count_nonzero(pred & mask)), int(np.count_nonzero(pred))

    ious = []
    for t in MIOU_THRESHOLDS:
        inter, n_pred = overlap(t)
        union = n_pred + n_mask - inter
        ious.append(inter / union if union else 0.0)
    inter, n_pred = overlap(threshold)
    union = n_pred + n_mask - inter
    total = n_pred + n_mask
    return LocalizationScores(
        pointing_game=float(mask[values == hi].mean()),
        peak_distance=_peak_distance(values == hi, mask),
        cnr=contrast_to_noise_ratio(heatmap, mask),
        miou=float(np.mean(ious)),
        iou=inter / union if union else 0.0,
        dice=2.0 * inter / total if total else 0.0,
        auroc=auroc(values, mask),
        precision=inter / n_pred if n_pred else 0.0,
        recall=inter / n_mask if n_mask else 0.0,
        threshold=threshold,
        ious=tuple(ious),
    )


METRIC_NAMES: tuple[str, ...] = (
    "pointing_game", "peak_distance", "cnr", "miou", "iou", "dice", "auroc", "precision", "recall",
)


def mean_scores(scores: Sequence[LocalizationScores]) -> dict[str, float]:
    """Average of each metric over many heatmaps (NaN-free; empty input gives NaNs)."""
    if not scores:
        return {name: float("nan") for name in METRIC_NAMES}
    return {name: float(np.mean([getattr(s, name) for s in scores])) for name in METRIC_NAMES}
