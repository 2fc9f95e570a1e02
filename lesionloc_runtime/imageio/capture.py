"""Keeping libraries and native decoders off the terminal while an image is read: pydicom's
warnings and log lines are silenced, and what C and Rust decoders print is caught as text."""

from __future__ import annotations

import io
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

__all__ = ["quiet_libraries", "short", "stderr_captured", "terminal_stderr"]


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
# Held while fd 2 is pointed away or back, and while `terminal_stderr` writes: a message never
# goes to fd 2 in the middle of a swap.
_FD_LOCK = threading.Lock()
# While `stderr_captured` has fd 2 pointed at its file: a descriptor for where fd 2 went before.
_TERMINAL_FD: int | None = None
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
    what another thread's native code prints to fd 2 in those milliseconds lands in the list.
    Our own messages do not: the progress bar and the warnings write through
    `terminal_stderr`, which reaches the terminal meanwhile. Without a usable fd 2 (a daemon
    without one) or a temporary file (no writable temporary directory), the block runs as it
    is and the list stays empty."""
    global _TERMINAL_FD
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
            with _FD_LOCK:
                if sys.stderr is not None:
                    sys.stderr.flush()
                os.dup2(sink.fileno(), 2)
                _TERMINAL_FD = saved
            yield printed
        finally:
            with _FD_LOCK:
                os.dup2(saved, 2)
                _TERMINAL_FD = None
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            printed.extend(printable(_OPENCV_LOG_PREFIX.sub("", line))
                           for line in text.splitlines() if line.strip())


class _TerminalStderr(io.TextIOBase):
    """`sys.stderr` as it is at each write, except that while `stderr_captured` has fd 2
    pointed at its file, what would have gone to fd 2 goes where fd 2 pointed before."""

    def write(self, text: str) -> int:
        stream = sys.stderr
        if stream is None:
            return len(text)
        with _FD_LOCK:
            if _TERMINAL_FD is None or not _writes_to_fd2(stream):
                stream.write(text)
                return len(text)
            data = text.encode(getattr(stream, "encoding", None) or "utf-8", "replace")
            while data:
                data = data[os.write(_TERMINAL_FD, data):]
        return len(text)

    def flush(self) -> None:
        stream = sys.stderr
        if stream is not None:
            with _FD_LOCK:
                stream.flush()

    def close(self) -> None:
        """Nothing to close (it owns no stream). io.IOBase closes, and so flushes, an object
        when it is collected: late in the interpreter's shutdown this module's lock is None
        by then, and Python 3.13 printed `Exception ignored in: <..._TerminalStderr ...>`
        with a TypeError at the end of the test run."""

    def fileno(self) -> int:  # tqdm asks for the terminal's width through it
        stream = sys.stderr
        if stream is None:
            raise io.UnsupportedOperation("no standard error")
        return stream.fileno()

    def isatty(self) -> bool:  # tqdm and logging ask, to decide how to draw
        stream = sys.stderr
        return bool(stream is not None and stream.isatty())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.stderr, "encoding", None) or "utf-8"


def _writes_to_fd2(stream: object) -> bool:
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False


_TERMINAL = _TerminalStderr()


def terminal_stderr() -> io.TextIOBase:
    """The stream for our own messages while images may be read in other threads (a batch's
    progress bar and warnings, the evaluation's progress): it writes to `sys.stderr`, but
    while a reader's `stderr_captured` holds fd 2 it writes to where fd 2 pointed before,
    so the message reaches the terminal instead of becoming that image's "decoder:" note."""
    return _TERMINAL


def short(exc: BaseException | Warning | str) -> str:
    """A one-line reason from an exception whose text may span lines (pydicom lists plugins)
    or quote bytes of the file (shown as '?' unless printable)."""
    return printable(str(exc), 240) or type(exc).__name__
