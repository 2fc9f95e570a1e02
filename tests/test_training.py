"""The training loop: exact resume after SIGKILL, bad rows skipped and counted, a clear error
when nothing is usable or the loss diverges, the preprocessing cache, and presets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lesionloc_runtime.batch_manifest import read_manifest
from lesionloc_runtime.errors import ConfigError, DataError, TrainingDiverged
from lesionloc_train.config import load_config

BIN = Path(sys.executable).parent


def _losses(run_dir: Path) -> dict[int, float]:
    """Last logged loss per step (a resumed run logs the steps after its checkpoint again)."""
    out: dict[int, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            out[record["step"]] = record["loss"]
    return out


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_with_the_same_next_losses(tmp_path, phantom_set):
    # 20 train rows, batch 8: 3 batches an epoch; checkpoint at 4 is mid-epoch (epoch 1),
    # the kill comes after step 5, before the next checkpoint
    args = [str(BIN / "lesionloc-train"), "pretrain", "--preset", "tiny", "--manifest",
            str(phantom_set), "--max-steps", "8", "--set", "checkpoint_every=4", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    whole = subprocess.run(args + ["--out", str(tmp_path / "whole")], capture_output=True, text=True,
                           env=env)
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.run(args + ["--out", str(tmp_path / "resumed")], capture_output=True,
                            text=True, env=dict(env, LESIONLOC_FAULT_KILL_AT_STEP="5"))
    assert killed.returncode == -9
    assert (tmp_path / "resumed" / "checkpoints" / "latest").read_text().strip() == "step_0000004"
    resumed = subprocess.run(args + ["--out", str(tmp_path / "resumed"), "--resume", "latest"],
                             capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    want, got = _losses(tmp_path / "whole"), _losses(tmp_path / "resumed")
    assert sorted(got) == list(range(1, 9))
    for step in range(5, 9):
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "whole" / "checkpoints" / "step_0000008" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoints" / "step_0000008" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def _copy_set(phantom_set: Path, dest: Path) -> Path:
    shutil.copytree(phantom_set.parent, dest)
    return dest / "manifest.jsonl"


def test_unreadable_images_and_empty_reports_are_skipped_and_counted(tmp_path, phantom_set):
    from lesionloc_train.train import pretrain

    manifest = _copy_set(phantom_set, tmp_path / "data")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    (manifest.parent / rows[0]["image"]).write_bytes(b"not an image at all" * 10)
    (manifest.parent / rows[1]["report"]).write_text("")
    (manifest.parent / rows[2]["report"]).write_text("FINDINGS:\n")  # headers, no sentence
    cfg = load_config("tiny", [f"data.train_manifest={manifest}", "optim.max_steps=3",
                               "data.augment=false"])
    records, stats = read_manifest(manifest, split="train")
    assert stats.skipped == {"missing or empty report": 1}
    result = pretrain(cfg, tmp_path / "run", progress=False)
    assert result.state.step == 3
    skipped = [json.loads(line)["skipped"] for line in (tmp_path / "run" / "metrics.jsonl")
               .read_text().splitlines() if "skipped" in line]
    assert skipped[-1] >= 2  # the unreadable image and the sentence-less report, each epoch


def test_manifest_without_usable_rows_is_a_clear_error(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"image": "missing.dcm", "report": "missing.txt"}\nnot json\n')
    with pytest.raises(DataError, match="no usable rows"):
        read_manifest(manifest)
    proc = subprocess.run([str(BIN / "lesionloc-train"), "pretrain", "--preset", "tiny",
                           "--manifest", str(manifest), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert proc.returncode == DataError.exit_code
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no usable rows" in errors[0]
    assert "Traceback" not in proc.stderr


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
        tmp_path, phantom_set, monkeypatch):
    import lesionloc_train.train as train
    from lesionloc_train.losses import LesionLocLoss

    real = LesionLocLoss.forward
    calls = {"n": 0}

    def poisoned(self, *args):
        terms = real(self, *args)
        calls["n"] += 1
        if calls["n"] == 4:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(LesionLocLoss, "forward", poisoned)
    cfg = load_config("tiny", [f"data.train_manifest={phantom_set}", "optim.max_steps=6",
                               "checkpoint_every=2"])
    with pytest.raises(TrainingDiverged, match="non-finite at step 4") as info:
        train.pretrain(cfg, tmp_path / "run", progress=False)
    assert "step_0000002" in str(info.value)
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_0000002"
    assert not (tmp_path / "run" / "checkpoints" / "step_0000004").exists()


def test_cache_holds_exactly_the_runtime_preprocessing(tmp_path, phantom_set):
    from lesionloc_runtime.imageio import read_image
    from lesionloc_runtime.preprocess import preprocess

    proc = subprocess.run([str(BIN / "lesionloc-train"), "cache", "--manifest", str(phantom_set),
                           "--out", str(tmp_path / "cache"), "--preset", "tiny", "--workers", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from lesionloc_train.cache import ImageCache

    cfg = load_config("tiny")
    cache = ImageCache.open(tmp_path / "cache", cfg.preprocess_config())
    records, _ = read_manifest(phantom_set)
    for record in records[:3]:
        want = preprocess(read_image(record.image), cfg.preprocess_config()).tensor[0]
        np.testing.assert_allclose(cache.get(record.study_id), want, atol=1 / 65535)
    with pytest.raises(DataError, match="rebuild the cache"):
        ImageCache.open(tmp_path / "cache", load_config("full").preprocess_config())
    # A cache written before a preprocessing parameter existed records no value for it: it
    # was built the way the parameter's default says, and opens; a value that differs does not.
    meta_path = tmp_path / "cache" / "cache.json"
    meta = json.loads(meta_path.read_text())
    older = dict(meta["preprocessing"])
    for added in ("method", "size_rounding", "resize"):
        older.pop(added)
    meta_path.write_text(json.dumps({**meta, "preprocessing": older}))
    ImageCache.open(tmp_path / "cache", cfg.preprocess_config())
    meta_path.write_text(json.dumps({**meta, "preprocessing": {**older, "size_rounding": "floor"}}))
    with pytest.raises(DataError, match="rebuild the cache"):
        ImageCache.open(tmp_path / "cache", cfg.preprocess_config())
    meta_path.write_text(json.dumps({**meta, "preprocessing": "letterbox"}))
    with pytest.raises(DataError, match="rebuild the cache"):
        ImageCache.open(tmp_path / "cache", cfg.preprocess_config())
    meta_path.write_text(json.dumps(meta))
    # training reads from it
    from lesionloc_train.train import pretrain

    run = pretrain(load_config("tiny", [f"data.train_manifest={phantom_set}", "optim.max_steps=2",
                                        f"data.cache={tmp_path / 'cache'}"]),
                   tmp_path / "run", progress=False)
    assert run.state.step == 2


def test_presets_merge_and_reject_unknown_keys():
    cfg = load_config(["tiny", "global_only"])
    assert cfg.name == "tiny+global_only" and not cfg.loss.uses_local and cfg.loss.uses_global
    assert load_config("full").model.image.backbone == "microsoft/resnet-50"
    assert load_config("full").model.text.model == "emilyalsentzer/Bio_ClinicalBERT"
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config("tiny", ["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no-such-preset")
    with pytest.raises(ConfigError, match="every loss weight is zero"):
        load_config(["tiny", "global_only", "local_only"])


@pytest.mark.parametrize(("preset", "override", "complaint"), [
    (None, "loss=null", "config.loss: expected an object, got NoneType"),
    (None, "model=5", "config.model: expected an object, got int"),
    ("[]", None, "a preset must be a JSON object, got list"),
    ('"tiny"', None, "a preset must be a JSON object, got str"),
    ('{"extends": 5}', None, "'extends' must name a preset, got int"),
    ("x" * 300, None, "not found"),
    (None, "loss.attention_temperature=NaN", "NaN is not a number a config may hold"),
    (None, "optim.lr=1e999", "1e999 is not a finite number"),  # was inf (found by fuzzing)
    (None, "model.image.resnet.hidden_sizes=[8, -Infinity]", "-Infinity is not a number"),
    ('{"optim": {"lr": 1e400}}', None, "bad.json: 1e400 is not a finite number"),
    (None, "model.image.image_size=[448]", "image_size: expected int, got \\[448\\]"),
    (None, "data.augment=1", "augment: expected bool, got 1"),
    (None, "loss.init_temperature=0", "temperatures must be positive"),
])
def test_config_of_the_wrong_shape_is_a_config_error(tmp_path, preset, override, complaint):
    """Each of these escaped as AttributeError, TypeError or OSError (found by fuzzing)."""
    names = ["tiny"]
    if preset is not None and preset.startswith("x"):
        names = [str(tmp_path / f"{preset}.json")]  # a name over the system's limit
    elif preset is not None:
        (tmp_path / "bad.json").write_text(preset)
        names = [str(tmp_path / "bad.json")]
    with pytest.raises(ConfigError, match=complaint):
        load_config(names, [override] if override else [])


def test_manifest_rows_with_sentences_of_the_wrong_type_are_malformed(tmp_path):
    (tmp_path / "i.png").write_bytes(b"x")
    (tmp_path / "r.txt").write_text("Opacity.\n")
    manifest = tmp_path / "manifest.jsonl"
    rows = [{"image": "i.png", "report": "r.txt", "sentences": bad} for bad in (5, None, "abc")]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"skipped \{'malformed row': 3\}"):
        read_manifest(manifest)
    with pytest.raises(DataError, match="manifest not found|cannot read"):
        read_manifest(tmp_path / ("x" * 300 + ".jsonl"))


def test_pretrained_backbones_load_from_local_directories(tmp_path):
    """The `full` code path (ResNetModel / AutoModel from_pretrained) with tiny random models
    saved into directories, as a user without network access would point at them."""
    from transformers import BertConfig, BertModel, BertTokenizer, ResNetConfig, ResNetModel

    from lesionloc_train.model import LesionLocModel, resolve_tokenizer

    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                             layer_type="bottleneck")).save_pretrained(tmp_path / "resnet")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "right", "left", "upper", "lobe",
             "opacity", "."]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(tmp_path / "bert")
    BertModel(BertConfig(vocab_size=11, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    cfg = load_config("full", [f"model.image.backbone={tmp_path / 'resnet'}",
                               f"model.text.model={tmp_path / 'bert'}", "model.embed_dim=16"])
    model = LesionLocModel(cfg.model)
    glob, patches = model.encode_image(torch.rand(1, 1, 64, 64))
    assert patches.shape == (1, 4, 4, 16)
    tokenizer = resolve_tokenizer(cfg.model.text, tmp_path, None)
    from lesionloc_runtime.tokens import SentenceTokenizer

    batch = SentenceTokenizer(tokenizer, 16).encode(["Right upper lobe opacity."])
    assert batch.input_ids[0].tolist() == [2, 5, 7, 8, 9, 10, 3]
    missing = load_config("full", [f"model.image.backbone={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="local directory"):
        LesionLocModel(missing.model)


def test_rerunning_training_and_export_reproduces_the_bundle_byte_for_byte(
        tmp_path, phantom_set, tiny_checkpoint, tiny_bundle_factory):
    """What the demo recipe promises: the same data, seed and config give the same checkpoint
    and the same bundle files (weights, graphs, metadata, checksums), not merely close ones."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundle
    from lesionloc_train.config import load_config
    from lesionloc_train.train import pretrain

    cfg = load_config("tiny", [f"data.train_manifest={phantom_set}", "optim.max_steps=4",
                               "checkpoint_every=2"])
    again = pretrain(cfg, tmp_path / "run", progress=False).checkpoint
    for name in ("model.safetensors", "tokenizer.json", "training_state.safetensors"):
        assert (again / name).read_bytes() == (tiny_checkpoint / name).read_bytes(), name
    first = tiny_bundle_factory("int8")
    export_bundle(again, tmp_path / "bundle", ExportOptions(
        quantize="int8", calibration=phantom_set, calibration_images=8, parity_images=4))
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "bundle").iterdir())
    for name in names:
        assert (tmp_path / "bundle" / name).read_bytes() == (first / name).read_bytes(), name


def test_a_checkpoint_that_cannot_be_written_says_which_is_kept(tmp_path, phantom_set,
                                                                monkeypatch):
    """A full disk under the run: safetensors' writer raised its own SafetensorError ("I/O
    error: No space left on device (os error 28)") through `lesionloc-train` as a traceback."""
    import safetensors.torch

    from lesionloc_runtime.errors import OutputError
    from lesionloc_train.train import pretrain

    real = safetensors.torch.save_file
    writes = []

    def full_at_step_4(tensors, filename, metadata=None):
        writes.append(filename)
        if "step_0000004" in filename:
            raise RuntimeError("Error while serializing: I/O error: No space left on device "
                               "(os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_at_step_4)
    cfg = load_config("tiny", [f"data.train_manifest={phantom_set}", "optim.max_steps=4",
                               "checkpoint_every=2"])
    with pytest.raises(OutputError, match=r"cannot write the checkpoint of step 4 in .*: No "
                       r"space left on device; the last one written, step_0000002, is kept"):
        pretrain(cfg, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == \
        ["latest", "step_0000002"]  # no half-written step_0000004 left behind


def test_a_cache_the_disk_cannot_hold_is_refused_at_once(tmp_path, phantom_set, monkeypatch):
    """The cache file is a memory map: on a disk that fills up its pages fail with SIGBUS,
    hours into a large cache. Its blocks are reserved first, so a disk too small is an
    OutputError at once, naming the cache and its size, with nothing left behind."""
    import errno

    from lesionloc_runtime.errors import OutputError
    from lesionloc_train import cache as cache_module
    from lesionloc_train.cache import ImageCache

    def full(fd, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module, "_reserve", full)
    records, _ = read_manifest(phantom_set)
    with pytest.raises(OutputError, match=r"cannot write .*/cache: No space left on device "
                       r"\(the cache takes 1 MiB\)"):
        ImageCache.build(records, load_config("tiny").preprocess_config(), tmp_path / "cache",
                         progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_data_worker_killed_is_worker_lost_naming_the_checkpoint(tmp_path, phantom_set,
                                                                   monkeypatch):
    """The kernel killing a DataLoader worker (out of memory) ended `pretrain` in PyTorch's
    RuntimeError traceback."""
    from lesionloc_runtime.errors import WorkerLost
    from lesionloc_train import train as train_module
    from lesionloc_train.train import pretrain

    real, served = train_module.DataLoader, []

    class DyingLoader:  # what PyTorch raises when a worker of the loader dies
        def __init__(self, *args, **kwargs):
            self.inner = real(*args, **kwargs)

        def __iter__(self):
            for batch in self.inner:
                if len(served) == 3:
                    raise RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly")
                served.append(1)
                yield batch

    monkeypatch.setattr(train_module, "DataLoader", DyingLoader)
    cfg = load_config("tiny", [f"data.train_manifest={phantom_set}", "optim.max_steps=6",
                               "checkpoint_every=2"])
    with pytest.raises(WorkerLost, match=r"^a worker process died .*: DataLoader worker "
                       r"\(pid\(s\) 4242\) exited unexpectedly; the last checkpoint is "
                       r".*step_0000002: --resume latest"):
        pretrain(cfg, tmp_path / "run", progress=False)


def test_a_cache_on_a_file_system_that_cannot_reserve_is_built_sparse(tmp_path, phantom_set,
                                                                      monkeypatch):
    """NFS v3 or ZFS: fallocate says EOPNOTSUPP (os.posix_fallocate would have had glibc
    write into every block instead); the file is made at its size without reserving."""
    import errno

    from lesionloc_train import cache as cache_module
    from lesionloc_train.cache import ImageCache

    def unsupported(fd, size):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(cache_module, "_reserve", unsupported)
    records, _ = read_manifest(phantom_set)
    cache = ImageCache.build(records, load_config("tiny").preprocess_config(),
                             tmp_path / "cache", progress=False)
    assert (tmp_path / "cache" / "images.bin").stat().st_size == len(records) * 128 * 128 * 2
    assert len(cache.meta["ids"]) == len(records)
