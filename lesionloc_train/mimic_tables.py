"""MIMIC-CXR-JPG's split and metadata tables (csv or csv.gz) streamed row by row into the images
a training manifest may list; a malformed row is reported through `warn` and skipped."""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lesionloc_runtime.errors import DataError, printable
from lesionloc_runtime.fileio import is_file

# MIMIC-CXR-JPG 2.0.0 and 2.1.0 both ship these names (2.1.0 did not rename them), gzipped.
SPLIT_TABLE = "mimic-cxr-2.0.0-split.csv"
METADATA_TABLE = "mimic-cxr-2.0.0-metadata.csv"
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
METADATA_COLUMNS = ("dicom_id", "study_id", "subject_id", "ViewPosition", "Rows", "Columns")
# MIMIC's split names -> the manifest's; training and validation read "val".
SPLITS = {"train": "train", "validate": "val", "test": "test"}
# Official ids are hex groups with dashes (44 characters); the cap keeps file names short.
_DICOM_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,99}")


# Called with the table, the line number and why the row was skipped.
Warn = Callable[[Path, int, str], None]


@dataclass(frozen=True, slots=True)  # slots: ~300k of them live at once
class MimicImage:
    """One metadata row that passed the split and view filters. Ids are the tables' digits
    ("10000032", "50414267"); the manifest writes them with MIMIC's p/s prefixes."""

    subject_id: str
    study_id: str
    dicom_id: str
    split: str  # manifest split: train, val or test
    view: str
    width: int
    height: int

    @property
    def image_relpath(self) -> str:
        """Path below files/: pXX/pSUBJECT/sSTUDY/DICOM.jpg, pXX the subject's first 2 digits."""
        return f"p{self.subject_id[:2]}/p{self.subject_id}/s{self.study_id}/{self.dicom_id}.jpg"

    @property
    def report_relpath(self) -> str:
        """Path below the reports' files/: pXX/pSUBJECT/sSTUDY.txt."""
        return f"p{self.subject_id[:2]}/p{self.subject_id}/s{self.study_id}.txt"


def find_table(root: Path, name: str) -> Path:
    """`name` or `name`.gz in ROOT (PhysioNet serves .gz; some users decompress them)."""
    for candidate in (root / name, root / f"{name}.gz"):
        if is_file(candidate):
            return candidate
    raise DataError(
        f"{root}: {name}.gz not found (nor {name}); ROOT must be the MIMIC-CXR-JPG directory "
        "that holds files/ and the mimic-cxr-2.0.0-*.csv.gz tables"
    )


def iter_table(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV table, plain or gzipped, whose header must name `required`.
    A file that cannot be read at all (truncated gzip, binary data) is a DataError."""
    opener: Callable[..., Any] = gzip.open if path.name.endswith(".gz") else open
    line = 1
    try:
        # utf-8-sig: a table re-saved by a spreadsheet may start with a byte order mark.
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"{path}: column(s) {', '.join(missing)} missing from the header "
                    f"({printable(','.join(header), 200) or 'empty file'}); is this the official "
                    "MIMIC-CXR-JPG table?"
                )
            for row in reader:
                line = reader.line_num
                yield line, row
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: unreadable after line {line} ({exc}); download it again") from None


def _row_problem(row: dict[Any, Any], required: Sequence[str]) -> str | None:
    if None in row:  # DictReader files surplus fields under the key None
        return f"{len(row) - 1 + len(row[None])} fields where the header has {len(row) - 1}"
    if any(row.get(c) is None for c in required):
        return "fewer fields than the header"
    return None


def _digits(value: str, prefix: str) -> str | None:
    """An id as digits; MIMIC's own p/s prefix is tolerated ("p10000032")."""
    value = value.strip()
    if value[:1].lower() == prefix:
        value = value[1:]
    # official ids have 8 digits; over 18, one would not even convert to an int cheaply
    return value if 2 <= len(value) <= 18 and value.isascii() and value.isdigit() else None


def _size(value: str) -> int | None:
    """Rows / Columns as a positive integer ("2544", or "2544.0" from a pandas round trip)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() and number > 0 else None


def read_split_table(path: Path, warn: Warn) -> tuple[dict[str, str], int]:
    """dicom_id -> manifest split, for every split (so "not in the split table" can be told
    apart from "in a split that was not asked for"); and the number of data rows."""
    split_of: dict[str, str] = {}
    rows = 0
    for line, row in tqdm(iter_table(path, SPLIT_COLUMNS), desc="split table", unit=" rows",
                          disable=None, leave=False):
        rows += 1
        problem = _row_problem(row, SPLIT_COLUMNS)
        dicom = row["dicom_id"].strip() if problem is None else ""
        split = row["split"].strip().lower() if problem is None else ""
        if problem is None and not _DICOM_ID.fullmatch(dicom):
            problem = f"dicom_id {row['dicom_id']!r} is not an image id"
        if problem is None and split not in SPLITS:
            problem = f"split {row['split']!r} is not one of {', '.join(SPLITS)}"
        if problem is not None:
            warn(path, line, problem)
            continue
        name = SPLITS[split]  # the shared constant: 377k rows cost no extra strings
        if split_of.setdefault(dicom, name) != name:
            warn(path, line, f"dicom_id {dicom} was already listed in split {split_of[dicom]}")
    return split_of, rows


def read_metadata_table(
    path: Path, split_of: dict[str, str], splits: set[str], views: Sequence[str],
    warn: Warn, skipped: Counter[str],
) -> tuple[dict[tuple[str, str], dict[str, MimicImage]], int]:
    """Images of the wanted splits and views, grouped by (subject, study); studies of the
    wanted splits without such a view are counted in `skipped`."""
    studies: dict[tuple[str, str], dict[str, MimicImage]] = {}
    seen: set[tuple[str, str]] = set()
    rows = 0
    for line, row in tqdm(iter_table(path, METADATA_COLUMNS), desc="metadata table",
                          unit=" rows", disable=None, leave=False):
        rows += 1
        problem = _row_problem(row, METADATA_COLUMNS)
        if problem is not None:
            warn(path, line, problem)
            continue
        dicom = row["dicom_id"].strip()
        subject = _digits(row["subject_id"], "p")
        study = _digits(row["study_id"], "s")
        if not _DICOM_ID.fullmatch(dicom) or subject is None or study is None:
            bad = ("dicom_id" if not _DICOM_ID.fullmatch(dicom)
                   else "subject_id" if subject is None else "study_id")
            warn(path, line, f"{bad} {row[bad]!r} is not an id")
            continue
        split = split_of.get(dicom)
        if split is None:
            skipped["image not in the split table"] += 1
            continue
        if split not in splits:
            continue
        key = (subject, study)
        seen.add(key)
        # Real rows may have an empty ViewPosition; those images are never chosen.
        view = row["ViewPosition"].strip().upper()
        if view not in views:
            continue
        width, height = _size(row["Columns"]), _size(row["Rows"])
        if width is None or height is None:
            bad = "Columns" if width is None else "Rows"
            warn(path, line, f"{bad} {row[bad]!r} is not a positive integer")
            continue
        images = studies.setdefault(key, {})
        if dicom in images:
            warn(path, line, f"dicom_id {dicom} appears twice")
            continue
        images[dicom] = MimicImage(subject, study, dicom, split, view, width, height)
    skipped[f"study without a {'/'.join(views)} view"] += len(seen) - len(studies)
    return studies, rows
