"""Cold start of two checkouts of lesionloc, alternated: the latency benchmark's own cold-start
script (import, bundle load, first result, peak memory) in fresh processes, each with a home of
its own, the first round's order flipping every round. For a change to imports or loading,
whose effect (tens of ms) one run of the benchmark cannot separate from the machine's drift.

    python scripts/cold_start_ab.py OLD_TREE NEW_TREE BUNDLE IMAGE REPORT [--providers openvino]

OLD_TREE/NEW_TREE: repository roots (`git worktree add /tmp/old COMMIT`); each process imports
lesionloc from its tree. With `--providers openvino`, both share one compiled-graph cache,
filled before the rounds (as on a machine after its first run)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_latency import COLD_START


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("old", "new", "bundle", "image", "report"):
        parser.add_argument(name)
    parser.add_argument("--providers", default="cpu")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    files = [str(Path(f).resolve()) for f in (args.bundle, args.image, args.report)]
    cache = tempfile.mkdtemp(prefix="cold-ab-cache-")
    trees = {"old": args.old, "new": args.new}

    def run(tree: str) -> dict[str, float]:
        env = {**os.environ, "PYTHONPATH": str(Path(trees[tree]).resolve()),
               "LESIONLOC_OPENVINO_CACHE": cache, "HOME": tempfile.mkdtemp(prefix="cold-ab-home-")}
        env.pop("ORT_DISABLE_TELEMETRY", None)
        done = subprocess.run([sys.executable, "-c", COLD_START, *files, args.providers],
                              capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
        if done.returncode:
            sys.exit(f"{tree} ({trees[tree]}): exit {done.returncode}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    run("new"), run("old")  # the compiled-graph cache filled, the files in the page cache
    results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for k in range(args.rounds):
        for tree in ("old", "new") if k % 2 == 0 else ("new", "old"):
            results[tree].append(run(tree))
    for tree, runs in results.items():
        medians = {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
        spread = sorted(round(r["bundle_to_first_result_s"], 3) for r in runs)
        print(f"{tree} ({trees[tree]}): medians {medians}; bundle to first result {spread}")


if __name__ == "__main__":
    main()
