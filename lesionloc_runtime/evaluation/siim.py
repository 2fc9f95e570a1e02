"""Reader of the SIIM-ACR Pneumothorax Segmentation challenge (Kaggle 2019): `train-rle.csv`
("ImageId, EncodedPixels"; " -1" for no pneumothorax, several rows for several regions) in the
challenge's relative column-major RLE (see `rle.py`), and the DICOMs named
`<ImageId>.dcm` (the SOP Instance UID) anywhere below the root, as in
`dicom-images-train/<study>/<series>/<ImageId>.dcm`. Positive images only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lesionloc_runtime.errors import DataError
from lesionloc_runtime.evaluation.records import (
    AnnotatedImage,
    DatasetStream,
    Grounding,
    ReadLog,
    Split,
    existing_images,
    read_csv_rows,
)
from lesionloc_runtime.evaluation.rle import NO_MASK, parse_rle

__all__ = ["read_siim"]

_CATEGORY = "pneumothorax"
_LABEL_FILE = "train-rle.csv"
_COLUMNS = ("ImageId", "EncodedPixels")


def read_siim(
    root: Path, *, split: Split, prompts: Mapping[str, str], images: Path | None = None
) -> DatasetStream:
    """Index `root/train-rle.csv` and the DICOMs below `images` (default: root)."""
    split.require_no_name("SIIM-ACR Pneumothorax")
    labels = root / _LABEL_FILE
    if not labels.is_file():
        raise DataError(f"{root}: no {_LABEL_FILE} (the SIIM-ACR Pneumothorax masks) found")
    log = ReadLog()
    _, rows = read_csv_rows(labels, _COLUMNS, "SIIM-ACR train-rle")
    encodings: dict[str, list[str]] = {}
    negatives: set[str] = set()
    for line, row, problem in rows:
        if row is None:
            log.malformed(labels.name, line, problem)
            continue
        image_id = row["ImageId"].strip()
        encoded = row["EncodedPixels"].strip()
        if not image_id:
            log.malformed(labels.name, line, "empty ImageId")
            continue
        if not split.keeps_id(image_id):
            continue
        if encoded == NO_MASK:
            negatives.add(image_id)
            continue
        try:
            parse_rle(encoded)
        except ValueError as exc:
            log.malformed(labels.name, line, str(exc))
            continue
        encodings.setdefault(image_id, []).append(encoded)
    log.negative_images = len(negatives - encodings.keys())
    image_root = images or root
    dicoms = _index_dicoms(image_root)
    prompt = prompts[_CATEGORY]
    entries = [AnnotatedImage(image_id, dicoms.get(image_id, image_root / f"{image_id}.dcm"),
                              (Grounding(prompt, _CATEGORY, rle=tuple(rles)),))
               for image_id, rles in encodings.items()]
    return DatasetStream("siim-pneumothorax", root, labels, split.name,
                         existing_images(entries, image_root, log), len(entries), log)


def _index_dicoms(root: Path) -> dict[str, Path]:
    """ImageId -> path of every `*.dcm` below `root` (the challenge nests them by study and
    series, so the file name is the only key that finds them)."""
    found: dict[str, Path] = {}
    for directory, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(".dcm"):
                found.setdefault(name[:-4], Path(directory) / name)
    return found
