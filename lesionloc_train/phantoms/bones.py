"""Bones of a phantom chest: thoracic spine, posterior and anterior ribs (whose crossings make
bright spots on every film), clavicles, scapulae and humeral heads."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from lesionloc_train.phantoms.canvas import (
    Frame,
    draw_polylines,
    ellipse_points,
    fill_polygons,
    smooth,
    to_float,
)

if TYPE_CHECKING:
    from lesionloc_train.phantoms.anatomy import Anatomy

_SIGNS = {"right": -1.0, "left": 1.0}


def _cortical(outer: np.ndarray, inner: np.ndarray, weight: float) -> np.ndarray:
    """A bone band whose edges (cortex) are brighter than its middle (medulla)."""
    return cv2.addWeighted(outer, weight / 255, inner, -0.45 * weight / 255, 0.0,
                           dtype=cv2.CV_32F)


def _band(frame: Frame, lines: list[np.ndarray], thickness: float, inner: float,
          weight: float) -> np.ndarray:
    outer_c, inner_c = frame.blank(), frame.blank()
    draw_polylines(frame, outer_c, lines, thickness)
    draw_polylines(frame, inner_c, lines, thickness * inner)
    return _cortical(outer_c, inner_c, weight)


def rib_paths(anat: Anatomy, rng: np.random.Generator) -> tuple[list[np.ndarray],
                                                                 list[np.ndarray]]:
    """Posterior ribs run from the spine out to the lateral wall, arching up then down; the
    anterior ribs return medially and downward to the costal cartilage."""
    right = anat.lungs["right"]
    top = min(right.apex_v, anat.lungs["left"].apex_v)
    bottom = max(right.dome_v, anat.lungs["left"].dome_v)
    pitch = (bottom - top + 0.02) / (anat.rib_count - 0.6)
    posterior, anterior = [], []
    s = np.linspace(0.0, 1.0, 18)
    t = np.linspace(0.0, 1.0, 14)
    for side, sign in _SIGNS.items():
        lung = anat.lungs[side]
        for i in range(anat.rib_count):
            v0 = top - 0.02 + i * pitch + float(rng.normal(0, 0.004))
            wall = lung.lateral_at(v0 + 0.04) + 0.03
            drop = float(rng.uniform(0.05, 0.08)) * (0.6 if i == 0 else 1.0)
            pu = 0.03 + (wall - 0.03) * s
            pv = v0 - 0.03 * np.sin(math.pi * s * 0.9) + drop * s**2.4
            posterior.append(np.stack([sign * pu, pv], 1))
            end_v = float(pv[-1])
            # Lower ribs' cartilage starts further out (their anterior ends are short).
            cc_u = float(rng.uniform(0.10, 0.17)) + 0.012 * i + 0.012 * max(0, i - 5) ** 1.5
            au = wall - (wall - min(cc_u, wall - 0.05)) * t
            av = end_v + 0.02 + float(rng.uniform(0.11, 0.15)) * t**1.1
            anterior.append(np.concatenate([[[sign * (wall + 0.006), end_v + 0.01]],
                                            np.stack([sign * au, av], 1)]))
    return posterior, anterior


def render_bones(anat: Anatomy, frame: Frame, rng: np.random.Generator) -> np.ndarray:
    posterior, anterior = rib_paths(anat, rng)
    # Where anterior and posterior ribs cross, the sum
    # is a bright spot on every film.
    bone = _band(frame, posterior, 0.022, 0.5, anat.rib_weight)
    bone += _band(frame, anterior, 0.025, 0.57, anat.rib_weight * 0.35)

    top = min(anat.lungs["right"].apex_v, anat.lungs["left"].apex_v)
    clavicles = []
    for sign in _SIGNS.values():
        v_med = top + float(rng.uniform(0.07, 0.1)) - anat.clavicle_lift
        s = np.linspace(0.0, 1.0, 16)
        cu = 0.035 + 0.32 * s
        cvv = v_med - 0.1 * s + 0.012 * np.sin(2 * math.pi * s)
        clavicles.append(np.stack([sign * cu, cvv], 1))
    bone += _band(frame, clavicles, 0.028, 0.5, 0.12)

    pitch = 0.065 * (anat.lungs["right"].dome_v - top + 0.02) / 0.6
    bodies, inners, pedicles = [], [], []
    v = top - 0.12
    while v < 1.0:
        h = pitch * 0.82
        bodies.append(np.array([[-0.032, v], [0.032, v], [0.034, v + h], [-0.034, v + h]]))
        inners.append(np.array([[-0.024, v + 0.14 * h], [0.024, v + 0.14 * h],
                                [0.025, v + 0.86 * h], [-0.025, v + 0.86 * h]]))
        pedicles += [ellipse_points(sg * 0.026, v + 0.3 * h, 0.008, 0.012, n=16)
                     for sg in (-1.0, 1.0)]
        v += pitch
    spine_o = fill_polygons(frame, bodies)
    draw_polylines(frame, spine_o, pedicles, 0.004, closed=True)
    spine_i = fill_polygons(frame, inners)
    bone += _cortical(spine_o, spine_i, 0.055)

    extra = frame.blank()
    x0 = anat.body_half_width + 0.09  # the arm's axis (see anatomy.arm_polygons)
    for sign in _SIGNS.values():
        fill_polygons(frame, [ellipse_points(sign * (x0 - 0.02), top + 0.05, 0.055, 0.06)], extra)
        draw_polylines(frame, extra, [np.array([[sign * (x0 - 0.015), top + 0.08],
                                                [sign * x0, 1.2]])], 0.036)
    bone += 0.10 * to_float(extra)
    return smooth(bone, frame.mm_to_px(0.7))
