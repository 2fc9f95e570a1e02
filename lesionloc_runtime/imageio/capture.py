"""Keeping libraries and native decoders off the terminal while an image is read: pydicom's
warnings and log lines are silenced, and what C and Rust decoders print is caught as text."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from lesionloc_runtime.errors import printable

__all__ = ["quiet_libraries", "short", "stderr_captured"]


class _Quiet:
    """The process-wide switch behind `quiet_libraries`: the first reader in switches pydicom's
    logger and Python warnings off, the last one out restores them. Warning filters and a
    logger's `disabled` are global, so per-call saving and restoring is not safe across threads:
    two overlapping reads would restore each other's "off" state and leave it off for good."""

    lock = threading.Lock()
    depth = 0
    logger_was_disabled = False
    warnings_state: warnings.catch_warnings | None = None


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """pydicom warns and logs (file path, code line) about what the reader reports itself as
    one line or a note; nothing of that may reach the terminal before our message. Safe to
    use from several threads at once (see `_Quiet`)."""
    with _Quiet.lock:
        if _Quiet.depth == 0:
            logger = logging.getLogger("pydicom")
            _Quiet.logger_was_disabled = logger.disabled
            logger.disabled = True
            _Quiet.warnings_state = warnings.catch_warnings()
            _Quiet.warnings_state.__enter__()
            warnings.simplefilter("ignore")
        _Quiet.depth += 1
    try:
        yield
    finally:
        with _Quiet.lock:
            _Quiet.depth -= 1
            if _Quiet.depth == 0:
                logging.getLogger("pydicom").disabled = _Quiet.logger_was_disabled
                if _Quiet.warnings_state is not None:
                    _Quiet.warnings_state.__exit__(None, None, None)
                    _Quiet.warnings_state = None


_DECODER_LOCK = threading.Lock()
# OpenCV's own log lines (libtiff's warnings reach us through them):
# "[ WARN:0@0.067] global grfmt_tiff.cpp:123 TIFF_Warning TIFFReadDirectory: ..."
_OPENCV_LOG_PREFIX = re.compile(r"^\s*\[\s*[A-Z]+:\d+@[\d.]+\]\s+global\s+\S+:\d+\s+\w+\s+")


@contextmanager
def stderr_captured() -> Iterator[list[str]]:
    """Catch what native decoders print while the block runs: the list holds those lines,
    one-spaced, once the block has ended (also when it raised).

    libjpeg, libpng, libtiff, OpenJPEG and Rust panics print on the process's standard error
    (file descriptor 2), before and apart from our one-line error, so fd 2 points at a
    temporary file during the block. That is process-wide: blocks take turns (a lock), and
    another thread's output to fd 2 in those milliseconds lands in the list. Without a usable
    fd 2 (a daemon without one) or a temporary file (no writable temporary directory), the
    block runs as it is and the list stays empty."""
    printed: list[str] = []
    with _DECODER_LOCK, ExitStack() as stack:
        try:
            sink = stack.enter_context(tempfile.TemporaryFile())
            saved = os.dup(2)
        except OSError:  # no writable temporary directory, or no fd 2: run without catching
            sink = None
        if sink is None:
            yield printed
            return
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            printed.extend(printable(_OPENCV_LOG_PREFIX.sub("", line))
                           for line in text.splitlines() if line.strip())


def short(exc: BaseException | Warning | str) -> str:
    """A one-line reason from an exception whose text may span lines (pydicom lists plugins)
    or quote bytes of the file (shown as '?' unless printable)."""
    return printable(str(exc), 240) or type(exc).__name__
