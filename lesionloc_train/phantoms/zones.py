"""Lung zones on the rendered image, as the report vocabulary defines them: thirds of each
lung's vertical extent, apical top 15%, basal bottom 20%, lingula, perihilar, lateral."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDES = ("right", "left")
# Row bands as fractions of the lung's vertical extent, top to bottom.
ZONE_ROWS: dict[str, tuple[float, float]] = {
    "upper": (0.0, 1 / 3),
    "middle": (1 / 3, 2 / 3),
    "lower": (2 / 3, 1.0),
    "apical": (0.0, 0.15),
    "basal": (0.8, 1.0),
    "lingula": (1 / 3, 2 / 3),  # the left lung's middle third
    "perihilar": (1 / 3, 2 / 3),  # and the medial half of it
    "lateral": (0.1, 0.75),  # along the lateral wall (pneumothorax)
}
MEDIAL_HALF = {"perihilar"}
LATERAL_HALF = {"lateral"}


@dataclass(frozen=True)
class LungField:
    """One lung's mask on the image grid (radiological convention: the patient's right lung is
    on the image left) and its vertical extent."""

    side: str
    mask: np.ndarray  # bool (height, width)
    top: int
    bottom: int  # inclusive
    left: int
    right: int  # inclusive

    @classmethod
    def from_mask(cls, side: str, mask: np.ndarray) -> LungField:
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        return cls(side, mask, int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    def zone_rows(self, zone: str) -> tuple[float, float]:
        """Pixel row range [y0, y1) of a zone."""
        a, b = ZONE_ROWS[zone]
        return self.top + a * self.height, self.top + b * self.height

    def zone_mask(self, zone: str, margin: float = 0.0) -> np.ndarray:
        """Pixels of the zone (rows trimmed by `margin` of the band height at each end)."""
        y0, y1 = self.zone_rows(zone)
        trim = (y1 - y0) * margin
        ys = np.arange(self.mask.shape[0])[:, None]
        band = (ys >= y0 + trim) & (ys < y1 - trim)
        out = self.mask & band
        if zone in MEDIAL_HALF or zone in LATERAL_HALF:
            out &= self._half(medial=zone in MEDIAL_HALF)
        return out

    def _half(self, medial: bool) -> np.ndarray:
        """Per row, the half of the lung nearer (medial) or farther (lateral) from the midline."""
        m = self.mask
        width = m.shape[1]
        any_row = m.any(axis=1)
        first = np.where(any_row, m.argmax(axis=1), 0)
        last = np.where(any_row, width - 1 - m[:, ::-1].argmax(axis=1), 0)
        mid = (first + last) / 2.0
        xs = np.arange(width)[None, :]
        # The patient's right lung lies on the image left: its medial half is the right half.
        image_right_half = xs >= mid[:, None]
        want_image_right = medial == (self.side == "right")
        return image_right_half if want_image_right else ~image_right_half


def sample_point(rng: np.random.Generator, candidates: np.ndarray,
                 stride: int = 1) -> tuple[int, int] | None:
    """A uniformly random (x, y) pixel of a boolean mask, searched on a strided grid for speed."""
    sub = candidates[::stride, ::stride]
    ys, xs = np.nonzero(sub)
    if ys.size == 0:
        return None
    k = int(rng.integers(ys.size))
    return int(xs[k]) * stride, int(ys[k]) * stride
