"""One batch study in three steps (prepare, localize, write), each turning a failure into an
outcome record, and the pipeline that overlaps them in one process: the next study is read and
preprocessed, and the previous one written, while the encoders run the current one. Either
way the sentences of the next studies are encoded together (`SentencesAhead`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lesionloc_runtime.errors import (
    LesionlocError,
    NotAnImage,
    OutputError,
    ReportError,
    is_panic,
    printable,
)
from lesionloc_runtime.fileio import OUT_OF_SPACE

__all__ = [
    "AHEAD_STUDIES",
    "InFlight",
    "Outcome",
    "SentencesAhead",
    "guarded",
    "in_turn",
    "localize",
    "pipelined",
    "prepare",
    "write",
]

if TYPE_CHECKING:
    from lesionloc_runtime.batch import RunSettings, StudyTask
    from lesionloc_runtime.localizer import Localizer, PreparedStudy
    from lesionloc_runtime.results import StudyResult

Outcome = dict[str, Any]
# How many of a batch's next studies have their sentences encoded together. The int8 text
# encoder costs less per sentence the more it is given at once (fewer runs, less padding): on
# the realistic 200-study batch a study took 13 ms less CPU with 16 (130 against 143 ms at
# one thread), about as much with 8 or 32. Small enough for the batch's last chunks.
AHEAD_STUDIES = 16
_log = logging.getLogger(__name__)


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
    bad file as its one-line message, a DICOM object that is no image as skipped, a bug as an
    internal error, a full or read-only output as fatal to the batch), never an exception."""
    if flight.failed is not None:
        return flight
    try:
        flight.value = step()
    except OutputError as exc:
        # full, read-only, or the output directory itself not writable: no study can be written
        fatal = exc.errno in OUT_OF_SPACE or not os.access(settings.out, os.W_OK | os.X_OK)
        flight.failed = {"study_id": flight.task.study_id, "ok": False,
                         "error": printable(str(exc)), "fatal": fatal}
    except LesionlocError as exc:  # a file that is no image at all is skipped, not failed
        flight.failed = {"study_id": flight.task.study_id, "ok": False, "error": printable(str(exc)),
                         "skipped": isinstance(exc, NotAnImage)}
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
        # the image first: a DICOM object that is no image (a dose report beside the films) is
        # skipped as such, not failed for the report it naturally lacks
        image = localizer.read_image(task.image)
        if task.report is None and not settings.queries:
            expected = task.expected_report or task.image.with_suffix(".txt")
            raise ReportError(f"{task.image.name}: no report found (expected {expected.absolute()})")
        return localizer.prepare(image, task.report, settings.queries)

    return guarded(InFlight(task, time.perf_counter()), settings, step)


def localize(localizer: Localizer, flight: InFlight, settings: RunSettings,
             encoded_ahead: int = 0) -> InFlight:
    """`encoded_ahead`: how many of the study's texts `SentencesAhead` encoded for it (found
    in the cache now, but encoded for this study all the same)."""
    study: PreparedStudy | None = flight.value

    def step() -> tuple[StudyResult, Any]:
        cache = localizer.sentence_cache
        hits, misses = cache.hits, cache.misses
        result = localizer.localize(study, ground=settings.ground, study_id=flight.task.study_id,
                                    report_score=settings.report_score)
        ahead = min(encoded_ahead, cache.hits - hits)
        flight.sentences = (cache.misses - misses + ahead, cache.hits - hits - ahead)
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


class SentencesAhead:
    """Before the first of every `window` studies is localized, the sentences of those studies
    that the cache lacks are encoded in one call (`Localizer.encode_ahead`); each study then
    finds its own cached. The reports are read here once more (they are small); one that cannot
    be read is left to its study, which says why. Nothing is done without a sentence cache."""

    def __init__(self, localizer: Localizer, tasks: Sequence[StudyTask], settings: RunSettings,
                 window: int | None = None) -> None:
        self.localizer, self.tasks, self.settings = localizer, tasks, settings
        self.window = window or AHEAD_STUDIES
        self._encoded: dict[int, int] = {}
        self._warned = False

    def before(self, k: int) -> None:
        """Call before localizing study k of `tasks`."""
        if k % self.window or not self.localizer.sentence_cache.entries:
            return
        studies = self.tasks[k:k + self.window]
        try:
            counts = self.localizer.encode_ahead([self._texts(task) for task in studies])
        except Exception as exc:  # each study then encodes its own, and fails on its own
            if not self._warned:
                _log.warning("the next studies' sentences could not be encoded together (%s): "
                             "each study encodes its own", printable(str(exc)))
                self._warned = True
            return
        self._encoded.update({k + j: n for j, n in enumerate(counts)})

    def encoded_for(self, k: int) -> int:
        """How many of study k's texts were encoded for it here."""
        return self._encoded.pop(k, 0)

    def _texts(self, task: StudyTask) -> list[str]:
        from lesionloc_runtime.localizer import study_sentences
        from lesionloc_runtime.text import read_report

        try:
            report = read_report(task.report) if task.report is not None else None
        except LesionlocError:
            report = None
        return [s.grounded_text for s in study_sentences(report, self.settings.queries)]


def in_turn(localizer: Localizer, tasks: Sequence[StudyTask],
            settings: RunSettings) -> Iterator[Outcome]:
    """Each study's three steps in turn (a worker process's share of a batch, or one process
    without the pipeline), the sentences encoded ahead."""
    ahead = SentencesAhead(localizer, tasks, settings)
    for k, task in enumerate(tasks):
        ahead.before(k)
        flight = localize(localizer, prepare(localizer, task, settings), settings,
                          ahead.encoded_for(k))
        yield write(flight, settings)


def pipelined(localizer: Localizer, tasks: Sequence[StudyTask],
              settings: RunSettings) -> Iterator[Outcome]:
    """Outcomes in input order, each study's reading and writing overlapped with the encoders
    of its neighbours: one reading thread, one writing thread, the encoders in this one.
    A consumer that stops early (a fatal write error) leaves at most one study prepared and
    one localized unwritten; nothing written is touched."""
    sentences = SentencesAhead(localizer, tasks, settings)
    with ThreadPoolExecutor(1, thread_name_prefix="lesionloc-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="lesionloc-write") as writer:
        ahead: Future[InFlight] | None = None
        writing: Future[Outcome] | None = None
        try:
            for k, task in enumerate(tasks):
                flight = ahead.result() if ahead is not None else prepare(localizer, task, settings)
                ahead = (reader.submit(prepare, localizer, tasks[k + 1], settings)
                         if k + 1 < len(tasks) else None)
                sentences.before(k)
                flight = localize(localizer, flight, settings, sentences.encoded_for(k))
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
