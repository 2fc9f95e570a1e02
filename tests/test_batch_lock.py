"""One run of a batch at a time in its output folder (lesionloc_runtime.batch_lock)."""

from __future__ import annotations

import errno
import logging
import os

import pytest

from lesionloc_runtime import batch_lock as lock_module
from lesionloc_runtime.batch_lock import batch_lock, lock_path
from lesionloc_runtime.errors import OutputError


def test_the_same_batch_twice_is_refused_and_names_the_holder(tmp_path):
    out = tmp_path / "out"  # made by the lock
    with batch_lock(out, "batch_summary.json"):
        note = lock_path(out, "batch_summary.json").read_text()
        assert note.startswith(f"pid {os.getpid()} on ") and ", started 20" in note
        with pytest.raises(OutputError, match="being written by another run of this batch"
                           rf" \(pid {os.getpid()} on .*started") as refused, \
                batch_lock(out, "batch_summary.json"):
            pytest.fail("a second holder")  # pragma: no cover
        assert refused.value.exit_code == 10
    with batch_lock(out, "batch_summary.json"):  # released when the first ended
        pass


def test_shards_of_one_batch_lock_apart(tmp_path):
    with batch_lock(tmp_path, "batch_summary.shard-0-of-2.json"), \
            batch_lock(tmp_path, "batch_summary.shard-1-of-2.json"):
        assert lock_path(tmp_path, "batch_summary.shard-1-of-2.json").is_file()


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), batch_lock(tmp_path, "batch_summary.json"):
        raise RuntimeError("a study's bug")
    with batch_lock(tmp_path, "batch_summary.json"):
        pass


def test_an_output_that_cannot_be_written_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputError, match="cannot write"), \
            batch_lock(tmp_path / "file" / "out", "batch_summary.json"):
        pytest.fail("ran without its folder")  # pragma: no cover


def test_a_file_system_without_locks_runs_with_a_warning(tmp_path, monkeypatch, caplog):
    class NoLocks:
        LOCK_EX, LOCK_NB = 2, 4

        @staticmethod
        def flock(fd, how):
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module, "_fcntl", NoLocks)
    ran = []
    with caplog.at_level(logging.WARNING), batch_lock(tmp_path, "batch_summary.json"):
        ran.append(True)
    assert ran == [True]
    assert "cannot lock the batch's output (No locks available)" in caplog.text
