"""Localizers without a model, the floor any trained model must clear: a random field, a fixed
lung prior, the brightest region, and a text prior (mean training box per finding, side and
zone); plus the scorer that runs them on the finding sentences of a manifest split."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lesionloc_runtime.batch_manifest import iter_manifest_rows
from lesionloc_runtime.errors import DataError
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.metrics import METRIC_NAMES, boxes_to_mask, mean_scores

__all__ = [
    "BASELINES",
    "BaselineHeatmaps",
    "BaselineScores",
    "TextPrior",
    "brightest_region_heatmap",
    "centre_prior_heatmap",
    "evaluate_baselines",
    "format_table",
    "parse_sentence",
    "random_heatmap",
]

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


def _read_manifest(path: str | os.PathLike[str]) -> tuple[Path, list[dict[str, Any]]]:
    """The manifest's directory and records (`path` is manifest.jsonl or its directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no manifest found; give a manifest.jsonl or its directory")
    records = []
    for lineno, row in iter_manifest_rows(path):
        if row is None:
            raise DataError(f"{path}:{lineno}: not a JSON object")
        records.append(row)
    return path.parent, records


class BaselineHeatmaps:
    """A baseline as a heatmap provider, so it is scored by the same loop as every model."""

    def __init__(self, name: str, prior: TextPrior | None = None, seed: int = 0) -> None:
        if name not in BASELINES:
            raise DataError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
        if name == "text_prior" and prior is None:
            raise DataError("the text prior baseline needs a fitted TextPrior")
        self.name, self.prior = name, prior
        self.rng = np.random.default_rng(seed)

    def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
        h, w = image.height, image.width
        if self.name == "random":
            return np.stack([random_heatmap(h, w, self.rng) for _ in texts])
        if self.name == "centre_prior":
            return np.stack([centre_prior_heatmap(h, w)] * len(texts))
        if self.name == "brightest_region":
            return np.stack([brightest_region_heatmap(image.pixels)] * len(texts))
        assert self.prior is not None  # checked in __init__
        return np.stack([self.prior.heatmap(t, h, w) for t in texts])


def evaluate_baselines(manifest: str | os.PathLike[str], split: str = "test",
                       train_split: str = "train", baselines: Sequence[str] = BASELINES,
                       train_manifest: str | os.PathLike[str] | None = None,
                       seed: int = 0, max_side: int | None = None,
                       progress: bool = False) -> dict[str, BaselineScores]:
    """Score each baseline on every finding sentence of `split`, with the evaluation loop
    every model goes through (`lesionloc_runtime.evaluation.runner.evaluate`).

    The text prior is fitted on `train_split` of `train_manifest` (default: the same
    manifest), so a 2048-pixel test set can use a 512-pixel training set (boxes are normalized).
    `max_side` scores on a grid whose longer side is at most that (None: full resolution).
    """
    from lesionloc_runtime.evaluation.datasets import open_dataset
    from lesionloc_runtime.evaluation.runner import evaluate

    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise DataError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    root, records = _read_manifest(manifest)
    if not any(r.get("split") == split for r in records):
        raise DataError(f"{root}: no study in split {split!r}")
    prior = None
    if "text_prior" in baselines:
        train_records = records if train_manifest is None else _read_manifest(train_manifest)[1]
        prior = TextPrior.fit(train_records, train_split)
    out = {}
    for name in baselines:
        stream = open_dataset("phantoms", root / "manifest.jsonl", split=split)
        run = evaluate(stream, BaselineHeatmaps(name, prior, seed), score_size=max_side,
                       progress=progress)
        by: dict[str, list] = defaultdict(list)
        for sample in run.samples:
            by[sample.category].append(sample.scores)
        out[name] = BaselineScores(mean_scores([x.scores for x in run.samples]),
                                   {f: mean_scores(v) for f, v in sorted(by.items())},
                                   len(run.samples))
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
