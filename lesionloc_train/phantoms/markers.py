"""Laterality markers: the lead "L" or "R" a radiographer puts in the beam, in several
typefaces, sizes and corners, as a bare lead letter (white, with the dark rim edge enhancement
draws around it), in its plastic holder, or as the detector's electronic marker."""

from __future__ import annotations

import numpy as np

from lesionloc_train.phantoms.lettering import Overlay, paste, pick_font, place, text_mask

P_MARKER = 0.9
P_SECOND = 0.1  # a second marker (both sides, or a repeated one)
STYLES = ("lead", "holder", "electronic")
# Where the letter goes, as fractions of the image: the upper and lower outer corners of its
# side first (the patient's left is the image right), anywhere along the top otherwise.
_ANCHORS = {"L": [(0.9, 0.1), (0.88, 0.2), (0.9, 0.85), (0.75, 0.06)],
            "R": [(0.1, 0.1), (0.12, 0.2), (0.1, 0.85), (0.25, 0.06)]}


def draw_markers(image: np.ndarray, keepout: np.ndarray, rng: np.random.Generator,
                 heldout: bool = False) -> list[Overlay]:
    """Draw 0-2 markers into `image` (in place, display values in [0, 1]) away from
    `keepout`; returns what was drawn."""
    present = rng.random() < P_MARKER
    second = rng.random() < P_SECOND
    letters = ["L" if rng.random() < 0.75 else "R"]
    if second:
        letters.append("R" if letters[0] == "L" else "L")
    out: list[Overlay] = []
    for letter in letters:
        child = np.random.default_rng(rng.integers(2**63))
        if present:
            overlay = _marker(image, keepout, letter, child, heldout)
            if overlay is not None:
                out.append(overlay)
    return out


def _marker(image: np.ndarray, keepout: np.ndarray, letter: str, rng: np.random.Generator,
            heldout: bool) -> Overlay | None:
    h, w = image.shape
    short = min(h, w)
    style = str(rng.choice(STYLES, p=[0.5, 0.3, 0.2]))
    height = short * float(rng.uniform(0.025, 0.06))
    text = letter
    if rng.random() < 0.2:  # some departments add the radiographer's initials
        text = letter + " " + "".join(chr(ord("A") + int(rng.integers(26))) for _ in range(2))
    font = pick_font(rng, heldout)
    angle = float(rng.normal(0, 8)) if style != "electronic" else 0.0
    mask = text_mask(text, height, font, float(rng.uniform(1.0, 1.8)), angle)
    pad = max(2, int(round(height * 0.25))) if style == "holder" else 0
    size = (mask.shape[0] + 2 * pad, mask.shape[1] + 2 * pad)
    spot = place((h, w), size, keepout, _ANCHORS[letter], rng)
    if spot is None:
        return None
    x, y = spot
    value = float(rng.uniform(0.85, 1.0))
    if style == "holder":
        region = image[y:y + size[0], x:x + size[1]]
        # the plastic holder: a faint halo of slightly denser material around the letter
        region += np.float32(rng.uniform(0.06, 0.18)) * (1.0 - region)
        paste(image, mask, x + pad, y + pad, value, halo=0.3)
    elif style == "lead":
        paste(image, mask, x, y, value, halo=float(rng.uniform(0.3, 0.7)))
    else:
        paste(image, mask, x, y, value)
    keepout[y:y + size[0], x:x + size[1]] = True
    return Overlay("marker", text, [int(x), int(y), int(size[1]), int(size[0])], style)
