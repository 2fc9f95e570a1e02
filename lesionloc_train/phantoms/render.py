"""One phantom radiograph end to end: how the film is taken, anatomy, decoys, findings and
devices, the detector and image processing chain (exposure, tone curve, equalization, blur,
quantum noise) to display values, then what is drawn over the processed film."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from lesionloc_train.phantoms.anatomy import (
    SIDE_SIGN,
    Anatomy,
    AnatomyLayers,
    render_anatomy,
    sample_anatomy,
)
from lesionloc_train.phantoms.canvas import ellipse_points, fill_polygons, smooth, to_float
from lesionloc_train.phantoms.devices import Device, render_devices
from lesionloc_train.phantoms.film import Film, apply_geometry, degrade, exposure_tone, sample_film
from lesionloc_train.phantoms.findings import (
    Finding,
    FindingPlan,
    draw_fissure,
    plan_findings,
    render_findings,
)
from lesionloc_train.phantoms.lettering import Overlay
from lesionloc_train.phantoms.options import PhantomOptions, StudyStreams
from lesionloc_train.phantoms.overlays import draw_overlays, keepout_mask
from lesionloc_train.phantoms.zones import LungField


@dataclass(frozen=True)
class Exposure:
    """Acquisition and processing of one film; every study draws its own."""

    white: float  # attenuation shown as white, relative to the body's 99.7th percentile
    compression: float  # tone curve strength (soft highlights)
    range_compression: float  # flattens the large-scale density, as DR processing does
    equalize: float  # unsharp masking of mid-size detail
    gamma: float
    black_level: float
    white_level: float
    blur_mm: float
    noise: float


def sample_exposure(rng: np.random.Generator) -> Exposure:
    return Exposure(
        white=float(rng.uniform(0.95, 1.12)),
        compression=float(rng.uniform(0.2, 1.2)),
        range_compression=float(rng.uniform(0.2, 0.6)),
        equalize=float(rng.uniform(0.15, 0.45)),
        gamma=float(rng.uniform(0.8, 1.25)),
        black_level=float(rng.uniform(0.0, 0.06)),
        white_level=float(rng.uniform(0.88, 0.99)),
        blur_mm=float(rng.uniform(0.15, 0.6)),
        noise=float(rng.uniform(0.003, 0.016)),
    )


@dataclass
class RenderedStudy:
    """A study's display image (float32, [0, 1], 1 = white), its findings, and what else the
    film carries (devices, markers, text, collimation)."""

    image: np.ndarray
    findings: list[Finding]
    anatomy: Anatomy
    lungs: dict[str, LungField]
    heart: np.ndarray  # bool mask of the cardiac silhouette
    film: Film = field(default_factory=Film)
    devices: list[Device] = field(default_factory=list)
    overlays: list[Overlay] = field(default_factory=list)


def render_study(rng: np.random.Generator, width: int, height: int, p_normal: float = 0.3,
                 plans: list[FindingPlan] | None = None, options: PhantomOptions | None = None,
                 streams: StudyStreams | None = None) -> RenderedStudy:
    """Render one study; `plans` forces its findings (else they are drawn at random).

    `rng` draws the anatomy, findings and detector noise; devices, film and overlays draw from
    `streams` (children of `rng` when not given), so switching them off in `options` leaves
    the rest of the image as it was.
    """
    options = options or PhantomOptions()
    streams = streams or StudyStreams.spawned(rng)
    drawn = plan_findings(rng, p_normal)
    plans = drawn if plans is None else plans
    film = sample_film(streams.film, options)
    anat = sample_anatomy(rng, width, height,
                          cardiomegaly=any(p.finding == "cardiomegaly" for p in plans))
    anat = apply_geometry(anat, film)
    layers = render_anatomy(anat, rng)
    _add_decoys(anat, layers, rng)
    findings, opacity = render_findings(plans, anat, layers, rng)
    lungs = {s: LungField.from_mask(s, m) for s, m in layers.lung_masks.items()}
    for f in findings:
        if f.finding == "cardiomegaly":
            f.ratio = cardiothoracic_ratio(layers.heart_mask, lungs)
    pulled = [f for f in findings if f.finding == "atelectasis" and f.side in ("right", "bilateral")
              and f.zone in ("middle", "lower", "basal")]
    if pulled or anat.fissure:
        # Right lower or middle atelectasis pulls the minor fissure down (volume loss).
        draw_fissure(anat, layers, float(rng.uniform(0.03, 0.08)) if pulled else 0.0, rng,
                     opacity)
    attenuation = layers.soft - layers.lung_air + layers.vessels + layers.bone + opacity
    devices = render_devices(anat, film.portable, streams.devices) if options.devices else []
    metal = sum((d.attenuation for d in devices), np.zeros_like(attenuation))
    image = _detector(attenuation, metal, layers, sample_exposure(rng), film, rng)
    image = degrade(image, film, streams.film)
    keepout = keepout_mask([*layers.lung_masks.values(), layers.heart_mask],
                           layers.frame.mm_to_px(4.0))
    overlays = draw_overlays(image, keepout, film, options, layers.frame.spacing_mm,
                             streams.overlays)
    return RenderedStudy(np.clip(image, 0.0, 1.0), findings, anat, lungs, layers.heart_mask,
                         film, devices, overlays)


def cardiothoracic_ratio(heart: np.ndarray, lungs: dict[str, LungField]) -> float:
    """Widest heart width over the widest span of the two lungs, as measured on the image."""
    cols = np.flatnonzero(heart.any(axis=0))
    if cols.size == 0:
        return 0.0
    thorax = max(lungs["left"].right, lungs["right"].right) - min(lungs["left"].left,
                                                                  lungs["right"].left) + 1
    return float(cols[-1] - cols[0] + 1) / thorax


def _add_decoys(anat: Anatomy, layers: AnatomyLayers, rng: np.random.Generator) -> None:
    """Normal bright spots a lesion detector must learn to ignore: nipple shadows and
    calcified costal cartilage (the rib crossings are bright already)."""
    frame = layers.frame
    if anat.nipples:
        canvas = frame.blank()
        v = float(rng.uniform(0.05, 0.16))
        for side, sign in SIDE_SIGN.items():
            u = sign * anat.lungs[side].lateral_u * float(rng.uniform(0.45, 0.7))
            r = 0.011 * float(rng.uniform(0.8, 1.3))
            fill_polygons(frame, [ellipse_points(u, v + float(rng.normal(0, 0.01)), r, r * 0.9)],
                          canvas)
        layers.soft += float(rng.uniform(0.04, 0.09)) * smooth(to_float(canvas), frame.mm_to_px(1.2))
    if rng.random() < 0.4:
        canvas = frame.blank()
        for _ in range(int(rng.integers(2, 7))):
            sign = 1.0 if rng.random() < 0.5 else -1.0
            u = sign * float(rng.uniform(0.09, 0.17))
            v = float(rng.uniform(-0.2, 0.15))
            fill_polygons(frame, [ellipse_points(u, v, 0.012, 0.007, float(rng.uniform(-30, 30)),
                                                 radial=1 + 0.25 * rng.random(72))], canvas)
        layers.bone += float(rng.uniform(0.05, 0.12)) * smooth(to_float(canvas), frame.mm_to_px(0.6))


def _tone(attenuation: np.ndarray, scale: np.float32, g: float) -> np.ndarray:
    """Tone curve 1 - exp(-g d), normalized so d = 1 stays 1 (cv2 for speed on big images)."""
    d = cv2.exp(np.clip(attenuation * scale, 0.0, 1.5) * np.float32(-g))
    return (1.0 - d) * np.float32(1.0 / (1.0 - math.exp(-g)))


def _detector(attenuation: np.ndarray, metal: np.ndarray, layers: AnatomyLayers, exp: Exposure,
              film: Film, rng: np.random.Generator) -> np.ndarray:
    """Attenuation to display values. The processing's statistics (reference density, mean
    brightness, display window) are taken without the metal of devices, as a modality's
    histogram analysis excludes it, so a device changes its own neighbourhood only."""
    frame = layers.frame
    body = attenuation[layers.body_mask]
    ref = float(np.percentile(body[:: max(1, body.size // 20000)], 99.7)) if body.size else 1.0
    scale = np.float32(1.0 / max(ref * exp.white, 1e-3))
    plain = _tone(attenuation, scale, exp.compression)
    has_metal = bool(metal.any())
    d = _tone(attenuation + metal, scale, exp.compression) if has_metal else plain
    # Dynamic range compression: the film's large-scale brightness is pulled toward its mean,
    # so mediastinum and abdomen are grey, not white, and local detail keeps its contrast.
    low = smooth(plain, 0.12 * frame.unit_px)
    step = max(1, int(np.sqrt(body.size // 20000 + 1)))
    inside = layers.body_mask[::step, ::step]
    shift = np.float32(exp.range_compression) * (low - np.float32(low[::step, ::step][inside].mean()))
    d = d - shift
    d = d + np.float32(exp.equalize) * (d - smooth(d, 0.03 * frame.unit_px))
    sample = (plain - shift)[::step, ::step][inside]
    lo, hi = (np.percentile(sample, [0.5, 99.8]) if sample.size else (0.0, 1.0))
    noise_k, gamma_k, crush = exposure_tone(film)
    d = np.clip((d - np.float32(lo)) * np.float32(1.0 / max(hi - lo, 1e-3)), 1e-6, 1.0)
    if crush:  # over-exposure: the darkest lung clips to black
        d = np.clip((d - np.float32(crush)) * np.float32(1.0 / (1.0 - crush)), 1e-6, 1.0)
    d = cv2.pow(d, exp.gamma * gamma_k)
    d = exp.black_level + (exp.white_level - exp.black_level) * d
    d = smooth(d, frame.mm_to_px(exp.blur_mm))
    noise = rng.standard_normal(d.shape, dtype=np.float32)
    if min(d.shape) > 700:
        # Quantum noise is correlated over the detector's point spread, not per pixel.
        noise = cv2.GaussianBlur(noise, (0, 0), 0.6) * np.float32(1.6)
    d = d + np.float32(exp.noise * noise_k) * (0.4 + d) * noise
    return np.clip(d, 0.0, 1.0).astype(np.float32)
