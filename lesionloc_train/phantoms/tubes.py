"""Tubes and lines of a bedside film: endotracheal tube (tip a few centimetres above the
carina), nasogastric tube (down the oesophagus into the stomach) and central venous catheter
(jugular, subclavian or PICC, tip in the superior vena cava), each with its radiopaque stripe."""

from __future__ import annotations

import numpy as np

from lesionloc_train.phantoms.canvas import Frame, draw_polylines, to_float
from lesionloc_train.phantoms.devices import Device, Landmarks, cm_between, finish, units


def bezier(points: list[tuple[float, float]], n: int = 40) -> np.ndarray:
    """A smooth path through the control points (de Casteljau), (n, 2)."""
    ctrl = np.asarray(points, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    pts = np.broadcast_to(ctrl, (n, *ctrl.shape)).copy()
    while pts.shape[1] > 1:
        pts = (1 - t) * pts[:, :-1] + t * pts[:, 1:]
    return pts[:, 0]


def stroke(frame: Frame, lines: list[np.ndarray], width_mm: float, weight: float) -> np.ndarray:
    """Attenuation of polylines `width_mm` wide (at least a pixel), float32."""
    canvas = frame.blank()
    draw_polylines(frame, canvas, lines, units(frame, width_mm))
    return to_float(canvas) * np.float32(weight)


def offset(path: np.ndarray, distance: float) -> np.ndarray:
    """The path moved sideways by `distance` (normal to its direction)."""
    d = np.gradient(path, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return path + distance * n


def _tube(frame: Frame, path: np.ndarray, diameter_mm: float, wall: float,
          stripe: float) -> np.ndarray:
    """A plastic tube: two faint walls and a radiopaque stripe along one of them."""
    half = units(frame, diameter_mm) / 2
    walls = stroke(frame, [offset(path, half), offset(path, -half)], 0.8, wall)
    return walls + stroke(frame, [offset(path, half * 0.6)], 1.2, stripe)


def endotracheal_tube(frame: Frame, marks: Landmarks, rng: np.random.Generator) -> Device:
    """Down the trachea from above the film; the tip 2-7 cm above the carina."""
    above = float(rng.uniform(0.055, 0.19))
    tip_v = marks.carina_v - above
    u = marks.trachea_u + float(rng.normal(0, 0.004))
    path = bezier([(u + float(rng.normal(0, 0.02)), -1.0), (u, (tip_v - 1.0) / 2), (u, tip_v)])
    dense = _tube(frame, path, float(rng.uniform(7.5, 9.0)), float(rng.uniform(0.02, 0.04)),
                  float(rng.uniform(0.12, 0.22)))
    cm = round(cm_between(frame, tip_v, marks.carina_v) * 2) / 2
    return finish(frame, "endotracheal_tube", {"tip_above_carina_cm": cm}, dense)


def nasogastric_tube(frame: Frame, marks: Landmarks, rng: np.random.Generator) -> Device:
    """Down the oesophagus, just left of the midline, through the hiatus into the stomach,
    where its tip curls."""
    u0 = marks.trachea_u + float(rng.uniform(0.01, 0.025))
    su, sv = marks.stomach
    tip = (su + float(rng.uniform(-0.03, 0.05)), sv + float(rng.uniform(-0.01, 0.05)))
    path = np.concatenate([
        bezier([(u0 + float(rng.normal(0, 0.02)), -1.0), (u0, marks.carina_v),
                (u0 + 0.01, marks.cavoatrial_v + 0.1)], 30),
        bezier([(u0 + 0.01, marks.cavoatrial_v + 0.1), (u0 + 0.03, sv - 0.04),
                (su - 0.02, sv + 0.02), tip], 30)[1:]])
    dense = _tube(frame, path, float(rng.uniform(4.0, 5.5)), float(rng.uniform(0.015, 0.03)),
                  float(rng.uniform(0.1, 0.18)))
    return finish(frame, "nasogastric_tube", {"tip": "stomach"}, dense)


_TIPS = {"superior vena cava": (-0.06, 0.0), "cavoatrial junction": (0.0, 0.02)}


def central_venous_catheter(frame: Frame, marks: Landmarks,
                            rng: np.random.Generator) -> Device:
    """A thin radiopaque line entering by the right internal jugular vein, a subclavian vein
    or an arm vein (PICC), ending in the superior vena cava or at the cavoatrial junction."""
    route = str(rng.choice(["right internal jugular", "left subclavian", "right subclavian",
                            "right PICC", "left internal jugular"], p=[0.4, 0.2, 0.15, 0.15, 0.1]))
    tip_name = str(rng.choice(list(_TIPS)))
    dv, spread = _TIPS[tip_name]
    tip = (marks.svc_u + float(rng.normal(0, 0.004)),
           marks.cavoatrial_v + dv + float(rng.uniform(-0.01, 0.01)) + spread)
    top = (marks.svc_u + 0.005, marks.carina_v - 0.06)
    clav = marks.apex_v + 0.08
    if route.endswith("internal jugular"):
        sign = -1.0 if route.startswith("right") else 1.0
        start = (sign * 0.07, -1.0)
        path = bezier([start, (sign * 0.065, clav - 0.05), top, tip]) if sign < 0 else \
            bezier([start, (0.07, clav), (0.03, top[1] - 0.03), top, tip])
    elif route.endswith("subclavian"):
        sign = -1.0 if route.startswith("right") else 1.0
        start = (sign * (marks.lateral_u["right" if sign < 0 else "left"] + 0.08), clav - 0.03)
        path = bezier([start, (sign * 0.15, clav + 0.02), (sign * 0.05, top[1] - 0.02), top, tip])
    else:  # PICC from the right arm, along the axillary and subclavian veins
        start = (-(marks.lateral_u["right"] + 0.2), clav + 0.08)
        path = bezier([start, (-(marks.lateral_u["right"] - 0.02), clav - 0.02),
                       (-0.12, clav + 0.01), top, tip])
    dense = stroke(frame, [path], float(rng.uniform(1.6, 2.4)), float(rng.uniform(0.14, 0.24)))
    return finish(frame, "central_venous_catheter", {"route": route, "tip": tip_name}, dense)
