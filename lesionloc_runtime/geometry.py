"""Where the model's square input lies on the original image: a recorded letterbox (ours and
AFLoc's) or a resize-then-centre-crop (BioViL's), each invertible so heatmaps land on
original pixels, and each saying which region of the original the model saw."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["CentreCrop", "Geometry", "Letterbox", "seen_mask"]

# Coordinates are continuous pixel coordinates in which pixel (i, j) covers [j, j+1) x [i, i+1),
# so pixel centres sit at +0.5.


def _grid_affine(scale_x: float, scale_y: float, shift_x: float, shift_y: float, stride: float,
                 origin: float) -> np.ndarray:
    """2x3 matrix taking an original pixel index (x, y) to the fractional index of the patch
    grid cell whose centre it sits on, given model = original * scale + shift. Grid cell k is
    centred on model coordinate origin + k * stride. Pixel centre x+0.5 -> model coordinate
    (x+0.5)*sx + shift -> grid index ((x+0.5)*sx + shift - origin)/stride."""
    ax, ay = scale_x / stride, scale_y / stride
    bx = (0.5 * scale_x + shift_x - origin) / stride
    by = (0.5 * scale_y + shift_y - origin) / stride
    return np.array([[ax, 0.0, bx], [0.0, ay, by]], dtype=np.float64)


@dataclass(frozen=True)
class Letterbox:
    """The recorded resize: original (width, height) scaled into a size x size square with
    the image centred and padded. The model saw the whole image."""

    orig_width: int
    orig_height: int
    size: int
    new_width: int
    new_height: int
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, width: int, height: int, size: int, rounding: str = "round") -> Letterbox:
        """`rounding` of the scaled short side: "round" (ours) or "floor" (AFLoc's int())."""
        cut = round if rounding == "round" else int
        # the long side is `size` exactly (the height for a square, as AFLoc's _resize_img has
        # it): int(440 * (224 / 440)) is 223
        if height >= width:
            new_w, new_h = max(1, min(size, cut(width * (size / height)))), size
        else:
            new_w, new_h = size, max(1, min(size, cut(height * (size / width))))
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
        """For cv2.warpAffine(..., WARP_INVERSE_MAP): see `_grid_affine`. Grid cell k is centred
        on model coordinate origin + k * stride (0.5 for a ResNet, whose strided convolutions
        centre output k on input pixel stride * k)."""
        return _grid_affine(self.scale_x, self.scale_y, self.pad_x, self.pad_y, stride, origin)

    def model_content(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the model input that shows the image (not padding)."""
        return (self.pad_x, self.pad_y, self.pad_x + self.new_width, self.pad_y + self.new_height)

    def seen_region(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the original image that the model saw: all of it."""
        return 0, 0, self.orig_width, self.orig_height

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CentreCrop:
    """BioViL's transform: the shorter side resized to `resize` (the longer one truncated, as
    torchvision's Resize does), then a centre crop of `size`. The model saw only the crop; the
    heatmap maps back as hi-ml's `convert_similarity_to_image_size` does: onto a square window
    of side int(size * shorter / resize) centred (floor) on the original. That window and the
    forward crop differ by at most a pixel of the resized image."""

    orig_width: int
    orig_height: int
    size: int
    resize: int
    resized_width: int
    resized_height: int
    crop_x: int  # forward crop offsets, in resized pixels
    crop_y: int
    window_x: int  # where the model input lies on the original (the source's inverse mapping)
    window_y: int
    window_side: int

    @classmethod
    def fit(cls, width: int, height: int, resize: int, size: int) -> CentreCrop:
        short, long = min(width, height), max(width, height)
        new_long = int(resize * long / short)
        rw, rh = (resize, new_long) if width <= height else (new_long, resize)
        # torchvision's centre_crop rounds half to even (Python round)
        crop_x, crop_y = int(round((rw - size) / 2.0)), int(round((rh - size) / 2.0))
        side = max(1, int(size * short / resize))
        return cls(width, height, size, resize, rw, rh, crop_x, crop_y,
                   (width - side) // 2, (height - side) // 2, side)

    @property
    def scale(self) -> float:
        """Model pixels per original pixel, on the source's inverse mapping."""
        return self.size / self.window_side

    def to_model(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.window_x) * self.scale, (y - self.window_y) * self.scale

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        return x / self.scale + self.window_x, y / self.scale + self.window_y

    def original_to_grid_affine(self, stride: float, origin: float) -> np.ndarray:
        s = self.scale
        return _grid_affine(s, s, -self.window_x * s, -self.window_y * s, stride, origin)

    def model_content(self) -> tuple[float, float, float, float]:
        return 0.0, 0.0, float(self.size), float(self.size)

    def seen_region(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the original image the model saw: the crop window, clipped
        to the image (a window never extends past it: side <= the shorter side)."""
        return self.window_x, self.window_y, self.window_side, self.window_side

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Geometry = Letterbox | CentreCrop


def seen_mask(geometry: Geometry, width: int, height: int) -> np.ndarray | None:
    """Boolean (height, width) mask of the pixels of a (possibly rescaled) copy of the original
    that the model saw, or None when it saw all of them."""
    x, y, w, h = geometry.seen_region()
    if (x, y, w, h) == (0, 0, geometry.orig_width, geometry.orig_height):
        return None
    fx, fy = width / geometry.orig_width, height / geometry.orig_height
    cols = (np.arange(width) + 0.5) / fx
    rows = (np.arange(height) + 0.5) / fy
    in_x = (cols >= x) & (cols < x + w)
    in_y = (rows >= y) & (rows < y + h)
    return in_y[:, None] & in_x[None, :]
