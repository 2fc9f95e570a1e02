"""A montage of phantom studies with their ground-truth boxes and finding sentences, to judge
by eye whether the phantoms look like chest films and each finding like itself."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import cv2
import numpy as np

from lesionloc_runtime.errors import DataError
from lesionloc_runtime.imageio import read_image
from lesionloc_train.phantoms.dataset import load_manifest

# BGR colour per finding type, so a box and its sentence match.
COLOURS = {
    "consolidation": (60, 60, 255), "nodule": (0, 200, 255), "mass": (255, 80, 200),
    "effusion": (255, 160, 0), "pneumothorax": (80, 255, 80), "atelectasis": (0, 140, 255),
    "cardiomegaly": (255, 255, 0), "device": (150, 210, 150),
}
OVERLAY_COLOUR = (140, 140, 140)  # markers and burned-in text: boxed, not described
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def make_montage(manifest_dir: str | os.PathLike[str], n: int = 12, tile: int = 384,
                 cols: int = 4, split: str | None = None) -> np.ndarray:
    """A BGR uint8 montage of the first `n` studies (of `split`, if given)."""
    root = Path(manifest_dir)
    records = load_manifest(root)
    if split is not None:
        records = [r for r in records if r.get("split") == split]
    records = records[: max(1, n)]
    if not records:
        raise DataError(f"{root}: no study in split {split!r}")
    try:
        tiles = [_tile(root, r, tile) for r in records]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{root}: the manifest is not in the phantom record format "
                        f"({type(exc).__name__}: {exc})") from None
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    cols = max(1, min(cols, len(tiles)))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, axis=0)


def _tile(root: Path, record: dict, size: int) -> np.ndarray:
    image = read_image(root / record["image"]).pixels
    h, w = image.shape
    scale = size / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    y0, x0 = (size - th) // 2, (size - tw) // 2
    canvas[y0:y0 + th, x0:x0 + tw] = (np.clip(small, 0, 1) * 255).astype(np.uint8)[:, :, None]
    lines: list[tuple[str, tuple[int, int, int]]] = [(record["study_id"], (255, 255, 255))]

    def box(bx: float, by: float, bw: float, bh: float, colour: tuple[int, int, int]) -> None:
        p0 = (x0 + int(bx * scale), y0 + int(by * scale))
        p1 = (x0 + int(round((bx + bw) * scale)), y0 + int(round((by + bh) * scale)))
        cv2.rectangle(canvas, (p0[0] - 1, p0[1] - 1), (p1[0] + 1, p1[1] + 1), colour, 1)

    for overlay in record.get("overlays", []):
        if overlay["type"] in ("marker", "text"):
            box(*overlay["box"], OVERLAY_COLOUR)
    lesions = 0
    for s in record["sentences"]:
        if s["kind"] != "finding" or s["section"] != "findings":
            continue
        colour = COLOURS.get(s.get("finding") or "", (255, 255, 255))
        lesions += s.get("finding") != "device"
        for b in s["boxes"] or s.get("device_boxes", []):
            box(*b, colour)
        lines += [(part, colour) for part in textwrap.wrap(" ".join(s["text"].split()),
                                                           max(20, size // 7))]
    if not lesions:
        lines.append(("normal study", (200, 200, 200)))
    panel = np.zeros((14 * len(lines) + 8, size, 3), dtype=np.uint8)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(panel, text, (4, 14 + 14 * i), _FONT, 0.38, colour, 1, cv2.LINE_AA)
    return np.concatenate([canvas, panel], axis=0)


def write_montage(montage: np.ndarray, path: str | os.PathLike[str]) -> None:
    ok, buf = cv2.imencode(".png", montage)
    if not ok:
        raise DataError(f"{path}: cannot encode the montage as PNG")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(buf.tobytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot write the montage ({exc.strerror})") from None
