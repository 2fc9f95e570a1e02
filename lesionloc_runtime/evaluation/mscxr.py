"""Reader of MS-CXR (Boecking et al. 2022, PhysioNet `ms-cxr`): phrase-grounding boxes on
MIMIC-CXR images, from `MS_CXR_Local_Alignment_v1.x.0.csv` (one row per box) or, when no CSV
is present, the COCO-style `MS_CXR_Local_Alignment_v1.x.0.json`.

Boxes of the same image, category and phrase are one sample (the phrase can describe several
regions); the report averages per category, then across categories (BioViL's protocol)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.errors import ConfigError, DataError, printable
from lesionloc_runtime.evaluation.records import (
    AnnotatedImage,
    DatasetStream,
    Grounding,
    ReadLog,
    Split,
    existing_images,
    parse_box,
    parse_size,
    read_csv_rows,
)
from lesionloc_runtime.fileio import is_file

__all__ = ["read_ms_cxr"]

_CSV_COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h",
               "image_width", "image_height")
_ANNOTATION = re.compile(r"^MS_CXR_Local_Alignment_v(\d+)\.(\d+)\.(\d+)\.(csv|json)$")


@dataclass
class _Phrase:
    category: str
    text: str
    boxes: list[Box] = field(default_factory=list)


@dataclass
class _Image:
    dicom_id: str
    path: str
    size: tuple[int, int]
    phrases: dict[tuple[str, str], _Phrase] = field(default_factory=dict)


def _find_annotation(root: Path) -> Path:
    """The newest MS-CXR annotation file in `root`, preferring the CSV (it has line numbers)."""
    found = [(tuple(int(g) for g in m.groups()[:3]), m.group(4) == "csv", p)
             for p in (root.iterdir() if root.is_dir() else [])
             if (m := _ANNOTATION.match(p.name)) and p.is_file()]
    if not found:
        raise DataError(
            f"{root}: no MS_CXR_Local_Alignment_v1.*.csv or .json (the MS-CXR annotations) found"
        )
    return max(found)[2]


def read_ms_cxr(
    root: Path, *, split: Split, prompts: Mapping[str, str], images: Path | None = None
) -> DatasetStream:
    """Index the MS-CXR annotations in `root`; images are `images/<path>` (default: root)."""
    annotation = _find_annotation(root)
    log = ReadLog()
    if annotation.suffix == ".csv":
        index = _read_csv(annotation, split, log)
    else:
        index = _read_json(annotation, split, log)
    image_root = images or root
    entries = [_entry(item, image_root, prompts) for item in index.values()]
    return DatasetStream("ms-cxr", root, annotation, split.name,
                         existing_images(entries, image_root, log), len(entries), log)


def _add(index: dict[str, _Image], dicom_id: str, path: str, size: tuple[int, int],
         category: str, text: str, box: Box) -> None:
    item = index.setdefault(path, _Image(dicom_id, path, size))
    phrase = item.phrases.setdefault((category, text), _Phrase(category, text))
    phrase.boxes.append(box)


def _read_csv(path: Path, split: Split, log: ReadLog) -> dict[str, _Image]:
    header, rows = read_csv_rows(path, _CSV_COLUMNS, "MS-CXR annotation",
                                 aliases={"category": "category_name"})
    has_split = "split" in header
    if split.ids is None and not split.is_all and not has_split:
        raise ConfigError(
            f"--split {split.name}: {path.name} has no split column (MS-CXR v1.1.0 has one); "
            "use --split all or --split FILE with the dicom_ids to keep"
        )
    index: dict[str, _Image] = {}
    for line, row, problem in rows:
        if row is None:
            log.malformed(path.name, line, problem)
            continue
        dicom_id, image_path = row["dicom_id"].strip(), row["path"].strip()
        text, category = row["label_text"].strip(), row["category_name"].strip()
        if not dicom_id or not image_path or not text or not category:
            log.malformed(path.name, line, "empty dicom_id, path, label_text or category_name")
            continue
        if not split.keeps_id(dicom_id, image_path):
            continue
        if split.ids is None and not split.is_all and row["split"].strip() != split.name:
            continue
        try:
            box = parse_box([row["x"], row["y"], row["w"], row["h"]])
            size = parse_size(row["image_width"], row["image_height"])
        except ValueError as exc:
            log.malformed(path.name, line, str(exc))
            continue
        _add(index, dicom_id, image_path, size, category, text, box)
    return index


def _read_json(path: Path, split: Split, log: ReadLog) -> dict[str, _Image]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        images = {img["id"]: img for img in data["images"]}
        categories = {cat["id"]: str(cat["name"]) for cat in data["categories"]}
        annotations = list(data["annotations"])
    except (OSError, ValueError, RecursionError, KeyError, TypeError) as exc:
        # ValueError: also JSONDecodeError, UnicodeDecodeError and a 5,000-digit number
        raise DataError(f"{path}: not an MS-CXR COCO-style annotation file "
                        f"({printable(str(exc), 160)})") from None
    index: dict[str, _Image] = {}
    for number, ann in enumerate(annotations):
        where = f"annotation #{number}"
        try:
            image = images[ann["image_id"]]
            category = categories[ann["category_id"]]
            text = str(ann["label_text"]).strip()
            image_path = str(image.get("path") or image["file_name"])
            dicom_id = Path(str(image.get("file_name") or image_path)).stem
            box = parse_box(ann["bbox"])
            size = parse_size(image["width"], image["height"])
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            log.malformed(path.name, None, f"{where}: {detail}")
            continue
        if not text:
            log.malformed(path.name, None, f"{where}: empty label_text")
            continue
        if not split.keeps_id(dicom_id, image_path):
            continue
        if split.ids is None and not split.is_all:
            record_split = _split_of(ann, image)
            if record_split is None:
                raise ConfigError(f"--split {split.name}: {path.name} has no split field; use "
                                  "--split all or --split FILE with the dicom_ids to keep")
            if record_split != split.name:
                continue
        _add(index, dicom_id, image_path, size, category, text, box)
    return index


def _split_of(ann: dict[str, Any], image: dict[str, Any]) -> str | None:
    value = ann.get("split", image.get("split"))
    return None if value is None else str(value)


def _entry(item: _Image, image_root: Path, prompts: Mapping[str, str]) -> AnnotatedImage:
    groundings: list[Grounding] = []
    class_boxes: dict[str, list[Box]] = {}
    for phrase in item.phrases.values():
        if phrase.category.lower() in prompts:
            class_boxes.setdefault(phrase.category, []).extend(phrase.boxes)
        else:
            groundings.append(Grounding(phrase.text, phrase.category, tuple(phrase.boxes),
                                        reference_size=item.size))
    for category, boxes in class_boxes.items():
        groundings.append(Grounding(prompts[category.lower()], category, tuple(boxes),
                                    reference_size=item.size))
    path = image_root / item.path
    if path.name and not is_file(path) and is_file(path.with_suffix(".dcm")):
        path = path.with_suffix(".dcm")  # the MIMIC-CXR DICOM tree has the same layout
    return AnnotatedImage(item.dicom_id, path, tuple(groundings))
