"""Every error a user can cause (bad file, bad report, wrong bundle) and every exit code of the
lesionloc commands, for the whole project: the CLIs map each error to one `error: ...` line
and its code. `python -m lesionloc_runtime.errors` prints the table of codes the README shows.

In an error class the first paragraph of the docstring is what the table says it means."""

from __future__ import annotations

import inspect
import signal
from dataclasses import dataclass

__all__ = [
    "ERROR_CLASSES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STUDIES_FAILED",
    "EXIT_HANGUP",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "BundleError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DicomOutputError",
    "ExitCode",
    "ExportError",
    "ImageReadError",
    "NotAnImage",
    "LesionlocError",
    "OutputError",
    "ReportError",
    "Terminated",
    "TrainingDiverged",
    "WorkerLost",
    "exit_code_table",
    "exit_codes",
    "is_panic",
    "printable",
]

EXIT_OK = 0
# Batch mode: at least one study failed; the others are written and each failure is named.
EXIT_STUDIES_FAILED = 1
# A command-line mistake found by click before any work (click's own code for usage errors).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: a scheduler or service manager stopped the command
EXIT_HANGUP = 129  # 128 + SIGHUP: the terminal or ssh session the command ran in closed


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread where it is (as Python raises
    KeyboardInterrupt for a Ctrl-C), so that every clean-up an interrupt runs runs for it too
    (`cli_common.guarded(terminate=True)` installs the handler)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = int(signum)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class LesionlocError(Exception):
    """Base class of every error caused by input, not by a bug. Never shown as a traceback."""

    exit_code: int = EXIT_USAGE


class ConfigError(LesionlocError):
    """A configuration, preset, manifest or command-line combination is invalid."""

    exit_code = EXIT_USAGE


class ImageReadError(LesionlocError):
    """The image file is missing, unreadable, or not a single-frame greyscale radiograph."""

    exit_code = 3


class NotAnImage(ImageReadError):
    """A DICOM object that holds no image at all (a Structured Report, a presentation state,
    a DICOMDIR): a batch skips it, where other unreadable images fail their study.

    A PACS or CD export holds such objects beside the radiographs (dose reports, key
    objects); each used to count as a failed study and make the batch exit 1."""


class DicomOutputError(ImageReadError):
    """The input cannot yield derived DICOM objects (--dicom-out: its header lacks the UIDs
    they must reference), or a file read back is not a lesionloc DICOM SR."""


class ReportError(LesionlocError):
    """The report is missing, empty, binary, too large, or has no sentence to ground."""

    exit_code = 4


class BundleError(LesionlocError):
    """The model bundle is missing, tampered with, of another format version, or inconsistent."""

    exit_code = 5


class CheckpointError(LesionlocError):
    """A training checkpoint is missing, truncated, or of another architecture."""

    exit_code = 6


class DataError(LesionlocError):
    """A data set (manifest, annotation file, input folder) cannot be used at all."""

    exit_code = 7


class TrainingDiverged(LesionlocError):
    """Training stopped: the loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 8


class ExportError(LesionlocError):
    """The exported model is below the parity thresholds of its precision against the
    checkpoint (without --allow-degraded); no bundle is written."""

    exit_code = 9


class OutputError(LesionlocError):
    """The output location cannot be written: read-only, full, not a directory, name too long.

    `errno` is the operating system's error number, when there is one."""

    exit_code = 10

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class WorkerLost(LesionlocError):
    """A worker process died (killed: most often by the kernel when memory runs out); the
    command stops (a batch keeps the studies done, and a rerun does the rest)."""

    exit_code = 11


# The classes the commands raise, in the table's order (LesionlocError itself is abstract).
ERROR_CLASSES: tuple[type[LesionlocError], ...] = (
    ConfigError, ImageReadError, NotAnImage, DicomOutputError, ReportError, BundleError,
    CheckpointError, DataError, TrainingDiverged, ExportError, OutputError, WorkerLost,
)


@dataclass(frozen=True)
class ExitCode:
    """One row of the exit-code table: `error` is the class that exits with `code`, or "" for
    a code that no error class carries."""

    code: int
    error: str
    meaning: str


def exit_codes() -> list[ExitCode]:
    """Every exit code of the lesionloc commands, sorted by code."""
    rows = [
        ExitCode(EXIT_OK, "", "Success."),
        ExitCode(EXIT_STUDIES_FAILED, "", "Batch mode: at least one study failed (each is named "
                 "on stderr); every other study is written."),
        ExitCode(EXIT_USAGE, "", "A command-line mistake: an unknown option, a missing argument, "
                 "a value of the wrong type."),
        ExitCode(EXIT_INTERRUPTED, "", "Interrupted (Ctrl-C)."),
        ExitCode(EXIT_HANGUP, "", "Stopped by SIGHUP (the terminal or ssh session closed): as "
                 "by SIGTERM; under `nohup` the command goes on."),
        ExitCode(EXIT_TERMINATED, "", "Stopped by SIGTERM (a scheduler, a service manager, "
                 "`kill`): lesionloc-run, -evaluate and -export stop as on Ctrl-C."),
    ]
    for error in ERROR_CLASSES:
        summary = inspect.cleandoc(error.__doc__ or "").split("\n\n")[0]
        rows.append(ExitCode(error.exit_code, error.__name__, " ".join(summary.split())))
    return sorted(rows, key=lambda row: row.code)


def exit_code_table() -> str:
    """The exit codes as the Markdown table in the README."""
    lines = ["| code | error | meaning |", "| --- | --- | --- |"]
    lines += [f"| {row.code} | {f'`{row.error}`' if row.error else ''} | {row.meaning} |"
              for row in exit_codes()]
    return "\n".join(lines)


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


if __name__ == "__main__":
    print(exit_code_table())
