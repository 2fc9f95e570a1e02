"""Shapes of the individual lesions (nodule, mass, consolidation, atelectasis) as soft profiles
in a region of interest, and the pleural regions of effusion and pneumothorax."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from lesionloc_train.phantoms.anatomy import Anatomy, AnatomyLayers
from lesionloc_train.phantoms.canvas import fill_polygons, fill_polygons_px, smooth, to_float
from lesionloc_train.phantoms.zones import LungField

Roi = tuple[slice, slice]


def _roi(cx: float, cy: float, half: float, shape: tuple[int, int]) -> tuple[Roi, np.ndarray,
                                                                              np.ndarray]:
    """A square window around a centre, clipped to the image, with its pixel-centre grids."""
    h, w = shape
    x0, x1 = max(0, int(cx - half)), min(w, int(math.ceil(cx + half)) + 1)
    y0, y1 = max(0, int(cy - half)), min(h, int(math.ceil(cy + half)) + 1)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    return (slice(y0, y1), slice(x0, x1)), xs, ys


def nodule_profile(centre: tuple[int, int], radius: float,
                   shape: tuple[int, int]) -> tuple[np.ndarray, Roi]:
    """A sphere: sharp (anti-aliased) edge, denser at the centre."""
    roi, xs, ys = _roi(centre[0], centre[1], radius + 3, shape)
    rr = np.sqrt((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2)
    edge = np.clip(radius + 0.5 - rr, 0.0, 1.0)
    dome = np.sqrt(np.clip(1.0 - (rr / radius) ** 2, 0.0, 1.0))
    return (edge * (0.65 + 0.35 * dome)).astype(np.float32), roi


def mass_profile(centre: tuple[int, int], radius: float, shape: tuple[int, int],
                 mm: Callable[[float], float], rng: np.random.Generator) -> tuple[np.ndarray, Roi]:
    """A round or lobulated mass with a fairly well defined edge."""
    roi, xs, ys = _roi(centre[0], centre[1], radius * 1.45 + 4, shape)
    t = np.linspace(0.0, 2 * math.pi, 96, endpoint=False)
    radial = np.ones_like(t)
    for k in (2, 3, 4, 5):
        radial += float(rng.uniform(0.0, 0.09)) * np.cos(k * t + float(rng.uniform(0, 2 * math.pi)))
    aspect = float(rng.uniform(0.8, 1.0))
    pts = np.stack([centre[0] + radius * radial * np.cos(t) - roi[1].start,
                    centre[1] + aspect * radius * radial * np.sin(t) - roi[0].start], 1)
    poly = to_float(fill_polygons_px((ys.size, xs.size), [pts]))
    rr = np.sqrt((xs - centre[0]) ** 2 + ((ys - centre[1]) / aspect) ** 2) / (radius * 1.1)
    dome = np.sqrt(np.clip(1.0 - rr**2, 0.0, 1.0))
    profile = smooth(poly, mm(float(rng.uniform(0.6, 1.5)))) * (0.7 + 0.3 * dome)
    return profile.astype(np.float32), roi


def consolidation_profile(centre: tuple[int, int], radius: float, shape: tuple[int, int],
                          mm: Callable[[float], float], bronchograms: bool,
                          rng: np.random.Generator) -> tuple[np.ndarray, Roi]:
    """A soft-edged, mottled airspace opacity: a cluster of blobs, optionally with dark
    branching air bronchograms."""
    roi, xs, ys = _roi(centre[0], centre[1], radius * 1.7, shape)
    field = np.zeros((ys.size, xs.size), dtype=np.float32)
    for _ in range(int(rng.integers(6, 12))):
        ang, dist = float(rng.uniform(0, 2 * math.pi)), radius * float(rng.uniform(0, 0.75))
        bx, by = centre[0] + dist * math.cos(ang), centre[1] + dist * math.sin(ang)
        sigma = radius * float(rng.uniform(0.15, 0.4))
        field += np.exp(-((xs - bx) ** 2 + (ys - by) ** 2) / (2 * sigma**2))
    field = np.minimum(field / max(0.55 * float(field.max()), 1e-6), 1.0)
    # Ill-defined margins: a wide ramp from nothing to the densest part.
    profile = np.clip((field - 0.1) / 0.7, 0.0, 1.0)
    profile = profile * profile * (3 - 2 * profile)
    # Mottling: acinar shadows a few millimetres across (smooth noise, no grid pattern).
    noise = rng.standard_normal((ys.size, xs.size)).astype(np.float32)
    noise = smooth(noise, mm(1.5))
    noise /= max(float(noise.std()), 1e-6)
    profile *= np.clip(0.8 + 0.2 * noise, 0.45, 1.1)
    if bronchograms:
        # Air bronchograms: a small branching tree of dark tubes inside the opacity.
        lines = np.zeros(profile.shape, dtype=np.uint8)
        base = float(rng.uniform(0, 2 * math.pi))
        root = (centre[0] - roi[1].start - radius * 0.7 * math.cos(base),
                centre[1] - roi[0].start - radius * 0.7 * math.sin(base))
        for i in range(int(rng.integers(2, 5))):
            ang = base + float(rng.normal(0, 0.35))
            pts = [root]
            for _ in range(4):
                ang += float(rng.normal(0, 0.2))
                pts.append((pts[-1][0] + radius * 0.35 * math.cos(ang),
                            pts[-1][1] + radius * 0.35 * math.sin(ang)))
            cv2.polylines(lines, [np.round(np.array(pts) * 16).astype(np.int32).reshape(-1, 1, 2)],
                          False, 255, max(1, int(mm(1.5) * (1.0 - 0.15 * i))), cv2.LINE_AA, 4)
        lines_f = smooth(to_float(lines), mm(0.5))
        profile *= 1.0 - 0.5 * lines_f * (profile > 0.5)
    return profile.astype(np.float32), roi


def atelectasis_profile(centre: tuple[int, int], hilum: tuple[float, float], length: float,
                        shape: tuple[int, int], mm: Callable[[float], float], variant: str,
                        rng: np.random.Generator) -> tuple[np.ndarray, Roi]:
    """Plate-like (band) atelectasis, or a wedge pointing at the hilum."""
    cx, cy = centre
    if variant == "band":
        # A thin, slightly wavy plate of collapsed lung.
        ang = math.radians(float(rng.uniform(-22, 22)))
        t = np.linspace(-0.5, 0.5, 6)[:, None]
        pts = np.array([cx, cy]) + t * length * np.array([math.cos(ang), math.sin(ang)])
        pts[1:-1, 1] += rng.normal(0, mm(1.5), 4)
        thick = mm(float(rng.uniform(2.5, 6.0)))
        blur = mm(float(rng.uniform(1.2, 2.2)))
    else:
        hx, hy = hilum
        vx, vy = cx - hx, cy - hy
        dist = max(math.hypot(vx, vy), mm(20))
        nx, ny = -vy / dist, vx / dist
        half = dist * float(rng.uniform(0.18, 0.3))
        apex = (hx + 0.4 * vx, hy + 0.4 * vy)
        far = (cx + 0.45 * vx, cy + 0.45 * vy)
        pts = np.array([apex, (far[0] + nx * half, far[1] + ny * half),
                        (far[0] - nx * half, far[1] - ny * half)])
        thick, blur = 0.0, mm(2.0)
    pad = thick + 3 * blur + 2
    x0, y0 = pts.min(axis=0) - pad
    x1, y1 = pts.max(axis=0) + pad
    h, w = shape
    roi = (slice(max(0, int(y0)), min(h, int(y1) + 1)), slice(max(0, int(x0)), min(w, int(x1) + 1)))
    local = pts - [roi[1].start, roi[0].start]
    size = (roi[0].stop - roi[0].start, roi[1].stop - roi[1].start)
    canvas = np.zeros(size, dtype=np.uint8)
    if variant == "band":
        cv2.polylines(canvas, [np.round(local * 16).astype(np.int32).reshape(-1, 1, 2)], False,
                      255, max(1, int(round(thick))), cv2.LINE_AA, 4)
    else:
        fill_polygons_px(size, [local], canvas=canvas)
    return smooth(to_float(canvas), blur).astype(np.float32), roi


def effusion_region(lung: LungField, severity: str, rng: np.random.Generator) -> np.ndarray:
    """Fluid in the lung base under a concave meniscus, highest along the lateral wall."""
    lateral_top, medial_level = {
        "small": (rng.uniform(0.08, 0.15), rng.uniform(-0.06, 0.0)),
        "moderate": (rng.uniform(0.2, 0.32), rng.uniform(0.07, 0.14)),
        "large": (rng.uniform(0.38, 0.55), rng.uniform(0.26, 0.36)),
    }[severity]
    h, w = lung.mask.shape
    # The patient's right lung is on the image left: its lateral wall is its leftmost column.
    x_lat, x_med = (lung.left, lung.right) if lung.side == "right" else (lung.right, lung.left)
    xs = np.arange(w, dtype=np.float32)
    s = np.clip((xs - x_med) / (x_lat - x_med), 0.0, 1.0)
    level = lung.bottom - lung.height * (medial_level + (lateral_top - medial_level) * s**2)
    ys = np.arange(h, dtype=np.float32)[:, None]
    return lung.mask & (ys > level[None, :])


def pneumothorax_region(anat: Anatomy, layers: AnatomyLayers, side: str, zone: str,
                        severity: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Air between the chest wall and a collapsed lung edge (apical or lateral); returns the
    region (bool) and the visceral pleural line (float, 0..1)."""
    frame = layers.frame
    poly = layers.lung_polygons[side]
    u, v = poly[:, 0], poly[:, 1]
    top, bottom = float(v.min()), float(v.max())
    height = bottom - top
    au = np.abs(u)
    shrink = {"small": rng.uniform(0.05, 0.09), "moderate": rng.uniform(0.1, 0.17),
              "large": rng.uniform(0.2, 0.32)}[severity]
    if zone == "apical":
        anchor = np.array([float(u.mean()), bottom])
        weight = np.clip((top + 0.5 * height - v) / (0.5 * height), 0.0, 1.0) ** 0.8
    else:
        inner = float(au.min())
        anchor = np.array([math.copysign(inner, float(u.mean())), top + 0.5 * height])
        weight = np.clip((top + 0.9 * height - v) / (0.25 * height), 0.0, 1.0)
        weight *= np.clip((au - inner) / (au.max() - inner), 0.0, 1.0) ** 0.7
    collapsed = poly + (anchor - poly) * (shrink * weight)[:, None]
    inside = fill_polygons(frame, [collapsed]) > 127
    region = layers.lung_masks[side] & ~inside
    region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN,
                              np.ones((3, 3), np.uint8)).astype(bool)
    line = np.zeros(region.shape, dtype=np.uint8)
    moved = shrink * weight > 0.01
    pts = frame.to_px(collapsed)
    thick = max(1, int(round(frame.mm_to_px(0.5))))
    for i in range(len(pts) - 1):
        if moved[i] and moved[i + 1]:
            cv2.line(line, tuple(np.round(pts[i] * 16).astype(int)),
                     tuple(np.round(pts[i + 1] * 16).astype(int)), 255, thick, cv2.LINE_AA, 4)
    return region, to_float(line) * layers.lung_masks[side]
