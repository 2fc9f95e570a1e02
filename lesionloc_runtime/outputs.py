"""Writing one study's results into `OUT/<study_id>/`: the study page (study.html, the radiograph,
a heatmap layer per sentence), optional burned-in overlays, raw heatmaps and DICOM objects, and
last the study JSON (its presence means "done")."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionloc_runtime.cpuinfo import usable_cpus
from lesionloc_runtime.errors import ConfigError, OutputError
from lesionloc_runtime.fileio import atomic_write_bytes, atomic_write_json, temporary_of
from lesionloc_runtime.imageio import Radiograph, header_value
from lesionloc_runtime.render import (
    base_grey,
    combined_overlay,
    encode_png,
    sentence_overlay,
    summary_figure,
)
from lesionloc_runtime.results import STUDY_SCHEMA, STUDY_SCHEMA_VERSION, StudyResult
from lesionloc_runtime.viewer import page

__all__ = [
    "MAX_STUDY_ID_BYTES",
    "STUDY_JSON",
    "OutputOptions",
    "check_out_dir",
    "derived_study_id",
    "earlier_output",
    "done_document",
    "is_done",
    "listed_files",
    "study_id_problem",
    "write_study",
]

STUDY_JSON = "study.json"
_IDENTIFYING_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate")
MAX_STUDY_ID_BYTES = 128
# What write_study may name a file (besides study.json and the DICOM outputs): a rerun removes
# such files that the new result does not list, and never touches anything else
# (radiograph_full.jpg: where earlier versions, which also wrote a screen-size PNG, put a large
# film at full resolution).
_OUR_FILES = re.compile(r"sentence_\d{2,}(_layer)?\.png|sentence_\d{2,}\.npy|summary\.png|"
                        r"study\.html|radiograph\.png|radiograph\.jpg|radiograph_full\.jpg")


@dataclass(frozen=True)
class OutputOptions:
    save_raw: bool = False
    dicom_out: bool = False
    include_identifiers: bool = False
    synthetic_ids: object | None = None  # dicom_out.SyntheticIds for PNG/JPEG inputs
    overlays: bool = False  # burned-in sentence_NN.png and summary.png (--overlays)
    page: bool = True  # study.html with the radiograph and the heatmap layers it shows
    index_link: bool = False  # the page links to ../index.html (batch mode writes one)


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """One pool of drawing threads per process, kept between studies: OpenCV's first drawing
    calls in a new thread are far slower than in a warm one, so a pool made per study cost
    more than it saved. Keyed by pid: a
    forked child process (batch workers are spawned, but a library user may fork) makes its
    own, since threads do not survive a fork."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=min(4, usable_cpus()),
                                                 thread_name_prefix="lesionloc-draw"))
    return _POOL[1]


def study_id_problem(study_id: object) -> str | None:
    """Why `study_id` cannot name the folder OUT/<study id>/, or None when it can: it must be
    one plain folder name inside OUT, so no separator, not '.' or '..', no control character,
    and short enough for any file system (with room for the DICOM outputs' suffixes)."""
    if not isinstance(study_id, str) or not study_id:
        return "must be a non-empty string"
    if study_id in (".", ".."):
        return "cannot be '.' or '..'"
    if "/" in study_id or "\\" in study_id:
        return "cannot contain '/' or '\\'"
    if any(ord(c) < 32 or ord(c) == 127 for c in study_id):
        return "cannot contain control characters"
    try:
        size = len(study_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    if size > MAX_STUDY_ID_BYTES:
        return f"is longer than {MAX_STUDY_ID_BYTES} bytes (UTF-8)"
    return None


def derived_study_id(name: str) -> str:
    """A valid study id from a name taken from a path (file stem, relative path): separators,
    control characters and undecodable bytes become '_' or U+FFFD, and a name over the limit is
    cut and ends in '-' and 10 hex digits of its SHA-256, so different long names stay apart."""
    raw = name.encode("utf-8", "surrogatepass")
    text = re.sub(r"[\x00-\x1f\x7f/\\]", "_", raw.decode("utf-8", "replace"))
    if not text.strip("."):
        text = text.replace(".", "_") or "study"
    data = text.encode("utf-8")
    if len(data) > MAX_STUDY_ID_BYTES:
        digest = hashlib.sha256(raw).hexdigest()[:10]
        text = data[:MAX_STUDY_ID_BYTES - 11].decode("utf-8", "ignore") + "-" + digest
    return text


def _study_dir(out: Path, study_id: str) -> Path:
    problem = study_id_problem(study_id)
    if problem:
        raise ConfigError(f"study id {study_id!r} {problem}")
    return out / study_id


def check_out_dir(out: Path) -> None:
    """Refuse an output directory that cannot hold results before any work is done: it (or,
    if it does not exist yet, its nearest existing parent) must be a writable directory."""
    try:
        probe = out
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            what = "exists and is not a directory" if probe == out else f"{probe} is not a directory"
            raise ConfigError(f"--out {out}: {what}")
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as exc:  # read-only, no permission, a name too long
        raise OutputError(f"cannot write {exc.filename or out}: {exc.strerror or exc}",
                          exc.errno) from None


def listed_files(doc: dict) -> list[str]:
    """The file names a study document lists (its own and its sentences')."""
    names = list(doc["files"].values())
    for sentence in doc["sentences"]:
        names += sentence["files"].values()
    return [str(name) for name in names]


def done_document(out: Path, study_id: str) -> dict | None:
    """The study document of a finished study, or None: a study is done when its study.json is
    a whole study document of the current schema version and every file it lists exists and
    is not empty; anything less (a truncated JSON, a deleted overlay, a file a power cut left
    empty, a study written by an older version without its page) is redone."""
    folder = _study_dir(out, study_id)
    try:
        doc = json.loads((folder / STUDY_JSON).read_text(encoding="utf-8"))
        if (doc["schema"] == STUDY_SCHEMA and doc["schema_version"] == STUDY_SCHEMA_VERSION
                and all((folder / name).stat().st_size > 0 for name in listed_files(doc))):
            return doc
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        pass
    return None


# What marks a batch's OUT: its summary (one per shard) or the lock of a run (batch_lock).
_BATCH_MARKS = re.compile(r"batch_summary(\.shard-\d+-of-\d+)?\.json|\.batch_summary.*\.lock")


def earlier_output(folder: Path, names: Iterable[str]) -> bool:
    """Whether `folder` (which holds `names`) was written by lesionloc-run: a batch's OUT (its
    summary or a run's lock) or one study's folder (a study.json of ours). A batch's scan
    leaves such folders out, so that a run into another OUT does not take an earlier run's
    radiograph, layers and overlays for studies."""
    names = set(names)
    if any(_BATCH_MARKS.fullmatch(name) for name in names):
        return True
    if STUDY_JSON not in names:
        return False
    try:
        return json.loads((folder / STUDY_JSON).read_text(encoding="utf-8"))["schema"] == STUDY_SCHEMA
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return False


def is_done(out: Path, study_id: str) -> bool:
    return done_document(out, study_id) is not None


def write_study(result: StudyResult, radiograph: Radiograph, out: Path,
                options: OutputOptions = OutputOptions()) -> Path:
    """Every file is written atomically (temporary file + rename: a killed process never leaves
    a partial file); the JSON comes last, so a killed run never leaves a study
    that looks finished. A rerun into the same folder removes the study.json first and, before
    writing the new one, the files of ours that the new result does not list.
    OutputError if the folder cannot be written (read-only, full, a file in the way)."""
    target = _study_dir(out, result.study_id)
    try:
        return _write_study(result, radiograph, target, options)
    except OSError as exc:
        raise OutputError(f"cannot write {exc.filename or target}: {exc.strerror or exc}",
                          exc.errno) from None


def _write_study(result: StudyResult, radiograph: Radiograph, target: Path,
                 options: OutputOptions) -> Path:
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write {target}/: a file of that name is in the way")
    target.mkdir(parents=True, exist_ok=True)
    (target / STUDY_JSON).unlink(missing_ok=True)  # not "done" until the new one is written
    _forget_files(result)

    def write(name: str, data: bytes) -> None:
        atomic_write_bytes(target / name, data, durable=False)

    if options.save_raw:
        _write_raw_heatmaps(result, write)
    # Encoding dominates writing; OpenCV, numpy and ISA-L release the GIL, so the page's files
    # and the overlays are encoded on the pool together, and every job ends before an error
    # is raised (no thread writes into the folder after write_study returns).
    pool = _pool()
    jobs = page.submit_page_files(result, pool, write) if options.page else []
    if options.overlays:
        jobs += _submit_overlays(result, pool, write)
    wait(jobs)
    for job in jobs:
        job.result()
    if options.dicom_out:
        from lesionloc_runtime.dicom_out import write_dicom_outputs

        written = write_dicom_outputs(result, radiograph, combined_overlay(result), target,
                                      synthetic_ids=options.synthetic_ids)  # type: ignore[arg-type]
        result.files["dicom_sc"] = written.sc.name
        if written.sr is not None:
            result.files["dicom_sr"] = written.sr.name
    if options.include_identifiers and radiograph.dicom is not None:
        # header_value: a damaged element (one pydicom cannot convert) is given as empty
        result.identifiers = {tag: str(header_value(radiograph.dicom, tag) or "")
                              for tag in _IDENTIFYING_TAGS if tag in radiograph.dicom}
    if options.page:
        result.files["page"] = page.PAGE
    result.files["study"] = STUDY_JSON
    doc = result.to_dict()
    if options.page:
        write(page.PAGE, page.study_page(doc, options.index_link).encode("utf-8"))
    _remove_stale(target, result.study_id, set(listed_files(doc)))
    # Not fsynced: a power cut can leave this file (or an overlay) empty, and is_done redoes a
    # study with an empty or unparsable file; an fsync per study is a disk round trip.
    atomic_write_json(target / STUDY_JSON, doc, durable=False)
    return target / STUDY_JSON


def _forget_files(result: StudyResult) -> None:
    """Drop what an earlier write_study of this result recorded (another folder, other
    options): the document lists only what this one writes."""
    result.files.clear()
    result.radiograph_images = {}
    for sentence in result.sentences:
        sentence.files.clear()
        sentence.layer = None


def _write_raw_heatmaps(result: StudyResult, write: Callable[[str, bytes], None]) -> None:
    for sentence in result.grounded:
        if sentence.heatmap is None:
            continue
        name = f"sentence_{sentence.index + 1:02d}.npy"
        buffer = io.BytesIO()
        np.save(buffer, sentence.heatmap.render().astype(np.float32), allow_pickle=False)
        write(name, buffer.getvalue())
        sentence.files["heatmap"] = name


def _submit_overlays(result: StudyResult, pool: ThreadPoolExecutor,
                     write: Callable[[str, bytes], None]) -> list[Future[None]]:
    """The burned-in pictures (--overlays): one per grounded sentence and the summary figure.
    Every overlay is rendered first, then they and the summary are encoded together, the
    summary (the largest) first: made after the overlays' encoding, it ran alone on one core.
    The display-size radiograph is made once here, not by every thread that finds it missing."""
    base_grey(result)
    pictures = list(pool.map(lambda sentence: sentence_overlay(result, sentence), result.grounded))
    result.files["summary"] = "summary.png"
    jobs = [pool.submit(lambda: write("summary.png", encode_png(
        summary_figure(result, overlays=pictures))))]  # it shrinks them
    for sentence, picture in zip(result.grounded, pictures, strict=True):
        sentence.files["overlay"] = f"sentence_{sentence.index + 1:02d}.png"
        jobs.append(pool.submit(lambda n, p: write(n, encode_png(p)), sentence.files["overlay"],
                                picture))
    return jobs


def _remove_stale(target: Path, study_id: str, keep: set[str]) -> None:
    """Remove what an earlier run of this study wrote and this one did not (a report that
    had more sentences, --save-raw or --dicom-out dropped), and the temporary files a killed
    run left of ours (`.NAME.XXXXXXXX.tmp`, fileio.atomic_open); files not ours stay."""
    for entry in target.iterdir():
        if entry.name in keep or not entry.is_file():
            continue
        name = temporary_of(entry.name) or entry.name
        if name == STUDY_JSON or _OUR_FILES.fullmatch(name) or (
                name.endswith(".dcm") and name in _dicom_names(study_id)):
            entry.unlink()


def _dicom_names(study_id: str) -> tuple[str, str]:
    from lesionloc_runtime.dicom_out.identity import output_names  # highdicom: only if needed

    return output_names(study_id)
