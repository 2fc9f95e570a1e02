"""Parity of an exported bundle against the PyTorch model on held-out inputs: cosine of the
global embeddings, of every patch embedding and of the sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lesionloc_runtime.contract import IMAGE_INPUTS, IMAGE_OUTPUTS, TEXT_OUTPUTS, names
from lesionloc_runtime.localizer import Encoder
from lesionloc_runtime.tokens import TokenBatch, encode_windows

# Minimum cosine similarity to the PyTorch model, per precision: (mean, worst case).
THRESHOLDS: dict[str, tuple[float, float]] = {
    "none": (0.9999, 0.9999),
    "fp16": (0.999, 0.999),
    "int8": (0.99, 0.98),
}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-12)


@dataclass(frozen=True)
class ParityReport:
    precision: str
    figures: dict[str, dict[str, float]]  # output -> {"mean": .., "min": ..}
    thresholds: tuple[float, float]
    images: int
    texts: int

    @property
    def failures(self) -> list[str]:
        mean_min, worst_min = self.thresholds
        bad = []
        for name, fig in self.figures.items():
            if fig["mean"] < mean_min or fig["min"] < worst_min:
                bad.append(f"{name}: mean {fig['mean']:.6f} (>= {mean_min}), worst "
                           f"{fig['min']:.6f} (>= {worst_min})")
        return bad

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, object]:
        return {"precision": self.precision, "thresholds": {"mean": self.thresholds[0],
                                                             "worst": self.thresholds[1]},
                "held_out_images": self.images, "held_out_texts": self.texts,
                "cosine": {k: {"mean": round(v["mean"], 6), "min": round(v["min"], 6)}
                           for k, v in self.figures.items()},
                "passed": self.passed}


def measure_parity(
    precision: str,
    reference: tuple[Encoder, Encoder],
    candidate: tuple[Encoder, Encoder],
    images: Sequence[np.ndarray],
    texts: TokenBatch,
    packed: tuple[str | None, str | None] = (None, None),
) -> ParityReport:
    """Run both (image, text) encoder pairs on the same inputs and compare every output: each
    text's, its windows as the runtime runs them (`packed`: each text graph's packed pooling,
    None for a padded graph)."""
    ref_image, ref_text = reference
    cand_image, cand_text = candidate
    cos: dict[str, list[np.ndarray]] = {}
    (pixels,) = names(IMAGE_INPUTS)
    for image in images:
        feeds = {pixels: image[None].astype(np.float32)}
        want, got = ref_image.run(feeds), cand_image.run(feeds)
        for name in names(IMAGE_OUTPUTS):
            cos.setdefault(name, []).append(cosines(want[name], got[name]))
    count = int(texts.owner.max()) + 1
    want, got = (encode_windows(encoder, texts, count, pack)
                 for encoder, pack in zip((ref_text, cand_text), packed, strict=True))
    for name in names(TEXT_OUTPUTS):
        cos[name] = [cosines(want[name], got[name])]
    figures = {name: {"mean": float(np.concatenate(v).mean()), "min": float(np.concatenate(v).min())}
               for name, v in cos.items()}
    return ParityReport(precision, figures, THRESHOLDS[precision], len(images), count)
