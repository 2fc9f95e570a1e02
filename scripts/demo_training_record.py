"""Summarize the demo recipe's training runs (runs/demo/*/metrics.jsonl and timings.txt) into
benchmarks/results/demo-training.json, which scripts/benchmarks_report.py puts in BENCHMARKS.md.
Each variant records the machine it trained on; a variant that is not in --runs (an ablation
trained later, in another folder or on another machine) keeps its earlier entry.

    python scripts/demo_training_record.py [--runs runs/demo]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.cpu import describe  # noqa: E402 (the repository root first)


def summarize(run: Path) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    last = steps[-1]
    out = {"steps": last["step"], "last_loss": last["loss"], "epochs": last["epoch"] + 1,  # from 0
           "mean_pairs_per_s": sum(r["pairs_per_s"] for r in steps[1:]) / max(1, len(steps) - 1)}
    config = json.loads((run / "config.json").read_text())
    image = config["model"]["image"]
    out["config"] = {"name": config["name"], "image_size": image["image_size"],
                     "local_stage": image.get("local_stage"),
                     "local_fusion": image.get("local_fusion", False),
                     "batch_size": config["data"]["batch_size"], "lr": config["optim"]["lr"],
                     "attention_temperature": config["loss"]["attention_temperature"],
                     "local_kinds": config["loss"]["local_kinds"], "loss_weights": {
                         k: config["loss"].get(k, 0.0) for k in (
                             "global_t2i", "global_i2t", "local_t2i", "local_i2t",
                             "local_sentence")}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "demo")
    parser.add_argument("--note", default="", help="said after the summary (e.g. what the "
                        "timings leave out)")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "demo-training.json")
    args = parser.parse_args()
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    timings = args.runs / "timings.txt"
    if timings.is_file():  # "name: N s of training in this run[, M s process CPU]" per (re)start
        for line in timings.read_text().splitlines():
            name, _, rest = line.partition(":")
            name = name.strip()
            seconds[name] = seconds.get(name, 0.0) + float(rest.split()[0])
            if "process CPU" in rest:
                used = float(rest.split(",")[1].split()[0])
                cpu[name] = cpu.get(name, 0.0) + used
    machine = describe()
    earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
    variants = {name: {"machine": earlier.get("machine", "not recorded")} | entry
                for name, entry in earlier.get("variants", {}).items()}
    for run in sorted(p for p in args.runs.iterdir() if (p / "metrics.jsonl").is_file()):
        variants[run.name] = summarize(run) | {"seconds": seconds.get(run.name, float("nan")),
                                               "cpu_seconds": cpu.get(run.name, float("nan")),
                                               "machine": machine}
    if not variants:
        sys.exit(f"error: no training runs (*/metrics.jsonl) in {args.runs}")
    variants = dict(sorted(variants.items(), key=lambda kv: (kv[0] != "full", kv[0])))
    record = {
        "machine": variants.get("full", next(iter(variants.values())))["machine"],
        "command": "scripts/make_demo_model.sh (ABLATIONS=1 for the global-only variant, "
                   "ABLATIONS=2 for the local-only one too, ONLY=global_only for that one alone)",
        "summary": "Each variant trains the `demo` preset (merged with the ablation preset) for the "
                   "same number of steps on the standard phantom train set, on CPU. Accuracy: "
                   "see the localization section (the standard test set)."
                   + (f" {args.note}" if args.note else ""),
        "variants": variants,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
