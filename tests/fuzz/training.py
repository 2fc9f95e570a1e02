"""Fuzzing the training side's inputs, a third of the cases each:
- `lesionloc-train prepare-mimic` on a small MIMIC-CXR-JPG tree whose split or metadata table
  is mutated (text, bytes, gzip damage) or whose ROOT, --reports, --out, --splits or --views
  is hostile; exit 0 must leave a manifest that `read_manifest` reads;
- training manifests (`read_manifest`, what pretrain, cache and validation read) mutated as
  JSON Lines, with a random split;
- configs: a preset mutated as JSON and `--set` overrides with hostile keys and values, through
  `load_config`, whose result must convert to strict JSON.
Each case must succeed or refuse with a one-line LesionlocError, and print nothing else.

    python tests/fuzz/training.py --cases 3000 [--start 0] [--timeout 30]
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sys
from pathlib import Path

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness

PRESETS = Path(__file__).resolve().parents[2] / "lesionloc_train" / "presets"
OVERRIDES = ["optim.lr=0.001", "data.batch_size=4", "loss.attention_temperature=0.25",
             "model.embed_dim=64", "loss.local_kinds=[\"finding\"]", "model.heatmap_source=auto",
             "preprocess.image_size=256", "optim.max_steps=10", "model.text.max_length=32"]
HOSTILE_OVERRIDES = ["", "=", "a", "a=", "=1", "optim=1", "optim.lr", "optim.lr=abc",
                     "optim.lr=nan", "optim.lr=1e999", "loss.local_kinds=5", "x.y.z=1",
                     "model.image.resnet.hidden_sizes=[1e999]", "data.batch_size=-1",
                     "data.batch_size=" + "9" * 5000, "model.text={}", "loss=null",
                     "optim.lr=" + "[" * 5000, "model.image.mean=[1,2]", "name=\u2028"]
HOSTILE_PATHS = ["", "/", ".", "x" * 300, "a/" * 2000, "missing", "out.jsonl/below", "\u00e9",
                 "root-file"]


def make_seeds(out: Path) -> None:
    """A small MIMIC-CXR-JPG tree (gzip tables) and one with plain tables (the MIMIC tests'
    writer), and a training manifest over the manifests target's studies."""
    import test_mimic

    from fuzz import manifests

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    test_mimic.make_mimic(out / "gz")
    test_mimic.make_mimic(out / "plain", gz=False)
    manifests.make_seeds(out / "phantoms")
    sentence = {"text": "Right basal consolidation.", "section": "findings", "kind": "finding",
                "finding": "consolidation", "side": "right", "zone": "basal",
                "boxes": [[10, 50, 20, 15]]}
    rows = [{"study_id": name, "split": split, "image": f"data/{name}.png",
             "report": f"data/{name.split('/')[-1]}.txt", "width": 80, "height": 96,
             "sentences": [sentence]}
            for name, split in (("a", "train"), ("b", "val"), ("sub/c", "test"))]
    (out / "phantoms" / "manifest.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")


def _mutate_table(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    packed = path.name.endswith(".gz")
    if packed and rng.random() < 0.3:  # the compressed stream itself
        path.write_bytes(harness.damage(data, rng))
        return
    text = (gzip.decompress(data) if packed else data).decode("utf-8")
    raw = harness.encode_text(harness.mutate_text(text, rng), rng)
    raw = harness.damage(raw, rng) if rng.random() < 0.1 else raw
    path.write_bytes(gzip.compress(raw, mtime=0) if packed else raw)


def prepare_mimic_case(seeds: Path, rng: random.Random, work: Path) -> str:
    from lesionloc_runtime.batch_manifest import read_manifest
    from lesionloc_train.mimic import prepare_mimic

    base = work / "base"
    shutil.copytree(seeds / rng.choice(["gz", "plain"]), base)
    root, out = base / "mimic-cxr-jpg", work / "out.jsonl"
    (work / "root-file").write_text("not a folder")
    args = [str(root), "--out", str(out)]
    if rng.random() < 0.7:
        _mutate_table(rng.choice(sorted(root.glob("mimic-cxr-2.0.0-*"))), rng)
    else:
        which = rng.choice(["ROOT", "--reports", "--out", "--splits", "--views"])
        value = rng.choice(HOSTILE_PATHS + ["train,,test", "PA,PA", "LATERAL", "none"])
        value = str(work / value) if which in ("ROOT", "--reports", "--out") else value
        if which == "ROOT":
            args[0] = value
        else:
            args += [which, value]
    if rng.random() < 0.3:
        args += rng.choice([["--all-frontal"], ["--limit", "2"], ["--no-check-files"]])
    outcome = harness.run_cli(prepare_mimic, args, {0, 2, 7, 10})
    if outcome == "exit 0" and out.is_file():
        try:
            read_manifest(out)
        except Exception as exc:  # the manifest prepare-mimic wrote must read back
            from lesionloc_runtime.errors import DataError

            if not (isinstance(exc, DataError) and "no usable rows" in str(exc)):
                return f"PROBLEM its manifest does not read back: {harness.problem(exc)}"
    return f"{outcome} prepare-mimic"


def manifest_case(seeds: Path, rng: random.Random, work: Path) -> str:
    from lesionloc_runtime.batch_manifest import read_manifest

    shutil.copytree(seeds / "phantoms", work / "phantoms", symlinks=True)
    path = work / "phantoms" / "manifest.jsonl"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            rows.append(line)
    rows = harness.mutate_json(rows, rng)
    lines = [json.dumps(r) for r in rows] if isinstance(rows, list) else [json.dumps(rows)]
    data = harness.encode_text("\n".join(lines), rng)
    path.write_bytes(harness.damage(data, rng) if rng.random() < 0.1 else data)
    records, stats = read_manifest(path, split=rng.choice([None, "train", "val", "test"]),
                                   max_rows=rng.choice([None, None, 1]))
    for record in records:
        if not (isinstance(record.study_id, str) and record.image.is_file()
                and record.report.is_file()):
            return f"PROBLEM record {record.study_id!r}: not a usable study"
    return "ok manifest"


def config_case(seeds: Path, rng: random.Random, work: Path) -> str:
    from lesionloc_train.config import load_config

    preset = rng.choice(sorted(PRESETS.glob("*.json")))
    document = json.loads(preset.read_text(encoding="utf-8"))
    path = work / "preset.json"
    if rng.random() < 0.7:
        document = harness.mutate_json(document, rng)
    path.write_text(harness.json_text(document, rng), encoding="utf-8")
    overrides = rng.sample(OVERRIDES, rng.choice([0, 1, 2]))
    if rng.random() < 0.5:
        overrides.append(rng.choice([*HOSTILE_OVERRIDES,
                                     harness.mutate_text(rng.choice(OVERRIDES), rng)]))
    cfg = load_config([str(path)], overrides)
    problem = harness.json_problem(cfg.to_dict())
    if problem:
        return f"PROBLEM the config {problem}"
    cfg.preprocess_config()
    return "ok config"


KINDS = (prepare_mimic_case, manifest_case, config_case)


def run_case(seeds: Path, case: int, work: Path) -> str:
    return KINDS[case % len(KINDS)](seeds, random.Random(case), work)


TARGET = harness.Target("training", __file__, make_seeds, run_case, __doc__, timeout=30.0)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
