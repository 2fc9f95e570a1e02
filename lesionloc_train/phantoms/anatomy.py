"""Normal chest anatomy of a phantom: per-image random shape parameters and their rendering into
attenuation layers (body, lungs, heart, mediastinum, bones, vessels) on the image grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from lesionloc_train.phantoms.bones import render_bones
from lesionloc_train.phantoms.canvas import (
    Frame,
    draw_polyline,
    ellipse_points,
    fill_polygons,
    smooth,
    to_float,
)

# Which sign of u each side has: the patient's RIGHT is on the IMAGE LEFT (u < 0).
SIDE_SIGN = {"right": -1.0, "left": 1.0}


@dataclass(frozen=True)
class LungShape:
    """One lung in |u| coordinates (distance from the midline), v down."""

    apex_u: float
    apex_v: float
    lateral_u: float
    cp_v: float  # costophrenic angle
    dome_v: float  # top of the diaphragm dome
    dome_peak_u: float
    medial_u: float  # upper mediastinal edge
    knob: float  # aortic knob bulge (left lung only)

    def lateral_at(self, v: float) -> float:
        """|u| of the lateral lung wall at height v."""
        t = min(max((v - self.apex_v) / (self.cp_v - self.apex_v), 0.0), 1.0)
        return self.apex_u + (self.lateral_u - self.apex_u) * t**0.55

    def dome_at(self, u: np.ndarray | float) -> np.ndarray | float:
        k = (self.cp_v - self.dome_v) / (self.lateral_u - self.dome_peak_u) ** 2
        return self.dome_v + k * (np.asarray(u) - self.dome_peak_u) ** 2


@dataclass(frozen=True)
class Anatomy:
    """Every random choice of one normal chest, in normalized units."""

    frame: Frame
    body_half_width: float
    lungs: dict[str, LungShape]
    heart_center: tuple[float, float]
    heart_radii: tuple[float, float, float]  # toward patient right, toward patient left, vertical
    heart_tilt_deg: float
    rib_count: int
    rib_weight: float
    hilum_size: tuple[float, float]
    hilum_weight: tuple[float, float]
    vessel_weight: float
    breasts: bool
    nipples: bool
    bubble: float
    fissure: bool
    trachea_u: float
    clavicle_lift: float = 0.0  # an AP film projects the clavicles higher (film.apply_geometry)

    @property
    def cardiothoracic_ratio(self) -> float:
        thorax = self.lungs["right"].lateral_u + self.lungs["left"].lateral_u + 0.04
        return (self.heart_radii[0] + self.heart_radii[1]) / thorax


def sample_anatomy(rng: np.random.Generator, width: int, height: int,
                   cardiomegaly: bool = False) -> Anatomy:
    """Draw one chest: body size, inspiration, rotation, heart size and incidental details."""
    frame = Frame(width, height, scale=float(rng.uniform(0.9, 1.03)),
                  rotation_deg=float(rng.uniform(-5.0, 5.0)),
                  shift_u=float(rng.uniform(-0.02, 0.02)), shift_v=float(rng.uniform(-0.03, 0.03)))
    inspiration = float(rng.uniform(-0.05, 0.05))  # deeper breath: lower domes
    apex_v = float(rng.uniform(-0.40, -0.35))
    width_scale = float(rng.uniform(0.9, 1.08))
    lungs = {}
    for side in ("right", "left"):
        lateral = float(rng.uniform(0.33, 0.39)) * width_scale
        cp_v = 0.28 + inspiration + float(rng.uniform(-0.02, 0.02)) + (0.015 if side == "left" else 0)
        dome_h = float(rng.uniform(0.07, 0.12))
        # The patient's right dome sits higher (the liver under it).
        dome_v = cp_v - dome_h - (0.025 if side == "right" else 0.0)
        lungs[side] = LungShape(
            apex_u=float(rng.uniform(0.14, 0.19)) * width_scale,
            apex_v=apex_v + float(rng.uniform(-0.01, 0.01)),
            lateral_u=lateral, cp_v=cp_v, dome_v=dome_v,
            dome_peak_u=lateral * float(rng.uniform(0.4, 0.55)),
            medial_u=float(rng.uniform(0.04, 0.06)),
            knob=float(rng.uniform(0.02, 0.045)) if side == "left" else 0.0,
        )
    thorax = lungs["right"].lateral_u + lungs["left"].lateral_u + 0.04
    # The drawn (tapered, tilted) heart is about 6% narrower than this nominal ratio: the
    # measured cardiothoracic ratio is then 0.57-0.68 with cardiomegaly, 0.36-0.47 without.
    ctr = float(rng.uniform(0.6, 0.72)) if cardiomegaly else float(rng.uniform(0.38, 0.5))
    heart_w = ctr * thorax
    right_frac = float(rng.uniform(0.33, 0.4))
    r_v = heart_w * float(rng.uniform(0.36, 0.44))
    domes = 0.5 * (lungs["right"].dome_v + lungs["left"].dome_v)
    heart_center = (heart_w * (0.5 - right_frac) * 0.9, domes - r_v * float(rng.uniform(0.45, 0.7)))
    prominent = rng.random() < 0.25
    hilum_w = (float(rng.uniform(0.04, 0.09)), float(rng.uniform(0.04, 0.09)))
    if prominent:  # a normal variant that is as bright as a lesion: a decoy for bright-blob search
        k = int(rng.integers(2))
        hilum_w = tuple(w * (2.2 if i == k else 1.0) for i, w in enumerate(hilum_w))
    return Anatomy(
        frame=frame,
        body_half_width=float(rng.uniform(0.44, 0.52)) * width_scale,
        lungs=lungs,
        heart_center=heart_center,
        heart_radii=(heart_w * right_frac, heart_w * (1 - right_frac), r_v),
        heart_tilt_deg=float(rng.uniform(8.0, 22.0)),
        rib_count=int(rng.integers(9, 11)),
        rib_weight=float(rng.uniform(0.045, 0.08)),
        hilum_size=(float(rng.uniform(0.035, 0.055)), float(rng.uniform(0.035, 0.055))),
        hilum_weight=hilum_w,
        vessel_weight=float(rng.uniform(0.045, 0.08)),
        breasts=bool(rng.random() < 0.35),
        nipples=bool(rng.random() < 0.3),
        bubble=float(rng.uniform(0.015, 0.035)) if rng.random() < 0.7 else 0.0,
        fissure=bool(rng.random() < 0.4),
        trachea_u=float(rng.uniform(-0.012, 0.012)),
    )


def lung_polygon(shape: LungShape, sign: float, n: int = 48) -> np.ndarray:
    """Outline of one lung: apex, lateral wall, diaphragm dome, mediastinal border."""
    # Lateral wall: a rounded apex widening all the way down to a sharp costophrenic angle.
    t = np.linspace(0.0, 1.0, n) ** 1.5
    lat_u = shape.apex_u + (shape.lateral_u - shape.apex_u) * t**0.55
    lat_v = shape.apex_v + (shape.cp_v - shape.apex_v) * t
    medial_low = shape.medial_u * 0.4
    dia_u = np.linspace(shape.lateral_u, medial_low, n)[1:]
    dia_v = shape.dome_at(dia_u)
    bottom = float(dia_v[-1])
    r_m = min(0.09, 0.5 * (bottom - shape.apex_v))
    med_v = np.linspace(bottom, shape.apex_v + r_m, n)[1:]
    med_u = medial_low + (shape.medial_u - medial_low) * np.clip(
        (bottom - med_v) / max(bottom - shape.apex_v, 1e-6) * 2.5, 0, 1)
    if shape.knob:
        med_u = med_u + shape.knob * np.exp(-(((med_v - (shape.apex_v + 0.2)) / 0.04) ** 2))
    s = np.linspace(0.0, 1.0, n // 2)[1:-1]
    top_u = shape.apex_u - (shape.apex_u - shape.medial_u) * np.cos(s * math.pi / 2)
    top_v = shape.apex_v + r_m * (1 - np.sin(s * math.pi / 2))
    u = np.concatenate([lat_u, dia_u, med_u, top_u])
    v = np.concatenate([lat_v, dia_v, med_v, top_v])
    return np.stack([sign * u, v], axis=1)


def heart_polygon(anat: Anatomy, n: int = 96) -> np.ndarray:
    cu, cv = anat.heart_center
    r_right, r_left, r_v = anat.heart_radii
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    cos_t = np.cos(t)
    # Pear-shaped: narrow where the great vessels leave, widest at the ventricles.
    taper = 0.78 + 0.22 * (1.0 + np.sin(t)) / 2.0
    u = np.where(cos_t > 0, r_left, r_right) * cos_t * taper
    v = r_v * np.sin(t) * np.where(np.sin(t) < 0, 1.15, 1.0)
    a = math.radians(anat.heart_tilt_deg)
    pts = np.stack([cu + math.cos(a) * u - math.sin(a) * v, cv + math.sin(a) * u + math.cos(a) * v], 1)
    return pts


def abdomen_polygon(anat: Anatomy, n: int = 40) -> np.ndarray:
    """Everything below the two diaphragm domes."""
    right, left = anat.lungs["right"], anat.lungs["left"]
    ur = np.linspace(-1.0, 0.0, n)
    vr = right.dome_at(np.clip(-ur, 0, right.lateral_u))
    vr = np.where(-ur > right.lateral_u, right.cp_v + (-ur - right.lateral_u) * 0.5, vr)
    ul = np.linspace(0.0, 1.0, n)[1:]
    vl = left.dome_at(np.clip(ul, 0, left.lateral_u))
    vl = np.where(ul > left.lateral_u, left.cp_v + (ul - left.lateral_u) * 0.5, vl)
    top = np.concatenate([np.stack([ur, vr], 1), np.stack([ul, vl], 1)])
    return np.concatenate([top, [[1.0, 2.0], [-1.0, 2.0]]])


def body_polygon(anat: Anatomy) -> np.ndarray:
    """Neck, sloping shoulders, chest wall and waist: half-widths by height, smoothed."""
    vs = np.array([-1.2, -0.5, -0.45, -0.42, -0.38, -0.33, -0.25, 0.1, 0.5, 1.2])
    hw = np.array([0.075, 0.08, 0.12, 0.2, 0.32, 0.43, 0.47, 0.47, 0.43, 0.42])
    hw = hw / 0.47 * anat.body_half_width
    hw[:2] = [0.075, 0.08]  # the neck does not scale with the chest
    v = np.linspace(-1.2, 1.2, 97)
    w = np.interp(v, vs, hw)
    w = np.convolve(np.pad(w, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    return np.concatenate([np.stack([w, v], 1), np.stack([-w[::-1], v[::-1]], 1)])


def arm_polygons(anat: Anatomy) -> list[np.ndarray]:
    """Shoulders and upper arms, joined to the trunk above the axilla and apart below it."""
    hw = anat.body_half_width
    x0 = hw + 0.02
    t = np.linspace(0.0, math.pi / 2, 8)
    deltoid = np.stack([hw * 0.7 + (x0 + 0.12 - hw * 0.7) * np.sin(t),
                        -0.29 - 0.075 * np.cos(t)], 1)
    rest = np.array([[x0 + 0.13, 0.0], [x0 + 0.12, 1.2], [x0 + 0.01, 1.2], [x0, -0.2],
                     [hw - 0.02, -0.26]])
    pts = np.concatenate([deltoid, rest])
    return [pts * [sign, 1.0] for sign in (-1.0, 1.0)]


@dataclass
class AnatomyLayers:
    """Attenuation components on the pixel grid; findings edit them before composition."""

    frame: Frame
    soft: np.ndarray  # soft tissue (body, mediastinum, heart, abdomen)
    lung_air: np.ndarray  # attenuation removed by aerated lung (>= 0)
    vessels: np.ndarray  # vascular markings, already confined to the lungs
    bone: np.ndarray
    lung_masks: dict[str, np.ndarray]  # bool, per side
    lung_polygons: dict[str, np.ndarray]  # normalized outlines
    heart_mask: np.ndarray  # bool, the visible cardiac silhouette
    body_mask: np.ndarray  # bool


def render_anatomy(anat: Anatomy, rng: np.random.Generator) -> AnatomyLayers:
    frame = anat.frame
    mm = frame.mm_to_px
    arms_u8 = fill_polygons(frame, arm_polygons(anat))
    body_u8 = fill_polygons(frame, [body_polygon(anat)])
    cv2.max(body_u8, arms_u8, dst=body_u8)
    heart_full = fill_polygons(frame, [heart_polygon(anat)])
    abdomen_u8 = fill_polygons(frame, [abdomen_polygon(anat)])
    heart_u8 = cv2.subtract(heart_full, abdomen_u8)
    polys = {s: lung_polygon(anat.lungs[s], SIDE_SIGN[s]) for s in ("right", "left")}
    lung_u8 = {}
    for side, poly in polys.items():
        m = fill_polygons(frame, [poly])
        cv2.subtract(m, heart_full, dst=m)
        lung_u8[side] = m
    lungs = cv2.add(lung_u8["right"], lung_u8["left"])
    thick, depth = _thickness_and_depth(anat, lungs, rng)
    body_f = to_float(body_u8)
    soft = _soft_tissue(anat, body_f, thick, to_float(heart_u8), to_float(arms_u8), abdomen_u8)

    # Lower lungs lie behind more soft tissue (breasts, diaphragm recesses): a vertical gradient.
    h, w = frame.height, frame.width
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None] * (h / min(h, w))
    lower = np.clip((ys - frame.shift_v) * 1.6 + 0.3, 0.0, 1.0)
    lung_soft = smooth(to_float(lungs), mm(0.8))
    # Lung parenchyma is not uniform: faint mottling a few millimetres across (drawn at half
    # resolution; it is smooth anyway).
    half = (max(8, w // 2), max(8, h // 2))
    fine = smooth(rng.standard_normal((half[1], half[0]), dtype=np.float32), mm(2.5) / 2)
    fine = cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)
    fine *= np.float32(0.03 / max(float(fine.std()), 1e-6))
    lung_air = lung_soft * (0.24 + 0.22 * depth) * (1.0 - 0.22 * lower) * (1.0 + fine)

    vessels = render_vessels(anat, frame, rng) * lung_soft
    bone = render_bones(anat, frame, rng) * body_f
    return AnatomyLayers(
        frame=frame, soft=soft.astype(np.float32), lung_air=lung_air.astype(np.float32),
        vessels=vessels.astype(np.float32), bone=bone.astype(np.float32),
        lung_masks={s: m > 127 for s, m in lung_u8.items()}, lung_polygons=polys,
        heart_mask=heart_u8 > 127, body_mask=body_u8 > 127,
    )


def _thickness_and_depth(anat: Anatomy, lungs: np.ndarray,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Body thickness along the beam and lung depth, smooth fields computed at low resolution:
    an elliptic cylinder whose half-width follows the outline, and the distance into the lungs."""
    frame = anat.frame
    h, w = frame.height, frame.width
    low = max(1, min(h, w) // 160)
    small = (max(8, w // low), max(8, h // low))
    unit_low = frame.unit_px / low
    xs, ys = np.meshgrid((np.arange(small[0]) + 0.5) * w / small[0],
                         (np.arange(small[1]) + 0.5) * h / small[1])
    uv = frame.to_units(np.stack([xs.ravel(), ys.ravel()], 1))
    outline = body_polygon(anat)
    half = np.interp(uv[:, 1], outline[:97, 1], outline[:97, 0])
    thick = np.sqrt(np.clip(1.0 - (uv[:, 0] / half) ** 2, 0.0, 1.0)).reshape(small[1], small[0])
    lung_small = cv2.resize(lungs, small, interpolation=cv2.INTER_AREA)
    ldist = cv2.distanceTransform((lung_small > 127).astype(np.uint8), cv2.DIST_L2, 3)
    depth = 1.0 - np.exp(-ldist / (0.07 * unit_low))
    texture = cv2.GaussianBlur(rng.standard_normal((small[1], small[0])).astype(np.float32),
                               (0, 0), 1.0)
    thick = cv2.resize(thick.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    depth = cv2.resize((depth + 0.05 * texture).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    return thick, depth


def _soft_tissue(anat: Anatomy, body_f: np.ndarray, thick: np.ndarray, heart_f: np.ndarray,
                 arms_f: np.ndarray, abdomen_u8: np.ndarray) -> np.ndarray:
    """Body, heart, arms, trachea, gastric bubble and breasts: everything sharp is summed first
    and blurred once (one blur, not five)."""
    frame = anat.frame
    soft = body_f * (0.1 + 0.56 * thick**1.6)
    soft += 0.04 * heart_f + 0.32 * arms_f
    trachea = frame.blank()
    tu = anat.trachea_u
    car_v = anat.lungs["right"].apex_v + 0.24
    draw_polyline(frame, trachea, np.array([[tu, -1.0], [tu, car_v]]), 0.035)
    draw_polyline(frame, trachea, np.array([[tu, car_v], [tu - 0.06, car_v + 0.06]]), 0.022)
    draw_polyline(frame, trachea, np.array([[tu, car_v], [tu + 0.08, car_v + 0.05]]), 0.02)
    soft -= 0.09 * to_float(trachea) * body_f
    if anat.bubble:
        left = anat.lungs["left"]
        # Gastric air under the left dome, flat-bottomed by the fluid below it.
        dome = ellipse_points(left.dome_peak_u, left.dome_v + 0.025 + anat.bubble,
                              anat.bubble * 1.5, anat.bubble)
        bub = fill_polygons(frame, [dome[dome[:, 1] <= left.dome_v + 0.025 + anat.bubble]])
        cv2.bitwise_and(bub, abdomen_u8, dst=bub)
        soft -= 0.08 * to_float(bub)
    if anat.breasts:
        br = frame.blank()
        for side in ("right", "left"):
            lung = anat.lungs[side]
            fill_polygons(frame, [ellipse_points(SIDE_SIGN[side] * lung.lateral_u * 0.72,
                                                 lung.cp_v - 0.1, 0.17, 0.13)], br)
        soft += 0.035 * to_float(br) * body_f
    return smooth(soft, frame.mm_to_px(1.8))


def hilum_points(anat: Anatomy) -> dict[str, tuple[float, float]]:
    right, left = anat.lungs["right"], anat.lungs["left"]

    def mid(lung: LungShape) -> float:
        return lung.apex_v + 0.48 * (lung.dome_v - lung.apex_v)

    return {"right": (-(right.medial_u + 0.055), mid(right)),
            "left": (left.medial_u + 0.07, mid(left) - 0.02)}


def render_vessels(anat: Anatomy, frame: Frame, rng: np.random.Generator) -> np.ndarray:
    """Branching vascular trees from each hilum, thinning and fading toward the periphery.

    Grown one generation at a time for all branches at once (one cv2 call per generation).
    """
    canvas = frame.blank()
    hila = frame.blank()
    generations: list[list[np.ndarray]] = [[] for _ in range(7)]
    for i, (side, (hu, hv)) in enumerate(hilum_points(anat).items()):
        sign = SIDE_SIGN[side]
        # Main trunks fan out from the hilum: up, lateral and down; each branch forks in two,
        # thinner and fainter, and bends a little along its length.
        base = np.array([-95 + 25 * sign, -140 if sign < 0 else -40, 180 if sign < 0 else 0,
                         150 if sign < 0 else 30, 110 - 20 * sign, 90], dtype=np.float64)
        ang = np.radians(base + rng.normal(0, 8, base.size))
        start = np.tile([hu, hv], (base.size, 1)).astype(np.float64)
        length = np.full(base.size, 0.06)
        for gen in range(7):
            pts = [start]
            for _ in range(3):
                ang = ang + rng.normal(0, 0.1, ang.size)
                start = start + np.stack([np.cos(ang), np.sin(ang)], 1) * (length / 3)[:, None]
                pts.append(start)
            generations[gen].append(np.stack(pts, 1))
            spread = np.radians(rng.uniform(12, 32, (2, ang.size)))
            ang = np.concatenate([ang - spread[0], ang + spread[1]])
            start = np.concatenate([start, start])
            length = np.concatenate([length, length]) * rng.uniform(0.7, 0.88, 2 * length.size)
        r = anat.hilum_size[i]
        fill_polygons(frame, [ellipse_points(hu + sign * r * 0.3, hv, r * 0.8, r * 1.5,
                                             radial=1 + 0.1 * rng.standard_normal(72))], hila,
                      value=int(255 * min(1.0, anat.hilum_weight[i] / 0.2)))
    for gen, polys in enumerate(generations):
        thick = 0.008 * 0.74**gen
        if thick < 0.0014:
            break
        lines = np.concatenate(polys)
        px = frame.to_px(lines.reshape(-1, 2)).reshape(lines.shape)
        thick_px = max(1, int(round(frame.units_to_px(thick))))
        cv2.polylines(canvas, list(np.round(px * 16).astype(np.int32)), False,
                      int(235 * 0.85**gen), thick_px, cv2.LINE_AA, 4)
    vessels = anat.vessel_weight * smooth(to_float(canvas), frame.mm_to_px(0.5))
    vessels += 0.2 * smooth(to_float(hila), frame.mm_to_px(3.0))
    return vessels
