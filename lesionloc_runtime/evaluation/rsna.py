"""Reader of the RSNA Pneumonia Detection Challenge (Kaggle 2018): `stage_2_train_labels.csv`
(patientId, x, y, width, height, Target; one row per box, Target 0 rows have no box) and
`stage_2_train_images/<patientId>.dcm`. Positive images only; all boxes of a patient are one
sample, grounded by one prompt (default "Findings suggesting pneumonia.")."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.errors import DataError
from lesionloc_runtime.evaluation.records import (
    AnnotatedImage,
    DatasetStream,
    Grounding,
    ReadLog,
    Split,
    existing_images,
    find_first,
    parse_box,
    read_csv_rows,
)
from lesionloc_runtime.fileio import is_file

__all__ = ["read_rsna"]

_CATEGORY = "pneumonia"
_LABEL_FILES = ("stage_2_train_labels.csv", "stage_1_train_labels.csv")
_IMAGE_DIRS = ("stage_2_train_images", "stage_1_train_images")
_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
_IMAGE_SUFFIXES = (".dcm", ".png", ".jpg", ".jpeg")
_ORIGINAL_SIZE = (1024, 1024)


def read_rsna(
    root: Path, *, split: Split, prompts: Mapping[str, str], images: Path | None = None
) -> DatasetStream:
    """Index the labels in `root`; images in `images` (default: root/stage_2_train_images)."""
    split.require_no_name("RSNA Pneumonia")
    labels = find_first(root, _LABEL_FILES)
    if labels is None:
        raise DataError(f"{root}: no stage_2_train_labels.csv (the RSNA Pneumonia labels) found")
    image_dir = images or next((root / d for d in _IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise DataError(f"{root}: no stage_2_train_images/ folder (the RSNA DICOMs) found")
    log = ReadLog()
    _, rows = read_csv_rows(labels, _COLUMNS, "RSNA Pneumonia labels")
    boxes: dict[str, list[Box]] = {}
    negatives: set[str] = set()
    for line, row, problem in rows:
        if row is None:
            log.malformed(labels.name, line, problem)
            continue
        patient = row["patientId"].strip()
        target = row["Target"].strip()
        if not patient or target not in ("0", "1"):
            log.malformed(labels.name, line, f"patientId {patient!r} with Target {target!r} "
                          "(expected 0 or 1)")
            continue
        if not split.keeps_id(patient):
            continue
        if target == "0":
            negatives.add(patient)
            continue
        try:
            box = parse_box([row["x"], row["y"], row["width"], row["height"]])
        except ValueError as exc:
            log.malformed(labels.name, line, f"Target 1 row: {exc}")
            continue
        boxes.setdefault(patient, []).append(box)
    conflicting = negatives & boxes.keys()
    for patient in sorted(conflicting):
        log.warn("note", labels.name, f"patient {patient} has Target 0 and Target 1 rows; "
                 "its boxes are used")
    log.negative_images = len(negatives - boxes.keys())
    prompt = prompts[_CATEGORY]
    entries = []
    for patient, patient_boxes in boxes.items():
        path = _image_path(image_dir, patient)
        # Boxes are pixels of the challenge's 1024x1024 DICOMs; on a converted (maybe
        # resized) PNG or JPEG copy they are rescaled to its size.
        reference = None if path.suffix == ".dcm" else _ORIGINAL_SIZE
        entries.append(AnnotatedImage(patient, path, (
            Grounding(prompt, _CATEGORY, tuple(patient_boxes), reference_size=reference),)))
    return DatasetStream("rsna-pneumonia", root, labels, split.name,
                         existing_images(entries, image_dir, log), len(entries), log)


def _image_path(image_dir: Path, patient: str) -> Path:
    for suffix in _IMAGE_SUFFIXES:
        candidate = image_dir / f"{patient}{suffix}"
        if is_file(candidate):
            return candidate
    return image_dir / f"{patient}.dcm"
