"""Localizers without a model, the floor any trained model must clear: a random field, a fixed
lung prior, the brightest region, and a text prior (mean training box per finding, side and
zone); plus the scorer that runs them on the finding sentences of a manifest split."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lesionloc_runtime.errors import DataError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.metrics import METRIC_NAMES, boxes_to_mask, mean_scores, score_heatmap

BASELINES = ("random", "centre_prior", "brightest_region", "text_prior")


def random_heatmap(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field (a few random blobs): what chance looks like for every metric."""
    coarse = rng.random((6, 6)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def centre_prior_heatmap(height: int, width: int) -> np.ndarray:
    """A fixed prior: two Gaussians where the lungs usually are on a frontal chest film."""
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width
    out = np.zeros((height, width), dtype=np.float32)
    for cx in (0.32, 0.68):
        gx = np.exp(-0.5 * ((xs - cx) / 0.12) ** 2)
        gy = np.exp(-0.5 * ((ys - 0.45) / 0.18) ** 2)
        out += gy[:, None] * gx[None, :]
    return out


def brightest_region_heatmap(image: np.ndarray, sigma_frac: float = 0.03) -> np.ndarray:
    """Smoothed brightness within the body (the foreground by Otsu's threshold): the
    "brightest blob" strategy that phantoms must not reward."""
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape
    factor = max(1, max(h, w) // 256)
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)),
                       interpolation=cv2.INTER_AREA)
    sigma = max(0.5, sigma_frac * max(small.shape))
    smooth = cv2.GaussianBlur(small, (0, 0), sigma)
    u8 = np.clip(small * 255, 0, 255).astype(np.uint8)
    _, body = cv2.threshold(u8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    body = cv2.erode(body, np.ones((3, 3), np.uint8))
    heat = np.where(body > 0, smooth, 0.0).astype(np.float32)
    return cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)


# Sentence → (finding, side, zone) by keywords; order matters (first match wins).
_FINDING_PATTERNS = (
    ("cardiomegaly", r"cardiomegaly|heart is \w* ?enlarged|(cardiac silhouette|heart) is enlarged|"
                     r"enlarged (cardiac|heart)"),
    ("pneumothorax", r"pneumothora"),
    ("effusion", r"effusion|pleural fluid|costophrenic"),
    ("atelectasis", r"atelecta"),
    ("mass", r"\bmass\b|rounded opacity"),
    ("nodule", r"nodul"),
    ("consolidation", r"consolidat|opacit|airspace|pneumonia|infiltrat"),
)
_ZONE_PATTERNS = (
    ("lingula", r"lingul"), ("perihilar", r"perihilar|hilar"), ("apical", r"\bapex|apical"),
    ("basal", r"\bbases?\b|basilar|basal|bibasilar"), ("upper", r"\bupper"),
    ("middle", r"\bmiddle|\bmid\b|midlung|mid lung"), ("lower", r"\blower"),
    ("lateral", r"\blateral"),
)


def parse_sentence(text: str) -> tuple[str | None, str | None, str | None]:
    """(finding, side, zone) named by a sentence, from keywords alone (None where unnamed)."""
    t = " ".join(text.lower().split())
    finding = next((name for name, pat in _FINDING_PATTERNS if re.search(pat, t)), None)
    right, left = bool(re.search(r"\bright\b", t)), bool(re.search(r"\bleft\b|lingul", t))
    if re.search(r"bilateral|\bboth\b|bibasilar", t) or (right and left):
        side = "bilateral"
    else:
        side = "right" if right else "left" if left else None
    zone = next((name for name, pat in _ZONE_PATTERNS if re.search(pat, t)), None)
    if finding == "cardiomegaly":
        side = zone = None
    return finding, side, zone


@dataclass
class TextPrior:
    """Mean normalized box per (finding, side, zone) named in training sentences; a sentence's
    heatmap is that box region (two boxes for a bilateral finding)."""

    boxes: dict[tuple[str | None, str | None, str | None], list[list[float]]] = \
        field(default_factory=dict)

    @classmethod
    def fit(cls, records: Iterable[dict[str, Any]], split: str | None = "train") -> TextPrior:
        found: dict[tuple, dict[int, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        for rec in records:
            if split is not None and rec.get("split") != split:
                continue
            w, h = float(rec["width"]), float(rec["height"])
            for s in rec["sentences"]:
                if s.get("kind") != "finding" or not s.get("boxes"):
                    continue
                # Boxes sorted left to right, so a bilateral pair averages image-left with
                # image-left (the patient's right lung) and image-right with image-right.
                norm = sorted(([b[0] / w, b[1] / h, b[2] / w, b[3] / h] for b in s["boxes"]),
                              key=lambda b: b[0])
                for key in _backoff(*parse_sentence(s["text"])):
                    found[key][len(norm)].append(np.array(norm))
        prior = cls()
        for key, by_count in found.items():
            # The usual number of boxes for this key (a bilateral finding has two).
            count = max(by_count, key=lambda c: (len(by_count[c]), -c))
            prior.boxes[key] = np.mean(by_count[count], axis=0).tolist()
        if not prior.boxes:
            raise DataError("no finding sentence with boxes to fit the text prior on (is the "
                            f"split {split!r} empty?)")
        return prior

    def boxes_for(self, text: str) -> list[list[float]]:
        """The normalized boxes the prior predicts for a sentence (backing off to less
        specific keys; a bilateral finding never seen as such joins its two sides)."""
        finding, side, zone = parse_sentence(text)
        for key in ((finding, side, zone), (finding, side, None)):
            if key in self.boxes:
                return self.boxes[key]
        if side == "bilateral":
            joined: list[list[float]] = []
            for s in ("right", "left"):
                key = next((k for k in ((finding, s, zone), (finding, s, None)) if k in self.boxes),
                           None)
                joined += self.boxes[key] if key else []
            if joined:
                return joined
        return self.boxes.get((finding, None, None)) or self.boxes.get((None, None, None), [])

    def heatmap(self, text: str, height: int, width: int) -> np.ndarray:
        out = np.zeros((height, width), dtype=np.float32)
        for x, y, w, h in self.boxes_for(text):
            out[boxes_to_mask([[x * width, y * height, w * width, h * height]], height,
                              width)] = 1.0
        return out


def _backoff(finding: str | None, side: str | None,
             zone: str | None) -> list[tuple[str | None, str | None, str | None]]:
    keys = [(finding, side, zone), (finding, side, None), (finding, None, None),
            (None, None, None)]
    return list(dict.fromkeys(keys))


@dataclass
class BaselineScores:
    """Mean metrics of one baseline, overall and per finding type, and how many sentences."""

    overall: dict[str, float]
    by_finding: dict[str, dict[str, float]]
    n: int


def read_manifest(path: str | os.PathLike[str]) -> tuple[Path, list[dict[str, Any]]]:
    """The manifest's directory and records (`path` is manifest.jsonl or its directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no manifest found; give a manifest.jsonl or its directory")
    records = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return path.parent, records


def evaluate_baselines(manifest: str | os.PathLike[str], split: str = "test",
                       train_split: str = "train", baselines: Sequence[str] = BASELINES,
                       train_manifest: str | os.PathLike[str] | None = None,
                       seed: int = 0, max_side: int | None = None,
                       progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
                       ) -> dict[str, BaselineScores]:
    """Score each baseline with `score_heatmap` on every finding sentence of `split`.

    The text prior is fitted on `train_split` of `train_manifest` (default: the same
    manifest), so a 2048-pixel test set can use a 512-pixel training set (boxes are normalized).
    `max_side` evaluates on a grid downsampled so its longer side is at most that (boxes
    scaled alike): the numbers move little and 2048-pixel studies score 16x faster.
    """
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise DataError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    root, records = read_manifest(manifest)
    tests = [r for r in records if r.get("split") == split]
    if not tests:
        raise DataError(f"{root}: no study in split {split!r}")
    prior = None
    if "text_prior" in baselines:
        train_records = records if train_manifest is None else read_manifest(train_manifest)[1]
        prior = TextPrior.fit(train_records, train_split)
    rng = np.random.default_rng(seed)
    scores: dict[str, list[tuple[str, Any]]] = {b: [] for b in baselines}
    for rec in (progress or (lambda x: x))(tests):
        sentences = [s for s in rec["sentences"] if s.get("kind") == "finding" and s.get("boxes")]
        if not sentences:
            continue
        width, height = int(rec["width"]), int(rec["height"])
        scale = 1.0 if not max_side else min(1.0, max_side / max(width, height))
        gw, gh = max(1, round(width * scale)), max(1, round(height * scale))
        fixed: dict[str, np.ndarray] = {}
        if "random" in baselines:
            fixed["random"] = random_heatmap(gh, gw, rng)
        if "centre_prior" in baselines:
            fixed["centre_prior"] = centre_prior_heatmap(gh, gw)
        if "brightest_region" in baselines:
            image_path = root / (rec.get("image_png") or rec["image"])
            image = read_image(image_path).pixels
            if image.shape != (height, width):
                raise DataError(f"{image_path}: image is {image.shape[1]}x{image.shape[0]}, the "
                                f"manifest says {width}x{height}")
            if scale != 1.0:
                image = cv2.resize(image, (gw, gh), interpolation=cv2.INTER_AREA)
            fixed["brightest_region"] = brightest_region_heatmap(image)
        cache: dict[tuple, Any] = {}
        for s in sentences:
            boxes = [[v * scale for v in b] for b in s["boxes"]]
            mask = boxes_to_mask(boxes, gh, gw)
            for name in baselines:
                key = (name, json.dumps(boxes),
                       parse_sentence(s["text"]) if name == "text_prior" else None)
                if key not in cache:
                    heat = fixed[name] if name in fixed else prior.heatmap(s["text"], gh, gw)
                    cache[key] = score_heatmap(heat, mask)
                scores[name].append((s.get("finding") or "unknown", cache[key]))
    out = {}
    for name, pairs in scores.items():
        by: dict[str, list] = defaultdict(list)
        for finding, sc in pairs:
            by[finding].append(sc)
        out[name] = BaselineScores(mean_scores([sc for _, sc in pairs]),
                                   {f: mean_scores(v) for f, v in sorted(by.items())}, len(pairs))
    return out


def format_table(results: dict[str, BaselineScores],
                 metrics: Sequence[str] = ("pointing_game", "miou", "cnr", "auroc")) -> str:
    """A plain-text table: one row per baseline, then per baseline and finding type."""
    for m in metrics:
        if m not in METRIC_NAMES:
            raise DataError(f"unknown metric {m!r}; choose from {list(METRIC_NAMES)}")
    head = f"{'baseline':<18}{'finding':<15}{'n':>5}" + "".join(f"{m:>15}" for m in metrics)
    lines = [head, "-" * len(head)]
    for name, res in results.items():
        lines.append(f"{name:<18}{'ALL':<15}{res.n:>5}"
                     + "".join(f"{res.overall[m]:>15.3f}" for m in metrics))
    for name, res in results.items():
        for finding, vals in res.by_finding.items():
            lines.append(f"{name:<18}{finding:<15}{'':>5}"
                         + "".join(f"{vals[m]:>15.3f}" for m in metrics))
    return "\n".join(lines)
