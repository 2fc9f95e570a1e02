"""How a film was taken: PA upright in the department or AP portable at the bedside (magnified
heart, clavicles projected high, rotation up to 10 degrees), and what the acquisition did to it
(under- or over-exposure, anti-scatter grid lines, a lower-resolution detector, extra noise)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from lesionloc_train.phantoms.anatomy import Anatomy
from lesionloc_train.phantoms.options import PhantomOptions

P_PORTABLE = 0.35
P_EXTRA_ROTATION = 0.4
P_EXPOSURE = {"normal": 0.7, "under": 0.15, "over": 0.15}
P_GRID_LINES = 0.2
P_LOW_RESOLUTION = 0.2
P_EXTRA_NOISE = 0.25


@dataclass(frozen=True)
class Film:
    """One film's acquisition: geometry first, then what the detector chain did."""

    view: str = "PA"  # "PA" | "AP"
    portable: bool = False
    position: str = "upright"  # "upright" | "semi-upright" | "supine"
    extra_rotation_deg: float = 0.0  # on top of the anatomy's own +-5 degrees
    heart_magnification: float = 1.0  # AP: the heart lies far from the detector
    clavicle_lift: float = 0.0  # AP: the clavicles project above the apices (normalized units)
    exposure: str = "normal"  # "normal" | "under" | "over"
    dose: float = 1.0  # relative to a correct exposure
    grid_period_px: float = 0.0  # anti-scatter grid lines (0: none), in stored pixels
    grid_amplitude: float = 0.0
    grid_vertical: bool = True
    resolution: float = 1.0  # detector resolution relative to the stored pixels
    extra_noise: float = 0.0

    def record(self, rotation_deg: float) -> dict[str, Any]:
        """The manifest's `film` entry (rotation: the whole in-plane rotation of the chest)."""
        return {"view": self.view, "portable": self.portable, "position": self.position,
                "rotation_deg": round(rotation_deg, 2), "exposure": self.exposure,
                "grid_lines": self.grid_period_px > 0, "resolution": round(self.resolution, 3),
                "extra_noise": round(self.extra_noise, 4)}


def sample_film(rng: np.random.Generator, options: PhantomOptions) -> Film:
    """A film's acquisition; every draw is made whatever the switches say, so that switching
    one part off leaves the others' random values unchanged."""
    portable = rng.random() < P_PORTABLE
    position = str(rng.choice(["supine", "semi-upright", "upright"], p=[0.4, 0.4, 0.2]))
    rotation = float(rng.uniform(5.0, 10.0) * rng.choice([-1.0, 1.0]) / 2.0)
    rotate = rng.random() < P_EXTRA_ROTATION
    magnification = float(rng.uniform(1.07, 1.15))
    lift = float(rng.uniform(0.03, 0.06))
    exposure = str(rng.choice(list(P_EXPOSURE), p=list(P_EXPOSURE.values())))
    dose = {"normal": 1.0, "under": float(rng.uniform(0.25, 0.5)),
            "over": float(rng.uniform(2.0, 4.0))}[exposure]
    grid = rng.random() < P_GRID_LINES
    period, amplitude = float(rng.uniform(1.8, 4.5)), float(rng.uniform(0.008, 0.025))
    vertical = rng.random() < 0.8
    low = rng.random() < P_LOW_RESOLUTION
    resolution = float(rng.uniform(0.3, 0.65))
    noisy = rng.random() < P_EXTRA_NOISE
    noise = float(rng.uniform(0.006, 0.02))
    film = Film()
    if options.portable:
        film = replace(film, extra_rotation_deg=rotation if rotate else 0.0)
        if portable:
            film = replace(film, view="AP", portable=True, position=position,
                           heart_magnification=magnification, clavicle_lift=lift)
    if options.acquisition:
        film = replace(film, exposure=exposure, dose=dose,
                       grid_period_px=period if grid else 0.0,
                       grid_amplitude=amplitude if grid else 0.0, grid_vertical=vertical,
                       resolution=resolution if low else 1.0,
                       extra_noise=noise if noisy else 0.0)
    return film


def apply_geometry(anat: Anatomy, film: Film) -> Anatomy:
    """The chest as this film projects it: an AP beam magnifies the heart (it lies far from
    the detector) and lifts the clavicles; a rotated patient turns the whole frame."""
    frame = replace(anat.frame, rotation_deg=anat.frame.rotation_deg + film.extra_rotation_deg)
    k = film.heart_magnification
    r_right, r_left, r_v = anat.heart_radii
    return replace(anat, frame=frame, heart_radii=(r_right * k, r_left * k, r_v * k),
                   clavicle_lift=film.clavicle_lift)


def exposure_tone(film: Film) -> tuple[float, float, float]:
    """(noise factor, gamma factor, crush) of the exposure: too little dose is noisy and flat,
    too much burns the lungs out (their darkest part clips to black)."""
    if film.exposure == "under":
        return 1.0 / float(np.sqrt(film.dose)), 1.15, 0.0
    if film.exposure == "over":
        return 0.8, 0.8, 0.06 * float(np.log2(film.dose))
    return 1.0, 1.0, 0.0


def degrade(image: np.ndarray, film: Film, rng: np.random.Generator) -> np.ndarray:
    """What the detector chain adds after processing: the coarser sampling of a
    lower-resolution detector, stationary grid lines and extra electronic noise."""
    h, w = image.shape
    out = image
    if film.resolution < 1.0:
        small = (max(8, round(w * film.resolution)), max(8, round(h * film.resolution)))
        out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA), (w, h),
                         interpolation=cv2.INTER_LINEAR)
    if film.grid_period_px > 0:
        n = w if film.grid_vertical else h
        phase = float(rng.uniform(0, 2 * np.pi))
        wave = film.grid_amplitude * np.sin(2 * np.pi * np.arange(n) / film.grid_period_px + phase)
        wave = wave.astype(np.float32)
        out = out + (wave[None, :] if film.grid_vertical else wave[:, None])
    if film.extra_noise > 0:
        out = out + np.float32(film.extra_noise) * rng.standard_normal(out.shape,
                                                                       dtype=np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
