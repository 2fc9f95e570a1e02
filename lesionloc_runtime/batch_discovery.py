"""Which studies a batch runs: the images of a directory (every file below it, hidden folders
and what an earlier run wrote left out) with their reports matched by file stem, or the rows
of a .jsonl manifest. Each study gets an id that names its output folder."""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from lesionloc_runtime.batch_manifest import iter_manifest_rows
from lesionloc_runtime.errors import DataError
from lesionloc_runtime.fileio import is_file
from lesionloc_runtime.imageio import IMAGE_SUFFIXES, has_dicom_preamble
from lesionloc_runtime.outputs import derived_study_id, earlier_output, study_id_problem

__all__ = ["StudyTask", "discover"]

_REPORT_SUFFIXES = (".txt", ".TXT")


@dataclass(frozen=True)
class StudyTask:
    study_id: str
    image: Path
    report: Path | None
    expected_report: Path | None = None  # where a report matched by file stem would be



def discover(source: Path, reports: Path | None, skip: Path | None = None) -> list[StudyTask]:
    """Studies in a manifest (.jsonl: image + report per row) or a directory of images, with
    reports matched by file stem in `reports` (default: the image's own directory). The scan
    skips hidden directories and `skip` (the output directory, when it lies inside)."""
    if source.suffix == ".jsonl" and not source.is_dir():
        return _from_manifest(source)
    if not source.is_dir():
        raise DataError(f"{source}: not a directory or a .jsonl manifest")
    tasks: list[StudyTask] = []
    seen: set[str] = set()
    for image in _scan(source, skip):
        if image.suffix.lower() not in IMAGE_SUFFIXES or image.name.startswith("."):
            continue
        if image.suffix == "" and not has_dicom_preamble(image):
            continue  # PACS exports often drop extensions: take those that say they are DICOM
        name = image.relative_to(source).with_suffix("").as_posix().replace("/", "__")
        ext = image.suffix.lstrip(".").lower()  # a.dcm and a.png: a and a__png
        names = itertools.chain((name, f"{name}__{ext}"),
                                (f"{name}__{ext}{n}" for n in itertools.count(2)))
        study_id = next(i for i in map(derived_study_id, names) if i not in seen)
        seen.add(study_id)
        tasks.append(_with_report(study_id, image, reports or image.parent))
    if not tasks:
        raise DataError(f"{source}: no image files (.dcm, .png, .jpg) found")
    return tasks


def _scan(source: Path, skip: Path | None) -> list[Path]:
    """Every file below `source`, sorted, without descending into hidden directories (.git,
    .snapshot), `skip` or what an earlier run wrote: a rerun must not take outputs for studies.
    A symbolic link to a folder elsewhere is followed (a day's PACS export linked into the
    input), but each real folder is scanned once: a link to a folder inside `source` (scanned
    where it is) or to one already scanned is left out with a warning, rather than giving its
    films a second study id or looping; of two links to one folder the first by name wins."""
    skipped = skip.resolve() if skip is not None else None
    files, earlier, again = [], [], []
    root = source.resolve()
    seen = {root}
    for folder, dirs, names in os.walk(source, followlinks=True):
        if earlier_output(Path(folder), names):  # an earlier run's OUT, or one of its studies
            earlier.append(folder)
            dirs[:] = []
            continue
        kept = []
        for d in sorted(dirs):
            real = (Path(folder) / d).resolve()
            if d.startswith(".") or real == skipped:
                continue
            if real in seen or ((Path(folder) / d).is_symlink() and real.is_relative_to(root)):
                again.append(str(Path(folder) / d))
                continue
            seen.add(real)
            kept.append(d)
        dirs[:] = kept
        files += [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
    _warn("left out what earlier lesionloc-run wrote", earlier)
    _warn("left out links to folders scanned elsewhere in the input", again)
    return sorted(files)


def _warn(what: str, folders: list[str]) -> None:
    if folders:
        logging.getLogger(__name__).warning("%s: %s", what, ", ".join(folders[:3]) + (
            f" and {len(folders) - 3} more" if len(folders) > 3 else ""))


def _with_report(study_id: str, image: Path, folder: Path) -> StudyTask:
    """The study with the report `<image stem>.txt` in `folder`, or with none but where it
    was looked for."""
    candidates = [folder / f"{image.stem}{suffix}" for suffix in _REPORT_SUFFIXES]
    report = next((c for c in candidates if is_file(c)), None)
    return StudyTask(study_id, image, report, candidates[0])


def _from_manifest(path: Path) -> list[StudyTask]:
    """Rows `{"image": ..., "report": ..., "study_id": ...}`, paths relative to the manifest;
    without "report", `<image stem>.txt` beside the image; without "study_id", the image's
    file stem. A bad row or a study id used twice is a DataError naming the line."""
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    tasks = []
    first_line: dict[str, int] = {}
    for line_no, row in iter_manifest_rows(path):
        if row is None or not _is_path(row.get("image")):
            raise DataError(f"{path}:{line_no}: malformed row (needs at least 'image')")
        if row.get("report") is not None and not _is_path(row["report"]):
            raise DataError(f"{path}:{line_no}: malformed row ('report' must be a path)")
        image = path.parent / row["image"]
        if "study_id" in row:
            study_id = row["study_id"]
            if isinstance(study_id, int) and not isinstance(study_id, bool):
                study_id = str(study_id)
            problem = study_id_problem(study_id)
            if problem:
                raise DataError(f"{path}:{line_no}: study_id {study_id!r} {problem}")
        else:
            study_id = derived_study_id(image.stem)
        if study_id in first_line:
            raise DataError(f"{path}:{line_no}: study_id {study_id!r} is also on line "
                            f"{first_line[study_id]}; give each study its own 'study_id'")
        first_line[study_id] = line_no
        if row.get("report"):
            tasks.append(StudyTask(study_id, image, path.parent / row["report"]))
        else:
            tasks.append(_with_report(study_id, image, image.parent))
    if not tasks:
        raise DataError(f"{path}: the manifest has no rows")
    return tasks


def _is_path(value: object) -> bool:
    # a NUL cannot be in a file name: the lookups raise ValueError, not OSError
    return isinstance(value, str) and bool(value.strip()) and "\x00" not in value
