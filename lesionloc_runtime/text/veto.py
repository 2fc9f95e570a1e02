"""A second opinion on the sentences the rules call findings. The rules ground any clause whose
words they cannot place, so an unknown finding word is never lost; the price is a heatmap for
history, comparison and normal wording no list knows ("Known rheumatoid arthritis on
methotrexate.", "Costophrenic sinuses free."). A logistic regression over word and character
n-grams, trained on the labelled corpus in tests/data (scripts/train_report_veto.py), gives
the probability that a sentence states a finding; below the threshold chosen by
leave-one-part-out validation, the rules' finding is overruled. It never makes a finding of
anything, and queries never pass through it. Pure Python: the weights are JSON (veto.json)."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["WEIGHTS", "VetoModel", "features", "load_model"]

WEIGHTS = Path(__file__).with_name("veto.json")
_TOKEN = re.compile(r"[a-z]+|\d+|\?")
# Character n-grams of each word with its boundaries ("<pneumo", "mothorax>"): they carry
# spelling variants and unseen inflections ("hyperinflated", "hyperinflation").
_CHAR_SIZES = (3, 4, 5)


def features(low: str) -> set[str]:
    """The features of a prepared (lower-case) sentence: words, word pairs, and the character
    n-grams of its words. Digits are one token kind ("0"), so sizes and dates generalize."""
    tokens = ["0" if t.isdigit() else t for t in _TOKEN.findall(low)]
    out = {"w:" + t for t in tokens}
    out.update(f"b:{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False))
    for t in tokens:
        if len(t) < 3:
            continue
        word = f"<{t}>"
        for n in _CHAR_SIZES:
            out.update("c:" + word[i : i + n] for i in range(len(word) - n + 1))
    return out


class VetoModel:
    """Weights of the features, a bias and the threshold under which a finding is overruled."""

    def __init__(self, weights: dict[str, float], bias: float, threshold: float) -> None:
        self.weights = weights
        self.bias = bias
        self.threshold = threshold

    def probability(self, low: str) -> float:
        """The probability that the prepared sentence `low` states a finding."""
        found = features(low)
        if not found:
            return 1.0
        score = sum(self.weights.get(f, 0.0) for f in found) / math.sqrt(len(found))
        return 1.0 / (1.0 + math.exp(-(self.bias + score)))

    def overrules(self, low: str) -> bool:
        return self.probability(low) < self.threshold


@lru_cache(maxsize=1)
def load_model() -> VetoModel | None:
    """The shipped model, or None when the package carries none (the rules then decide alone)."""
    try:
        data = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return VetoModel(data["weights"], data["bias"], data["threshold"])
