"""Errors a user can cause (bad file, bad report, wrong bundle): each carries a message that
says what was wrong and what to do, and the CLIs map them to a one-line error and an exit code."""

from __future__ import annotations


class LesionlocError(Exception):
    """Base class of every error caused by input, not by a bug. Never shown as a traceback."""

    exit_code: int = 2


class ImageReadError(LesionlocError):
    """The image file is missing, unreadable, or not a single-frame greyscale radiograph."""

    exit_code = 3


class ReportError(LesionlocError):
    """The report is missing, empty, binary, too large, or has no sentence to ground."""

    exit_code = 4


class BundleError(LesionlocError):
    """The model bundle is missing, tampered with, of another format version, or inconsistent."""

    exit_code = 5


class ConfigError(LesionlocError):
    """A configuration, preset, manifest or command-line combination is invalid."""

    exit_code = 2


class CheckpointError(LesionlocError):
    """A training checkpoint is missing, truncated, or of another architecture."""

    exit_code = 6


class DataError(LesionlocError):
    """A data set (manifest, annotation file) cannot be used at all."""

    exit_code = 7


class OutputError(LesionlocError):
    """The output location cannot be written: read-only, full, not a directory, name too long.
    `errno` is the operating system's error number, when there is one."""

    exit_code = 10

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def is_panic(exc: BaseException) -> bool:
    """A Rust extension's panic (pylibjpeg-rle on some corrupt RLE data, tokenizers) reaches
    Python as pyo3's PanicException, which derives from BaseException: `except Exception`
    misses it. Its class lives in a module that cannot be imported, hence the name test."""
    return type(exc).__name__ == "PanicException"


def printable(text: str, limit: int | None = None) -> str:
    """`text` as one printable line: runs of white space become one space, other characters
    that are not printable (NUL, ESC, a BOM: bytes of a damaged file quoted in a message) become
    '?', and with `limit` the text is cut to that many characters with '...'."""
    line = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 3, 0)] + "..."
    return line
