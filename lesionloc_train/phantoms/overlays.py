"""Everything drawn over a processed film, in order: collimation edges, a ruler, laterality
markers and burned-in text, each family switchable and from its own random stream, all kept
off the lungs and the heart so no ground truth is hidden."""

from __future__ import annotations

import cv2
import numpy as np

from lesionloc_train.phantoms.annotations import draw_annotations
from lesionloc_train.phantoms.collimation import draw_collimation, draw_ruler
from lesionloc_train.phantoms.film import Film
from lesionloc_train.phantoms.lettering import Overlay
from lesionloc_train.phantoms.markers import draw_markers
from lesionloc_train.phantoms.options import PhantomOptions


def keepout_mask(anatomy_masks: list[np.ndarray], margin_px: float) -> np.ndarray:
    """The lungs and heart (every finding lies on them), grown by a margin."""
    keep = np.logical_or.reduce(anatomy_masks).astype(np.uint8)
    k = max(1, int(round(margin_px)))
    return cv2.dilate(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2)) > 0


def draw_overlays(image: np.ndarray, keepout: np.ndarray, film: Film, options: PhantomOptions,
                  spacing_mm: float, rng: np.random.Generator) -> list[Overlay]:
    """Draw the enabled families into `image` (in place); returns what was drawn."""
    streams = [np.random.default_rng(s) for s in rng.integers(2**63, size=4)]
    out: list[Overlay] = []
    if options.collimation:
        bands = draw_collimation(image, keepout, streams[0])
        for band in bands:
            x, y, w, h = band.box
            keepout[y:y + h, x:x + w] = True
        out += bands
        out += draw_ruler(image, keepout, spacing_mm, streams[1])
    if options.markers:
        out += draw_markers(image, keepout, streams[2], options.heldout)
    if options.text:
        out += draw_annotations(image, keepout, film, streams[3], options.heldout)
    return out
