"""Image preprocessing shared by training, export calibration and the runtime: intensity
normalization and a recorded letterbox resize, invertible so heatmaps land on original pixels."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from lesionloc_runtime.errors import ConfigError, ImageReadError
from lesionloc_runtime.imageio import Radiograph

_INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class PreprocessConfig:
    """What every consumer of an image does before the encoder. Carried in the model bundle.

    The model input is one channel in [0, 1] (percentile-stretched, letterboxed); the encoder
    graph itself holds the per-channel mean/std of its backbone, so nothing here depends on
    which backbone was trained.
    """

    image_size: int = 448
    intensity: str = "percentile"  # "percentile" (robust stretch) or "none"
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    pad_value: float = 0.0
    interpolation: str = "area"

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(f"image_size must be a multiple of 32 and >= 32, got {self.image_size}")
        if self.intensity not in ("percentile", "none"):
            raise ConfigError(f"unknown intensity normalization {self.intensity!r}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ConfigError("percentiles must satisfy 0 <= low < high <= 100")
        if not 0.0 <= self.pad_value <= 1.0:
            raise ConfigError(f"pad_value must be in [0, 1], got {self.pad_value}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(f"unknown interpolation {self.interpolation!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(f"unknown preprocessing parameters: {sorted(unknown)}")
        for name, value in data.items():
            expected = type(getattr(cls(), name))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ConfigError(f"preprocessing parameter {name}={value!r} is not a {expected.__name__}")
        return cls(**data)


@dataclass(frozen=True)
class Letterbox:
    """The recorded resize: original (width, height) scaled into a size x size square with
    the image centred and padded. Coordinates are continuous pixel coordinates in which pixel
    (i, j) covers [j, j+1) x [i, i+1), so pixel centres sit at +0.5."""

    orig_width: int
    orig_height: int
    size: int
    new_width: int
    new_height: int
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> Letterbox:
        scale = size / max(width, height)
        new_w = max(1, min(size, round(width * scale)))
        new_h = max(1, min(size, round(height * scale)))
        return cls(width, height, size, new_w, new_h, (size - new_w) // 2, (size - new_h) // 2)

    @property
    def scale_x(self) -> float:
        return self.new_width / self.orig_width

    @property
    def scale_y(self) -> float:
        return self.new_height / self.orig_height

    def to_model(self, x: float, y: float) -> tuple[float, float]:
        """Original continuous coordinates -> model-input continuous coordinates."""
        return x * self.scale_x + self.pad_x, y * self.scale_y + self.pad_y

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """Model-input continuous coordinates -> original continuous coordinates."""
        return (x - self.pad_x) / self.scale_x, (y - self.pad_y) / self.scale_y

    def original_to_grid_affine(self, stride: float, origin: float) -> np.ndarray:
        """2x3 matrix taking an original pixel index (x, y) to the (fractional) index of the
        patch grid cell whose centre it sits on, for cv2.warpAffine(..., WARP_INVERSE_MAP).

        Grid cell k is centred on model coordinate origin + k * stride (where its receptive
        field is centred: 0.5 for a ResNet, whose strided convolutions centre output k on input
        pixel stride * k, not on the middle of a stride-wide cell). Pixel centre x+0.5 ->
        model coordinate (x+0.5)*sx + pad_x -> grid index ((x+0.5)*sx + pad_x - origin)/stride.
        """
        ax = self.scale_x / stride
        ay = self.scale_y / stride
        bx = (0.5 * self.scale_x + self.pad_x - origin) / stride
        by = (0.5 * self.scale_y + self.pad_y - origin) / stride
        return np.array([[ax, 0.0, bx], [0.0, ay, by]], dtype=np.float64)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def intensity_window(pixels: np.ndarray, config: PreprocessConfig) -> tuple[float, float]:
    """The (low, high) display values that the intensity normalization maps to 0 and 1."""
    if config.intensity == "none":
        return 0.0, 1.0
    lo, hi = np.percentile(pixels, [config.low_percentile, config.high_percentile])
    if hi - lo < 1e-6:  # a flat image: keep it flat instead of amplifying noise
        return float(lo), float(lo) + 1.0
    return float(lo), float(hi)


def apply_window(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    out = (pixels - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


@dataclass(frozen=True)
class PreprocessedImage:
    """The encoder input (1, size, size) float32, and how to go back to the original."""

    tensor: np.ndarray
    letterbox: Letterbox
    window: tuple[float, float]


def preprocess(image: Radiograph | np.ndarray, config: PreprocessConfig) -> PreprocessedImage:
    """Letterbox-resize then intensity-normalize one radiograph into the encoder's input.

    The percentiles are computed on the resized image (what the encoder sees), which is both
    cheaper on 2048-pixel films and independent of the original resolution.
    """
    if not isinstance(image, Radiograph):
        image = Radiograph.from_array(np.asarray(image))
    pixels = image.pixels
    height, width = pixels.shape
    box = Letterbox.fit(width, height, config.image_size)
    resized = cv2.resize(
        pixels, (box.new_width, box.new_height), interpolation=_INTERPOLATIONS[config.interpolation]
    )
    window = intensity_window(resized, config)
    if not np.isfinite(window).all():  # NaN in the image reaches the percentiles
        raise ImageReadError(f"{image.source}: the image has non-finite values (NaN)")
    resized = apply_window(resized, window)
    canvas = np.full((config.image_size, config.image_size), config.pad_value, dtype=np.float32)
    canvas[box.pad_y : box.pad_y + box.new_height, box.pad_x : box.pad_x + box.new_width] = resized
    return PreprocessedImage(canvas[None], box, window)
