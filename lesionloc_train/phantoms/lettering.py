"""Letters on a film (laterality markers, burned-in text): typefaces, rendering a word to a
mask, finding room for it away from the lungs, and pasting it into the display image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# Typefaces of the trained style; the held-out style writes in ones training never shows.
FONTS_TRAINED = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                 cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN)
FONTS_HELDOUT = (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
                 cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
                 cv2.FONT_HERSHEY_TRIPLEX | cv2.FONT_ITALIC)


@dataclass(frozen=True)
class Overlay:
    """Something printed on or placed over the film: its type ("marker", "text", "ruler",
    "collimation"), the characters it shows, and its box [x, y, w, h] in stored pixels."""

    type: str
    text: str | None
    box: list[int]
    style: str | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "box": self.box}
        if self.text is not None:
            out["text"] = self.text
        if self.style is not None:
            out["style"] = self.style
        return out


def pick_font(rng: np.random.Generator, heldout: bool) -> int:
    fonts = FONTS_HELDOUT if heldout else FONTS_TRAINED
    return int(fonts[int(rng.integers(len(fonts)))])


def text_mask(text: str, height_px: float, font: int, weight: float = 1.0,
              angle_deg: float = 0.0) -> np.ndarray:
    """`text` drawn white on black (uint8), its capital letters about `height_px` tall,
    strokes `weight` times the typeface's usual thickness, turned by `angle_deg`."""
    (w1, h1), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = max(height_px, 4.0) / max(h1, 1)
    thickness = max(1, int(round(scale * 1.6 * weight)))
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    pad = thickness + 2
    canvas = np.zeros((h + base + 2 * pad, w + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + h), font, scale, 255, thickness, cv2.LINE_AA)
    if angle_deg:
        ch, cw = canvas.shape
        side = int(np.ceil(np.hypot(ch, cw))) + 2
        big = np.zeros((side, side), np.uint8)
        y0, x0 = (side - ch) // 2, (side - cw) // 2
        big[y0:y0 + ch, x0:x0 + cw] = canvas
        matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle_deg, 1.0)
        canvas = cv2.warpAffine(big, matrix, (side, side), flags=cv2.INTER_LINEAR)
    rows = np.flatnonzero(canvas.any(axis=1))
    cols = np.flatnonzero(canvas.any(axis=0))
    if rows.size == 0:
        return np.zeros((1, 1), np.uint8)
    return canvas[max(0, rows[0] - 1):rows[-1] + 2, max(0, cols[0] - 1):cols[-1] + 2]


def place(shape: tuple[int, int], size: tuple[int, int], keepout: np.ndarray,
          anchors: list[tuple[float, float]], rng: np.random.Generator,
          tries: int = 12, jitter: float = 0.02) -> tuple[int, int] | None:
    """Top-left (x, y) of a `size` (h, w) patch near one of the `anchors` (fractions of the
    image, moved by up to a few `jitter` fractions) that covers no keep-out pixel, or None
    when there is no room."""
    h, w = shape
    ph, pw = size
    if ph >= h or pw >= w:
        return None
    for _ in range(tries):
        ax, ay = anchors[int(rng.integers(len(anchors)))]
        x = int(np.clip(ax * w - pw / 2 + rng.normal(0, jitter * w), 0, w - pw))
        y = int(np.clip(ay * h - ph / 2 + rng.normal(0, jitter * h), 0, h - ph))
        if not keepout[y:y + ph, x:x + pw].any():
            return x, y
    return None


def paste(image: np.ndarray, mask: np.ndarray, x: int, y: int, value: float,
          halo: float = 0.0, backing: float | None = None) -> list[int]:
    """Blend `value` into `image` through `mask` (uint8) at (x, y). `halo` darkens a rim
    around the letters (the edge enhancement of a lead marker); `backing` fills the patch's
    rectangle first (a label box or a marker holder). Returns the patch's box."""
    h, w = mask.shape
    region = image[y:y + h, x:x + w]
    alpha = mask.astype(np.float32) / 255.0
    if backing is not None:
        region[...] = backing
    if halo:
        k = max(3, int(round(min(h, w) * 0.15)) | 1)
        rim = cv2.dilate(mask, np.ones((k, k), np.uint8)).astype(np.float32) / 255.0
        region *= 1.0 - halo * np.clip(rim - alpha, 0.0, 1.0)
    region[...] = region * (1.0 - alpha) + np.float32(value) * alpha
    return [int(x), int(y), int(w), int(h)]
