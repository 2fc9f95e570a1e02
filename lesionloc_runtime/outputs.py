"""Writing one study's results into `OUT/<study_id>/`: overlays, summary figure, optional raw
heatmaps and DICOM objects, and last the study JSON (its presence means "done")."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionloc_runtime.fileio import atomic_write_bytes, atomic_write_json
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.render import (
    base_image,
    combined_overlay,
    encode_png,
    sentence_overlay,
    summary_figure,
)
from lesionloc_runtime.results import SentenceResult, StudyResult

STUDY_JSON = "study.json"
IDENTIFYING_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate")


@dataclass(frozen=True)
class OutputOptions:
    save_raw: bool = False
    dicom_out: bool = False
    include_identifiers: bool = False
    synthetic_ids: object | None = None  # dicom_out.SyntheticIds for PNG/JPEG inputs


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """One pool of drawing threads per process, kept between studies: OpenCV's first drawing
    calls in a new thread are slow (measured: drawing the boxes 25 ms in a fresh thread vs
    0.3 ms in a warm one), so a pool made per study cost more than it saved. Keyed by pid: a
    forked child process (batch workers are spawned, but a library user may fork) makes its
    own, since threads do not survive a fork."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                                 thread_name_prefix="lesionloc-draw"))
    return _POOL[1]


def study_dir(out: Path, study_id: str) -> Path:
    return out / study_id


def is_done(out: Path, study_id: str) -> bool:
    return (study_dir(out, study_id) / STUDY_JSON).is_file()


def write_study(result: StudyResult, radiograph: Radiograph, out: Path,
                options: OutputOptions = OutputOptions()) -> Path:
    """Every file is written atomically (temporary file + rename: a killed process never leaves
    a partial file); the JSON comes last and is fsynced, so a killed run never leaves a study
    that looks finished."""
    target = study_dir(out, result.study_id)
    target.mkdir(parents=True, exist_ok=True)
    def overlay(sentence: SentenceResult) -> np.ndarray:
        picture = sentence_overlay(result, sentence)
        atomic_write_bytes(target / sentence.files["overlay"], encode_png(picture), durable=False)
        return picture

    for sentence in result.grounded:
        stem = f"sentence_{sentence.index + 1:02d}"
        sentence.files["overlay"] = f"{stem}.png"
        if options.save_raw and sentence.heatmap is not None:
            buffer = io.BytesIO()
            np.save(buffer, sentence.heatmap.render().astype(np.float32), allow_pickle=False)
            atomic_write_bytes(target / f"{stem}.npy", buffer.getvalue(), durable=False)
            sentence.files["heatmap"] = f"{stem}.npy"
    # rendering and PNG encoding dominate writing; OpenCV, numpy and ISA-L release the GIL.
    # The display-size radiograph is made once here, not by every thread that finds it missing.
    base_image(result)
    overlays = list(_pool().map(overlay, result.grounded))
    summary = summary_figure(result, overlays=overlays)
    atomic_write_bytes(target / "summary.png", encode_png(summary), durable=False)
    result.files["summary"] = "summary.png"
    if options.dicom_out:
        from lesionloc_runtime.dicom_out import write_dicom_outputs

        written = write_dicom_outputs(result, radiograph, combined_overlay(result), target,
                                      synthetic_ids=options.synthetic_ids)  # type: ignore[arg-type]
        result.files["dicom_sc"] = written.sc.name
        if written.sr is not None:
            result.files["dicom_sr"] = written.sr.name
    if options.include_identifiers and radiograph.dicom is not None:
        result.identifiers = {tag: str(radiograph.dicom.get(tag, "")) for tag in IDENTIFYING_TAGS
                              if tag in radiograph.dicom}
    result.files["study"] = STUDY_JSON
    atomic_write_json(target / STUDY_JSON, result.to_dict())
    return target / STUDY_JSON
