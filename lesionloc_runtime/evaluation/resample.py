"""Heatmaps and ground-truth masks onto another pixel grid: the scoring grid of `--score-size`
and the fixed grids some published conventions score on. NaN (pixels a model did not see)
spreads to every output pixel it touches, so a pixel partly unseen counts as unseen."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["resize_heatmap", "resize_mask", "scoring_shape"]


def scoring_shape(height: int, width: int, score_size: int | None) -> tuple[int, int]:
    """(height, width) of the scoring grid: the long side at most `score_size`."""
    if not score_size or max(height, width) <= score_size:
        return (height, width)
    scale = score_size / max(height, width)
    return (max(1, round(height * scale)), max(1, round(width * scale)))


def resize_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-average a heatmap onto a (height, width) grid (identity when the shape fits)."""
    if heatmap.shape == shape:
        return heatmap
    return cv2.resize(heatmap.astype(np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A grid pixel is lesion when at least half of it was; a lesion smaller than half a pixel
    keeps its most covered pixels, so no ground truth vanishes by resizing."""
    if mask.shape == shape:
        return mask
    cover = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]),
                       interpolation=cv2.INTER_AREA)
    small = cover >= 0.5
    if not small.any() and cover.max() > 0:
        small = cover == cover.max()
    return small
