"""Training throughput on CPU (pytest-benchmark): optimizer steps of the `tiny` preset on a
fixed batch, in pairs per second, and the GPU check script at tiny size on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from lesionloc_train.config import load_config


@pytest.mark.parametrize("batch_size", [8, 32])
def test_tiny_preset_training_step(benchmark, batch_size):
    from benchmarks.gpu_check import measure

    torch.manual_seed(0)
    cfg = load_config("tiny")
    record = benchmark.pedantic(measure, args=(cfg, torch.device("cpu"), batch_size, 3, False),
                                rounds=3, iterations=1)
    benchmark.extra_info.update({"preset": "tiny", "batch_size": batch_size,
                                 "image_size": cfg.model.image.image_size,
                                 "pairs_per_s": record["pairs_per_s"],
                                 "threads": torch.get_num_threads()})


def test_gpu_check_script_runs_at_tiny_size_on_cpu(tmp_path):
    from benchmarks.gpu_check import main

    record = main(["--tiny", "--device", "cpu", "--out", str(tmp_path / "cpu.json")])
    assert [r["ddp"] for r in record["runs"]] == [False, True]
    assert all(r["pairs_per_s"] > 0 and r["precision"] == "fp32" for r in record["runs"])
    assert json.loads((tmp_path / "cpu.json").read_text())["config"] == "tiny"
