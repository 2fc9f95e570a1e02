"""Atomic file writing: every output appears whole or not at all, so a crash or kill never
leaves a half-written file where a reader (or a resumed batch run) would trust it."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lesionloc_runtime.errors import OutputError

__all__ = [
    "CANNOT_WRITE",
    "OUT_OF_SPACE",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "is_dir",
    "is_file",
    "make_dir_public",
    "sha256_file",
    "temporary_of",
    "write_errors",
]

# Write errors that no other file in the same place can escape either (a batch stops on them
# instead of failing each study; an export reports them as an OutputError).
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# ... and those of a folder that is not ours to write: a command reports each as an OutputError.
CANNOT_WRITE = (*OUT_OF_SPACE, errno.EACCES, errno.EPERM)


@contextmanager
def write_errors(where: str | os.PathLike[str]) -> Iterator[None]:
    """An OSError of a place that cannot be written (CANNOT_WRITE: full, read-only, not ours)
    becomes an OutputError naming the file, or `where` when the error names none."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in CANNOT_WRITE:
            raise
        raise OutputError(f"cannot write {exc.filename or where}: {exc.strerror or exc}",
                          exc.errno) from None


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb",
                durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success rename it over `path`. The rename alone
    makes the file appear whole or not at all to other processes (and after a kill);
    `durable` also fsyncs first, for files that must survive a power cut (markers, weights)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except RecursionError:  # pathlib recurses once per missing folder: thousands of them
        raise OSError(errno.ENAMETOOLONG, "too many missing parent folders",
                      str(path.parent)) from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


_TMP_SUFFIX = ".tmp"
# mkstemp's names: "." + prefix's name + "." + random letters, digits and "_" + suffix
_TEMPORARY = re.compile(r"\.(.+)\.[A-Za-z0-9_]+" + re.escape(_TMP_SUFFIX))


def temporary_of(name: str) -> str | None:
    """The file name that `name` is an `atomic_open` temporary of (one a killed process left
    behind), or None when it is not one."""
    match = _TEMPORARY.fullmatch(name)
    return match.group(1) if match else None


def _umask() -> int:
    """The process's umask, read where the kernel reports it (Linux: /proc/self/status).
    Setting the umask to learn it, the only portable way, opens a moment in which the files and
    folders other threads create (a batch writes from a pool) get no umask at all: in a test
    of 20,000 folders made beside a thread asking for the umask so, 7,594 came out group- or
    world-writable (a script not kept). Elsewhere: the umask when this module was imported."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


def _umask_by_setting_it() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_UMASK_AT_IMPORT = _umask_by_setting_it()  # imports run before any pool of ours starts


def make_dir_public(path: str | os.PathLike[str]) -> None:
    """mkdtemp makes 0700 directories; a bundle or checkpoint renamed into place should not be."""
    os.chmod(path, 0o777 & ~_umask())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> None:
    with atomic_open(path, "wb", durable) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", durable)


def is_dir(path: str | os.PathLike[str]) -> bool:
    """Path.is_dir, but False for a path the system cannot look up (see `is_file`)."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def is_file(path: str | os.PathLike[str]) -> bool:
    """Path.is_file, but False for a path the system cannot even look up (a name over
    NAME_MAX: ENAMETOOLONG, which Path.is_file raises rather than answering)."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
