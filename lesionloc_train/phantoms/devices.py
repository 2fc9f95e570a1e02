"""Lines, tubes and hardware on a phantom film: which a study has (bedside films carry more),
their attenuation (metal is the densest thing on a radiograph) and their ground-truth regions.
Devices are not lesions: their report sentences carry no lesion boxes (docs/phantoms.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lesionloc_train.phantoms.anatomy import Anatomy
from lesionloc_train.phantoms.canvas import Frame, smooth, tight_box

DEVICE_TYPES = ("endotracheal_tube", "nasogastric_tube", "central_venous_catheter", "pacemaker",
                "ecg_electrodes", "sternotomy_wires")
# Chance of each device on a bedside (AP portable) film and on a departmental PA film.
_P_PORTABLE = {"endotracheal_tube": 0.35, "nasogastric_tube": 0.3,
               "central_venous_catheter": 0.45, "pacemaker": 0.1, "ecg_electrodes": 0.6,
               "sternotomy_wires": 0.12}
_P_DEPARTMENT = {"endotracheal_tube": 0.0, "nasogastric_tube": 0.02,
                 "central_venous_catheter": 0.06, "pacemaker": 0.07, "ecg_electrodes": 0.08,
                 "sternotomy_wires": 0.08}


@dataclass
class Device:
    """One device: its type, what a report says of it (`details`), where it is (`mask`, the
    pixels it covers) and its attenuation."""

    type: str
    details: dict[str, Any]
    mask: np.ndarray = field(repr=False)  # bool
    attenuation: np.ndarray = field(repr=False)  # float32, added to the film's attenuation

    @property
    def box(self) -> list[int] | None:
        return tight_box(self.mask)

    def record(self) -> dict[str, Any]:
        return {"type": self.type, "box": self.box, **self.details}


@dataclass(frozen=True)
class Landmarks:
    """Where devices go, in normalized chest units (u toward the image right, v down)."""

    trachea_u: float
    carina_v: float
    svc_u: float  # the superior vena cava, right of the midline (image left)
    cavoatrial_v: float
    heart: tuple[float, float]
    heart_radii: tuple[float, float, float]
    apex_v: float
    stomach: tuple[float, float]
    lateral_u: dict[str, float]


def landmarks(anat: Anatomy) -> Landmarks:
    right, left = anat.lungs["right"], anat.lungs["left"]
    carina = right.apex_v + 0.24  # as anatomy.render_anatomy draws the tracheal bifurcation
    return Landmarks(
        trachea_u=anat.trachea_u, carina_v=carina, svc_u=-(right.medial_u + 0.005),
        cavoatrial_v=carina + 0.1, heart=anat.heart_center, heart_radii=anat.heart_radii,
        apex_v=min(right.apex_v, left.apex_v),
        stomach=(left.dome_peak_u * 0.9, left.dome_v + 0.07),
        lateral_u={"right": right.lateral_u, "left": left.lateral_u},
    )


def units(frame: Frame, mm: float) -> float:
    """Millimetres as normalized chest units on this frame."""
    return frame.mm_to_px(mm) / frame.unit_px


def cm_between(frame: Frame, v0: float, v1: float) -> float:
    """Vertical distance between two heights, in centimetres on the film."""
    return abs(v1 - v0) * frame.unit_px * frame.spacing_mm / 10.0


def finish(frame: Frame, kind: str, details: dict[str, Any], dense: np.ndarray,
           blur_mm: float = 0.3) -> Device | None:
    """A device from its drawn attenuation (float32): mask where it shows, slight blur."""
    mask = dense > 0.01
    if not mask.any():
        return None
    return Device(kind, details, mask, smooth(dense, frame.mm_to_px(blur_mm)))


def render_devices(anat: Anatomy, portable: bool, rng: np.random.Generator) -> list[Device]:
    """The devices of one study. Every chance is drawn whatever the film, so the same study
    keeps its random values when another part of the generator is switched off."""
    from lesionloc_train.phantoms.hardware import ecg_electrodes, pacemaker, sternotomy_wires
    from lesionloc_train.phantoms.tubes import (
        central_venous_catheter,
        endotracheal_tube,
        nasogastric_tube,
    )

    draws = {kind: float(rng.random()) for kind in DEVICE_TYPES}
    chances = _P_PORTABLE if portable else _P_DEPARTMENT
    makers = {"endotracheal_tube": endotracheal_tube, "nasogastric_tube": nasogastric_tube,
              "central_venous_catheter": central_venous_catheter, "pacemaker": pacemaker,
              "ecg_electrodes": ecg_electrodes, "sternotomy_wires": sternotomy_wires}
    marks = landmarks(anat)
    out = []
    for kind in DEVICE_TYPES:
        # each device its own child stream: one device's shape never moves another's
        child = np.random.default_rng(rng.integers(2**63))
        if draws[kind] < chances[kind]:
            device = makers[kind](anat.frame, marks, child)
            if device is not None:
                out.append(device)
    return out
