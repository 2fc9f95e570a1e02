"""Atomic writes give outputs the permissions the user's umask asks for, and learning the
umask never changes it, not even for a moment: other threads create files meanwhile."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from lesionloc_runtime import fileio


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status: Linux")
def test_the_umask_is_read_without_being_set(umask_027, monkeypatch):
    calls: list[int] = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real(mask))
    assert fileio._umask() == 0o027
    assert calls == []  # a umask of 0, even for a moment, is what another thread's mkdir gets


def test_atomic_writes_follow_the_umask(umask_027, tmp_path):
    fileio.atomic_write_text(tmp_path / "out" / "study.json", "{}")
    assert stat.S_IMODE((tmp_path / "out" / "study.json").stat().st_mode) == 0o640
    folder = tmp_path / "made-private"
    folder.mkdir(mode=0o700)
    fileio.make_dir_public(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750


def test_write_errors_names_the_place_and_lets_other_errors_through(tmp_path):
    import errno

    from lesionloc_runtime.errors import OutputError

    with pytest.raises(OutputError, match=r"^cannot write /x/y: No space left on device$"):
        with fileio.write_errors(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device", "/x/y")
    with pytest.raises(OutputError, match=rf"^cannot write {tmp_path}: Read-only file system"):
        with fileio.write_errors(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system")
    with pytest.raises(FileNotFoundError):  # not a write error of the place: as it was
        with fileio.write_errors(tmp_path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/in")
