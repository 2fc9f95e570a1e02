"""Fuzzing model bundles: copies of the demo bundle whose card `lesionloc.json` is mutated
(values, keys, nesting, damaged or over-deep JSON), or whose ONNX graphs and tokenizer are
damaged with their checksums updated so that loading gets past the checksum to parse them,
or with a file removed, emptied or replaced by a folder. `Localizer.load` must refuse with
one line or load, and a loaded bundle must localize a fixed study into a valid result.

    python tests/fuzz/bundles.py --cases 3000 [--start 0] [--timeout 30]
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
from pathlib import Path

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness, reports

CARD = "lesionloc.json"


def make_seeds(out: Path) -> None:
    """The demo bundle, and the reports target's image."""
    from lesionloc_runtime.localizer import demo_bundle_path

    reports.make_seeds(out)
    shutil.copytree(demo_bundle_path(), out / "bundle")


def _rehash(card: dict, bundle: Path, name: str) -> None:
    """Record `name`'s new checksum in the card, as a careless re-export would."""
    target = bundle / name
    if isinstance(card.get("files"), dict) and target.is_file():
        data = target.read_bytes()
        card["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def mutate(bundle: Path, rng: random.Random) -> None:
    card_path = bundle / CARD
    card = json.loads(card_path.read_text(encoding="utf-8"))
    files = sorted(card["files"])
    roll = rng.random()
    if roll < 0.5:  # the card itself
        card_path.write_text(harness.json_text(harness.mutate_json(card, rng), rng),
                             encoding="utf-8")
        return
    name = rng.choice(files)
    target = bundle / name
    if roll < 0.8:  # a damaged file that passes its checksum
        if name.endswith(".json") and rng.random() < 0.5:
            document = json.loads(target.read_text(encoding="utf-8"))
            target.write_text(harness.json_text(harness.mutate_json(document, rng), rng))
        else:
            target.write_bytes(harness.damage(target.read_bytes(), rng))
        _rehash(card, bundle, name)
    else:  # a file missing, empty or a folder, checksum updated or not
        target.unlink()
        how = rng.choice(["missing", "empty", "folder"])
        if how == "empty":
            target.write_bytes(b"")
        elif how == "folder":
            target.mkdir()
        if rng.random() < 0.5:
            _rehash(card, bundle, name)
    card_path.write_text(json.dumps(card), encoding="utf-8")


def run_case(seeds: Path, case: int, work: Path) -> str:
    from lesionloc_runtime.imageio import read_image
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_runtime.text import parse_report

    rng = random.Random(case)
    bundle = work / "bundle"
    shutil.copytree(seeds / "bundle", bundle)
    mutate(bundle, rng)
    localizer = Localizer.load(bundle, threads=1)
    image = read_image(seeds / "image.png")
    report = parse_report((seeds / "sections.txt").read_text(encoding="utf-8"))
    result = localizer.localize(image, report, ground="all")
    outcome = reports.check_study(result, image.width, image.height)
    return "ok loaded" if outcome.startswith("ok") else outcome


TARGET = harness.Target("bundles", __file__, make_seeds, run_case, __doc__, timeout=30.0)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
