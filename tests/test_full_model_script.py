"""`benchmarks/full_model.py --reference DIR`, which writes the benchmarks' reference study for
scripts/study_ab.py: a folder that already holds files is refused with a message, not a
traceback, and nothing in it is touched."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_reference_folder_with_files_in_it_is_refused_without_a_traceback(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "full_model.py"),
                           "--reference", str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert "is not empty; give a new or empty folder" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
