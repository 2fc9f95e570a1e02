"""`lesionloc-train prepare-mimic`: a training manifest (the record format of docs/phantoms.md)
from MIMIC-CXR-JPG in its official PhysioNet layout plus the MIMIC-CXR free-text reports.

Pure Python, no torch: the split and metadata tables are streamed row by row and no image is
decoded (width and height come from the metadata table's Columns and Rows).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import click
from tqdm import tqdm

from lesionloc_runtime.cli_common import HELP_OPTIONS, Command, run_guarded
from lesionloc_runtime.errors import ConfigError, DataError, OutputError, ReportError
from lesionloc_runtime.fileio import atomic_open, is_dir, is_file
from lesionloc_runtime.text import read_report
from lesionloc_train.mimic_tables import (
    METADATA_TABLE,
    SPLIT_TABLE,
    SPLITS,
    MimicImage,
    find_table,
    read_metadata_table,
    read_split_table,
)

DEFAULT_VIEWS = ("PA", "AP")
MAX_WARNINGS = 20


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
    wanted = _wanted_splits(splits)
    views = [v.upper() for v in views]
    if not views:
        raise ConfigError("no view to keep; give ViewPosition values such as PA,AP")
    root = Path(os.path.abspath(root))
    out = Path(os.path.abspath(out))
    _check_locations(root, out, overwrite)
    split_path = find_table(root, SPLIT_TABLE)
    metadata_path = find_table(root, METADATA_TABLE)
    files = _Files(root / "files", _reports_files(Path(os.path.abspath(reports or root)),
                                                  check_files), out.parent)

    summary = PrepareSummary(out, wanted)
    warn = _Warnings(summary, echo)
    split_of, summary.table_rows[split_path.name] = read_split_table(split_path, warn)
    studies, summary.table_rows[metadata_path.name] = read_metadata_table(
        metadata_path, split_of, set(wanted), views, warn, summary.skipped)
    del split_of  # ~377k entries, not needed from here on

    try:
        with atomic_open(out, "wb") as handle:
            _write_rows(handle, studies, files, _Choice(views, all_frontal, limit, check_files),
                        summary)
            if not summary.total:  # raised inside: the empty manifest is not kept
                raise DataError(_nothing_written(summary, files.reports))
    except OSError as exc:  # --out below a file, a read-only or full disk
        raise OutputError(f"{out}: cannot write the manifest ({exc.strerror or exc})",
                          exc.errno) from None
    return summary


def _wanted_splits(splits: Sequence[str]) -> list[str]:
    """The manifest's split names for MIMIC's (or the manifest's own), in order, once each."""
    wanted = list(dict.fromkeys(SPLITS.get(s, s) for s in splits))
    unknown = [s for s in wanted if s not in SPLITS.values()]
    if unknown or not wanted:
        raise ConfigError(f"splits {', '.join(unknown) or '(none)'}: use train, validate and/or test")
    return wanted


def _check_locations(root: Path, out: Path, overwrite: bool) -> None:
    """Refuse an --out that is a directory or exists, and a ROOT that is not MIMIC-CXR-JPG's."""
    if is_dir(out):
        raise ConfigError(f"--out {out} is a directory; give the manifest file, e.g. {out}/manifest.jsonl")
    if os.path.exists(out) and not overwrite:  # False, not OSError, for a name over NAME_MAX
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    if not is_dir(root):
        raise DataError(f"{root}: no such directory")
    if not is_dir(root / "files"):
        raise DataError(
            f"{root}: no files/ directory; ROOT must be the MIMIC-CXR-JPG directory that holds "
            "files/p10/... and the mimic-cxr-2.0.0-*.csv.gz tables"
        )


@dataclass(frozen=True)
class _Files:
    """Where the images and reports are, and how the manifest (in `manifest_dir`) names them."""

    images: Path
    reports: Path
    manifest_dir: Path

    @property
    def image_base(self) -> str:
        return _location(self.images, self.manifest_dir)

    @property
    def report_base(self) -> str:
        return _location(self.reports, self.manifest_dir)


@dataclass(frozen=True)
class _Choice:
    """Which images of a study become rows: the first present one of the preferred view, or
    every one (`all_frontal`); at most `limit` rows; files checked or not."""

    views: Sequence[str]
    all_frontal: bool
    limit: int | None
    check_files: bool

    def full(self, summary: PrepareSummary) -> bool:
        return self.limit is not None and summary.total >= self.limit


def _write_rows(handle: BinaryIO, studies: dict[tuple[str, str], dict[str, MimicImage]],
                files: _Files, choice: _Choice, summary: PrepareSummary) -> None:
    """One row per chosen image, studies in subject/study order, counted in `summary`."""
    prefer = _preference(choice.views)
    image_base, report_base = files.image_base, files.report_base
    keys = sorted(studies, key=lambda k: (int(k[0]), int(k[1])))
    for key in tqdm(keys, desc="studies", unit=" studies", disable=None, leave=False):
        if choice.full(summary):
            break
        candidates = sorted(studies[key].values(), key=prefer)
        if choice.check_files:
            candidates = _present(candidates, files, choice.all_frontal, summary)
        for image in candidates if choice.all_frontal else candidates[:1]:
            if choice.full(summary):
                break
            record = _record(image, image_base, report_base, choice.all_frontal)
            handle.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            summary.written[image.split] += 1


def _present(candidates: list[MimicImage], files: _Files, all_frontal: bool,
             summary: PrepareSummary) -> list[MimicImage]:
    """The candidates whose image file exists, or none (the study skipped and counted) when
    none does or the study's report cannot train."""
    present = [c for c in candidates if is_file(files.images / c.image_relpath)]
    if not present:
        summary.skipped["image missing"] += 1
        return []
    problem = report_problem(files.reports / candidates[0].report_relpath)
    if problem is not None:
        summary.skipped[problem] += 1
        return []
    if all_frontal and len(present) < len(candidates):
        summary.skipped["image missing (study kept)"] += len(candidates) - len(present)
    return present


def _record(image: MimicImage, image_base: str, report_base: str,
            all_frontal: bool) -> dict[str, Any]:
    return {
        # The training cache keys images by study_id, so with several images per study each
        # row needs its own.
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
