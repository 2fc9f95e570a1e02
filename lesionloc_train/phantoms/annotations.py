"""Burned-in annotations: the words a modality or a radiographer writes into the pixels
(PORTABLE, AP, SUPINE, UPRIGHT, a date and time, initials), stacked in a corner of the film."""

from __future__ import annotations

import numpy as np

from lesionloc_train.phantoms.film import Film
from lesionloc_train.phantoms.lettering import Overlay, paste, pick_font, place, text_mask

P_TEXT_PORTABLE = 0.85
P_TEXT_DEPARTMENT = 0.35
_CORNERS = [[(0.12, 0.06)], [(0.88, 0.06)], [(0.12, 0.93)], [(0.88, 0.93)]]


def annotation_lines(film: Film, rng: np.random.Generator) -> list[str]:
    """What this film would have written on it (every draw is made whatever the film)."""
    wants = rng.random(5)
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hour, minute = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    initials = "".join(chr(ord("A") + int(rng.integers(26))) for _ in range(2))
    date = f"{month:02d}/{day:02d}/20{int(rng.integers(15, 25))} {hour:02d}:{minute:02d}"
    lines = []
    if film.portable:
        if wants[0] < 0.8:
            lines.append("PORTABLE")
        if wants[1] < 0.6:
            lines.append("AP")
        if wants[2] < 0.7:
            lines.append(film.position.upper())
    else:
        if wants[1] < 0.3:
            lines.append("PA")
        if wants[2] < 0.3:
            lines.append("UPRIGHT" if wants[0] < 0.5 else "ERECT")
    if wants[3] < 0.3:
        lines.append(date)
    if wants[4] < 0.25:
        lines.append(initials)
    return lines


def draw_annotations(image: np.ndarray, keepout: np.ndarray, film: Film,
                     rng: np.random.Generator, heldout: bool = False) -> list[Overlay]:
    """Write this film's annotation lines, one block per corner (in place)."""
    present = rng.random() < (P_TEXT_PORTABLE if film.portable else P_TEXT_DEPARTMENT)
    lines = annotation_lines(film, rng)
    font = pick_font(rng, heldout)
    h, w = image.shape
    height = min(h, w) * float(rng.uniform(0.014, 0.028))
    weight = float(rng.uniform(0.8, 1.5))
    value = float(rng.uniform(0.8, 1.0))
    # The held-out rendering variant also boxes its labels (dark letters on a light label).
    boxed = heldout and rng.random() < 0.5
    corner = _CORNERS[int(rng.integers(len(_CORNERS)))]
    split = rng.random() < 0.4  # some systems put the date in another corner
    out: list[Overlay] = []
    if not present:
        return out
    y_step = 0.0
    for line in lines:
        anchors = corner
        if split and "/" in line:
            anchors = _CORNERS[(_CORNERS.index(corner) + 2) % 4]
        mask = text_mask(line, height, font, weight)
        anchor = [(ax, ay + y_step * (1 if ay < 0.5 else -1)) for ax, ay in anchors]
        spot = place((h, w), mask.shape, keepout, anchor, rng, jitter=0.004)
        if spot is None:
            continue
        x, y = spot
        if boxed:
            box = paste(image, mask, x, y, 1.0 - value, backing=value)
        else:
            box = paste(image, mask, x, y, value)
        keepout[y:y + mask.shape[0], x:x + mask.shape[1]] = True
        out.append(Overlay("text", line, box, "boxed" if boxed else None))
        if anchors is corner:
            y_step += 1.6 * mask.shape[0] / h
    return out
