"""DICOM output (`lesionloc-run --dicom-out`): the grounded report as a Comprehensive SR (TID
1500) and the overlay figure as a Secondary Capture, both in the input's study. docs/dicom-output.md
describes what is written and how to read it back."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np

from lesionloc_runtime.dicom_out.capture import build_overlay_sc, check_overlay, fit_to_image
from lesionloc_runtime.dicom_out.identity import (
    COPIED_ATTRIBUTES,
    REQUIRED_SOURCE_ATTRIBUTES,
    StudyIdentity,
    SyntheticIds,
    output_names,
    reference_dataset,
)
from lesionloc_runtime.dicom_out.structured_report import (
    RegionTarget,
    build_sr,
    read_back_sr,
    read_sr_provenance,
)
from lesionloc_runtime.fileio import atomic_open
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.results import StudyResult

__all__ = [
    "COPIED_ATTRIBUTES",
    "REQUIRED_SOURCE_ATTRIBUTES",
    "DicomOutputs",
    "SyntheticIds",
    "read_back_sr",
    "read_sr_provenance",
    "write_dicom_outputs",
]


@dataclass(frozen=True)
class DicomOutputs:
    """What `write_dicom_outputs` wrote. `sr` is None when the result has no sentence."""

    sc: Path
    sr: Path | None
    study_instance_uid: str
    sc_sop_instance_uid: str
    sr_sop_instance_uid: str | None


def write_dicom_outputs(
    result: StudyResult,
    radiograph: Radiograph,
    overlay_rgb: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    synthetic_ids: SyntheticIds | None = None,
) -> DicomOutputs:
    """Write `<study_id>_sc.dcm` (the overlay figure) and `<study_id>_sr.dcm` (the grounded
    report) into `out_dir`, each atomically.

    DICOM input: both objects join the source's study (Patient and General Study attributes
    copied, nothing else), each in a new series; the SR's boxes reference the source image.
    Any RGB uint8 figure works as `overlay_rgb`.
    PNG/JPEG input (`radiograph.dicom is None`): a new study from `synthetic_ids` (defaults in
    `SyntheticIds`); the SC then stands in for the source image, so `overlay_rgb` must show the
    radiograph alone (same aspect ratio; it is resampled to the radiograph's size) and the SR's
    boxes reference the SC. `synthetic_ids` is ignored for DICOM input.

    DicomOutputError (an ImageReadError) if the source header lacks a UID the objects must
    reference; ConfigError for synthetic ids DICOM cannot encode."""
    overlay = check_overlay(overlay_rgb)
    if radiograph.dicom is not None:
        identity = StudyIdentity.from_source(radiograph.dicom, result.width, result.height)
    else:
        identity = StudyIdentity.synthetic(synthetic_ids or SyntheticIds(), result.study_id)
        overlay = fit_to_image(overlay, result.width, result.height)
    demo = bool(result.model.get("demo", False))
    tag = "DEMO MODEL, no clinical meaning" if demo else "research use only"

    sc = build_overlay_sc(identity, overlay, series_uid=str(hd.UID()), sop_uid=str(hd.UID()),
                          series_description=f"lesionloc overlays - {tag}")
    target, evidence = _sr_references(identity, sc)
    sr = None
    if result.sentences:
        sr = build_sr(result, identity, target, evidence, series_uid=str(hd.UID()),
                      sop_uid=str(hd.UID()), series_description=f"lesionloc grounding - {tag}")

    out = Path(out_dir)
    sc_name, sr_name = output_names(result.study_id)
    sc_path = out / sc_name
    _save(sc, sc_path)
    sr_path = None
    if sr is not None:
        sr_path = out / sr_name
        _save(sr, sr_path)
    return DicomOutputs(
        sc=sc_path,
        sr=sr_path,
        study_instance_uid=identity.study_instance_uid,
        sc_sop_instance_uid=str(sc.SOPInstanceUID),
        sr_sop_instance_uid=None if sr is None else str(sr.SOPInstanceUID),
    )


def _sr_references(identity: StudyIdentity, sc: Any) -> tuple[RegionTarget, list[Any]]:
    """The image the SR's boxes lie on (the source DICOM, or the SC standing in for a PNG or
    JPEG) and the SR's evidence: the SC and, for DICOM input, the source."""
    # Evidence headers carry UIDs only, so highdicom cannot copy anything else into the SR.
    evidence = [reference_dataset(sc.SOPClassUID, sc.SOPInstanceUID, sc.SeriesInstanceUID,
                                  sc.StudyInstanceUID)]
    if identity.source is None:
        return RegionTarget(str(sc.SOPClassUID), str(sc.SOPInstanceUID)), evidence
    src = identity.source
    evidence.append(reference_dataset(src.sop_class_uid, src.sop_instance_uid,
                                      src.series_instance_uid, src.study_instance_uid))
    return RegionTarget(src.sop_class_uid, src.sop_instance_uid), evidence


def _save(ds: Any, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        ds.save_as(handle, enforce_file_format=True)
