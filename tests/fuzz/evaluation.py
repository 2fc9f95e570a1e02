"""Fuzzing the evaluation readers: each of the five annotation formats (the phantom
manifest, MS-CXR as CSV and as COCO JSON, RSNA Pneumonia, SIIM-ACR with its RLE, COVID Rural's
masks) written small, then its annotation file mutated (as text, as JSON, as bytes) or a mask
damaged, and `lesionloc-evaluate` run on it with the demo model and a random split. Each case
must end with exit 0 or a one-line `error:` (exit 2 or 7), every skipped row or image
reported in one line, and the JSON report strict JSON.

    python tests/fuzz/evaluation.py --cases 3000 [--start 0] [--timeout 30]
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness

# data set folder -> (--dataset, the files a case mutates, as glob patterns)
DATASETS = {
    "phantoms": ("phantoms", ["manifest.jsonl", "masks/*.png"]),
    "ms-cxr-csv": ("ms-cxr", ["*.csv"]),
    "ms-cxr-json": ("ms-cxr", ["*.json"]),
    "rsna": ("rsna-pneumonia", ["*.csv"]),
    "siim": ("siim-pneumothorax", ["*.csv"]),
    "covid-rural": ("covid-rural", ["pngs_masks/*.png"]),
}
SPLITS = [None, None, None, None, "all", "test", "train"]


def make_seeds(out: Path) -> None:
    """One small data set per format, written as the official files are (the evaluation
    tests' writers)."""
    import test_evaluation as writers

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    writers.make_phantoms(out / "phantoms")
    writers.make_ms_cxr(out / "ms-cxr-csv")
    writers.make_ms_cxr_json(out / "ms-cxr-json")
    for csv in (out / "ms-cxr-json").glob("*.csv"):
        csv.unlink()  # the JSON is read only when no CSV is there
    writers.make_rsna(out / "rsna")
    writers.make_siim(out / "siim")
    writers.make_covid_rural(out / "covid-rural")


def _row(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return line  # the seed's deliberately malformed lines stay text


def mutate_file(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    if path.suffix == ".png" or rng.random() < 0.15:
        path.write_bytes(harness.damage(data, rng))
        return
    text = data.decode("utf-8")
    if path.suffix == ".json" and rng.random() < 0.6:
        text = harness.json_text(harness.mutate_json(json.loads(text), rng), rng)
    elif path.suffix == ".jsonl" and rng.random() < 0.6:
        rows = harness.mutate_json([_row(line) for line in text.splitlines()], rng)
        text = "\n".join(map(json.dumps, rows)) if isinstance(rows, list) else json.dumps(rows)
    else:
        text = harness.mutate_text(text, rng)
    path.write_bytes(harness.encode_text(text, rng))


def run_case(seeds: Path, case: int, work: Path) -> str:
    from lesionloc_runtime.evaluation.cli import command

    harness.reuse_models()
    rng = random.Random(case)
    folder = sorted(DATASETS)[case % len(DATASETS)]
    dataset, patterns = DATASETS[folder]
    root = work / folder
    shutil.copytree(seeds / folder, root)
    candidates = sorted(p for pattern in patterns for p in root.glob(pattern))
    for path in rng.sample(candidates, min(len(candidates), rng.choice([1, 1, 2]))):
        mutate_file(path, rng)
    args = ["--dataset", dataset, "--root", str(root), "--out", str(work / "out"),
            "--no-progress", "--threads", "1", "--score-size", "64"]
    split = rng.choice(SPLITS)
    if split:
        args += ["--split", split]
    outcome = harness.run_cli(command, args, {0, 2, 7}, extra_prefixes=("wrote ",))
    if outcome == "exit 0":
        reports = list((work / "out").glob("*.json"))
        for report in reports:
            problem = harness.json_problem(json.loads(report.read_text(encoding="utf-8")))
            if problem:
                return f"PROBLEM {report.name}: {problem}"
    return f"{outcome} {folder}"


TARGET = harness.Target("evaluation", __file__, make_seeds, run_case, __doc__, timeout=30.0)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
