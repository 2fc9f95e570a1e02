"""Generating a phantom data set on disk: images (DICOM, PNG), reports, finding masks and the
manifest (docs/phantoms.md), deterministic for a seed whatever the worker count."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime.cpuinfo import usable_cpus
from lesionloc_runtime.errors import ConfigError, DataError
from lesionloc_runtime.fileio import atomic_write_text, write_errors
from lesionloc_runtime.processes import in_processes
from lesionloc_runtime.progress import progress as progress_bar
from lesionloc_train.phantoms.canvas import pixel_spacing_mm
from lesionloc_train.phantoms.dicomio import (
    dicom_bytes,
    mask_png_bytes,
    png16_bytes,
    quantize,
    sample_variant,
)
from lesionloc_train.phantoms.options import (
    STREAM_DEVICES,
    STREAM_FILM,
    STREAM_IMAGE,
    STREAM_OVERLAYS,
    STREAM_REPORT,
    STREAM_STORAGE,
    PhantomOptions,
    StudyStreams,
)
from lesionloc_train.phantoms.render import RenderedStudy, render_study
from lesionloc_train.phantoms.reports import PhantomReport, write_report

MANIFEST = "manifest.jsonl"
GENERATOR_INFO = "generator.json"
SPLITS = ("train", "val", "test")
MIN_SIDE = 128
MAX_SIDE = 8192
GENERATOR_VERSION = 2  # 2: markers, text, collimation, devices, portable films, styles
# What `overwrite` may delete: only what the generator itself writes.
_MANAGED = ("images", "reports", "masks", MANIFEST, GENERATOR_INFO)


@dataclass(frozen=True)
class StudyJob:
    """Everything one worker needs to make one study (picklable)."""

    out_dir: str
    index: int
    seed: int
    width: int
    height: int
    split: str
    write_png: bool
    p_normal: float
    options: PhantomOptions = PhantomOptions()

    @property
    def study_id(self) -> str:
        return f"p{self.index:06d}"


@dataclass(frozen=True)
class DatasetSummary:
    out_dir: Path
    manifest: Path
    n: int
    splits: dict[str, int]
    findings: dict[str, int] = field(default_factory=dict)
    normal: int = 0


def study_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The random stream `stream` of study `index` (options.STREAM_*: image, report, storage,
    film, devices, overlays). Streams are independent, so a change to the report templates
    leaves every image unchanged, and switching devices off leaves the rest of the film."""
    return np.random.default_rng([seed, index, stream])


def study_streams(seed: int, index: int) -> StudyStreams:
    return StudyStreams(study_rng(seed, index, STREAM_FILM), study_rng(seed, index, STREAM_DEVICES),
                        study_rng(seed, index, STREAM_OVERLAYS))


def assign_splits(n: int, seed: int, fractions: Sequence[float]) -> list[str]:
    """A split per study: exact counts from the fractions, in a seeded random order."""
    counts = [int(round(n * f)) for f in fractions[1:]]
    counts.insert(0, n - sum(counts))
    labels = [name for name, c in zip(SPLITS, counts, strict=True) for _ in range(c)]
    order = np.random.default_rng([seed, 0x5B1]).permutation(n)
    return [labels[int(k)] for k in order]


def validate(n: int, width: int, height: int, fractions: Sequence[float]) -> tuple[float, ...]:
    if n < 1:
        raise ConfigError(f"the number of studies must be at least 1, got {n}")
    for name, side in (("width", width), ("height", height)):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise ConfigError(f"image {name} must be between {MIN_SIDE} and {MAX_SIDE} pixels, "
                              f"got {side}")
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be three non-negative numbers (train, val, test) "
                          f"that sum to 1, e.g. 0.8,0.1,0.1; got {fractions}")
    return fr


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a directory; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out_dir} exists and is not empty; pass --overwrite to replace "
                              "the phantoms in it, or choose another directory")
        for name in _MANAGED:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    try:
        for sub in ("images", "reports", "masks"):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out_dir}: cannot create the output directory ({exc.strerror})") \
            from None


def generate_dataset(out_dir: str | os.PathLike[str], n: int, seed: int = 0, width: int = 512,
                     height: int = 512,
                     split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     workers: int | None = None, write_png: bool = True,
                     overwrite: bool = False, progress: bool = False,
                     p_normal: float = 0.3,
                     options: PhantomOptions | None = None) -> DatasetSummary:
    """Write `n` phantom studies and their manifest under `out_dir`.

    `options` switches the real-film content (markers, text, collimation, devices, portable
    films, acquisition) and chooses the report style. The same arguments (apart from `workers`
    and `progress`) give byte-identical files.
    """
    options = options or PhantomOptions()
    fractions = validate(n, width, height, split_fractions)
    if int(seed) < 0:
        raise ConfigError(f"the seed must be a non-negative integer, got {seed}")
    if not 0.0 <= p_normal <= 1.0:
        raise ConfigError(f"the fraction of normal studies must be in [0, 1], got {p_normal}")
    out = Path(out_dir)
    with write_errors(out):  # a full or read-only disk: OutputError, exit code 10
        prepare_out_dir(out, overwrite)
        splits = assign_splits(n, seed, fractions)
        jobs = [StudyJob(str(out), i + 1, int(seed), width, height, splits[i], write_png, p_normal,
                         options) for i in range(n)]
        workers = default_workers(n) if workers is None else max(1, int(workers))
        records: list[dict[str, Any]] = []
        bar = progress_bar(n, "phantoms", "study", progress)
        try:
            if workers == 1:
                for job in jobs:
                    records.append(make_study(job))
                    bar.update()
            else:
                chunk = max(1, min(16, n // (workers * 8)))
                for record in in_processes(make_study, jobs, workers, _init_worker, chunk):
                    records.append(record)
                    bar.update()
        finally:
            bar.close()
        manifest = out / MANIFEST
        atomic_write_text(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                            for r in records))
        info = {"generator": "lesionloc phantoms", "version": GENERATOR_VERSION, "seed": int(seed),
                "n": n, "width": width, "height": height, "split_fractions": list(fractions),
                "p_normal": p_normal, "pixel_spacing_mm": _spacing(width, height),
                "options": options.as_dict()}
        atomic_write_text(out / GENERATOR_INFO, json.dumps(info, indent=2) + "\n")
        found = Counter(s["finding"] for r in records for s in r["sentences"]
                        if _is_lesion(s) and s["section"] == "findings")
        normal = sum(1 for r in records if not any(_is_lesion(s) for s in r["sentences"]))
        return DatasetSummary(out, manifest, n, dict(Counter(splits)), dict(found), normal)


def _is_lesion(sentence: dict[str, Any]) -> bool:
    return sentence["kind"] == "finding" and sentence["finding"] != "device"


def default_workers(n: int) -> int:
    # Starting a worker costs about a second; small sets are faster in-process.
    return max(1, min(usable_cpus(), n // 24))


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one thread per process: workers already fill the cores


def _spacing(width: int, height: int) -> float:
    return round(pixel_spacing_mm(width, height), 6)


def make_study(job: StudyJob) -> dict[str, Any]:
    """Render, write and describe one study; returns its manifest record."""
    out = Path(job.out_dir)
    sid = job.study_id
    study = render_study(study_rng(job.seed, job.index, STREAM_IMAGE), job.width, job.height,
                         job.p_normal, options=job.options,
                         streams=study_streams(job.seed, job.index))
    sex = "F" if study.anatomy.breasts else "M"
    report = write_report(study.findings, study_rng(job.seed, job.index, STREAM_REPORT), sex,
                          study.devices, study.film, job.options.style)
    values = quantize(study.image)
    storage_rng = study_rng(job.seed, job.index, STREAM_STORAGE)
    variant = sample_variant(storage_rng, (int(values.min()), int(values.max())))
    key = f"{job.seed}-{job.width}x{job.height}"
    spacing = _spacing(job.width, job.height)
    (out / "images" / f"{sid}.dcm").write_bytes(
        dicom_bytes(values, variant, sid, job.index, key, spacing, sex, study.film.view,
                    any(o.type == "text" for o in study.overlays)))
    if job.write_png:
        (out / "images" / f"{sid}.png").write_bytes(png16_bytes(values))
    (out / "reports" / f"{sid}.txt").write_text(report.text, encoding="utf-8", newline="\n")
    mask_paths = []
    for k, finding in enumerate(study.findings):
        rel = f"masks/{sid}_{k}.png"
        (out / rel).write_bytes(mask_png_bytes(finding.mask))
        mask_paths.append(rel)
    return {"study_id": sid, "split": job.split, "image": f"images/{sid}.dcm",
            "image_png": f"images/{sid}.png" if job.write_png else None,
            "report": f"reports/{sid}.txt", "width": job.width, "height": job.height,
            "pixel_spacing_mm": spacing, "sentences": sentence_records(report, study, mask_paths),
            "style": job.options.style, "film": study.film.record(study.anatomy.frame.rotation_deg),
            "devices": [d.record() for d in study.devices],
            "overlays": [o.record() for o in study.overlays]}


def sentence_records(report: PhantomReport, study: RenderedStudy,
                     mask_paths: list[str]) -> list[dict[str, Any]]:
    """The manifest's sentences: lesion findings carry their boxes and mask; a sentence about
    a device names it and carries its region as `device_boxes`, never as lesion `boxes`."""
    sentences = []
    for s in report.sentences:
        record: dict[str, Any] = {"text": s.text, "section": s.section, "kind": s.kind,
                                  "finding": s.finding, "side": s.side, "zone": s.zone,
                                  "boxes": []}
        if s.finding_index is not None:
            record["boxes"] = [list(b) for b in study.findings[s.finding_index].boxes]
            record["mask"] = mask_paths[s.finding_index]
        if s.device_index is not None:
            device = study.devices[s.device_index]
            record["device"] = device.type
            record["device_boxes"] = [device.box]
        sentences.append(record)
    return sentences


def load_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a phantom manifest (a directory holding manifest.jsonl, or the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no phantom manifest here; make one with `lesionloc-train synth "
                        "--out DIR`")
    records = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    if not records:
        raise DataError(f"{path}: the manifest is empty")
    return records
