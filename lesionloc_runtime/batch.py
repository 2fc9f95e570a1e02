"""Batch mode: many studies (found by `batch_discovery`), with progress, per-study errors
reported and skipped, resume (finished studies are skipped), `--shard i/n` for clusters,
`--workers N` (this process and N - 1 spawned ones, each with its own sessions, created
once) and OUT/index.html kept up to date as studies finish."""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lesionloc_runtime import batch_steps, sentence_cache
from lesionloc_runtime.batch_discovery import StudyTask
from lesionloc_runtime.batch_lock import batch_lock
from lesionloc_runtime.cpuinfo import usable_cpus
from lesionloc_runtime.errors import ConfigError, OutputError, Terminated, WorkerLost
from lesionloc_runtime.fileio import atomic_write_json
from lesionloc_runtime.imageio.capture import terminal_stderr
from lesionloc_runtime.outputs import OutputOptions
from lesionloc_runtime.processes import LOST, die_with_parent
from lesionloc_runtime.progress import progress as progress_bar
from lesionloc_runtime.sentence_cache import DEFAULT_ENTRIES, SharedStore
from lesionloc_runtime.viewer.index import INDEX_HTML, BatchIndex

if TYPE_CHECKING:
    from lesionloc_runtime.localizer import Localizer

__all__ = [
    "BatchSummary",
    "RunSettings",
    "StudyTask",
    "chunk_bounds",
    "parse_shard",
    "run_batch",
]


@dataclass(frozen=True)
class RunSettings:
    """Everything a worker needs to localize and write a study (picklable)."""

    model: str | None
    providers: tuple[str, ...]
    threads: int | None
    queries: tuple[str, ...]
    ground: str
    out: Path
    output: OutputOptions
    report_score: bool = False
    sentence_cache: int = DEFAULT_ENTRIES  # sentences each process keeps the embeddings of
    pipeline: bool = True  # one worker: read the next study and write the last meanwhile


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    already_done: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # DICOM objects that are no image
    seconds: float = 0.0
    stopped: str | None = None  # why the batch stopped early (the output cannot be written)
    # the report sentences and queries the studies done sent through the text encoder, and
    # those they found in a sentence cache (their process's or, with workers, the batch's)
    sentences_encoded: int = 0
    sentences_from_cache: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"studies_per_second": self.done / self.seconds if self.seconds else 0}


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' with 0 <= i < n (0-based, so `--shard $SLURM_ARRAY_TASK_ID/$N` works as is)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


_WORKER: dict[str, Any] = {}
_EACH = ", and each of the {} workers holds a model of its own"


def _init_worker(settings: RunSettings, shared: SharedStore | None = None,
                 parent: int | None = None) -> None:
    from lesionloc_runtime.localizer import Localizer

    if parent is not None:  # a worker process: it ends with the batch's process
        die_with_parent(parent)

    # a spawned worker starts without the CLI's logging: reader notes print as they do there
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=terminal_stderr())

    # a batch encodes most sentences ahead of their studies, on the text encoder alone: its
    # threads are worth more there than running it beside the image encoder
    _WORKER["localizer"] = Localizer.load(settings.model, providers=settings.providers,
                                          threads=settings.threads,
                                          sentence_cache=settings.sentence_cache,
                                          side_by_side=False)
    _WORKER["localizer"].sentence_cache.shared = shared  # None: this worker's cache alone
    _WORKER["settings"] = settings


def _process_studies(tasks: Sequence[StudyTask]) -> list[dict[str, Any]]:
    """Localize and write a chunk of studies in this worker process, their sentences encoded
    together; errors come back as data. A fatal one (the output cannot be written) ends the
    chunk."""
    outcomes = []
    for outcome in batch_steps.in_turn(_WORKER["localizer"], tasks, _WORKER["settings"]):
        outcomes.append(outcome)
        if outcome.get("fatal"):
            break
    return outcomes


def chunk_bounds(count: int, workers: int, most: int | None = None) -> list[tuple[int, int]]:
    """[start, end) of each chunk a worker takes at a time: `most` studies (one window of
    sentences encoded together), smaller towards the end, so that no worker is left with a
    long chunk while the others have nothing to do."""
    most = most or batch_steps.AHEAD_STUDIES
    bounds, start = [], 0
    while start < count:
        size = max(1, min(most, (count - start) // (2 * workers)))
        bounds.append((start, start + size))
        start += size
    return bounds


def run_batch(tasks: Sequence[StudyTask], settings: RunSettings, workers: int = 1,
              progress: bool = True, summary_name: str = "batch_summary.json",
              localizer: Localizer | None = None) -> BatchSummary:
    """Process `tasks` not yet done, print each failure on stderr, write the summary JSON and
    OUT/index.html (also while the batch runs). An output that no study can be written to
    (disk full, read-only) stops the batch early with `stopped` set; OutputError if the
    summary or the index cannot be written at the end, and at once if another run of this
    batch (the same `summary_name`: the same shard) is writing OUT (`batch_lock`).
    `localizer`: one already loaded, used in this process instead of loading `settings.model`
    (one worker only)."""
    if localizer is not None and workers != 1:
        raise ConfigError("a localizer given to run_batch runs in this process: one worker")
    with batch_lock(settings.out, summary_name):  # one run of this batch (shard) at a time
        return _run_locked(tasks, settings, workers, progress, summary_name, localizer)


def _run_locked(tasks: Sequence[StudyTask], settings: RunSettings, workers: int, progress: bool,
                summary_name: str, localizer: Localizer | None) -> BatchSummary:
    summary = BatchSummary(total=len(tasks))
    index = BatchIndex(settings.out)  # every study OUT holds that is done (outputs.is_done)
    todo = [t for t in tasks if t.study_id not in index.rows]
    summary.already_done = len(tasks) - len(todo)
    start = time.perf_counter()
    terminal = terminal_stderr()  # the bar draws while a thread decodes the next film
    after, _, how = os.environ.get("LESIONLOC_FAULT_KILL_AFTER_STUDIES", "0").partition(":")
    try:
        # the bar closes (its last line drawn) also when the batch is interrupted: before the
        # CLI says so
        with progress_bar(len(todo), "lesionloc", "study", progress, terminal) as bar, \
                closing(_dispatch(todo, settings, workers, localizer)) as outcomes:
            for count, outcome in enumerate(outcomes, 1):
                if int(after) and count > int(after):  # fault injection for tests: "N" or "N:TERM"
                    os.kill(os.getpid(), getattr(signal, f"SIG{how or 'KILL'}"))
                if outcome.get("fatal"):
                    summary.stopped = outcome["error"]
                    break
                if outcome["ok"]:
                    summary.done += 1
                    encoded, cached = outcome.get("sentences", (0, 0))
                    summary.sentences_encoded += encoded
                    summary.sentences_from_cache += cached
                    if outcome.get("row"):
                        index.add(outcome["row"])
                else:
                    skipped = bool(outcome.get("skipped"))  # a DICOM object that is no image
                    (summary.skipped if skipped else summary.failed).append(
                        {"study_id": outcome["study_id"], "error": outcome["error"]})
                    bar.write(f"{'skipped' if skipped else 'error'}: {outcome['study_id']}: "
                              f"{outcome['error']}", file=terminal)
                bar.update()
    except (KeyboardInterrupt, WorkerLost) as exc:  # Ctrl-C, SIGTERM (errors.Terminated)
        # the summary and the index say what this run did, not what the run before it did
        summary.stopped = (f"terminated ({exc.signal_name})" if isinstance(exc, Terminated) else
                           str(exc) if isinstance(exc, WorkerLost) else "interrupted")
        _finish(summary, todo, settings, summary_name, index, start)
        raise
    return _finish(summary, todo, settings, summary_name, index, start)


def _finish(summary: BatchSummary, todo: Sequence[StudyTask], settings: RunSettings,
            summary_name: str, index: BatchIndex, start: float) -> BatchSummary:
    """Write the summary and the index, read from OUT again (with what other shards finished
    meanwhile). A batch stopped early (the dispatch closed: no study is being written now)
    counts its studies done from that reading: other workers and the write behind finish
    studies after the last outcome taken."""
    index.rescan()  # one reading of OUT for both
    if summary.stopped is not None:
        summary.done = sum(task.study_id in index.rows for task in todo)
        left = len(todo) - summary.done - len(summary.failed) - len(summary.skipped)
        summary.stopped += f"; stopped the batch, {left} of {len(todo)} studies not done"
    summary.seconds = time.perf_counter() - start
    target = settings.out / summary_name
    try:
        settings.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(target, summary.to_dict())
        target = settings.out / INDEX_HTML
        index.write()
    except OSError as exc:
        if summary.stopped is None:  # a stopped batch already says why it stopped
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}", exc.errno) from None
    return summary


def _dispatch(todo: Sequence[StudyTask], settings: RunSettings, workers: int,
              localizer: Localizer | None = None) -> Iterator[dict[str, Any]]:
    """Results in input order; one set of sessions per worker. One worker runs in this
    process, its reading and writing overlapped with the encoders; with more, this process
    is one of them and the others are spawned."""
    if not todo:
        return
    chunks = [todo[start:end] for start, end in chunk_bounds(len(todo), workers)]
    workers = min(workers, len(chunks))  # a worker with nothing to do would only start
    if workers <= 1:
        if localizer is None:
            _init_worker(settings)
            localizer = _WORKER["localizer"]
        steps = batch_steps.pipelined if settings.pipeline else batch_steps.in_turn
        yield from steps(localizer, todo, settings)
        return
    per_worker = RunSettings(**{**settings.__dict__,
                                "threads": settings.threads or max(1, usable_cpus() // workers)})
    # spawn, not fork: ONNX Runtime's thread pools do not survive a fork
    context = get_context("spawn")
    manager, shared = (sentence_cache.start_shared_store(settings.sentence_cache, context)
                       if settings.sentence_cache else (None, None))
    try:
        yield from _here_and_in_workers(chunks, per_worker, workers, shared, context)
    finally:
        if manager is not None:
            manager.shutdown()


def _here_and_in_workers(chunks: Sequence[Sequence[StudyTask]], settings: RunSettings,
                         workers: int, shared: SharedStore | None, context: Any
                         ) -> Iterator[dict[str, Any]]:
    """The chunks' outcomes in input order, each chunk taken by whichever process is free:
    `workers - 1` spawned processes and this one, whose thread loads its sessions while they
    start (no process start of its own to wait for)."""
    lock, stopping, order = threading.Lock(), threading.Event(), itertools.count()
    finished: queue.SimpleQueue[tuple[int | None, Any]] = queue.SimpleQueue()

    def take() -> int | None:  # the next chunk, unless the batch is done or stopping
        with lock:
            k = len(chunks) if stopping.is_set() else next(order)
        return k if k < len(chunks) else None

    def here() -> None:  # this process's share, on a thread of its own
        try:
            if (k := take()) is not None:  # else the spawned workers took every chunk
                _init_worker(settings, shared)
            while k is not None:
                finished.put((k, _process_studies(chunks[k])))
                k = take()
        except BaseException as exc:  # handed to the batch's thread, which raises it
            finished.put((None, exc))

    def submit() -> None:  # from this thread only: a worker dies with the thread that started it
        if (k := take()) is not None:
            pool.submit(_process_studies, chunks[k]).add_done_callback(
                lambda future, k=k: finished.put((k, future)))

    pool = ProcessPoolExecutor(workers - 1, mp_context=context, initializer=_init_worker,
                               initargs=(settings, shared, os.getpid()))
    thread = threading.Thread(target=here, name="lesionloc-batch-here", daemon=True)
    try:
        for _ in range(workers - 1):  # the first chunks: this thread's share begins after them
            submit()
        thread.start()
        ready: dict[int, list[dict[str, Any]]] = {}
        for k in range(len(chunks)):
            while k not in ready:
                index, value = finished.get()
                if index is None:
                    raise value
                if isinstance(value, Future):
                    try:
                        value = value.result()
                    except BrokenProcessPool:  # killed: the OOM killer, `kill -9`
                        raise WorkerLost(LOST.format(note=_EACH.format(workers)) +
                                         ": the studies done are kept; rerun to do the rest, "
                                         "with fewer --workers if memory is short") from None
                    submit()
                ready[index] = value
            yield from ready.pop(k)
    finally:  # a stopped batch must not go on to run every study still queued
        stopping.set()
        pool.shutdown(cancel_futures=True)
        thread.join()
