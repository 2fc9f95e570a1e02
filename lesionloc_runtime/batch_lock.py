"""One run of a batch at a time in its output folder.

Two `lesionloc-run` of the same batch into the same OUT (a nightly job started again before
the last one ended, two people on one share) would write the same studies at once: each
removes the files the other's study does not list, temporary ones included, so studies
failed with `cannot write .../.radiograph.png.XXXX.tmp: No such file or directory` (3 of 400
in a trial) and the two summaries disagreed. A batch holds a lock on `OUT/.<summary
name>.lock` while it runs; a second run of the same batch (the same shard: the summary's name
says which) is refused at once, naming the first. Shards of one batch take different locks
and write different studies, so they still run side by side.

The lock is the kernel's (`flock`): it goes with the process however the process ends, so a
killed batch leaves nothing to remove and the next run starts. Where the file system has no
locks (some network mounts) or the platform no `flock`, the batch runs without one, with a
warning."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lesionloc_runtime.errors import OutputError, printable

_fcntl: Any
try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS
    _fcntl = None

__all__ = ["batch_lock", "lock_path"]

_log = logging.getLogger(__name__)


def lock_path(out: Path, summary_name: str) -> Path:
    return out / f".{summary_name}.lock"


@contextmanager
def batch_lock(out: Path, summary_name: str) -> Iterator[None]:
    """Hold the batch's lock in `out` (made if missing) for the block. OutputError if another
    process holds it, or if the folder cannot be written."""
    path = lock_path(out, summary_name)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", exc.errno) from None
    try:
        if _fcntl is None:  # pragma: no cover - not on Linux or macOS
            _log.warning("%s: no file locks on this platform: make sure no other lesionloc-run "
                         "writes the same studies there", out)
        else:
            _acquire(fd, out)
        yield
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, out: Path) -> None:
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        holder = printable(os.pread(fd, 512, 0).decode("utf-8", "replace").strip(), 200)
        raise OutputError(
            f"{out} is being written by another run of this batch ({holder or 'a process'}); "
            "let it finish (a rerun then skips what it did), or give each run its own --out "
            "or --shard") from None
    except OSError as exc:  # ENOLCK: a file system without locks
        _log.warning("%s: cannot lock the batch's output (%s): make sure no other "
                     "lesionloc-run writes the same studies there", out, exc.strerror or exc)
        return
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    note = f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, note, 0)
