"""Compare two checkouts of lesionloc on the same study, step by step: processes of each in
turn (A, B, B, A, A, B, ...), each running scripts/study_times.py (this checkout's) with the
other checkout's package, so that both see the same phases of a shared machine's speed. Prints
the medians of every study of each checkout: reading, localizing, writing and the whole study,
wall time and CPU time, and the wall time of the steps inside localizing (preprocessing, each
encoder, the heatmaps).

    git worktree add /tmp/before HEAD~1
    python scripts/study_ab.py /tmp/before . BUNDLE IMAGE REPORT --rounds 6

BUNDLE: the full-size int8 bundle the first `--full` latency run makes
(.benchmarks/cache/full-model/bundle-int8; link the worktree's .benchmarks to this one's);
IMAGE and REPORT: the benchmarks' reference study, `python benchmarks/full_model.py
--reference DIR` (it prints their paths).

A checkout is a folder holding lesionloc_runtime (put first on the child's sys.path)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from study_times import INNER, STEPS

_TIMES = Path(__file__).with_name("study_times.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="first checkout")
    parser.add_argument("b", type=Path, help="second checkout")
    parser.add_argument("bundle")
    parser.add_argument("image")
    parser.add_argument("report")
    parser.add_argument("--rounds", type=int, default=6, help="processes of each checkout")
    parser.add_argument("--studies", type=int, default=8, help="timed studies per process")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    files = [str(Path(f).resolve()) for f in (args.bundle, args.image, args.report)]
    results: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    for round_ in range(args.rounds):
        for name in ("a", "b") if round_ % 2 == 0 else ("b", "a"):  # neither always first
            tree = getattr(args, name).resolve()
            done = subprocess.run(
                [sys.executable, str(_TIMES), *files, "--studies", str(args.studies),
                 "--warmup", str(args.warmup), "--json"],
                cwd=tempfile.gettempdir(), env=dict(os.environ, PYTHONPATH=str(tree)),
                capture_output=True, text=True, check=True)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            if not run["package"].startswith(str(tree)):
                sys.exit(f"{name}: lesionloc_runtime came from {run['package']}, not {tree}")
            results[name] += run["studies"]
    for name in ("a", "b"):
        studies = results[name]

        def median(key: str, runs: list[dict[str, float]] = studies) -> float:
            return statistics.median(study[key] for study in runs)

        cells = [f"{step} {median(step):.1f} ms (CPU {median(step + '_cpu'):.1f})" for step in STEPS]
        cells += [f"{step} {median(step):.1f}" for step in INNER]
        print(f"{name} {getattr(args, name)}: " + ", ".join(cells) + f"; {len(studies)} studies")


if __name__ == "__main__":
    main()
