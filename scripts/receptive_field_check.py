"""Where does a trained checkpoint's patch-grid cell look? Measures, for central cells, the
centroid of |d patch embedding / d input pixel| and prints its mean offset from where the
runtime places the cell (grid_origin + k * stride, the position bundles record).

A systematic offset here would mean heatmaps are drawn beside the region the network reads;
near zero means any shift of the heatmap peaks (BENCHMARKS.md, "best global shift") is where
the model puts its maximum, not a mapping error.

    python scripts/receptive_field_check.py runs/demo/full/checkpoints/step_0001500 \
        --manifest data/phantoms-test-2048/manifest.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.preprocess import preprocess
from lesionloc_train.checkpoint import load_checkpoint
from lesionloc_train.model import receptive_field_offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--manifest", type=Path, required=True,
                        help="phantom manifest whose first --images studies are the inputs")
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.manifest.read_text().splitlines()][: args.images]
    for path in args.checkpoints:
        checkpoint = load_checkpoint(path)
        model, config = checkpoint.model, checkpoint.config
        torch.manual_seed(0)
        size = config.model.image.image_size
        n = size // model.grid_stride  # a 3x3 lattice of central cells
        cells = [(r, c) for r in range(n // 2 - 2, n // 2 + 3, 2)
                 for c in range(n // 2 - 2, n // 2 + 3, 2)]
        films = np.stack([preprocess(read_image(args.manifest.parent / row["image"]),
                                     config.preprocess_config()).tensor for row in rows])
        for name, images in (("phantoms", torch.from_numpy(films)),
                             ("uniform noise", torch.rand(len(rows), 1, size, size))):
            offsets = np.array(receptive_field_offsets(model, images, cells))
            mean, spread = offsets.mean(0), offsets.std(0)
            print(f"{path} on {name}: mean offset ({mean[0]:+.2f}, {mean[1]:+.2f}) px = "
                  f"({mean[0] / model.grid_stride:+.3f}, {mean[1] / model.grid_stride:+.3f}) "
                  f"patches (x, y); spread ({spread[0]:.2f}, {spread[1]:.2f}) px over "
                  f"{len(offsets)} cells")


if __name__ == "__main__":
    main()
