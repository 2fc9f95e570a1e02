"""What every benchmark reader yields and reports: annotated images with their groundings
(prompt, category, boxes or mask), the read log of skipped rows and missing files, and splits."""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.errors import ConfigError, DataError, printable
from lesionloc_runtime.fileio import is_file

__all__ = [
    "AnnotatedImage",
    "DatasetStream",
    "Grounding",
    "Issue",
    "ReadLog",
    "Split",
    "existing_images",
    "find_first",
    "parse_box",
    "parse_size",
    "parse_split",
    "read_csv_rows",
    "relative",
]

# An annotation's image is at most this many pixels a side (the largest radiographs are about
# 4300); a bigger one is a damaged size, which would rescale its boxes to nothing.
_MAX_SIDE = 20_000
# An issue's message is cut to this many characters: a damaged file can put a 100 kB value
# into it, and the report lists every issue.
_MAX_ISSUE = 300
# A character decoded from a byte that is not UTF-8 (errors="surrogateescape").
_NOT_UTF8 = re.compile("[\udc80-\udcff]")

@dataclass(frozen=True)
class Grounding:
    """One evaluation sample: a prompt and the region it should light up on its image.

    The ground truth is boxes, a boolean mask, or SIIM-style RLE strings decoded on the
    image's own grid. `reference_size` is the (width, height) the boxes or mask were drawn on;
    when the image read from disk has another size the runner rescales the truth to it.
    """

    prompt: str
    category: str
    boxes: tuple[Box, ...] = ()
    mask: np.ndarray | None = field(default=None, repr=False)
    rle: tuple[str, ...] = ()
    reference_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class AnnotatedImage:
    """One image of a benchmark with every grounding to score on it (one heatmap pass)."""

    image_id: str
    path: Path
    groundings: tuple[Grounding, ...]


@dataclass(frozen=True)
class Issue:
    """A problem found while reading or scoring, kept in the report instead of stopping."""

    kind: str  # "malformed" | "unreadable" | "skipped" | "rescaled" | "note"
    source: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "source": self.source, "line": self.line,
                "message": self.message}


@dataclass
class ReadLog:
    """Everything skipped on the way, with counts: the report shows it, nothing crashes."""

    issues: list[Issue] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    malformed_rows: int = 0
    unreadable_images: int = 0
    skipped_samples: int = 0
    negative_images: int = 0

    def malformed(self, source: str, line: int | None, message: str) -> None:
        self.malformed_rows += 1
        self.issues.append(Issue("malformed", source, printable(message, _MAX_ISSUE), line))

    def missing(self, path: str | os.PathLike[str]) -> None:
        self.missing_images.append(str(path))

    def warn(self, kind: str, source: str, message: str, line: int | None = None) -> None:
        self.issues.append(Issue(kind, source, printable(message, _MAX_ISSUE), line))


@dataclass
class DatasetStream:
    """A benchmark opened for evaluation. `images` is lazy: the annotation file is indexed
    up front (so every malformed row is reported), images and masks are touched only as the
    runner consumes them."""

    name: str
    root: Path
    annotation_file: Path
    split: str
    images: Iterator[AnnotatedImage]
    total: int | None
    log: ReadLog
    notes: list[str] = field(default_factory=list)


# -- splits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Which images to keep: all, a split name of the annotation file, or a list of ids."""

    name: str
    ids: frozenset[str] | None = None

    @property
    def is_all(self) -> bool:
        return self.name == "all" and self.ids is None

    def keeps_id(self, *image_ids: str) -> bool:
        return self.ids is None or any(i in self.ids for i in image_ids)

    def require_no_name(self, dataset: str) -> None:
        """Data sets whose official files define no split accept only `all` or an id file."""
        if self.ids is None and self.name != "all":
            raise ConfigError(
                f"--split {self.name}: the {dataset} files define no split; use --split all "
                "or --split FILE with the image ids to keep"
            )


def parse_split(value: str | None, default: str) -> Split:
    """`None` gives the data set's default; an existing file is a list of image ids (one per
    line, or the first column of a CSV); anything else is a split name."""
    if value is None or value == "":
        return Split(default)
    if os.path.isfile(value):
        return Split(value, frozenset(_read_ids(Path(value))))
    return Split(value)


def _read_ids(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--split {path}: cannot read the id list ({exc})") from None
    ids = []
    try:
        for row in csv.reader(text.splitlines()):
            if row and row[0].strip() and not row[0].lstrip().startswith("#"):
                ids.append(row[0].strip())
    except csv.Error as exc:  # e.g. a field over the csv module's limit of 128 KiB
        raise ConfigError(f"--split {path}: not a readable id list ({exc})") from None
    if not ids:
        raise ConfigError(f"--split {path}: the id list is empty")
    return ids


# -- shared parsing helpers ---------------------------------------------------------------


def parse_box(values: Sequence[object]) -> Box:
    """[x, y, w, h] as a Box of finite floats with positive width and height, else
    ValueError."""
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers [x, y, w, h], got {len(values)}")
    shown = printable(str(list(values)), 80)
    try:
        x, y, w, h = (float(str(v).strip()) for v in values)
    except ValueError:
        raise ValueError(f"box {shown} is not numeric") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"box {shown} is not finite")
    if w <= 0 or h <= 0:
        raise ValueError(f"box {shown} has no area (width and height must be > 0)")
    return Box(x, y, w, h)


def parse_size(width: object, height: object) -> tuple[int, int]:
    """(width, height) of an annotation's image as positive whole numbers of at most
    _MAX_SIDE pixels, else ValueError."""
    shown = f"{printable(str(width), 24)!r} x {printable(str(height), 24)!r}"
    try:
        w, h = float(str(width).strip()), float(str(height).strip())
    except ValueError:
        raise ValueError(f"image size {shown} is not numeric") from None
    if not (w.is_integer() and h.is_integer()):  # also NaN and infinity
        raise ValueError(f"image size {shown} is not in whole pixels")
    if not (0 < w <= _MAX_SIDE and 0 < h <= _MAX_SIDE):
        raise ValueError(f"image size {shown} is not between 1 and {_MAX_SIDE} pixels")
    return (int(w), int(h))


def read_csv_rows(
    path: Path, required: Sequence[str], what: str, aliases: dict[str, str] | None = None
) -> tuple[list[str], Iterator[tuple[int, dict[str, str] | None, str]]]:
    """Open an annotation CSV: check its header (names stripped, since e.g. SIIM's is
    "ImageId, EncodedPixels"), then yield (line number, row or None, problem) per record.

    A row with the wrong number of fields comes back as None with the problem, so the
    caller reports it with its line number and goes on.
    """
    try:
        # Bytes that are not UTF-8 are kept as surrogates and refused per row below: a strict
        # decoder fails on a whole block of the file at once, and at the end of the file on
        # every read after the first (a truncated character looped forever).
        handle = open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise DataError(f"{path}: cannot be opened ({exc.strerror})") from None
    reader = csv.reader(handle)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        handle.close()
        raise DataError(f"{path}: the file is empty, expected the {what} header") from None
    except csv.Error as exc:
        handle.close()
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if any(_NOT_UTF8.search(h) for h in header):
        handle.close()
        raise DataError(f"{path}: not a UTF-8 text file (its header has other bytes)")
    aliases = aliases or {}
    header = [aliases.get(h, h) for h in header]
    missing = [name for name in required if name not in header]
    if missing:
        handle.close()
        found = ", ".join(printable(h, 40) for h in header[:20]) + (", ..." if len(header) > 20
                                                                    else "")
        raise DataError(
            f"{path}: not a {what} file (missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; found {found if header else 'none'})"
        )
    return header, _csv_records(handle, reader, header)


def _csv_records(
    handle: TextIO, reader: Any, header: list[str]
) -> Iterator[tuple[int, dict[str, str] | None, str]]:
    """read_csv_rows' records after the header; closes `handle` when done."""
    with handle:
        line = reader.line_num
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over 128 KiB
                yield line + 1, None, f"unreadable CSV row ({exc})"
                line = reader.line_num
                continue
            start, line = line + 1, reader.line_num
            if not record or all(not v.strip() for v in record):
                continue
            if any(_NOT_UTF8.search(v) for v in record):
                yield start, None, "bytes that are not UTF-8"
                continue
            if len(record) != len(header):
                yield start, None, f"{len(record)} fields where the header has {len(header)}"
                continue
            yield start, dict(zip(header, record, strict=True)), ""


def find_first(directory: Path, names: Iterable[str]) -> Path | None:
    """The first of `names` that exists as a file in `directory`."""
    for name in names:
        candidate = directory / name
        if is_file(candidate):
            return candidate
    return None


def relative(path: Path, root: Path) -> str:
    """A path as the report shows it: relative to the data set root when inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def existing_images(
    entries: Iterable[AnnotatedImage], root: Path, log: ReadLog
) -> Iterator[AnnotatedImage]:
    """Yield the entries whose image file exists; list the others as missing."""
    for entry in entries:
        if is_file(entry.path):
            yield entry
        else:
            log.missing(relative(entry.path, root))
