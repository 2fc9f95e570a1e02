"""The record every reader returns (`Radiograph`) and the checks any image must pass whatever
its format: a plausible size and some contrast."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lesionloc_runtime.errors import ImageReadError

if TYPE_CHECKING:
    from lesionloc_runtime.imageio.display import StoredPixels

__all__ = [
    "MIN_CONTRAST",
    "Radiograph",
    "check_contrast",
    "check_size",
    "grey_range",
    "unit_scaled",
]

_MIN_SIDE = 32
# Refused before decoding: a chest radiograph is at most about 4300x4300 (18 megapixels), and a
# small PNG or JPEG can declare 30000x30000 and cost gigabytes to decode.
_MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Radiograph:
    """A single greyscale radiograph ready for preprocessing.

    `pixels` is float32, shape (height, width), in [0, 1] with display orientation: 0 is black
    (air, lungs), 1 is white (bone). Every DICOM intensity transform (modality LUT, VOI LUT or
    window, MONOCHROME1 / INVERSE presentation) has already been applied. `notes` lists what
    the reader repaired or ignored in the file (an invalid window, an alpha channel...).
    """

    pixels: np.ndarray
    source: str
    format: str  # "dicom" | "png" | "jpeg" | "tiff" | "array"
    pixel_spacing_mm: tuple[float, float] | None = None
    dicom: Any = field(default=None, repr=False)  # pydicom Dataset without pixel data, or None
    notes: tuple[str, ...] = ()
    # The bit patterns and display table `pixels` were gathered from (display.StoredPixels),
    # when the reader was asked to keep them (`read_image(..., keep_stored=True)`), or None.
    # Preprocessing trusts them to be `pixels`: whoever changes `pixels` drops them
    # (`dataclasses.replace(radiograph, stored=None)`).
    stored: StoredPixels | None = field(default=None, repr=False, compare=False)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @classmethod
    def from_array(cls, pixels: np.ndarray, source: str = "<array>") -> Radiograph:
        """Wrap an in-memory array (any numeric dtype, 2-D) as a radiograph, scaled to [0, 1].

        uint8 and uint16 are divided by their full scale; other dtypes are min-max scaled.
        """
        arr = np.asarray(pixels)
        if arr.ndim != 2:
            raise ImageReadError(f"{source}: expected a 2-D greyscale array, got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ImageReadError(f"{source}: expected a numeric array, got dtype {arr.dtype}")
        check_size(arr.shape, source)
        out = unit_scaled(arr, source, "array")
        return cls(np.ascontiguousarray(out, dtype=np.float32), source, "array")


def unit_scaled(arr: np.ndarray, source: str, what: str) -> np.ndarray:
    """Integer or float grey levels -> float32 in [0, 1]: uint8 and uint16 over their full
    scale (so a dark image stays dark), anything else min-max scaled. `what` names the input
    in the error for NaN or infinite values ("image", "array")."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535.0)
    out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise ImageReadError(f"{source}: the {what} contains NaN or infinite values")
    return _minmax(out)


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))


def check_size(shape: tuple[int, ...], source: str) -> None:
    if shape[0] * shape[1] > _MAX_PIXELS:
        raise ImageReadError(
            f"{source}: image of {shape[1]}x{shape[0]} pixels is over the limit of "
            f"{_MAX_PIXELS // 1_000_000} megapixels (a chest radiograph is at most about 4300x4300)"
        )
    if min(shape[:2]) < _MIN_SIDE:
        raise ImageReadError(
            f"{source}: image of {shape[1]}x{shape[0]} pixels is too small to be a radiograph "
            f"(under {_MIN_SIDE} pixels a side)"
        )


# Grey levels closer than this (on the 0-1 scale) count as one: no contrast.
MIN_CONTRAST = 1e-6


def grey_range(pixels: np.ndarray) -> tuple[float, float]:
    """The darkest and brightest grey level; from a strided sample when the sample already
    shows contrast and finite values (most images), so that no pass over the film is needed.
    NaN when some value is NaN."""
    sample = pixels[::8, ::8]
    lo, hi = float(sample.min()), float(sample.max())
    if np.isfinite(lo) and np.isfinite(hi) and hi - lo >= MIN_CONTRAST:
        return lo, hi
    return float(pixels.min()), float(pixels.max())


def check_contrast(pixels: np.ndarray, source: str) -> None:
    """A blank image (a failed export, a transform that maps everything to one value) would
    still produce heatmaps and boxes that look confident: refuse it. `preprocess` refuses
    non-finite values the sample of `grey_range` missed (they reach its percentiles)."""
    lo, hi = grey_range(pixels)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageReadError(
            f"{source}: the image has non-finite values after its intensity transforms "
            "(an overflowing RescaleSlope?)"
        )
    if hi - lo < MIN_CONTRAST:
        raise ImageReadError(
            f"{source}: image has no contrast: every pixel is {lo:.4g} on a 0-1 scale "
            "(a blank image, or a lookup table that maps everything to one value)"
        )
