"""Shared fixtures: small generated data, a tiny trained checkpoint and its bundles, built once
per test session so every test that needs a real model gets one in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
REAL_DICOM = REPO.parent / "shared" / "data" / "real-dicom"


@pytest.fixture(scope="session")
def tiny_config():
    from lesionloc_train.config import load_config

    return load_config("tiny")


@pytest.fixture(scope="session")
def phantom_set(tmp_path_factory) -> Path:
    """24 phantom studies at 256 px (train/val/test), as manifest.jsonl + files."""
    from lesionloc_train.phantoms import generate_dataset

    out = tmp_path_factory.mktemp("phantoms")
    generate_dataset(out, n=24, seed=7, width=256, height=256, workers=1)
    return out / "manifest.jsonl"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, phantom_set) -> Path:
    """A tiny model trained for a few steps: real weights, real tokenizer, real checkpoint."""
    from lesionloc_train.config import load_config
    from lesionloc_train.train import pretrain

    cfg = load_config("tiny", [f"data.train_manifest={phantom_set}", "optim.max_steps=4",
                               "checkpoint_every=2"])
    result = pretrain(cfg, tmp_path_factory.mktemp("run"), progress=False)
    return result.checkpoint


_BUNDLES: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_bundle_factory(tmp_path_factory, tiny_checkpoint, phantom_set):
    """bundle(precision) -> a verified bundle directory exported from the tiny checkpoint."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundle

    def make(precision: str = "int8") -> Path:
        if precision not in _BUNDLES:
            out = tmp_path_factory.mktemp(f"bundle-{precision}") / "bundle"
            export_bundle(tiny_checkpoint, out, ExportOptions(
                quantize=precision, calibration=phantom_set, calibration_images=8,
                parity_images=4))
            _BUNDLES[precision] = out
        return _BUNDLES[precision]

    return make


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bundle_factory) -> Path:
    return tiny_bundle_factory("int8")


@pytest.fixture()
def phantom_study(phantom_set):
    """(image path, report path, manifest row) of the first test-split study with a finding."""
    import json

    for line in phantom_set.read_text().splitlines():
        row = json.loads(line)
        if any(s.get("kind") == "finding" for s in row["sentences"]):
            root = phantom_set.parent
            return root / row["image"], root / row["report"], row
    raise AssertionError("no phantom study with a finding")
