"""Reader of the project's phantom benchmark (format in docs/phantoms.md): `manifest.jsonl`, one
study per line, whose finding sentences carry their boxes. Each finding sentence with boxes is
one sample (a sentence about a device has none: devices are not lesions)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lesionloc_runtime.errors import DataError
from lesionloc_runtime.evaluation.records import (
    AnnotatedImage,
    DatasetStream,
    Grounding,
    ReadLog,
    Split,
    existing_images,
    parse_box,
    parse_size,
)
from lesionloc_runtime.fileio import is_file

__all__ = ["read_phantoms"]

_MANIFEST = "manifest.jsonl"
_DEFAULT_SPLIT = "test"


def read_phantoms(
    root: Path, *, split: Split, prompts: Mapping[str, str], images: Path | None = None
) -> DatasetStream:
    """Index `root/manifest.jsonl` (or `root` itself when it is the manifest file)."""
    manifest = root if root.is_file() else root / _MANIFEST
    if not manifest.is_file():
        raise DataError(f"{root}: no {_MANIFEST} (the phantom benchmark's manifest) found")
    base = manifest.parent
    log = ReadLog()
    entries: list[AnnotatedImage] = []
    splits_seen: set[str] = set()
    source = manifest.name
    try:
        # JSON Lines end at "\n" only: str.splitlines would also split inside a string at
        # U+2028, U+0085 or \x0c, which json.dumps(ensure_ascii=False) leaves raw.
        lines = manifest.read_text(encoding="utf-8-sig").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{manifest}: cannot be read ({exc})") from None
    first_line: dict[str, int] = {}  # study id -> the line that gave it
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            log.malformed(source, number, f"not valid JSON ({exc.msg})")
            continue
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, [[[[... too deep
            log.malformed(source, number, f"not usable JSON ({exc})")  # the log cuts it
            continue
        entry = _study(record, number, base, split, prompts, log, splits_seen)
        if entry is None:
            continue
        if entry.image_id in first_line:  # scored twice, it would count twice in the means
            log.malformed(source, number, f"study_id {entry.image_id!r} is also on line "
                          f"{first_line[entry.image_id]}; skipped")
            continue
        first_line[entry.image_id] = number
        entries.append(entry)
    if split.ids is None and not split.is_all and split.name not in splits_seen:
        raise DataError(
            f"{manifest}: no study in split {split.name!r} (splits present: "
            f"{', '.join(sorted(splits_seen))}); choose one with --split"
        )
    return DatasetStream("phantoms", base, manifest, split.name, existing_images(entries, base, log),
                         len(entries), log)


def _study(
    record: Any, line: int, base: Path, split: Split, prompts: Mapping[str, str],
    log: ReadLog, splits_seen: set[str],
) -> AnnotatedImage | None:
    source = _MANIFEST
    if not isinstance(record, dict):
        log.malformed(source, line, "a manifest line must be a JSON object")
        return None
    missing = [k for k in ("study_id", "image", "sentences") if k not in record]
    if missing:
        log.malformed(source, line, f"missing {', '.join(missing)}")
        return None
    study_id = str(record["study_id"])
    record_split = str(record.get("split", ""))
    splits_seen.add(record_split)
    if split.ids is not None:
        if not split.keeps_id(study_id):
            return None
    elif not split.is_all and record_split != split.name:
        return None
    size = None
    if "width" in record and "height" in record:
        try:
            size = parse_size(record["width"], record["height"])
        except ValueError as exc:
            log.malformed(source, line, str(exc))
            return None
    if not isinstance(record["sentences"], list):
        log.malformed(source, line, "'sentences' must be a list")
        return None
    by_category: dict[str, list] = {}  # class-prompt mode: one sample per category and image
    groundings: list[Grounding] = []
    for index, sentence in enumerate(record["sentences"]):
        if not isinstance(sentence, dict) or sentence.get("kind") != "finding":
            continue
        try:
            text = str(sentence["text"]).strip()
            boxes = tuple(parse_box(b) for b in sentence.get("boxes") or [])
        except (KeyError, TypeError, ValueError) as exc:
            message = "no text" if isinstance(exc, KeyError) else str(exc)
            log.malformed(source, line, f"sentence {index}: {message}")
            continue
        if not boxes or not text:
            continue  # a finding without a box (e.g. a generator variant) cannot be scored
        category = str(sentence.get("finding") or "finding")
        if category.lower() in prompts:
            by_category.setdefault(category, []).extend(boxes)
        else:
            groundings.append(Grounding(text, category, boxes, reference_size=size))
    for category, boxes in by_category.items():
        groundings.append(Grounding(prompts[category.lower()], category, tuple(boxes),
                                    reference_size=size))
    if not groundings:
        return None
    image = base / str(record["image"])
    if not is_file(image) and record.get("image_png"):
        image = base / str(record["image_png"])  # the optional PNG copy stands in
    return AnnotatedImage(study_id, image, tuple(groundings))

