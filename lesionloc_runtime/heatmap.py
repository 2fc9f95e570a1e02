"""From patch embeddings and a sentence embedding to a heatmap on the original image: patch
similarity, smoothing on the grid, upsampling (our cubic refinement or the source's bilinear),
the exact inverse of the preprocessing geometry (NaN where the model saw nothing), peak and
boxes. `HeatmapConfig` is the part of a bundle's card that says how."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import cv2
import numpy as np

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.errors import ConfigError
from lesionloc_runtime.geometry import Geometry, seen_mask
from lesionloc_runtime.products import matmul_in_bands

__all__ = [
    "BORDERS",
    "REFINE",
    "SCORES",
    "SIMILARITIES",
    "UPSAMPLINGS",
    "Heatmap",
    "HeatmapConfig",
    "local_alignment_score",
    "local_alignment_scores",
    "similarity_grid",
    "smooth_grid",
]

# How a patch grid and a sentence embedding become a similarity grid: "cosine" (both unit
# length: ours, BioViL), "dot" (both as the encoders give them: AFLoc's evaluation), and
# "global-share" (a unit sentence against cells that are each location's share of the global
# embedding: our models trained without the local loss).
SIMILARITIES = ("cosine", "dot", "global-share")
# The sentence's score: "local-attention" (our local loss's r = cos(s, attention-pooled
# patches)) or "global-cosine" (cosine of the sentence's and the image's global embeddings).
SCORES = ("local-attention", "global-cosine")
BORDERS = ("replicate", "reflect")  # reflect: scipy.ndimage's default, which hi-ml and AFLoc use
UPSAMPLINGS = ("cubic", "bilinear")  # bilinear: F.interpolate(align_corners=False) of the sources


@dataclass(frozen=True)
class HeatmapConfig:
    """How a patch-similarity grid becomes a heatmap and boxes (defaults carried per bundle)."""

    attention_temperature: float = 0.25  # tau_a of the local loss, used for the sentence score
    smoothing_sigma: float = 0.75  # Gaussian sigma in patches, applied on the grid
    box_threshold: float = 0.6  # fraction of the heatmap's min-max range that starts a box
    min_box_fraction: float = 0.001  # components smaller than this fraction of the image are dropped
    max_boxes: int = 3
    similarity: str = "cosine"
    score: str = "local-attention"
    smoothing_border: str = "replicate"
    upsampling: str = "cubic"

    def __post_init__(self) -> None:
        # name -> (lowest, highest, lowest allowed itself); a hand-edited bundle must fail
        # here, not as a TypeError or an OpenCV error in the middle of a study
        ranges = {
            "attention_temperature": (0.0, math.inf, False),
            "smoothing_sigma": (0.0, 100.0, True),
            "box_threshold": (0.0, 1.0, True),
            "min_box_fraction": (0.0, 1.0, True),
            "max_boxes": (1, 1000, True),
        }
        for name, (low, high, closed) in ranges.items():
            value = getattr(self, name)
            wanted = "an integer" if name == "max_boxes" else "a number"
            if isinstance(value, bool) or not isinstance(
                value, int if name == "max_boxes" else (int, float)
            ):
                raise ConfigError(f"heatmap parameter {name}={value!r} is not {wanted}")
            if not (math.isfinite(value) and (low <= value if closed else low < value)
                    and value <= high):
                bracket = "[" if closed else "("
                raise ConfigError(
                    f"heatmap parameter {name}={value!r} is outside {bracket}{low}, {high}]"
                )
        for name, allowed in (("similarity", SIMILARITIES), ("score", SCORES),
                              ("smoothing_border", BORDERS), ("upsampling", UPSAMPLINGS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"heatmap parameter {name}={getattr(self, name)!r} is not one "
                                  f"of {', '.join(allowed)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeatmapConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"heatmap parameters must be an object, got {data!r}")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown heatmap parameters: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def similarity_grid(sentence: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Dot product of a sentence embedding (D,) with each patch of an (h, w, D) grid -> (h, w)
    float32, or of k sentences (k, D) -> (k, h, w): their cosine when both are L2-normalized
    (the bundle's `similarity` decides what the localizer normalizes). Matrix products in bands
    that OpenBLAS runs on this thread (`products.py`): one product of a large grid (32 x 32 x
    768) ran on several threads that then spun for tens of milliseconds on the cores the next
    encoder run needs, and numpy's einsum, which has no such threads, took four times as long."""
    h, w, dim = patches.shape
    grids = matmul_in_bands(sentence.reshape(-1, dim), patches.reshape(h * w, dim).T)
    return grids.reshape(sentence.shape[:-1] + (h, w)).astype(np.float32, copy=False)


def local_alignment_scores(sentences: np.ndarray, patches: np.ndarray, temperature: float,
                           grids: np.ndarray | None = None) -> np.ndarray:
    """The local loss's sentence-image score r = cos(s, sum_k a_k P_k), a = softmax(s.P / tau),
    of each of k sentences (k, D) -> (k,). `grids`: their `similarity_grid`s when already
    computed (the logits are those dot products). Products in bands, as there."""
    flat = patches.reshape(-1, patches.shape[-1])
    dots = similarity_grid(sentences, patches) if grids is None else grids
    logits = dots.reshape(len(sentences), len(flat)) / temperature
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    context = matmul_in_bands(weights, flat)
    norms = np.linalg.norm(context, axis=1)
    along = np.einsum("kd,kd->k", context, sentences)
    return np.where(norms > 0, along / np.where(norms > 0, norms, 1), 0.0)


def local_alignment_score(sentence: np.ndarray, patches: np.ndarray, temperature: float) -> float:
    """`local_alignment_scores` of one sentence (D,)."""
    return float(local_alignment_scores(sentence[None], patches, temperature)[0])


def smooth_grid(grid: np.ndarray, sigma: float, border: str = "replicate") -> np.ndarray:
    """Gaussian smoothing on the patch grid. "reflect" is scipy.ndimage.gaussian_filter's
    default (edge mirrored, radius int(4 sigma + 0.5)), computed the same way in float64,
    which is what the hi-ml and AFLoc maps are smoothed with."""
    if sigma <= 0:
        return grid.astype(np.float32, copy=True)
    if border == "replicate":
        return cv2.GaussianBlur(grid.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma,
                                borderType=cv2.BORDER_REPLICATE)
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 / sigma**2 * np.arange(-radius, radius + 1, dtype=np.float64) ** 2)
    taps /= taps.sum()
    out = grid.astype(np.float64)
    for axis in (0, 1):
        width = [(0, 0), (0, 0)]
        width[axis] = (radius, radius)
        padded = np.pad(out, width, mode="symmetric")  # numpy's symmetric is scipy's reflect
        n = out.shape[axis]
        out = sum(taps[k] * np.take(padded, np.arange(k, k + n), axis=axis)
                  for k in range(2 * radius + 1))
    return out.astype(np.float32)


def _bilinear_taps(count: int, cells: int, scale: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Output i interpolates cells `low[i]` and `low[i] + 1` with weights 1 - frac[i] and
    frac[i], at index u = scale * i + shift clamped to the grid (PyTorch's bilinear with
    align_corners=False does the same); a grid one cell long has frac 0."""
    u = np.clip(scale * np.arange(count, dtype=np.float64) + shift, 0.0, cells - 1.0)
    low = np.minimum(np.floor(u).astype(np.int64), max(cells - 2, 0))
    return low, u - low


def _bilinear(grid: np.ndarray, rows: tuple[np.ndarray, np.ndarray],
              cols: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The grid (float64) interpolated at the `cols` taps within each row, then at the `rows`
    taps (PyTorch's bilinear order), two cells per output rather than as products with the
    two-tap weight matrices, whose BLAS threads spin on a core afterwards (OpenBLAS kept one
    busy for tens of milliseconds after each render, taking it from the study's writing and
    the next encoder run). Float32, written in blocks of rows that stay in the cache."""
    (low, frac), (col_low, col_frac) = rows, cols
    wide = grid[:, col_low] * (1.0 - col_frac)
    if grid.shape[1] > 1:
        wide += grid[:, col_low + 1] * col_frac
    out = np.empty((len(low), len(col_low)), np.float32)
    for start in range(0, len(low), _RENDER_BLOCK_ROWS):
        stop = min(start + _RENDER_BLOCK_ROWS, len(low))
        block = wide[low[start:stop]] * (1.0 - frac[start:stop, None])
        if grid.shape[0] > 1:
            block += wide[low[start:stop] + 1] * frac[start:stop, None]
        out[start:stop] = block
    return out


# Rows per block of `_bilinear`: 16 rows of a 2048 px render in float64 are 256 KB.
_RENDER_BLOCK_ROWS = 16


# Cubic refinement of the cell grid: REFINE fine nodes per cell. A bilinear map of the coarse
# grid peaks exactly on a cell centre, so every peak snapped to a lattice one patch apart (100
# px of a 2048 px radiograph at the demo's 320 px input, more than twice a nodule's size); the
# cubic interpolant peaks between centres where the neighbouring cells say the lesion is.
REFINE = 8


def _cubic_warp(grid: np.ndarray, factor: int) -> np.ndarray:
    """The refinement by OpenCV's bicubic warp: `factor` nodes per cell, the edges repeated."""
    h, w = grid.shape
    scale = np.float32([[1.0 / factor, 0.0, 0.0], [0.0, 1.0 / factor, 0.0]])
    return cv2.warpAffine(grid, scale, ((w - 1) * factor + 1, (h - 1) * factor + 1),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=16)
def _refinement_weights(cells: int, factor: int) -> np.ndarray:
    """((cells - 1) * factor + 1, cells) float32, read-only: node i, at cell coordinate
    i / factor, as the cubic convolution (Keys, a = -0.75, OpenCV's INTER_CUBIC) of the four
    cells around it, an index outside the grid taking the nearest edge cell. At a cell centre
    the weights are 0, 1, 0, 0: the cell's own value, exactly."""
    a = -0.75

    def near(t: float) -> float:  # |t| <= 1
        return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0

    def far(t: float) -> float:  # 1 < |t| < 2
        return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a

    weights = np.zeros(((cells - 1) * factor + 1, cells), np.float64)
    for node in range(len(weights)):
        base, step = divmod(node, factor)
        t = step / factor
        taps = (far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t))
        for offset, tap in zip(range(-1, 3), taps, strict=True):
            weights[node, min(max(base + offset, 0), cells - 1)] += tap
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


# Renders up to this size are kept per heatmap (a 512 px one is 1 MB).
_KEPT_RENDER_PIXELS = 512 * 512


@dataclass(frozen=True)
class Heatmap:
    """A smoothed similarity grid plus the geometry (letterbox or crop) it came through. With
    "cubic" upsampling the grid is refined once by cubic interpolation through its cell
    centres (values at the centres unchanged), and rendering to any pixel grid is one bilinear
    affine warp of that; with "bilinear" (the imported models' own), rendering interpolates
    the cells exactly. The original-size array exists only on demand; pixels the model did not
    see (outside a crop) are NaN."""

    grid: np.ndarray  # (h, w) float32, one value per cell
    letterbox: Geometry
    stride: float
    origin: float  # model coordinate of cell (0, 0)'s centre
    upsampling: str = "cubic"

    @cached_property
    def fine(self) -> np.ndarray:
        """((h - 1) * REFINE + 1, (w - 1) * REFINE + 1): node (i, j) lies at cell coordinate
        (i / REFINE, j / REFINE), so every REFINE-th node is a cell centre with its value.
        The interpolant is OpenCV's bicubic (Keys, a = -0.75, the edge cells repeated), which
        is separable: two products with its weights (`_refinement_weights`), in bands
        (`products.py`). OpenCV's own warp computed the same nodes (to float rounding, 5e-7
        on values of order 1) in 0.4 ms of two threads' time for a 28 x 28 grid, against
        0.07 ms for the products, five times in a study of five findings."""
        grid = self.grid.astype(np.float32, copy=False)
        if self._factor == 1:
            return grid
        if not np.isfinite(grid).all():  # a product spreads a NaN along its row and column
            return _cubic_warp(grid, self._factor)
        rows = _refinement_weights(grid.shape[0], self._factor)
        cols = _refinement_weights(grid.shape[1], self._factor)
        return matmul_in_bands(matmul_in_bands(rows, grid), cols.T)

    @property
    def _factor(self) -> int:
        """REFINE, or 1 for a grid one cell wide or high (nothing to interpolate between) or
        for bilinear upsampling (whose maximum lies on a cell centre)."""
        return REFINE if min(self.grid.shape) >= 2 and self.upsampling == "cubic" else 1

    @property
    def fine_stride(self) -> float:
        return self.stride / self._factor

    @cached_property
    def _small_renders(self) -> dict[tuple[int, int], np.ndarray]:
        return {}

    def render(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """The heatmap on the original image (default) or on a rescaled copy of it. A small
        render is kept (read-only): the boxes and the page's layer are drawn from the same
        256 px one."""
        box = self.letterbox
        out_w = width or box.orig_width
        out_h = height or box.orig_height
        if out_w * out_h > _KEPT_RENDER_PIXELS:
            return self._render(out_w, out_h)
        kept = self._small_renders.get((out_w, out_h))
        if kept is None:
            kept = self._small_renders[(out_w, out_h)] = self._render(out_w, out_h)
            kept.flags.writeable = False
        return kept

    def _render(self, out_w: int, out_h: int) -> np.ndarray:
        box = self.letterbox
        affine = box.original_to_grid_affine(self.fine_stride, self.origin)
        # output pixel -> original pixel (continuous, centre-aligned) -> fine grid index
        fx, fy = box.orig_width / out_w, box.orig_height / out_h
        pre = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        matrix = (np.vstack([affine, [0, 0, 1]]) @ pre)[:2]
        if self.upsampling == "bilinear":
            h, w = self.grid.shape
            rows = _bilinear_taps(out_h, h, matrix[1, 1], matrix[1, 2])
            cols = _bilinear_taps(out_w, w, matrix[0, 0], matrix[0, 2])
            out = _bilinear(self.grid.astype(np.float64), rows, cols)
        else:
            out = cv2.warpAffine(
                self.fine, matrix, (out_w, out_h),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
            )
        seen = seen_mask(box, out_w, out_h)
        if seen is not None:
            out[~seen] = np.nan
        return out

    def content_nodes(self) -> np.ndarray:
        """Boolean, the fine grid's shape: nodes on the image, not on letterbox padding."""
        x0, y0, x1, y1 = self.letterbox.model_content()
        h, w = self.fine.shape
        cy = self.origin + np.arange(h) * self.fine_stride
        cx = self.origin + np.arange(w) * self.fine_stride
        in_y = (cy >= y0) & (cy < y1)
        in_x = (cx >= x0) & (cx < x1)
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
        seen = np.isfinite(work)  # NaN where the model saw nothing: never part of a box
        if seen.all():  # a letterbox's render: no copy of the values seen
            lo, hi = float(work.min()), float(work.max())
        elif seen.any():
            lo, hi = float(work[seen].min()), float(work[seen].max())
        else:
            return []
        if hi - lo <= 1e-9:
            return []
        with np.errstate(invalid="ignore"):
            mask = ((work - lo) >= config.box_threshold * (hi - lo)).astype(np.uint8)
        # OpenCV's statistics give each component's extent and area in the labelling pass;
        # the score (its highest value) is then read inside its extent only, by OpenCV too
        # (a mask and a masked maximum: half the time of numpy's boolean indexing)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        fx, fy = box.orig_width / wk_w, box.orig_height / wk_h
        min_area = config.min_box_fraction * wk_w * wk_h
        found: list[Box] = []
        for label in range(1, count):  # 0 is the background
            x, y, w, h, area = (int(v) for v in stats[label])
            if area < min_area:  # most components of a noisy heatmap are specks
                continue
            inside = cv2.compare(labels[y:y + h, x:x + w], label, cv2.CMP_EQ)
            score = float(cv2.minMaxLoc(work[y:y + h, x:x + w], inside)[1])
            found.append(Box(x * fx, y * fy, w * fx, h * fy, score))
        found.sort(key=lambda b: b.score, reverse=True)
        return found[: config.max_boxes]
