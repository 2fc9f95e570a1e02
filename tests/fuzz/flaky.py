"""A target that misbehaves on purpose, one way per case: tests/test_fuzz.py checks that the
harness names a crash, a hang, output on stderr and an unexpected exception, and goes on after
each. It imports nothing but the harness, so its children start at once even on a busy
machine."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness


def run_case(seeds: Path, case: int, work: Path) -> str:
    if case == 1:
        os._exit(3)  # a crash, as a segfaulting decoder ends the process
    if case == 2:
        threading.Event().wait()  # a hang
    if case == 3:
        print("a library's chatter", file=sys.stderr)
    if case == 4:
        raise ValueError("a bug")
    return "ok"


TARGET = harness.Target("flaky", __file__, lambda folder: None, run_case, __doc__, timeout=5.0)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
