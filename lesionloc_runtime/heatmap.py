"""From patch embeddings and a sentence embedding to a heatmap on the original image: patch
similarity, smoothing on the grid, sub-cell refinement, exact inverse letterbox mapping, peak
and boxes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.bundle import HeatmapConfig
from lesionloc_runtime.preprocess import Letterbox


def cosine_grid(sentence: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Cosine similarity of one L2-normalized sentence embedding (D,) with each patch of an
    L2-normalized (h, w, D) grid -> (h, w) float32 in [-1, 1]."""
    return np.tensordot(patches, sentence, axes=([2], [0])).astype(np.float32)


def local_alignment_score(sentence: np.ndarray, patches: np.ndarray, temperature: float) -> float:
    """The local loss's sentence-image score r = cos(s, sum_k a_k P_k), a = softmax(s.P / tau)."""
    flat = patches.reshape(-1, patches.shape[-1])
    logits = flat @ sentence / temperature
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    context = weights @ flat
    norm = float(np.linalg.norm(context))
    return float(context @ sentence / norm) if norm > 0 else 0.0


def smooth_grid(grid: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return grid.astype(np.float32, copy=True)
    return cv2.GaussianBlur(grid.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REPLICATE)


# Cubic refinement of the cell grid: REFINE fine nodes per cell. A bilinear map of the coarse
# grid peaks exactly on a cell centre, so every peak snapped to a lattice one patch apart (100
# px of a 2048 px radiograph at the demo's 320 px input, more than twice a nodule's size); the
# cubic interpolant peaks between centres where the neighbouring cells say the lesion is.
REFINE = 8


@dataclass(frozen=True)
class Heatmap:
    """A smoothed similarity grid plus the letterbox it came through. The grid is refined once
    by cubic interpolation through its cell centres (values at the centres unchanged), and
    rendering to any pixel grid is one bilinear affine warp of that, so the original-size array
    exists only on demand."""

    grid: np.ndarray  # (h, w) float32, one value per cell
    letterbox: Letterbox
    stride: float
    origin: float  # model coordinate of cell (0, 0)'s receptive-field centre

    @cached_property
    def fine(self) -> np.ndarray:
        """((h - 1) * REFINE + 1, (w - 1) * REFINE + 1): node (i, j) lies at cell coordinate
        (i / REFINE, j / REFINE), so every REFINE-th node is a cell centre with its value."""
        h, w = self.grid.shape
        grid = self.grid.astype(np.float32, copy=False)
        k = self._factor
        if k == 1:
            return grid
        scale = np.float32([[1.0 / k, 0.0, 0.0], [0.0, 1.0 / k, 0.0]])
        return cv2.warpAffine(grid, scale, ((w - 1) * k + 1, (h - 1) * k + 1),
                              flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    @property
    def _factor(self) -> int:
        """REFINE, or 1 for a grid one cell wide or high (nothing to interpolate between)."""
        return REFINE if min(self.grid.shape) >= 2 else 1

    @property
    def fine_stride(self) -> float:
        return self.stride / self._factor

    def render(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """The heatmap on the original image (default) or on a rescaled copy of it."""
        box = self.letterbox
        out_w = width or box.orig_width
        out_h = height or box.orig_height
        affine = box.original_to_grid_affine(self.fine_stride, self.origin)
        # output pixel -> original pixel (continuous, centre-aligned) -> fine grid index
        fx, fy = box.orig_width / out_w, box.orig_height / out_h
        pre = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        matrix = (np.vstack([affine, [0, 0, 1]]) @ pre)[:2]
        return cv2.warpAffine(
            self.fine, matrix, (out_w, out_h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
        )

    def content_nodes(self) -> np.ndarray:
        """Boolean, the fine grid's shape: nodes on the image, not on letterbox padding."""
        box = self.letterbox
        h, w = self.fine.shape
        cy = self.origin + np.arange(h) * self.fine_stride
        cx = self.origin + np.arange(w) * self.fine_stride
        in_y = (cy >= box.pad_y) & (cy < box.pad_y + box.new_height)
        in_x = (cx >= box.pad_x) & (cx < box.pad_x + box.new_width)
        return in_y[:, None] & in_x[None, :]

    def peak(self) -> tuple[float, float, float]:
        """(x, y, value) of the maximum in original pixel coordinates: the refined grid's
        highest node on the image (a bilinear render peaks at a node), mapped back. Nodes
        without a value (NaN: outside the region a centre-cropping model saw) never hold it."""
        fine = self.fine
        masked = np.where(self.content_nodes() & np.isfinite(fine), fine, -np.inf)
        row, col = np.unravel_index(int(np.argmax(masked)), masked.shape)
        mx, my = self.origin + col * self.fine_stride, self.origin + row * self.fine_stride
        x, y = self.letterbox.to_original(mx, my)
        box = self.letterbox
        x = float(np.clip(x, 0, box.orig_width - 1))
        y = float(np.clip(y, 0, box.orig_height - 1))
        return x, y, float(self.fine[row, col])

    def boxes(self, config: HeatmapConfig, work_size: int = 256) -> list[Box]:
        """Connected components of the heatmap above `box_threshold` of its min-max range,
        computed on a copy at most `work_size` pixels long and scaled to original pixels. 256
        px: a box edge lands within 8 px of a 2048 px image (a model cell is 70 px or more
        there), a quarter of the pixels of 512 with the same boxes to a pixel or two."""
        box = self.letterbox
        scale = min(1.0, work_size / max(box.orig_width, box.orig_height))
        wk_w = max(1, round(box.orig_width * scale))
        wk_h = max(1, round(box.orig_height * scale))
        work = self.render(wk_w, wk_h)
        if not np.isfinite(work).any():
            return []
        lo, hi = float(np.nanmin(work)), float(np.nanmax(work))  # NaN: no value, never a box
        if hi - lo <= 1e-9:
            return []
        mask = ((work - lo) >= config.box_threshold * (hi - lo)).astype(np.uint8)
        # Labels only: OpenCV's per-component statistics cost most of the call, more than
        # doing them in numpy for the few components a heatmap has.
        count, labels = cv2.connectedComponents(mask, connectivity=8)
        fx, fy = box.orig_width / wk_w, box.orig_height / wk_h
        min_area = config.min_box_fraction * wk_w * wk_h
        found: list[Box] = []
        # areas first, in one pass: most components of a noisy heatmap are specks below
        # min_area, and each one looked at costs a pass over the picture
        areas = np.bincount(labels.ravel(), minlength=count)
        for label in np.flatnonzero(areas >= min_area):
            if label == 0:  # the background
                continue
            component = labels == label
            rows = np.flatnonzero(component.any(axis=1))
            cols = np.flatnonzero(component.any(axis=0))
            x, y = int(cols[0]), int(rows[0])
            w, h = int(cols[-1]) - x + 1, int(rows[-1]) - y + 1
            score = float(work[component].max())
            found.append(Box(x * fx, y * fy, w * fx, h * fy, score))
        found.sort(key=lambda b: b.score, reverse=True)
        return found[: config.max_boxes]
