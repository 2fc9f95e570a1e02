"""Train the report parser's second opinion (lesionloc_runtime/text/veto.py) on the labelled
corpus in tests/data and write its weights (lesionloc_runtime/text/veto.json).

    python scripts/train_report_veto.py            # train, choose the threshold, write
    python scripts/train_report_veto.py --check    # recompute and compare with the shipped file
    python scripts/train_report_veto.py --check-weights  # the same without choosing the
                                                         # threshold again (the test's: one fit)

A logistic regression (finding or not) over veto.features, class-balanced, L2-regularized,
full-batch gradient descent from zero: the same corpus gives the same weights. The threshold is
chosen by leave-one-part-out validation over the held-out parts it trains on: among those at
which the veto, pooled over those parts, overrules at most MISS_BUDGET of their findings, the
one with the best gain, false heatmaps removed less LOST_FINDING_COST for each finding lost (the
issue's goals allow half as many missed findings as false heatmaps; a lowest threshold wins a
tie).
The newest held-out part (JUDGE) is never trained on: it is the blind judge of the result."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import sparse

from lesionloc_runtime.text.assertion import assess_by_rules
from lesionloc_runtime.text.veto import WEIGHTS, VetoModel, features

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TRAIN = ["report_corpus",
         *(f"report_corpus_heldout{n}" for n in ("", *range(2, 67)))]
JUDGE = "report_corpus_heldout67"
MISS_BUDGET = 0.0025  # half the 0.5% of findings
LOST_FINDING_COST = 2.0  # a finding lost weighs two false heatmaps (goals of 0.5% and 1%)
THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.55, 0.05)]
L2 = 1e-4
STEPS = 400


def load(part: str) -> list[dict]:
    rows = [json.loads(line) for line in (DATA / f"{part}.jsonl").read_text("utf-8").splitlines()]
    for row in rows:
        said, row["low"], row["open"] = assess_by_rules(row["text"])
        row["rules"] = said.kind
    return rows


def fit(rows: list[dict]) -> tuple[dict[str, float], float]:
    """Weights of the features seen at least twice in `rows`, and the bias."""
    counts: dict[str, int] = {}
    feats = [features(r["low"]) for r in rows]
    for found in feats:
        for f in found:
            counts[f] = counts.get(f, 0) + 1
    vocab = {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if c >= 2))}
    # one sparse row per sentence, each feature valued 1 / sqrt(features of the row)
    row_of, cols, vals = [], [], []
    for i, found in enumerate(feats):
        for f in found:
            if f in vocab:
                row_of.append(i)
                cols.append(vocab[f])
                vals.append(1.0 / np.sqrt(len(found)))
    x = sparse.csr_matrix((vals, (row_of, cols)), shape=(len(rows), len(vocab)))
    xt = x.T.tocsr()
    y = np.array([r["kind"] == "finding" for r in rows], dtype=np.float64)
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w, b = np.zeros(len(vocab)), 0.0
    m, v = np.zeros_like(w), np.zeros_like(w)
    mb = vb = 0.0
    for step in range(1, STEPS + 1):  # Adam on the weighted log loss
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = weight * (p - y) / len(y)
        gw = xt @ g + L2 * w
        gb = float(g.sum())
        m, v = 0.9 * m + 0.1 * gw, 0.999 * v + 0.001 * gw * gw
        mb, vb = 0.9 * mb + 0.1 * gb, 0.999 * vb + 0.001 * gb * gb
        scale = 0.1 * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        w -= scale * m / (np.sqrt(v) + 1e-8)
        b -= scale * mb / (np.sqrt(vb) + 1e-8)
    names = sorted(vocab, key=vocab.get)
    return {f: round(float(w[i]), 4) for i, f in enumerate(names) if abs(w[i]) >= 1e-3}, b


def probabilities(model: tuple[dict[str, float], float], rows: list[dict]) -> np.ndarray:
    veto = VetoModel(*model, threshold=0.0)  # the runtime's own scoring
    return np.array([veto.probability(r["low"]) for r in rows])


def effect(rows: list[dict], p: np.ndarray, threshold: float) -> dict[str, int]:
    """Findings and non-findings, and how many of each end up grounded: rules alone and with
    the veto at `threshold`."""
    finding = np.array([r["kind"] == "finding" for r in rows])
    rules = np.array([r["rules"] == "finding" for r in rows])
    open_to_veto = np.array([r["open"] for r in rows])
    grounded = rules & ~(open_to_veto & (p < threshold))
    return {"findings": int(finding.sum()), "non_findings": int((~finding).sum()),
            "missed_rules": int((finding & ~rules).sum()), "missed": int((finding & ~grounded).sum()),
            "heatmaps_rules": int((~finding & rules).sum()),
            "heatmaps": int((~finding & grounded).sum())}


_PARTS: dict[str, list[dict]] = {}  # the parts, for the validation's worker processes


def held_out_scores(name: str) -> np.ndarray:
    """The probabilities of a part's sentences from a fit on every other part."""
    model = fit([r for other, rows in _PARTS.items() if other != name for r in rows])
    return probabilities(model, _PARTS[name])


def choose_threshold(parts: dict[str, list[dict]]) -> tuple[float, dict[str, dict]]:
    held = [name for name in parts if name != "report_corpus"]
    _PARTS.update(parts)  # the fits are independent: one process per core (same results)
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("fork")) as pool:
        scores = dict(zip(held, pool.map(held_out_scores, held), strict=True))
    table = {}
    for t in THRESHOLDS:
        pooled = [effect(parts[name], scores[name], t) for name in held]
        table[t] = {k: sum(e[k] for e in pooled) for k in pooled[0]}
    ok = [t for t, e in table.items() if e["missed"] - e["missed_rules"] <= MISS_BUDGET * e["findings"]]
    if not ok:
        return 0.0, table
    return max(ok, key=lambda t: (gain(table[t]), -t)), table


def gain(e: dict) -> float:
    """False heatmaps the veto removes, less LOST_FINDING_COST for each finding it loses."""
    return (e["heatmaps_rules"] - e["heatmaps"]) - LOST_FINDING_COST * (e["missed"] - e["missed_rules"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare a fresh training with the shipped weights; exit 1 if they differ")
    parser.add_argument("--check-weights", action="store_true",
                        help="as --check, keeping the shipped threshold instead of choosing it again "
                             "(the leave-one-part-out validation, one fit per held-out part)")
    args = parser.parse_args(argv)
    parts = {name: load(name) for name in TRAIN}
    shipped = json.loads(WEIGHTS.read_text("utf-8")) if args.check or args.check_weights else None
    if args.check_weights:
        threshold, table = shipped["threshold"], {}
    else:
        threshold, table = choose_threshold(parts)
    weights, bias = fit([r for rows in parts.values() for r in rows])
    judge = load(JUDGE)
    judged = effect(judge, probabilities((weights, bias), judge), threshold)
    record = {
        "about": "lesionloc report parser's second opinion (lesionloc_runtime/text/veto.py); "
                 "made by scripts/train_report_veto.py",
        "trained_on": [f"tests/data/{name}.jsonl" for name in TRAIN],
        "threshold": threshold, "bias": round(float(bias), 4),
        "validation": {"method": "leave one held-out part out, pooled",
                       "miss_budget": MISS_BUDGET, "lost_finding_cost": LOST_FINDING_COST,
                       "by_threshold": {str(t): e for t, e in table.items()}},
        "judge": {"part": f"tests/data/{JUDGE}.jsonl", **judged},
        "weights": dict(sorted(weights.items())),
    }
    print(f"threshold {threshold} (validation: {table.get(threshold)}); {len(weights)} weights")
    print(f"judge {JUDGE}: {judged}")
    if shipped is not None:
        same = shipped["threshold"] == threshold and shipped["weights"] == record["weights"]
        print("same as the shipped weights" if same else "DIFFERS from the shipped weights")
        return 0 if same else 1
    WEIGHTS.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
