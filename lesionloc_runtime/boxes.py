"""The one box type of the runtime: boxes a heatmap predicts (with a score) and the ground-truth
boxes of the benchmarks (without), `[x, y, width, height]` in image pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Box", "xywh"]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels, top-left origin. x and y are pixel edges (0 is the
    left edge of the first column), which is also DICOM's SCOORD origin. `score` is the
    heatmap's maximum inside a predicted box (a cosine similarity); None for ground truth."""

    x: float
    y: float
    width: float
    height: float
    score: float | None = None

    @property
    def xywh(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.width, self.height)

    def as_list(self) -> list[float]:
        """`[x, y, w, h]` to a tenth of a pixel, as the study JSON writes it."""
        return [round(self.x, 1), round(self.y, 1), round(self.width, 1), round(self.height, 1)]

    def scaled(self, sx: float, sy: float) -> Box:
        """The same box on an image rescaled by `sx` horizontally and `sy` vertically."""
        return Box(self.x * sx, self.y * sy, self.width * sx, self.height * sy, self.score)

    def lies_outside(self, width: float, height: float) -> bool:
        """True when no part of the box is on a `width` x `height` image."""
        return (self.x >= width or self.y >= height or self.x + self.width <= 0
                or self.y + self.height <= 0)


def xywh(box: Box | Sequence[float]) -> tuple[float, float, float, float]:
    """`(x, y, w, h)` of a Box or of four numbers as a JSON manifest stores them."""
    if isinstance(box, Box):
        return box.xywh
    x, y, w, h = (float(v) for v in box)
    return (x, y, w, h)
