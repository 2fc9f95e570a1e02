"""Collimation edges and rulers: the beam narrowed to the chest leaves bands along the film's
edges that are either unexposed (light, with a soft penumbra) or blacked out by the
processing's electronic shutter; a radiopaque ruler sometimes lies beside the patient."""

from __future__ import annotations

import cv2
import numpy as np

from lesionloc_train.phantoms.lettering import Overlay

P_COLLIMATION = 0.45
P_RULER = 0.08


def _band_depth(keepout: np.ndarray, edge: str, want: int) -> int:
    """How deep a band along `edge` may reach without touching the keep-out region."""
    rows = np.flatnonzero(keepout.any(axis=1))
    cols = np.flatnonzero(keepout.any(axis=0))
    if rows.size == 0:
        return want
    h, w = keepout.shape
    room = {"top": rows[0], "bottom": h - 1 - rows[-1], "left": cols[0],
            "right": w - 1 - cols[-1]}[edge]
    return int(max(0, min(want, (room - 2) * 0.8)))  # the penumbra needs room too


def draw_collimation(image: np.ndarray, keepout: np.ndarray,
                     rng: np.random.Generator) -> list[Overlay]:
    """Collimation bands along 1-4 edges (in place), clear of the keep-out region."""
    present = rng.random() < P_COLLIMATION
    edges = [e for e, p in zip(("top", "bottom", "left", "right"), rng.random(4), strict=True)
             if p < 0.55]
    shutter = rng.random() < 0.5
    level = float(rng.uniform(0.0, 0.05)) if shutter else float(rng.uniform(0.7, 0.92))
    fractions = rng.uniform(0.02, 0.09, 4)
    if not present:
        return []
    h, w = image.shape
    out = []
    for edge, fraction in zip(edges or ["top"], fractions, strict=False):
        depth = _band_depth(keepout, edge, int(round(fraction * (h if edge in ("top", "bottom")
                                                                  else w))))
        if depth < 2:
            continue
        # alpha by distance from the edge: 1 inside the band, then a penumbra (none for a
        # shutter, which the processing draws with a hard edge)
        soft = 1 if shutter else max(2, depth // 4)
        t = np.arange(depth + soft, dtype=np.float32)
        ramp = np.clip((depth + soft - t) / soft, 0.0, 1.0)
        n = ramp.size
        if edge in ("top", "bottom"):
            sl = np.s_[:n] if edge == "top" else np.s_[h - n:]
            alpha = (ramp if edge == "top" else ramp[::-1])[:, None]
            box = [0, 0 if edge == "top" else h - depth, w, depth]
        else:
            sl = np.s_[:, :n] if edge == "left" else np.s_[:, w - n:]
            alpha = (ramp if edge == "left" else ramp[::-1])[None, :]
            box = [0 if edge == "left" else w - depth, 0, depth, h]
        region = image[sl]
        region[...] = region * (1.0 - alpha) + np.float32(level) * alpha
        out.append(Overlay("collimation", None, box, "shutter" if shutter else "unexposed"))
    return out


def draw_ruler(image: np.ndarray, keepout: np.ndarray, spacing_mm: float,
               rng: np.random.Generator) -> list[Overlay]:
    """A radiopaque ruler with centimetre and half-centimetre ticks along one side."""
    present = rng.random() < P_RULER
    side = "left" if rng.random() < 0.5 else "right"
    length_mm = float(rng.uniform(100, 250))
    top_fraction = float(rng.uniform(0.2, 0.5))
    if not present:
        return []
    h, w = image.shape
    px = 1.0 / spacing_mm
    width = max(4, int(round(9 * px)))
    length = min(h - 4, int(round(length_mm * px)))
    y0 = int(min(h - length - 2, top_fraction * h))
    x0 = 3 if side == "left" else w - width - 3
    if keepout[y0:y0 + length, x0:x0 + width].any():
        return []
    strip = np.zeros((length, width), np.uint8)
    cv2.rectangle(strip, (0, 0), (width - 1, length - 1), 120, max(1, width // 8))
    for k in range(int(length_mm // 5) + 1):
        y = int(round(k * 5 * px))
        if y >= length:
            break
        tick = width if k % 2 == 0 else width // 2
        x_from = 0 if side == "left" else width - tick
        cv2.line(strip, (x_from, y), (x_from + tick - 1, y), 255, max(1, int(round(px * 0.6))))
    alpha = strip.astype(np.float32) / 255.0
    region = image[y0:y0 + length, x0:x0 + width]
    region[...] = region * (1.0 - alpha) + np.float32(0.95) * alpha
    keepout[y0:y0 + length, x0:x0 + width] = True
    return [Overlay("ruler", None, [int(x0), int(y0), int(width), int(length)])]
