"""One pass over a large image shared between the calling thread and helper threads: the flat
array cut into up to four parts of whole blocks, the first done here and the others on threads
kept for the process. For numpy, OpenCV, Pillow and BLAS work that releases the interpreter
lock (the display gather, the 8-bit conversion and value range, the resizes of
`resampling.py`); a small image stays on the calling thread, where a second thread would cost
more than it saves."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["MIN_PART", "even_bounds", "in_parts", "part_bounds", "run_parts"]

_T = TypeVar("_T")

# Fewest elements a part is given: below this a second thread costs more than it saves (the
# display gather of a 2048 px film: 1.8 ms on two threads against 2.9 on one).
MIN_PART = 1 << 20
_MAX_PARTS = 4
_HELPERS: tuple[int, ThreadPoolExecutor] | None = None


def _helpers() -> ThreadPoolExecutor:
    """Kept between calls; per process (a forked child makes its own: threads do not survive
    a fork)."""
    global _HELPERS
    if _HELPERS is None or _HELPERS[0] != os.getpid():
        _HELPERS = (os.getpid(), ThreadPoolExecutor(max_workers=_MAX_PARTS - 1,
                                                    thread_name_prefix="lesionloc-part"))
    return _HELPERS[1]


def part_bounds(size: int, threads: int, block: int) -> list[int]:
    """[0, b1, ..., size]: at most min(threads, 4, size // MIN_PART) parts (one at least), each
    but the last a whole number of `block`s."""
    parts = max(1, min(threads, _MAX_PARTS, size // MIN_PART))
    step = -(-size // parts) // block * block
    if parts == 1 or step == 0:
        return [0, size]
    return [k * step for k in range(parts)] + [size]


def in_parts(work: Callable[[int, int], _T], size: int, threads: int, block: int) -> list[_T]:
    """work(start, stop) over each part of [0, size) (`part_bounds`), the first on this thread;
    their results in order. Every part has ended before an error of any part is raised."""
    return run_parts(work, part_bounds(size, threads, block))


def even_bounds(count: int, parts: int) -> list[int]:
    """[0, ..., count]: range(count) cut into min(parts, 4, count) runs (one at least) whose
    lengths differ by one at most; for work whose size the caller has judged worth sharing."""
    parts = max(1, min(parts, _MAX_PARTS, count))
    return [count * k // parts for k in range(parts + 1)]


def run_parts(work: Callable[[int, int], _T], bounds: list[int]) -> list[_T]:
    """work(a, b) for each pair of neighbours in `bounds`, the first on this thread and the
    others on the helper threads; their results in order, once every part has ended (an
    error of any part raised after that)."""
    jobs = [_helpers().submit(work, a, b) for a, b in zip(bounds[1:-1], bounds[2:], strict=True)]
    try:
        first = work(0, bounds[1])
    finally:
        for job in jobs:
            job.exception()  # waits
    return [first, *(job.result() for job in jobs)]
