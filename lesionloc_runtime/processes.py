"""Helper processes. They end with the process that started them (a batch's workers and its
sentence store must not outlive a `lesionloc-run` that was killed, kill -9 or the OOM killer,
each holding a model's worth of memory and waiting for work that never comes), and one of them
killed ends the command with an error rather than a wait without end (`in_processes`)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, TypeVar

from lesionloc_runtime.errors import WorkerLost

__all__ = ["LOST", "die_with_parent", "in_processes"]

_T = TypeVar("_T")
LOST = "a worker process died (killed; the kernel does this when memory runs out{note})"


def in_processes(function: Callable[[Any], _T], items: Iterable[Any], workers: int,
                 initializer: Callable[[], None] | None = None,
                 chunksize: int = 1) -> Iterator[_T]:
    """`function` over `items` in `workers` spawned processes, the results in order. A worker
    killed (the out-of-memory killer, kill -9) raises WorkerLost: multiprocessing.Pool would
    replace it and wait for its lost tasks without end (`lesionloc-train synth` stood at
    240 of 600 studies until stopped)."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=initializer) as pool:
        try:
            yield from pool.map(function, items, chunksize=chunksize)
        except BrokenProcessPool:
            raise WorkerLost(f"{LOST.format(note='')}: rerun, with fewer --workers than "
                             f"{workers} if memory is short") from None

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Run first in a child process of `parent`: on Linux the kernel sends this process
    SIGKILL when the thread that started it ends (the batch's thread, which outlives its
    workers); if `parent` is already gone, exit now. Elsewhere only the second: a worker
    orphaned later waits on its queue until it is ended by hand."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):  # a libc without prctl: nothing to ask for
            return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
