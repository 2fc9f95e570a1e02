"""Fuzzing batch mode's manifest: `lesionloc-run manifest.jsonl --out OUT` with the demo model
on mutated manifests (hostile values for image, report and study_id, keys removed or added,
rows that are not objects, duplicated, blank or undecodable lines, other encodings, damaged
bytes) over a few small studies, with a random subset of the batch options. Each case must
end with exit 0, 1 (some studies failed, each named on one line) or a one-line `error:` with
its exit code, nothing else on stderr, and after 0 or 1 a batch summary that is valid JSON.

    python tests/fuzz/manifests.py --cases 3000 [--start 0] [--timeout 30]
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness

ROWS = [
    {"image": "data/a.png", "report": "data/a.txt", "study_id": "a"},
    {"image": "data/b.png"},  # report beside the image, study id from the stem
    {"image": "data/sub/c.png", "report": "data/c.txt", "study_id": "c"},
]
EXTRA_VALUES = ["data", "data/a.txt", "data/missing.png", "manifest.jsonl", "data/a.png",
                "./data/../data/b.png", "data/sub/", "\u00e9t\u00e9.png"]
OPTIONS = [["--all-sentences"], ["--save-raw"], ["--report-score"], ["--shard", "1/2"],
           ["--shard", "0/3"], ["--query", "right basal opacity"]]


def make_seeds(out: Path) -> None:
    """Three small studies (PNG + report) under out/data."""
    import cv2

    shutil.rmtree(out, ignore_errors=True)
    (out / "data" / "sub").mkdir(parents=True)
    y, x = np.mgrid[0:96, 0:80].astype(np.float32)
    for name, phase in (("a", 0.0), ("b", 1.0), ("sub/c", 2.0)):
        image = 0.4 + 0.3 * np.sin(x / 11 + phase) * np.cos(y / 13)
        cv2.imwrite(str(out / "data" / f"{name}.png"), (image * 255).astype(np.uint8))
    (out / "data" / "a.txt").write_text("FINDINGS: Right basal consolidation. No effusion.\n")
    (out / "data" / "b.txt").write_text("Left apical pneumothorax.")
    (out / "data" / "c.txt").write_text("IMPRESSION: 1. Cardiomegaly. 2. Small left effusion.")


def manifest_bytes(rng: random.Random) -> bytes:
    rows = harness.mutate_json(ROWS, rng) if rng.random() < 0.4 else json.loads(json.dumps(ROWS))
    if isinstance(rows, list) and rows and rng.random() < 0.5:
        row = rng.choice(rows)
        if isinstance(row, dict):
            row[rng.choice(["image", "report", "study_id"])] = rng.choice(EXTRA_VALUES)
    lines = [json.dumps(r) for r in rows] if isinstance(rows, list) else [json.dumps(rows)]
    for _ in range(rng.choice([0, 0, 0, 0, 1, 3])):
        at = rng.randrange(len(lines) + 1)
        lines.insert(at, rng.choice(["", "   ", "not json", "{", lines[at - 1] if at else "[]",
                                     "[" * 5000, '{"image": 1e999}']))
    data = harness.encode_text("\n".join(lines) + rng.choice(["\n", "", "\r\n"]), rng)
    return harness.damage(data, rng) if rng.random() < 0.1 else data


def run_case(seeds: Path, case: int, work: Path) -> str:
    from lesionloc_runtime.cli import main

    harness.reuse_models()
    rng = random.Random(case)
    (work / "data").symlink_to(seeds / "data", target_is_directory=True)
    (work / "manifest.jsonl").write_bytes(manifest_bytes(rng))
    args = [str(work / "manifest.jsonl"), "--out", str(work / "out"), "-q", "--threads", "1"]
    for option in rng.sample(OPTIONS, rng.choice([0, 0, 1, 2])):
        args += [str(work / o) if o == "data" else o for o in option]
    outcome = harness.run_cli(main, args, {0, 1, 2, 3, 4, 7, 10})
    if outcome in ("exit 0", "exit 1"):
        summaries = list((work / "out").glob("batch_summary*.json"))
        if len(summaries) != 1:
            return f"PROBLEM {outcome} with {len(summaries)} batch summaries"
        try:
            json.loads(summaries[0].read_text(encoding="utf-8"))
        except ValueError as exc:
            return f"PROBLEM batch summary is not JSON ({exc})"
    return outcome


TARGET = harness.Target("manifests", __file__, make_seeds, run_case, __doc__, timeout=30.0)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
