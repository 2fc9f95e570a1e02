"""Rewrite a version-1 bundle card (lesionloc.json) in the current format, in place, without
touching the bundle's other files: `python scripts/upgrade_bundle_card.py BUNDLE`. The runtime
reads version-1 cards as they are; this makes the description explicit (how the shipped demo
bundle was rewritten)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lesionloc_runtime.bundle import CARD_NAME, ModelBundle, upgrade_v1, write_card
from lesionloc_runtime.heatmap import HeatmapConfig
from lesionloc_runtime.preprocess import PreprocessConfig

V1_ONLY = ("grid_stride", "grid_origin", "heatmap_source", "files", "format", "format_version")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundle", type=Path)
    root = parser.parse_args().bundle
    bundle = ModelBundle.load(root)  # verifies the checksums before anything is rewritten
    card = json.loads((root / CARD_NAME).read_text(encoding="utf-8"))
    if card["format_version"] != 1:
        raise SystemExit(f"{root}: the card is already version {card['format_version']}")
    body = {k: v for k, v in upgrade_v1(card).items() if k not in V1_ONLY}
    body["preprocessing"] = PreprocessConfig.from_dict(card["preprocessing"]).to_dict()
    body["heatmap"] = HeatmapConfig.from_dict(body["heatmap"]).to_dict()
    order = ["name", "demo", "trained_on", "architecture", "embed_dim", "quantization",
             "preprocessing", "grid", "text", "heatmap"]
    write_card(root, {**{k: body[k] for k in order}, **body})
    assert ModelBundle.load(root).grid == bundle.grid


if __name__ == "__main__":
    main()
