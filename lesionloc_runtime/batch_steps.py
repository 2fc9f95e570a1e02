"""One batch study in three steps (prepare, localize, write), each turning a failure into an
outcome record, and the pipeline that overlaps them in one process: the next study is read and
preprocessed, and the previous one written, while the encoders run the current one."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lesionloc_runtime.errors import LesionlocError, OutputError, ReportError, is_panic, printable

__all__ = [
    "InFlight",
    "OUT_OF_SPACE",
    "Outcome",
    "guarded",
    "localize",
    "one_study",
    "pipelined",
    "prepare",
    "write",
]

if TYPE_CHECKING:
    from lesionloc_runtime.batch import RunSettings, StudyTask
    from lesionloc_runtime.localizer import Localizer, PreparedStudy
    from lesionloc_runtime.results import StudyResult

# Write errors that no other study can escape either: the batch stops instead of failing each.
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
Outcome = dict[str, Any]


@dataclass
class InFlight:
    """A study between steps: its task, when it started, and what the last step made (or the
    outcome of the step that failed)."""

    task: StudyTask
    start: float
    value: Any = None
    failed: Outcome | None = None
    sentences: tuple[int, int] = (0, 0)  # the texts it encoded, and those the cache had


def guarded(flight: InFlight, settings: RunSettings, step: Callable[[], Any]) -> InFlight:
    """Run one step of a study; a failure becomes the study's outcome (a user's mistake or a
    bad file as its one-line message, a bug as an internal error, a full or read-only output
    as fatal to the batch), never an exception."""
    if flight.failed is not None:
        return flight
    try:
        flight.value = step()
    except OutputError as exc:
        # full, read-only, or the output directory itself not writable: no study can be written
        fatal = exc.errno in OUT_OF_SPACE or not os.access(settings.out, os.W_OK | os.X_OK)
        flight.failed = {"study_id": flight.task.study_id, "ok": False,
                         "error": printable(str(exc)), "fatal": fatal}
    except LesionlocError as exc:
        flight.failed = {"study_id": flight.task.study_id, "ok": False, "error": printable(str(exc))}
    except BaseException as exc:  # a bug on one study must not stop the other studies of a batch
        if not (isinstance(exc, Exception) or is_panic(exc)):  # is_panic: a Rust extension's
            raise
        import traceback

        traceback.print_exc()
        flight.failed = {"study_id": flight.task.study_id, "ok": False,
                         "error": f"internal error ({type(exc).__name__}: {exc}); please report it"}
    return flight


def prepare(localizer: Localizer, task: StudyTask, settings: RunSettings) -> InFlight:
    """Read the image and the report and preprocess: no encoder needed."""

    def step() -> PreparedStudy:
        if task.report is None and not settings.queries:
            expected = task.expected_report or task.image.with_suffix(".txt")
            raise ReportError(f"{task.image.name}: no report found (expected {expected.absolute()})")
        from lesionloc_runtime import imageio

        return localizer.prepare(imageio.read_image(task.image, threads=localizer.threads),
                                 task.report, settings.queries)

    return guarded(InFlight(task, time.perf_counter()), settings, step)


def localize(localizer: Localizer, flight: InFlight, settings: RunSettings) -> InFlight:
    study: PreparedStudy | None = flight.value

    def step() -> tuple[StudyResult, Any]:
        cache = localizer.sentence_cache
        hits, misses = cache.hits, cache.misses
        result = localizer.localize(study, ground=settings.ground, study_id=flight.task.study_id,
                                    report_score=settings.report_score)
        flight.sentences = (cache.misses - misses, cache.hits - hits)
        return result, study.radiograph  # type: ignore[union-attr]

    return guarded(flight, settings, step)


def write(flight: InFlight, settings: RunSettings) -> Outcome:
    """Write the study's files; its outcome (with its row of the batch index when done)."""
    from lesionloc_runtime.outputs import write_study
    from lesionloc_runtime.viewer.index import index_row

    def step() -> dict[str, Any]:
        result, radiograph = flight.value
        write_study(result, radiograph, settings.out, settings.output)
        return index_row(result.to_dict())

    guarded(flight, settings, step)
    if flight.failed is not None:
        return flight.failed
    return {"study_id": flight.task.study_id, "ok": True, "row": flight.value,
            "seconds": time.perf_counter() - flight.start, "sentences": flight.sentences}


def one_study(localizer: Localizer, task: StudyTask, settings: RunSettings) -> Outcome:
    """The three steps in turn (a worker process of a multi-process batch)."""
    return write(localize(localizer, prepare(localizer, task, settings), settings), settings)


def pipelined(localizer: Localizer, tasks: Sequence[StudyTask],
              settings: RunSettings) -> Iterator[Outcome]:
    """Outcomes in input order, each study's reading and writing overlapped with the encoders
    of its neighbours: one reading thread, one writing thread, the encoders in this one.
    A consumer that stops early (a fatal write error) leaves at most one study prepared and
    one localized unwritten; nothing written is touched."""
    with ThreadPoolExecutor(1, thread_name_prefix="lesionloc-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="lesionloc-write") as writer:
        ahead: Future[InFlight] | None = None
        writing: Future[Outcome] | None = None
        try:
            for k, task in enumerate(tasks):
                flight = ahead.result() if ahead is not None else prepare(localizer, task, settings)
                ahead = (reader.submit(prepare, localizer, tasks[k + 1], settings)
                         if k + 1 < len(tasks) else None)
                flight = localize(localizer, flight, settings)
                if writing is not None:
                    yield writing.result()
                writing = writer.submit(write, flight, settings)
            if writing is not None:
                yield writing.result()
                writing = None
        finally:  # stopped early: what is queued need not finish, what runs does
            for future in (ahead, writing):
                if future is not None:
                    future.cancel()
