"""Shared fixtures: small generated data, a tiny trained checkpoint and its bundles, built once
per test session so every test that needs a real model gets one in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
# Public real files (chest radiograph DICOMs) that some tests read: `LESIONLOC_TEST_DATA`, which
# scripts/fetch_test_data.py fills, then the copy beside the development checkouts.
TEST_DATA_ENV = "LESIONLOC_TEST_DATA"
SHARED_TEST_DATA = REPO.parent / "shared" / "data" / "real-dicom"


def real_data_dirs() -> list[Path]:
    """The folders searched for public real test files, in order, those that exist."""
    configured = os.environ.get(TEST_DATA_ENV, "").strip()
    candidates = [Path(configured).expanduser()] if configured else []
    return [d for d in [*candidates, SHARED_TEST_DATA] if d.is_dir()]


def real_data_file(name: str) -> Path | None:
    """The public real test file `name` from the first folder that has it, or None."""
    for folder in real_data_dirs():
        if (folder / name).is_file():
            return folder / name
    return None


def require_real_file(name: str) -> Path:
    """`real_data_file(name)`, or skip the calling test saying where it looked and how to get
    the file."""
    path = real_data_file(name)
    if path is None:
        where = os.environ.get(TEST_DATA_ENV) or "unset"
        pytest.skip(f"public test file {name} not found (${TEST_DATA_ENV}: {where}; "
                    f"{SHARED_TEST_DATA}: {'present' if SHARED_TEST_DATA.is_dir() else 'absent'});"
                    f" `python scripts/fetch_test_data.py` downloads it")
    return path


@pytest.fixture()
def real_file():
    """real_file(name) -> the path of a public real test file; skips the test without it."""
    return require_real_file


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
    """bundle(precision, text_layout) -> a verified bundle directory exported from the tiny
    checkpoint (the text graph packed, the export's default, or padded)."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundle

    def make(precision: str = "int8", text_layout: str = "packed") -> Path:
        key = f"{precision}-{text_layout}"
        if key not in _BUNDLES:
            out = tmp_path_factory.mktemp(f"bundle-{key}") / "bundle"
            export_bundle(tiny_checkpoint, out, ExportOptions(
                quantize=precision, calibration=phantom_set, calibration_images=8,
                parity_images=4, text_layout=text_layout))
            _BUNDLES[key] = out
        return _BUNDLES[key]

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
