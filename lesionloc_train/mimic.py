"""`lesionloc-train prepare-mimic`: a training manifest (the record format of docs/phantoms.md)
from MIMIC-CXR-JPG in its official PhysioNet layout plus the MIMIC-CXR free-text reports.

Pure Python, no torch: the split and metadata tables are streamed row by row and no image is
decoded (width and height come from the metadata table's Columns and Rows).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from lesionloc_runtime.cli_common import HELP_OPTIONS, Command, run_guarded
from lesionloc_runtime.errors import ConfigError, DataError, OutputError, ReportError, printable
from lesionloc_runtime.fileio import atomic_open, is_dir, is_file
from lesionloc_runtime.text import read_report

# MIMIC-CXR-JPG 2.0.0 and 2.1.0 both ship these names (2.1.0 did not rename them), gzipped.
SPLIT_TABLE = "mimic-cxr-2.0.0-split.csv"
METADATA_TABLE = "mimic-cxr-2.0.0-metadata.csv"
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
METADATA_COLUMNS = ("dicom_id", "study_id", "subject_id", "ViewPosition", "Rows", "Columns")
# MIMIC's split names -> the manifest's; training and validation read "val".
SPLITS = {"train": "train", "validate": "val", "test": "test"}
DEFAULT_VIEWS = ("PA", "AP")
MAX_WARNINGS = 20

# Official ids are hex groups with dashes (44 characters); the cap keeps file names short.
_DICOM_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,99}")


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


@dataclass
class PrepareSummary:
    """What prepare_manifest wrote and why the rest was left out."""

    out: Path
    splits: list[str] = field(default_factory=list)  # manifest splits asked for, in order
    written: Counter[str] = field(default_factory=Counter)  # rows per manifest split
    skipped: Counter[str] = field(default_factory=Counter)  # count per reason
    table_rows: dict[str, int] = field(default_factory=dict)  # data rows read per table
    malformed: list[str] = field(default_factory=list)  # "table:line: why", every one

    @property
    def total(self) -> int:
        return sum(self.written.values())


class _Warnings:
    """Malformed CSV rows: each is recorded; the first few are also echoed at once, so a
    wholly wrong file does not print 377,000 lines."""

    def __init__(self, summary: PrepareSummary, echo: Callable[[str], None] | None) -> None:
        self.summary, self.echo = summary, echo

    def __call__(self, path: Path, line: int, why: str) -> None:
        message = f"{path.name}:{line}: {why}"
        self.summary.malformed.append(message)
        self.summary.skipped["malformed CSV row"] += 1
        if self.echo and len(self.summary.malformed) <= MAX_WARNINGS:
            self.echo(f"warning: {message}; row skipped")


# ---------------------------------------------------------------------------------------------
# Tables


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


def read_split_table(path: Path, warn: _Warnings) -> tuple[dict[str, str], int]:
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
    warn: _Warnings, skipped: Counter[str],
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


# ---------------------------------------------------------------------------------------------
# Files


def _reports_files(reports: Path, required: bool) -> Path:
    """The files/ directory of the extracted MIMIC-CXR reports below `reports`."""
    if is_dir(reports / "files") or not required:
        return reports / "files"
    if reports.name == "files" and is_dir(reports):
        return reports  # pointed at files/ itself
    if is_file(reports / "mimic-cxr-reports.zip"):
        raise DataError(f"{reports}: extract mimic-cxr-reports.zip there first (it holds files/)")
    raise DataError(
        f"{reports}: no files/ directory with the MIMIC-CXR reports; pass --reports DIR, the "
        "directory where mimic-cxr-reports.zip was extracted (it contains files/p10/...)"
    )


def report_problem(path: Path) -> str | None:
    """Why a report cannot train (a skip reason), or None: the runtime's own parser must find
    a sentence in FINDINGS / IMPRESSION (or the whole text), exactly as training will."""
    try:
        if path.stat().st_size == 0:
            return "report empty"
    except OSError:
        return "report missing"
    try:
        report = read_report(path)
    except ReportError:
        return "report without sentences"
    return None if report.sentences else "report without sentences"


def _location(directory: Path, manifest_dir: Path) -> str:
    """How the manifest names `directory` (both absolute and normalised): relative, POSIX,
    when it lies below the manifest's directory, so the tree can move as a whole."""
    if directory == manifest_dir:
        return ""
    if directory.is_relative_to(manifest_dir):
        return directory.relative_to(manifest_dir).as_posix() + "/"
    return str(directory) + os.sep


def _preference(views: Sequence[str]) -> Callable[[MimicImage], tuple[int, str]]:
    rank = {v: i for i, v in enumerate(views)}
    return lambda image: (rank[image.view], image.dicom_id)


# ---------------------------------------------------------------------------------------------
# The manifest


def parse_list(value: str, allowed: Sequence[str] | None, option: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{option} is empty; give a comma-separated list")
    if allowed is not None:
        unknown = [v for v in items if v not in allowed]
        if unknown:
            raise ConfigError(f"{option}: {', '.join(unknown)} not one of {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def prepare_manifest(
    root: Path, out: Path, reports: Path | None = None,
    splits: Sequence[str] = tuple(SPLITS), views: Sequence[str] = DEFAULT_VIEWS,
    all_frontal: bool = False, limit: int | None = None, check_files: bool = True,
    overwrite: bool = False, echo: Callable[[str], None] | None = None,
) -> PrepareSummary:
    """Write `out` (manifest.jsonl) from MIMIC-CXR-JPG at `root`. `splits` are MIMIC's names
    (train, validate, test) or the manifest's (val); `views` ViewPosition values in order of
    preference."""
    wanted = list(dict.fromkeys(SPLITS.get(s, s) for s in splits))
    unknown = [s for s in wanted if s not in SPLITS.values()]
    if unknown or not wanted:
        raise ConfigError(f"splits {', '.join(unknown) or '(none)'}: use train, validate and/or test")
    views = [v.upper() for v in views]
    if not views:
        raise ConfigError("no view to keep; give ViewPosition values such as PA,AP")
    root = Path(os.path.abspath(root))
    out = Path(os.path.abspath(out))
    if is_dir(out):
        raise ConfigError(f"--out {out} is a directory; give the manifest file, e.g. {out}/manifest.jsonl")
    if os.path.exists(out) and not overwrite:  # False, not OSError, for a name over NAME_MAX
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    if not is_dir(root):
        raise DataError(f"{root}: no such directory")
    images_files = root / "files"
    if not is_dir(images_files):
        raise DataError(
            f"{root}: no files/ directory; ROOT must be the MIMIC-CXR-JPG directory that holds "
            "files/p10/... and the mimic-cxr-2.0.0-*.csv.gz tables"
        )
    split_path = find_table(root, SPLIT_TABLE)
    metadata_path = find_table(root, METADATA_TABLE)
    reports_files = _reports_files(Path(os.path.abspath(reports or root)), check_files)

    summary = PrepareSummary(out, wanted)
    warn = _Warnings(summary, echo)
    split_of, summary.table_rows[split_path.name] = read_split_table(split_path, warn)
    studies, summary.table_rows[metadata_path.name] = read_metadata_table(
        metadata_path, split_of, set(wanted), views, warn, summary.skipped)
    del split_of  # ~377k entries, not needed from here on

    image_base = _location(images_files, out.parent)
    report_base = _location(reports_files, out.parent)
    prefer = _preference(views)
    try:
        with atomic_open(out, "wb") as handle:
            keys = sorted(studies, key=lambda k: (int(k[0]), int(k[1])))
            for key in tqdm(keys, desc="studies", unit=" studies", disable=None, leave=False):
                if limit is not None and summary.total >= limit:
                    break
                candidates = sorted(studies[key].values(), key=prefer)
                if check_files:
                    present = [c for c in candidates if is_file(images_files / c.image_relpath)]
                    if not present:
                        summary.skipped["image missing"] += 1
                        continue
                    problem = report_problem(reports_files / candidates[0].report_relpath)
                    if problem is not None:
                        summary.skipped[problem] += 1
                        continue
                    if all_frontal and len(present) < len(candidates):
                        summary.skipped["image missing (study kept)"] += len(candidates) - len(present)
                    candidates = present
                for image in candidates if all_frontal else candidates[:1]:
                    if limit is not None and summary.total >= limit:
                        break
                    record = {
                        # The training cache keys images by study_id, so with several images per
                        # study each row needs its own.
                        "study_id": (f"s{image.study_id}_{image.dicom_id}" if all_frontal
                                     else f"s{image.study_id}"),
                        "subject_id": f"p{image.subject_id}",
                        "split": image.split,
                        "image": image_base + image.image_relpath,
                        "report": report_base + image.report_relpath,
                        "width": image.width,
                        "height": image.height,
                        "view": image.view,
                        "dicom_id": image.dicom_id,
                    }
                    handle.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
                    summary.written[image.split] += 1
            if not summary.total:  # raised inside: the empty manifest is not kept
                raise DataError(_nothing_written(summary, reports_files))
    except OSError as exc:  # --out below a file, a read-only or full disk
        raise OutputError(f"{out}: cannot write the manifest ({exc.strerror or exc})",
                          exc.errno) from None
    return summary


def _nothing_written(summary: PrepareSummary, reports_files: Path) -> str:
    reasons = _format_counts(summary.skipped) or "nothing matched"
    hint = ""
    if summary.skipped.get("report missing") and not any(
            r.startswith("report ") and r != "report missing" for r in summary.skipped):
        hint = (f"; no report was found under {reports_files}: pass --reports DIR, where "
                "mimic-cxr-reports.zip was extracted")
    return f"no usable study in split(s) {', '.join(summary.splits)} (skipped: {reasons}){hint}"


def _format_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()) if n)


def format_summary(summary: PrepareSummary) -> str:
    per_split = ", ".join(f"{s} {summary.written[s]}" for s in summary.splits)
    tables = ", ".join(f"{n} rows of {name}" for name, n in summary.table_rows.items())
    lines = [f"wrote {summary.total} rows to {summary.out} ({per_split})", f"read {tables}"]
    if summary.skipped:
        lines.append(f"skipped: {_format_counts(summary.skipped)}")
    if len(summary.malformed) > MAX_WARNINGS:
        lines.append(f"({len(summary.malformed) - MAX_WARNINGS} more malformed rows not shown)")
    return "\n".join(lines)


@click.command(cls=Command, context_settings=HELP_OPTIONS)
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--reports", type=click.Path(path_type=Path), default=None,
              help="Directory where mimic-cxr-reports.zip was extracted (holds files/p10/...); "
                   "default: ROOT, for reports merged into the image tree.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The manifest to write, e.g. manifest.jsonl.")
@click.option("--splits", default="train,validate,test", show_default=True,
              help="Official splits to include; 'validate' is written as split 'val'.")
@click.option("--views", default=",".join(DEFAULT_VIEWS), show_default=True,
              help="ViewPosition values to keep, in order of preference.")
@click.option("--all-frontal", is_flag=True,
              help="Keep every image of a kept view (one row each) instead of one per study.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Stop after this many rows (studies in subject/study order).")
@click.option("--check-files/--no-check-files", default=True, show_default=True,
              help="Skip (and count) studies whose image or report is missing or whose report "
                   "has no sentence; --no-check-files touches no image or report file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def prepare_mimic(root: Path, reports: Path | None, out: Path, splits: str, views: str,
                  all_frontal: bool, limit: int | None, check_files: bool, overwrite: bool) -> None:
    """Build a training manifest from MIMIC-CXR-JPG (ROOT: the directory holding files/ and
    mimic-cxr-2.0.0-split.csv.gz / -metadata.csv.gz) and the MIMIC-CXR reports."""
    def work() -> None:
        # "val" is accepted too: it is what the manifest calls the validate split.
        split_list = parse_list(splits.lower(), (*SPLITS, "val"), "--splits")
        summary = prepare_manifest(
            root, out, reports=reports, splits=split_list,
            views=parse_list(views.upper(), None, "--views"), all_frontal=all_frontal,
            limit=limit, check_files=check_files, overwrite=overwrite,
            echo=lambda line: click.echo(line, err=True),
        )
        click.echo(format_summary(summary))

    run_guarded(work)
