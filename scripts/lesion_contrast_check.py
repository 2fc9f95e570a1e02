"""Can the model see a lesion at its own input size? For every lesion box of a phantom set,
the contrast of the box against a ring around it (as wide as the box) in the preprocessed
tensor the image encoder is fed: (mean inside - mean of the ring) / sd of the ring, with the
box's size there in input pixels; medians by finding type.

A lesion near 0 is lost in its surroundings at that input size, so no loss can teach the
model to find it; one near 1 or above is there to be found, and a model that still misses it
(the demo model's nodules) has a training problem, not a resolution one. The ring of a large
lesion takes in more anatomy (ribs, mediastinum) than a small one's, so compare the contrast
within a finding type, or across settings, rather than between types.

    python scripts/lesion_contrast_check.py --manifest data/phantoms-test-2048/manifest.jsonl \
        [--bundle BUNDLE] [--findings nodule,mass]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.geometry import Geometry
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import DEMO_BUNDLE
from lesionloc_runtime.preprocess import preprocess


def box_contrast(tensor: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """(mean inside - mean of the ring) / sd of the ring for an (x0, y0, x1, y1) box of a 2-D
    tensor; the ring is as wide as the box's longer side (at least 2), clipped to the tensor."""
    x0, y0, x1, y1 = box
    margin = max(2, x1 - x0, y1 - y0)
    height, width = tensor.shape
    rx0, ry0 = max(0, x0 - margin), max(0, y0 - margin)
    rx1, ry1 = min(width, x1 + margin), min(height, y1 + margin)
    patch = tensor[ry0:ry1, rx0:rx1]
    ring = np.ones(patch.shape, bool)
    ring[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0] = False
    inside = tensor[y0:y1, x0:x1]
    if inside.size == 0 or not ring.any():
        return float("nan")
    return float((inside.mean() - patch[ring].mean()) / (patch[ring].std() + 1e-6))


def input_box(box: list[float], geometry: Geometry, size: int) -> tuple[int, int, int, int]:
    """An (x, y, w, h) box in original pixels as (x0, y0, x1, y1) in the encoder's size x size
    input, through the bundle's own geometry (letterbox or centre crop), clipped to it."""
    x, y, w, h = box
    (ax, ay), (bx, by) = geometry.to_model(x, y), geometry.to_model(x + w, y + h)
    def clip(value: float) -> int:
        return int(min(max(value, 0), size))
    return clip(np.floor(ax)), clip(np.floor(ay)), clip(np.ceil(bx)), clip(np.ceil(by))


def contrasts(manifest: Path, bundle: Path, findings: set[str] | None = None
              ) -> dict[str, list[tuple[float, int]]]:
    """finding type -> [(contrast, box width in input pixels)], each lesion box once."""
    config = ModelBundle.load(bundle).preprocessing
    found: dict[str, list[tuple[float, int]]] = {}
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        boxes = {(s["finding"], tuple(b)) for s in row["sentences"]
                 if s["kind"] == "finding" and s.get("finding") and s.get("boxes")
                 and (findings is None or s["finding"] in findings) for b in s["boxes"]}
        if not boxes:
            continue
        prepared = preprocess(read_image(manifest.parent / row["image"]), config)
        for finding, box in sorted(boxes):
            x0, y0, x1, y1 = input_box(list(box), prepared.letterbox, config.image_size)
            value = box_contrast(prepared.tensor[0], (x0, y0, x1, y1))
            if np.isfinite(value):  # a box a centre crop cuts away has nothing inside
                found.setdefault(finding, []).append((value, x1 - x0))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, default=DEMO_BUNDLE,
                        help="whose preprocessing makes the input (default: the demo model)")
    parser.add_argument("--findings", help="comma-separated finding types (default: all)")
    args = parser.parse_args()
    wanted = set(args.findings.split(",")) if args.findings else None
    for finding, values in sorted(contrasts(args.manifest, args.bundle, wanted).items()):
        c = np.array([v for v, _ in values])
        print(f"{finding:14s} boxes {len(values):4d}  width at input: median "
              f"{statistics.median(w for _, w in values):5.1f} px  contrast: median "
              f"{np.median(c):5.2f}, above 0.5 {np.mean(c > 0.5):.2f}, above 1 {np.mean(c > 1):.2f}")


if __name__ == "__main__":
    main()
