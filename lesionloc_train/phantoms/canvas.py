"""Drawing in patient coordinates: one similarity transform (size, rotation, shift) maps the
normalized chest frame onto the image's pixels, and every structure is drawn through it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Reference pixel spacing: a 2048-pixel (short side) detector at 0.175 mm per pixel.
REFERENCE_SIDE_PX = 2048
REFERENCE_SPACING_MM = 0.175
_SHIFT = 4  # cv2 sub-pixel bits: vertices on a 1/16 pixel grid
_ONE = 1 << _SHIFT


def pixel_spacing_mm(width: int, height: int) -> float:
    """Spacing that keeps the field of view of a 2048 px detector on the image's short side."""
    return REFERENCE_SPACING_MM * REFERENCE_SIDE_PX / min(width, height)


@dataclass(frozen=True)
class Frame:
    """Normalized chest coordinates (u right, v down; 1 unit = the short image side at scale 1,
    origin at the image centre) mapped to pixels by scale, rotation and shift."""

    width: int
    height: int
    scale: float = 1.0
    rotation_deg: float = 0.0
    shift_u: float = 0.0
    shift_v: float = 0.0

    @property
    def unit_px(self) -> float:
        """Pixels per normalized unit."""
        return min(self.width, self.height) * self.scale

    @property
    def spacing_mm(self) -> float:
        return pixel_spacing_mm(self.width, self.height)

    def mm_to_px(self, mm: float) -> float:
        return mm / self.spacing_mm

    def units_to_px(self, units: float) -> float:
        return units * self.unit_px

    def to_px(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) normalized (u, v) points to (N, 2) float pixel (x, y) coordinates."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        a = math.radians(self.rotation_deg)
        c, s = math.cos(a), math.sin(a)
        u = pts[:, 0] + self.shift_u
        v = pts[:, 1] + self.shift_v
        x = (c * u - s * v) * self.unit_px + self.width / 2.0
        y = (s * u + c * v) * self.unit_px + self.height / 2.0
        return np.stack([x, y], axis=1)

    def to_units(self, points: np.ndarray) -> np.ndarray:
        """Inverse of `to_px`."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        a = math.radians(self.rotation_deg)
        c, s = math.cos(a), math.sin(a)
        x = (pts[:, 0] - self.width / 2.0) / self.unit_px
        y = (pts[:, 1] - self.height / 2.0) / self.unit_px
        u = c * x + s * y - self.shift_u
        v = -s * x + c * y - self.shift_v
        return np.stack([u, v], axis=1)

    def blank(self, dtype: type = np.uint8) -> np.ndarray:
        return np.zeros((self.height, self.width), dtype=dtype)


def _fixed(px: np.ndarray) -> np.ndarray:
    return np.round(px * _ONE).astype(np.int32).reshape(-1, 1, 2)


def fill_polygons(frame: Frame, polygons: list[np.ndarray], canvas: np.ndarray | None = None,
                  value: int = 255) -> np.ndarray:
    """Fill normalized polygons (anti-aliased) into a uint8 canvas, returning it."""
    out = frame.blank() if canvas is None else canvas
    pts = [_fixed(frame.to_px(p)) for p in polygons]
    cv2.fillPoly(out, pts, value, lineType=cv2.LINE_AA, shift=_SHIFT)
    return out


def fill_polygons_px(shape: tuple[int, int], polygons: list[np.ndarray], value: int = 255,
                     canvas: np.ndarray | None = None) -> np.ndarray:
    """Fill polygons given in pixel coordinates (anti-aliased) into a uint8 canvas."""
    out = np.zeros(shape, dtype=np.uint8) if canvas is None else canvas
    cv2.fillPoly(out, [_fixed(p) for p in polygons], value, lineType=cv2.LINE_AA, shift=_SHIFT)
    return out


def draw_polyline(frame: Frame, canvas: np.ndarray, points: np.ndarray, thickness_units: float,
                  value: int = 255, closed: bool = False) -> None:
    """Stroke a normalized polyline with a thickness in normalized units (at least 1 px)."""
    thickness = max(1, int(round(frame.units_to_px(thickness_units))))
    cv2.polylines(canvas, [_fixed(frame.to_px(points))], closed, value, thickness,
                  lineType=cv2.LINE_AA, shift=_SHIFT)


def draw_polylines(frame: Frame, canvas: np.ndarray, lines: list[np.ndarray],
                   thickness_units: float, value: int = 255, closed: bool = False) -> None:
    """Stroke many normalized polylines of one thickness in a single cv2 call."""
    if not lines:
        return
    sizes = [len(p) for p in lines]
    px = _fixed(frame.to_px(np.concatenate(lines))).reshape(-1, 2)
    parts = np.split(px, np.cumsum(sizes)[:-1])
    thickness = max(1, int(round(frame.units_to_px(thickness_units))))
    cv2.polylines(canvas, [p.reshape(-1, 1, 2) for p in parts], closed, value, thickness,
                  lineType=cv2.LINE_AA, shift=_SHIFT)


def ellipse_points(cu: float, cv: float, ru: float, rv: float, angle_deg: float = 0.0,
                   n: int = 72, radial: np.ndarray | None = None) -> np.ndarray:
    """Points of an ellipse (optionally with a per-point radial factor, for lobulation)."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    r = np.ones_like(t) if radial is None else radial
    x = ru * r * np.cos(t)
    y = rv * r * np.sin(t)
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.stack([cu + c * x - s * y, cv + s * x + c * y], axis=1)


def smooth(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur; wide kernels run on a downsampled copy (same look, a fraction of the time)."""
    if sigma_px < 0.3:
        return image.astype(np.float32, copy=False)
    img = image.astype(np.float32, copy=False)
    if sigma_px <= 6.0:
        return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REPLICATE)
    factor = int(sigma_px // 3)
    h, w = img.shape
    small = cv2.resize(img, (max(1, w // factor), max(1, h // factor)),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / factor, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def to_float(mask: np.ndarray) -> np.ndarray:
    """uint8 0..255 canvas to float32 0..1."""
    return mask.astype(np.float32) * np.float32(1.0 / 255.0)


def tight_box(mask: np.ndarray) -> list[int] | None:
    """[x, y, w, h] of the non-zero pixels of a mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]
