"""The study manifest (JSON Lines, one study a row, paths relative to the manifest; the record
format is in docs/phantoms.md): read once here for batch runs, training, validation, export
calibration and evaluation. Not the model bundle's card (lesionloc.json)."""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesionloc_runtime.errors import DataError
from lesionloc_runtime.fileio import is_file

__all__ = ["ManifestStats", "StudyRecord", "iter_manifest_rows", "read_manifest"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyRecord:
    """One manifest row, paths resolved. `sentences` keeps the manifest's ground truth
    (boxes) for validation only; training never reads boxes."""

    study_id: str
    image: Path
    report: Path
    split: str | None
    width: int | None
    height: int | None
    sentences: tuple[dict[str, Any], ...] = ()


@dataclass
class ManifestStats:
    rows: int = 0
    usable: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def iter_manifest_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, parsed row or None when the line is not a JSON object), blank lines skipped.
    UTF-8, with or without a byte order mark; anything else is a DataError naming the line."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    with handle:
        for line_no, raw in enumerate(handle, 1):
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                utf16 = " (it looks like UTF-16)" if raw[:2] in (codecs.BOM_UTF16_LE,
                                                                  codecs.BOM_UTF16_BE) else ""
                raise DataError(f"{path}:{line_no}: not UTF-8 text{utf16}; save the manifest "
                                "as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # also a 5,000-digit number, [[[[... too deep
                yield line_no, None
                continue
            yield line_no, row if isinstance(row, dict) else None


def read_manifest(
    path: str | Path, split: str | None = None, max_rows: int | None = None
) -> tuple[list[StudyRecord], ManifestStats]:
    """Rows of a manifest.jsonl (optionally one split). Rows with missing fields, missing files
    or an empty report are skipped and counted; no usable row at all is a DataError."""
    path = Path(path)
    if not is_file(path):
        raise DataError(f"{path}: manifest not found")
    root = path.parent
    stats = ManifestStats()
    records: list[StudyRecord] = []
    for line_no, row in iter_manifest_rows(path):
        stats.rows += 1
        try:
            if row is None:
                raise KeyError("not a JSON object")
            image = root / row["image"]
            report = root / row["report"]
            sentences = row.get("sentences", [])
            if not (isinstance(sentences, list) and all(isinstance(x, dict) for x in sentences)):
                raise TypeError("'sentences' must be a list of objects")
        except (KeyError, TypeError):
            stats.skip("malformed row")
            _log.warning("%s:%d: malformed manifest row skipped", path, line_no)
            continue
        if split is not None and row.get("split") not in (None, split):
            continue
        if not is_file(image):
            stats.skip("missing image")
            continue
        if not is_file(report) or report.stat().st_size == 0:
            stats.skip("missing or empty report")
            continue
        records.append(StudyRecord(
            str(row.get("study_id", image.stem)), image, report, row.get("split"),
            row.get("width"), row.get("height"), tuple(sentences),
        ))
        if max_rows and len(records) >= max_rows:
            break
    stats.usable = len(records)
    if not records:
        where = f" in split {split!r}" if split else ""
        raise DataError(f"{path}: no usable rows{where} ({stats.rows} rows, skipped {stats.skipped})")
    return records, stats
