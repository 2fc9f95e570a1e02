"""Fixtures of the benchmark suites. Quick mode (the default, what CI runs) uses small generated
sets and a tiny model so the suites never rot; `--full` uses the standard phantom test set,
the demo model variants and the full-size ResNet-50 + BERT-base model.

    pytest benchmarks/ --benchmark-only --full --benchmark-json benchmarks/results/RUN.json
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.cpu import cpu_kind

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".benchmarks" / "cache"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lesionloc benchmarks")
    group.addoption("--full", action="store_true", help="full benchmark sets and models")
    group.addoption("--demo-runs", default=str(REPO / "runs" / "demo"),
                    help="directory of the demo recipe (bundles of every variant)")
    group.addoption("--test-set", default=str(REPO / "data" / "phantoms-test-2048" / "manifest.jsonl"))
    group.addoption("--train-set", default=str(REPO / "data" / "phantoms-train-512" / "manifest.jsonl"))
    group.addoption("--clean-test-set",
                    default=str(REPO / "data" / "phantoms-test-2048-clean" / "manifest.jsonl"),
                    help="the test set made again without markers, text and devices")
    group.addoption("--heldout-test-set",
                    default=str(REPO / "data" / "phantoms-test-2048-heldout" / "manifest.jsonl"),
                    help="the test set made again in the held-out style")


@pytest.fixture(scope="session")
def full(request) -> bool:
    return bool(request.config.getoption("--full"))


QUICK_SET = {"n": 40, "seed": 11, "width": 384, "height": 384, "workers": 1,
             "split_fractions": (0.7, 0.1, 0.2)}


@pytest.fixture(scope="session")
def quick_phantoms(tmp_path_factory) -> Path:
    """A small phantom set (train/val/test) for quick mode."""
    from lesionloc_train.phantoms import generate_dataset

    out = tmp_path_factory.mktemp("bench-phantoms")
    generate_dataset(out, **QUICK_SET)
    return out / "manifest.jsonl"


@pytest.fixture(scope="session")
def quick_phantom_variants(tmp_path_factory) -> dict[str, Path]:
    """The quick set made again without markers, text and devices, and in the held-out style."""
    from lesionloc_train.phantoms import generate_dataset
    from lesionloc_train.phantoms.options import PhantomOptions

    out = {}
    for name, options in (("clean", PhantomOptions().without(["markers", "text", "devices"])),
                          ("heldout", PhantomOptions(style="heldout"))):
        folder = tmp_path_factory.mktemp(f"bench-phantoms-{name}")
        generate_dataset(folder, **QUICK_SET, options=options)
        out[name] = folder / "manifest.jsonl"
    return out


@pytest.fixture(scope="session")
def quick_checkpoint(tmp_path_factory, quick_phantoms) -> Path:
    from lesionloc_train.config import load_config
    from lesionloc_train.train import pretrain

    cfg = load_config("tiny", [f"data.train_manifest={quick_phantoms}", "optim.max_steps=6"])
    return pretrain(cfg, tmp_path_factory.mktemp("bench-run"), progress=False).checkpoint


def exporter_digest() -> str:
    """sha256 of the exporter's source, its subpackages included (the converters of the
    published layouts live in lesionloc_export/sources/): a cached bundle made by other export
    code is stale."""
    import hashlib

    digest = hashlib.sha256()
    root = REPO / "lesionloc_export"
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def export_cached(checkpoint: Path, out: Path, precision: str, calibration: Path | None,
                  text_layout: str = "packed") -> Path:
    """The bundle at `out`, exported again when missing or made by a different exporter (the
    digest is kept beside the bundle, whose own file list is checksummed)."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundle

    stamp, digest = out.parent / f"{out.name}.exporter-sha256", exporter_digest()
    current = stamp.is_file() and stamp.read_text().strip() == digest
    if not (current and (out / "lesionloc.json").is_file()):
        export_bundle(checkpoint, out, ExportOptions(quantize=precision, calibration=calibration,
                                                     calibration_images=32, parity_images=4,
                                                     overwrite=True, text_layout=text_layout))
        stamp.write_text(digest + "\n")
    return out


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["cpu_kind"] = cpu_kind()


def pytest_report_header(config):
    kind = cpu_kind()
    return (f"lesionloc benchmarks on {kind['model']}, {kind['logical_cpus']} logical CPUs, "
            f"int8 flags: {' '.join(kind['int8_flags']) or 'none'}")


@pytest.fixture(scope="session")
def latency_model(full, tmp_path_factory, request):
    """(checkpoint, {precision: bundle}) of the model whose latency is measured: the
    full-size random-weight model (cached in .benchmarks/cache) or the tiny one."""
    if not full:
        quick_checkpoint = request.getfixturevalue("quick_checkpoint")
        quick_phantoms = request.getfixturevalue("quick_phantoms")
        root = tmp_path_factory.mktemp("bench-bundles")
        return quick_checkpoint, {p: export_cached(quick_checkpoint, root / p, p, quick_phantoms)
                                  for p in ("int8", "none")}
    return full_latency_model()


@pytest.fixture(scope="session")
def padded_latency_bundles(full, latency_model, tmp_path_factory, request) -> dict[str, Path]:
    """{precision: bundle} of the latency model exported with `--text-layout padded` (cached
    beside the packed ones in full mode): what the packed text graph is measured against."""
    checkpoint, _ = latency_model
    if full:
        root, calibration = CACHE / "full-model", None
    else:
        root = tmp_path_factory.mktemp("bench-padded")
        calibration = request.getfixturevalue("quick_phantoms")
    return {p: export_cached(checkpoint, root / f"bundle-{p}-padded", p, calibration, "padded")
            for p in ("int8", "none")}


def full_latency_model() -> tuple[Path, dict[str, Path]]:
    """The full-size checkpoint and its int8 and fp32 bundles, made once in .benchmarks/cache.
    scripts/gpu_checks.sh calls this on all cores before it measures latency on two."""
    from benchmarks.full_model import make_full_checkpoint

    root = CACHE / "full-model"
    checkpoint = root / "checkpoint" / "checkpoints" / "step_0000000"
    if not (checkpoint / "model.safetensors").is_file():
        checkpoint = make_full_checkpoint(root / "checkpoint")
    return checkpoint, {p: export_cached(checkpoint, root / f"bundle-{p}", p, None)
                        for p in ("int8", "none")}


PUBLISHED = ("biovil", "biovil-t", "afloc")


def published_latency_model(kind: str, root: Path | None = None) -> tuple[Path, dict[str, Path]]:
    """A full-size random-init `kind` written in its published layout and converted by the
    real converter (`lesionloc-export --from kind`) to int8 and fp32 bundles, made once in
    .benchmarks/cache/published/KIND (remade when the exporter changes). Returns the
    published files (snapshot directory, or AFLoc's checkpoint) and the bundles."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundles
    from lesionloc_export.sources.published import write_afloc_checkpoint, write_hi_ml_snapshot

    root = root or CACHE / "published" / kind
    source = root / ("afloc.ckpt" if kind == "afloc" else "snapshot")
    bundles = {p: root / f"bundle-{p}" for p in ("int8", "none")}
    stamp, digest = root / "exporter-sha256", exporter_digest()
    current = stamp.is_file() and stamp.read_text().strip() == digest
    if not current:  # the published files are written by lesionloc_export too (their vocabulary)
        for made in (source, root / "bio_clinicalbert"):
            if made.is_dir():
                shutil.rmtree(made)
            elif made.exists():
                made.unlink()
    if not source.exists():
        if kind == "afloc":
            write_afloc_checkpoint(source, root / "bio_clinicalbert")
        else:
            write_hi_ml_snapshot(source, kind)
    if not (current and all((b / "lesionloc.json").is_file() for b in bundles.values())):
        export_bundles(source, bundles, ExportOptions(
            source=kind, text_model=root / "bio_clinicalbert", calibration_images=32,
            parity_images=4, overwrite=True))
        stamp.write_text(digest + "\n")
    return source, bundles


@pytest.fixture(scope="session")
def reference_study(full, tmp_path_factory) -> tuple[Path, Path]:
    """The runtime issue's reference study (`full_model.write_reference_study`): 2048 px with
    --full, 512 px otherwise."""
    from benchmarks.full_model import write_reference_study

    return write_reference_study(tmp_path_factory.mktemp("reference"), 2048 if full else 512)


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_tokenizers():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
