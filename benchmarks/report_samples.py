"""Generated realistic radiology reports for the parsing benchmark: sentences drawn from the
labelled corpus in tests/data (with sides, sizes and severities varied, so most findings are
new text), laid out as MIMIC-style, open-access and British reports."""

from __future__ import annotations

import json
import random
import re
import textwrap
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "report_corpus.jsonl"
_SIDE = re.compile(r"\b(right|left)\b")
_SIZE = re.compile(r"\b\d+(?:\.\d+)?\s*(mm|cm)\b")
_GRADE = re.compile(r"\b(small|moderate|large|mild|minimal|trace|tiny)\b")
_GRADES = ("small", "moderate", "large", "mild", "minimal", "trace", "tiny")
_ZONE = re.compile(r"\b(upper|lower|middle|mid)\b")
_TAILS = ("", "", "", " compared to ___", " since the prior study", " on the frontal view",
          ", as before", ", new since ___", " in the interval", " on today's radiograph")


def _pools() -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {"finding": [], "negated": [], "normal": [], "other": []}
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pools[row["kind"]].append(row["text"])
    return pools


def _vary(sentence: str, kind: str, rng: random.Random) -> str:
    """Findings vary in side, zone, size, grade and a trailing phrase; normal statements and
    negations repeat word for word, as they do in real reports."""
    if kind != "finding":
        return sentence
    sentence = _SIDE.sub(lambda m: rng.choice(("right", "left")), sentence)
    sentence = _ZONE.sub(lambda m: rng.choice(("upper", "lower", "mid")), sentence)
    sentence = _SIZE.sub(lambda m: f"{rng.randint(3, 60) / 10:.1f} {m.group(1)}", sentence)
    sentence = _GRADE.sub(lambda m: rng.choice(_GRADES), sentence)
    tail = rng.choice(_TAILS)
    return sentence[:-1] + tail + "." if tail and sentence.endswith(".") else sentence


def _body(pools: dict[str, list[str]], rng: random.Random, n: int) -> list[str]:
    weights = {"normal": 0.35, "negated": 0.3, "finding": 0.28, "other": 0.07}
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=n)
    return [_vary(rng.choice(pools[k]), k, rng) for k in kinds]


def _mimic(findings: list[str], impression: list[str], rng: random.Random) -> str:
    body = textwrap.fill("  ".join(findings), 76, initial_indent=" ", subsequent_indent=" ")
    numbered = "\n".join(f" {i}. {s}" for i, s in enumerate(impression, 1))
    return (f"                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n"
            f" INDICATION:  ___-year-old {rng.choice(('man', 'woman'))} with cough.\n\n"
            f" TECHNIQUE:  Chest PA and lateral\n\n COMPARISON:  ___\n\n FINDINGS:\n\n{body}\n\n"
            f" IMPRESSION:\n\n{numbered}\n")


def _open_access(findings: list[str], impression: list[str], rng: random.Random) -> str:
    return (f"Comparison: XXXX\nIndication: XXXX-year-old with XXXX\nFindings: {' '.join(findings)}"
            f"\nImpression: {' '.join(impression)}\n")


def _british(findings: list[str], impression: list[str], rng: random.Random) -> str:
    return f"Clinical details: ?infection.\n\n{' '.join(findings)}\n\n{' '.join(impression)}\n"


def realistic_reports(n: int, seed: int = 0) -> list[str]:
    """`n` reports; about 2% have a second copy of the report pasted into their findings."""
    rng = random.Random(seed)
    pools = _pools()
    layouts = (_mimic, _open_access, _british)
    reports = []
    for _ in range(n):
        findings = _body(pools, rng, rng.randint(3, 9))
        impression = _body(pools, rng, rng.randint(1, 3))
        if rng.random() < 0.02:
            findings = findings + findings
        reports.append(rng.choice(layouts)(findings, impression, rng))
    return reports
