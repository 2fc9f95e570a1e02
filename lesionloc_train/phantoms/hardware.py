"""Metal on a phantom film: a pacemaker (generator below a clavicle, leads to the right atrium
and ventricle), ECG electrodes (a snap in a pad, a wire leaving the film) and median sternotomy
wires. Metal attenuates more than bone, so it shows white on every exposure."""

from __future__ import annotations

import math

import numpy as np

from lesionloc_train.phantoms.canvas import Frame, ellipse_points, fill_polygons, to_float
from lesionloc_train.phantoms.devices import Device, Landmarks, finish, units
from lesionloc_train.phantoms.tubes import bezier, stroke


def _filled(frame: Frame, polygons: list[np.ndarray], weight: float) -> np.ndarray:
    return to_float(fill_polygons(frame, polygons)) * np.float32(weight)


def _rounded_rect(cu: float, cv: float, half_u: float, half_v: float, angle: float,
                  n: int = 64) -> np.ndarray:
    """A rounded rectangle (a superellipse), the shape of a pulse generator."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = half_u * np.sign(c) * np.abs(c) ** 0.4
    y = half_v * np.sign(s) * np.abs(s) ** 0.4
    a = math.radians(angle)
    return np.stack([cu + math.cos(a) * x - math.sin(a) * y, cv + math.sin(a) * x + math.cos(a) * y], 1)


def pacemaker(frame: Frame, marks: Landmarks, rng: np.random.Generator) -> Device:
    """Generator in the infraclavicular pocket (left in four of five), one or two leads down
    the superior vena cava: an atrial lead hooked in the right atrium, a ventricular lead at
    the right ventricular apex."""
    side = "left" if rng.random() < 0.8 else "right"
    sign = 1.0 if side == "left" else -1.0
    gu = sign * marks.lateral_u[side] * float(rng.uniform(0.55, 0.75))
    gv = marks.apex_v + float(rng.uniform(0.08, 0.14))
    half_u, half_v = units(frame, float(rng.uniform(19, 24))), units(frame, float(rng.uniform(21, 27)))
    angle = float(rng.uniform(-25, 25))
    dense = _filled(frame, [_rounded_rect(gu, gv, half_u, half_v, angle)], 0.9)
    dense -= _filled(frame, [_rounded_rect(gu, gv + half_v * 0.25, half_u * 0.6, half_v * 0.45,
                                           angle)], 0.25)  # the battery is less dense
    header = (gu - sign * half_u * 0.2, gv - half_v * 1.05)
    dense += _filled(frame, [_rounded_rect(*header, half_u * 0.6, half_v * 0.25, angle)], 0.3)
    hu, hv, rv = marks.heart[0], marks.heart[1], marks.heart_radii[2]
    ra = (hu - marks.heart_radii[0] * 0.55, hv - rv * 0.35)
    apex = (hu + marks.heart_radii[1] * 0.45, hv + rv * 0.55)
    svc = (marks.svc_u, marks.carina_v)
    chambers = 1 if rng.random() < 0.3 else 2
    leads = [bezier([header, (sign * 0.12, marks.apex_v + 0.06), svc,
                     (marks.svc_u, marks.cavoatrial_v), (ra[0] + 0.03, hv + rv * 0.3), apex])]
    if chambers == 2:
        hook = (ra[0] + 0.05, ra[1] - 0.02)
        leads.append(bezier([header, (sign * 0.1, marks.apex_v + 0.08), svc,
                             (marks.svc_u, marks.cavoatrial_v + 0.03), ra, hook], 50))
    dense += stroke(frame, leads, float(rng.uniform(1.8, 2.4)), 0.45)
    tips = [ellipse_points(x, y, units(frame, 3), units(frame, 5), float(rng.uniform(0, 180)))
            for x, y in [apex] + ([(ra[0] + 0.05, ra[1] - 0.02)] if chambers == 2 else [])]
    dense += _filled(frame, tips, 0.4)  # the coiled electrode at each lead's tip
    return finish(frame, "pacemaker", {"side": side, "leads": chambers},
                  np.clip(dense, 0.0, 1.2))


def ecg_electrodes(frame: Frame, marks: Landmarks, rng: np.random.Generator) -> Device:
    """Three to five monitoring electrodes: a metal snap in a faint pad, each with a wire
    that runs off the film."""
    spots = [(-0.28, marks.apex_v + 0.02), (0.28, marks.apex_v + 0.02),
             (0.3, marks.stomach[1] - 0.02), (-0.3, marks.stomach[1] - 0.05),
             (0.12, marks.heart[1] + 0.05)]
    count = int(rng.integers(3, 6))
    chosen = rng.permutation(len(spots))[:count]
    dense = np.zeros((frame.height, frame.width), np.float32)
    snaps, pads, wires = [], [], []
    for k in chosen:
        u = spots[int(k)][0] + float(rng.normal(0, 0.03))
        v = spots[int(k)][1] + float(rng.normal(0, 0.03))
        r = units(frame, float(rng.uniform(2.5, 3.5)))
        snaps.append(ellipse_points(u, v, r, r, n=24))
        rp = units(frame, float(rng.uniform(11, 15)))
        pads.append(ellipse_points(u, v, rp, rp, n=48))
        end = (u + math.copysign(float(rng.uniform(0.3, 0.6)), u), v + float(rng.uniform(-0.4, 0.4)))
        mid = ((u + end[0]) / 2 + float(rng.normal(0, 0.08)), (v + end[1]) / 2 + float(rng.normal(0, 0.08)))
        wires.append(bezier([(u, v), mid, end], 24))
    dense += _filled(frame, pads, float(rng.uniform(0.015, 0.03)))
    dense += _filled(frame, snaps, 0.8)
    dense += stroke(frame, wires, float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.15, 0.3)))
    return finish(frame, "ecg_electrodes", {"count": count}, dense)


def sternotomy_wires(frame: Frame, marks: Landmarks, rng: np.random.Generator) -> Device:
    """Five to seven twisted wire loops down the midline over the sternum."""
    count = int(rng.integers(5, 8))
    top, bottom = marks.carina_v - 0.08, marks.heart[1] + 0.04
    loops, knots = [], []
    for i in range(count):
        v = top + (bottom - top) * i / (count - 1) + float(rng.normal(0, 0.006))
        u = float(rng.normal(0, 0.006))
        half = units(frame, float(rng.uniform(7, 11)))
        loops.append(ellipse_points(u, v, half, half * 0.4, float(rng.normal(0, 6)), n=32))
        knots.append(ellipse_points(u + half * float(rng.choice([-1.0, 1.0])), v,
                                    units(frame, 2.0), units(frame, 2.5), n=16))
    dense = stroke(frame, [np.vstack([p, p[:1]]) for p in loops], float(rng.uniform(1.0, 1.5)), 0.75)
    dense += _filled(frame, knots, 0.6)
    return finish(frame, "sternotomy_wires", {"count": count}, np.clip(dense, 0.0, 1.2))
