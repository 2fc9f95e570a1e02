"""Helper processes that end with the process that started them: a batch's workers and its
sentence store must not outlive a `lesionloc-run` that was killed (kill -9, the OOM killer),
each holding a model's worth of memory and waiting for work that never comes."""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["die_with_parent"]

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
