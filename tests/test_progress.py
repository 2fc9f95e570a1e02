"""Progress lines where no terminal shows them (lesionloc_runtime/progress.py)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from lesionloc_runtime import progress

BIN = Path(sys.executable).parent


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_a_plain_line_now_and_then_never_a_redrawn_bar(monkeypatch):
    out = io.StringIO()
    with progress.progress(400, "lesionloc", "study", file=out) as bar:
        assert isinstance(bar, progress.LineProgress)
        for _ in range(100):
            bar.update()
    assert out.getvalue() == ""  # under a minute: nothing yet
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with progress.progress(400, "lesionloc", "study", file=out, initial=100) as bar:
        bar.update(300)
        bar.set_postfix(loss="8.491")
        bar.update(0)
        bar.write("error: s1: no report found")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 3
    assert lines[0].startswith("lesionloc: 400 of 400 studies (100%), ")
    assert lines[0].endswith(" a second")
    assert lines[1].endswith(", loss 8.491") and lines[2] == "error: s1: no report found"


def test_a_terminal_gets_the_bar_and_disabled_is_silent():
    from tqdm import tqdm

    terminal = _Terminal()
    with progress.progress(10, "cache", "image", file=terminal) as bar:
        assert isinstance(bar, tqdm)
        bar.update(10)
    assert "\r" in terminal.getvalue()
    quiet = io.StringIO()
    with progress.progress(10, "cache", "image", enabled=False, file=quiet) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""


def test_a_batch_logging_to_a_file_writes_no_carriage_returns(tmp_path, tiny_bundle, phantom_set):
    """Under cron, systemd or Slurm the bar's redraws piled up into one ever longer line."""
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    for row in phantom_set.read_text().splitlines()[:2]:
        import json

        study = json.loads(row)
        for key in ("image", "report"):
            shutil.copy(phantom_set.parent / study[key], data)
    done = subprocess.run([str(BIN / "lesionloc-run"), str(data), "--model", str(tiny_bundle),
                           "--out", str(tmp_path / "out")], capture_output=True)  # bytes: as
    assert done.returncode == 0, done.stderr  # text, universal newlines would hide each \r
    assert b"\r" not in done.stderr and b"2 studies done" in done.stdout
