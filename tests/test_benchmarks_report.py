"""BENCHMARKS.md is generated from benchmark JSON: the generator reads pytest-benchmark's
format, computes the goals from the numbers and never invents one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks_report.py"


def _bench(name, params, extra, median):
    return {"group": None, "name": f"{name}[{params}]", "fullname": f"benchmarks/x.py::{name}[{params}]",
            "params": {}, "param": params, "extra_info": extra, "options": {},
            "stats": {"median": median, "mean": median, "min": median, "rounds": 1}}


def test_report_computes_goals_from_the_json(tmp_path):
    scores = {"pointing_game": 0.7, "cnr": 1.6, "miou": 0.3, "iou": 0.2, "dice": 0.3, "auroc": 0.9,
              "precision": 0.2, "recall": 0.5}
    timings = {"read": 10, "preprocess": 5, "image_encoder": 100, "text_encoder": 50, "heatmaps": 10,
               "total": 175, "write": 25}
    benches = [
        _bench("test_end_to_end_reference_study", "ort-int8",
               {"engine": "ort-int8", "timings_ms": timings, "end_to_end_ms": 200,
                "outside_encoders_fraction": 0.25, "image": "2048x2048", "sentences": 8, "findings": 5},
               0.2),
        _bench("test_end_to_end_reference_study", "torch-fp32",
               {"engine": "torch-fp32", "timings_ms": timings, "end_to_end_ms": 900,
                "outside_encoders_fraction": 0.1, "image": "2048x2048", "sentences": 8, "findings": 5},
               0.9),
        _bench("test_model_accuracy", "int8-full",
               {"kind": "model", "variant": "full", "precision": "int8", "overall": scores,
                "by_finding": {"nodule": scores}, "sentences": 10, "images": 5, "grid": 20,
                "best_shift_patches": [0.0, 0.25], "pointing_game_at_best_shift": 0.72,
                "pointing_game_unshifted": 0.7}, 1.0),
        _bench("test_baseline_accuracy", "text_prior",
               {"kind": "baseline", "variant": "text_prior", "overall": dict(scores, pointing_game=0.4),
                "by_finding": {"nodule": scores}, "sentences": 10, "images": 5}, 1.0),
    ]
    results = tmp_path / "results"
    results.mkdir()
    (results / "run.json").write_text(json.dumps({
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}}, "commit_info": {"id": "abc"},
        "datetime": "2026-11-27T00:00:00", "version": "5", "benchmarks": benches}))
    out = tmp_path / "BENCHMARKS.md"
    subprocess.run([sys.executable, str(SCRIPT), "--results", str(results), "--out", str(out)],
                   check=True, capture_output=True)
    text = out.read_text()
    assert "| End to end >= 4x faster than PyTorch eager fp32 | 4.500 | met |" in text
    assert "| Full loss pointing game >= 0.60 | 0.700 | met |" in text
    assert "| ... and >= 0.10 above the text prior | 0.700 vs 0.400 | met |" in text
    assert "| Full beats global-only by >= 0.15 PG | – | not measured |" in text
    assert "| Time outside the encoders < 30% | 0.250 | met |" in text
    assert "Test CPU" in text and "(+0.00, +0.25)" in text
    assert "Not measured in this run (no bundle): full loss, fp32; global-only loss, int8;" in text
