"""Findings of a phantom study: which ones (type, side, zone, size) and how each is drawn into
the attenuation layers, with its mask and ground-truth boxes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from lesionloc_train.phantoms.anatomy import Anatomy, AnatomyLayers, hilum_points
from lesionloc_train.phantoms.canvas import smooth, tight_box
from lesionloc_train.phantoms.lesions import (
    atelectasis_profile,
    consolidation_profile,
    effusion_region,
    mass_profile,
    nodule_profile,
    pneumothorax_region,
)
from lesionloc_train.phantoms.zones import LungField, sample_point

FINDING_TYPES = ("consolidation", "nodule", "mass", "effusion", "pneumothorax", "atelectasis",
                 "cardiomegaly")
_TYPE_WEIGHTS = (0.24, 0.17, 0.1, 0.18, 0.1, 0.13, 0.08)
_ZONES = {
    "consolidation": ("upper", "middle", "lower", "basal", "perihilar"),
    "nodule": ("upper", "middle", "lower", "apical", "perihilar"),
    "mass": ("upper", "middle", "lower", "perihilar"),
    "effusion": ("lower",),
    "pneumothorax": ("apical", "lateral"),
    "atelectasis": ("middle", "lower", "basal"),
}
_BILATERAL = {"consolidation": 0.15, "effusion": 0.3, "atelectasis": 0.15}
# Render order: structural changes first, small lesions last (they avoid what is already there).
_ORDER = ("cardiomegaly", "effusion", "pneumothorax", "mass", "consolidation", "atelectasis",
          "nodule")
P_NORMAL = 0.3


@dataclass(frozen=True)
class FindingPlan:
    """What to draw, before it is placed: type, side, zone, severity and shape variant."""

    finding: str
    side: str | None  # "right" | "left" | "bilateral" | None (cardiomegaly)
    zone: str | None
    severity: str | None = None
    variant: str | None = None


@dataclass
class Finding:
    """A rendered finding: its ground truth boxes `[x, y, w, h]` and mask (uint8, 0 or 255)."""

    finding: str
    side: str | None
    zone: str | None
    severity: str | None
    variant: str | None
    boxes: list[list[int]]
    mask: np.ndarray = field(repr=False)
    size_mm: tuple[float, float] | None = None  # width, height of the largest component
    ratio: float | None = None  # cardiothoracic ratio, for cardiomegaly


def plan_findings(rng: np.random.Generator, p_normal: float = P_NORMAL) -> list[FindingPlan]:
    """0-3 findings, at most one of each type; about `p_normal` of studies have none."""
    if rng.random() < p_normal:
        return []
    count = int(rng.choice([1, 2, 3], p=[0.5, 0.33, 0.17]))
    kinds: list[str] = []
    while len(kinds) < count:
        kind = str(rng.choice(FINDING_TYPES, p=_TYPE_WEIGHTS))
        if kind not in kinds:
            kinds.append(kind)
    plans = []
    used_sides: dict[str, str] = {}
    for kind in kinds:
        if kind == "cardiomegaly":
            plans.append(FindingPlan(kind, None, None, str(rng.choice(["mild", "moderate",
                                                                        "marked"]))))
            continue
        side = "bilateral" if rng.random() < _BILATERAL.get(kind, 0.0) else str(
            rng.choice(["right", "left"]))
        # Air and fluid in one pleural space would be a hydropneumothorax: keep them apart.
        if kind in ("effusion", "pneumothorax"):
            other = used_sides.get("pneumothorax" if kind == "effusion" else "effusion")
            if other is not None:
                if other == "bilateral" or side == "bilateral":
                    continue
                side = "left" if other == "right" else "right"
            used_sides[kind] = side
        zones = _ZONES[kind]
        if side == "bilateral":
            zones = tuple(z for z in zones if z not in ("perihilar", "upper", "apical")) or zones
        zone = str(rng.choice(zones))
        if side == "left" and zone == "middle" and rng.random() < 0.5:
            zone = "lingula"
        severity = variant = None
        if kind in ("effusion", "pneumothorax"):
            severity = str(rng.choice(["small", "moderate", "large"], p=[0.45, 0.4, 0.15]))
        elif kind == "atelectasis":
            variant = str(rng.choice(["band", "wedge"]))
        elif kind == "consolidation":
            variant = "bronchograms" if rng.random() < 0.4 else None
        plans.append(FindingPlan(kind, side, zone, severity, variant))
    plans.sort(key=lambda p: _ORDER.index(p.finding))
    return plans


def render_findings(plans: list[FindingPlan], anat: Anatomy, layers: AnatomyLayers,
                    rng: np.random.Generator) -> tuple[list[Finding], np.ndarray]:
    """Draw every planned finding; returns the findings and an additive opacity layer.

    Opacities are a fraction of the local lung air they replace, so a lesion's brightness
    depends on where it sits (over a rib, near the base) and no single threshold finds all.
    """
    frame = layers.frame
    shape = (frame.height, frame.width)
    opacity = np.zeros(shape, dtype=np.float32)
    occupied = np.zeros(shape, dtype=bool)
    fields = {s: LungField.from_mask(s, layers.lung_masks[s]) for s in ("right", "left")}
    out: list[Finding] = []
    for plan in plans:
        if plan.finding == "cardiomegaly":
            mask = layers.heart_mask
            box = tight_box(mask)
            out.append(Finding(plan.finding, None, None, plan.severity, None, [box],
                               mask.astype(np.uint8) * 255))
            continue
        sides = ("right", "left") if plan.side == "bilateral" else (plan.side,)
        masks, boxes, sizes = [], [], []
        for side in sides:
            lung = fields[side]
            comp = _render_component(plan, side, lung, anat, layers, opacity, occupied, rng)
            if comp is None:
                continue
            masks.append(comp)
            box = tight_box(comp)
            if box is not None:
                boxes.append(box)
                sizes.append((box[2] * frame.spacing_mm, box[3] * frame.spacing_mm))
        if len(boxes) != len(sides):
            continue  # a finding that could not be placed is left out of image and report
        mask = np.logical_or.reduce(masks)
        occupied |= mask
        out.append(Finding(plan.finding, plan.side, plan.zone, plan.severity, plan.variant,
                           boxes, mask.astype(np.uint8) * 255, max(sizes)))
    return out, opacity


def _place(rng: np.random.Generator, lung: LungField, zone: str, radius_px: float,
           occupied: np.ndarray) -> tuple[int, int] | None:
    """A lesion centre in the zone, `radius_px` inside the lung, clear of earlier findings."""
    stride = max(1, min(lung.mask.shape) // 256)
    cand = lung.zone_mask(zone, margin=0.15)[::stride, ::stride].astype(np.uint8)
    inside = lung.mask[::stride, ::stride].astype(np.uint8)
    free = ~occupied[::stride, ::stride]
    for shrink in (1.0, 0.6, 0.3, 0.0):
        k = int(radius_px * shrink / stride)
        eroded = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2))
        away = cv2.erode(free.astype(np.uint8),
                         cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 3,) * 2))
        point = sample_point(rng, (cand & eroded & away).astype(bool))
        if point is not None:
            return point[0] * stride, point[1] * stride
    return None


def _render_component(plan: FindingPlan, side: str, lung: LungField, anat: Anatomy,
                      layers: AnatomyLayers, opacity: np.ndarray, occupied: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray | None:
    """Draw one side of a finding; returns its boolean mask (full image) or None."""
    if plan.finding == "effusion":
        return _render_effusion(plan, lung, layers, opacity, rng)
    if plan.finding == "pneumothorax":
        return _render_pneumothorax(plan, side, anat, layers, opacity, rng)
    placed = _lesion_profile(plan, side, lung, anat, layers.frame.mm_to_px, opacity.shape,
                             occupied, rng)
    if placed is None:
        return None
    profile, (ys, xs), strength = placed
    mm = layers.frame.mm_to_px
    # The lesion stops at the pleura; its ground truth stays inside the lung mask, its density
    # covers the lung's blurred rim too (else a dark seam would outline the lung there).
    profile = profile * _dilate(lung.mask[ys, xs], mm(2.0))
    mask = np.zeros(opacity.shape, dtype=bool)
    mask[ys, xs] = (profile > 0.3) & lung.mask[ys, xs]
    if not mask.any():
        return None
    full = np.zeros(opacity.shape, dtype=np.float32)
    full[ys, xs] = profile
    _add(layers, opacity, full, strength)
    return mask


def _render_effusion(plan: FindingPlan, lung: LungField, layers: AnatomyLayers,
                     opacity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mm = layers.frame.mm_to_px
    region = effusion_region(lung, plan.severity or "small", rng)
    # Full density inside the fluid (reaching over the lung's blurred rim), a soft meniscus.
    inside = _dilate(region, mm(2.0)).astype(np.float32)
    profile = np.maximum(inside, smooth(inside, mm(float(rng.uniform(1.5, 4.0)))))
    ys = np.arange(opacity.shape[0], dtype=np.float32)[:, None]
    # Fluid layers: denser toward the bottom of the pleural space.
    profile *= 0.85 + 0.15 * np.clip((ys - lung.top) / lung.height, 0, 1)
    # Not clipped to the hard lung mask: the fluid also covers the lung's blurred rim.
    _add(layers, opacity, profile, float(rng.uniform(0.85, 1.05)))
    return region


def _render_pneumothorax(plan: FindingPlan, side: str, anat: Anatomy, layers: AnatomyLayers,
                         opacity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mm = layers.frame.mm_to_px
    region, line = pneumothorax_region(anat, layers, side, plan.zone or "apical",
                                       plan.severity or "small", rng)
    soft = smooth(region.astype(np.float32), mm(0.6))
    layers.vessels *= 1.0 - soft
    layers.lung_air += soft * layers.lung_air * float(rng.uniform(0.15, 0.35))
    opacity += float(rng.uniform(0.04, 0.09)) * smooth(line, mm(0.3))
    return region


def _lesion_profile(plan: FindingPlan, side: str, lung: LungField, anat: Anatomy,
                    mm: Callable[[float], float], shape: tuple[int, ...], occupied: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, Any, float] | None:
    """A nodule's, mass's, consolidation's or atelectasis's density profile over its region
    of interest, and its strength; None where no place in its zone is free."""
    zone = plan.zone or "middle"
    kind = plan.finding
    if kind == "nodule":
        diameter = mm(float(rng.uniform(4.0, 10.0)))
        centre = _place(rng, lung, zone, diameter / 2 + mm(2), occupied)
        if centre is None:
            return None
        profile, roi = nodule_profile(centre, diameter / 2, shape)
        return profile, roi, float(rng.uniform(0.35, 0.9))
    if kind == "mass":
        diameter = mm(float(rng.uniform(30.0, 60.0)))
        centre = _place(rng, lung, zone, diameter * 0.45, occupied)
        if centre is None:
            return None
        profile, roi = mass_profile(centre, diameter / 2, shape, mm, rng)
        return profile, roi, float(rng.uniform(0.55, 1.0))
    if kind == "consolidation":
        diameter = lung.width * float(rng.uniform(0.15, 0.3)) * 1.3
        centre = _place(rng, lung, zone, diameter * 0.25, occupied)
        if centre is None:
            return None
        profile, roi = consolidation_profile(centre, diameter / 2, shape, mm,
                                             plan.variant == "bronchograms", rng)
        return profile, roi, float(rng.uniform(0.35, 0.8))
    length = lung.width * float(rng.uniform(0.35, 0.6))  # atelectasis
    centre = _place(rng, lung, zone, mm(6), occupied)
    if centre is None:
        return None
    hilum = _hilum_px(anat, side)
    profile, roi = atelectasis_profile(centre, hilum, length, shape, mm,
                                       plan.variant or "band", rng)
    return profile, roi, float(rng.uniform(0.4, 0.75))


def _dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    k = max(1, int(round(radius_px)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def _add(layers: AnatomyLayers, opacity: np.ndarray, profile: np.ndarray, strength: float) -> None:
    """Replace a fraction of the local lung air by tissue; vessels behind it are hidden."""
    opacity += strength * profile * layers.lung_air
    layers.vessels *= 1.0 - np.clip(profile * 0.85, 0.0, 1.0)


def _hilum_px(anat: Anatomy, side: str) -> tuple[float, float]:
    pt = anat.frame.to_px(np.array([hilum_points(anat)[side]]))[0]
    return float(pt[0]), float(pt[1])


def draw_fissure(anat: Anatomy, layers: AnatomyLayers, pull: float, rng: np.random.Generator,
                 opacity: np.ndarray) -> None:
    """The minor fissure: a thin line across the right mid lung; atelectasis pulls it down."""
    frame = layers.frame
    hu, hv = _hilum_px(anat, "right")
    lung = LungField.from_mask("right", layers.lung_masks["right"])
    x1 = lung.left - 2
    n = 12
    t = np.linspace(0.0, 1.0, n)
    xs = hu + (x1 - hu) * t
    ys = hv - frame.mm_to_px(4) + pull * lung.height * np.sin(math.pi * t * 0.8) \
        + frame.mm_to_px(float(rng.uniform(-4, 4))) * t
    line = np.zeros(opacity.shape, dtype=np.uint8)
    cv2.polylines(line, [np.round(np.stack([xs, ys], 1) * 16).astype(np.int32).reshape(-1, 1, 2)],
                  False, 255, max(1, int(round(frame.mm_to_px(0.5)))), cv2.LINE_AA, 4)
    line = line.astype(np.float32) / 255.0 * layers.lung_masks["right"]
    opacity += float(rng.uniform(0.02, 0.05)) * smooth(line, frame.mm_to_px(0.3))

