"""Checkpoints as safetensors + JSON (never pickles), written into a temporary directory and
renamed into place, with a `latest` pointer updated atomically. A checkpoint holds enough to
rebuild the model offline (backbone configs, tokenizer) and to resume training exactly."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lesionloc_runtime.errors import CheckpointError, OutputError
from lesionloc_runtime.fileio import (
    CANNOT_WRITE,
    atomic_write_json,
    atomic_write_text,
    make_dir_public,
)
from lesionloc_train.config import TrainConfig, config_from_dict
from lesionloc_train.model import LesionLocModel

CHECKPOINT_FORMAT = "lesionloc-checkpoint"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
TOKENIZER_FILE = "tokenizer.json"


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_state = np.random.get_state()
    py_state = random.getstate()
    return tensors, {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _set_rng_state(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, values in state["state"].items():
        for name, value in values.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{pid}.{name}"] = t.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], groups: list) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": groups}


@dataclass
class TrainingState:
    """Where a run is: enough to continue exactly (data order, schedule, RNG, scaler)."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    position: int = 0  # items of this epoch already consumed by this rank
    best: dict[str, float] | None = None


def save_checkpoint(
    run_dir: Path,
    model: LesionLocModel,
    cfg: TrainConfig,
    tokenizer: Path,
    state: TrainingState,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    keep: int = 3,
) -> Path:
    """Write checkpoints/step_NNNNNNN atomically and point `latest` at it. A full or read-only
    disk is an OutputError saying which checkpoint is the last one kept (before: an OSError or
    safetensors' SafetensorError traceback)."""
    try:
        return _save_checkpoint(run_dir, model, cfg, tokenizer, state, optimizer, scheduler,
                                scaler, keep)
    except Exception as exc:
        code = _write_errno(exc)
        if code not in CANNOT_WRITE:
            raise
        root = run_dir / "checkpoints"
        try:
            last = f"the last one written, {(root / 'latest').read_text().strip()}, is kept"
        except OSError:
            last = "none was written before"
        raise OutputError(f"cannot write the checkpoint of step {state.step} in {root}: "
                          f"{os.strerror(code)}; {last}", code) from None


def _write_errno(exc: BaseException) -> int | None:
    """The operating system's error number of a failed write: OSError's, or the one
    safetensors' Rust writer quotes ("I/O error: ... (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.errno
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


def _save_checkpoint(run_dir: Path, model: LesionLocModel, cfg: TrainConfig, tokenizer: Path,
                     state: TrainingState, optimizer: torch.optim.Optimizer | None,
                     scheduler: Any, scaler: Any, keep: int) -> Path:
    from safetensors.torch import save_file

    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step_{state.step:07d}"
    final = ckpt_root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=ckpt_root))
    make_dir_public(tmp)
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / MODEL_FILE), metadata={"format": CHECKPOINT_FORMAT})
        shutil.copyfile(tokenizer, tmp / TOKENIZER_FILE)
        atomic_write_json(tmp / CONFIG_FILE, {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": state.step,
            "train_config": cfg.to_dict(),
            "backbones": model.backbone_configs(),
            "embed_dim": cfg.model.embed_dim,
            "grid_stride": model.grid_stride,
            "grid_origin": model.grid_origin,
            "preprocessing": cfg.preprocess_config().to_dict(),
            "tokenizer": TOKENIZER_FILE,
        })
        if optimizer is not None:
            tensors, groups = _optimizer_to_flat(optimizer)
            rng_tensors, rng_json = _rng_state()
            tensors.update(rng_tensors)
            save_file(tensors, str(tmp / STATE_TENSORS))
            atomic_write_json(tmp / STATE_JSON, {
                "state": state.__dict__,
                "param_groups": groups,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng_json,
            })
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(ckpt_root / "latest", name + "\n")
    old = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for stale in old[:-keep] if keep > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint directory, its model.safetensors, or a run directory (its latest)."""
    path = Path(path)
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    if (path / "checkpoints" / "latest").is_file():
        path = path / "checkpoints"
    if (path / "latest").is_file():
        name = (path / "latest").read_text(encoding="utf-8").strip()
        path = path / name
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not (path / CONFIG_FILE).is_file() or not (path / MODEL_FILE).is_file():
        raise CheckpointError(f"{path}: not a lesionloc checkpoint (needs {CONFIG_FILE} and "
                              f"{MODEL_FILE})")
    return path


@dataclass
class LoadedCheckpoint:
    path: Path
    model: LesionLocModel
    config: TrainConfig
    meta: dict[str, Any]

    @property
    def tokenizer(self) -> Path:
        return self.path / self.meta.get("tokenizer", TOKENIZER_FILE)


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Rebuild the model from a checkpoint with no download. Truncated files, other formats
    and other architectures are CheckpointErrors that say which."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = resolve_checkpoint(path)
    try:
        meta = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # also undecodable bytes, huge numbers
        raise CheckpointError(f"{root / CONFIG_FILE}: not valid JSON ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{root}: not a {CHECKPOINT_FORMAT} (format {meta.get('format')!r})")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{root}: checkpoint version {meta.get('version')} is not supported")
    config = config_from_dict(meta["train_config"])
    try:
        weights = load_file(str(root / MODEL_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{root / MODEL_FILE}: truncated or corrupt ({exc})") from None
    model = LesionLocModel(config.model, config.loss.init_temperature,
                           backbone_configs=meta["backbones"])
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or shape mismatches
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{root}: weights do not fit the architecture in its config "
                              f"({detail})") from None
    model.eval()
    return LoadedCheckpoint(root, model, config, meta)


def load_training_state(
    root: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    scaler: Any = None,
) -> TrainingState:
    """Restore optimizer, schedule, scaler and RNG from a checkpoint; returns the position."""
    from safetensors.torch import load_file

    if not (root / STATE_TENSORS).is_file():
        raise CheckpointError(f"{root}: has no training state to resume from")
    tensors = load_file(str(root / STATE_TENSORS))
    try:
        saved = json.loads((root / STATE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{root / STATE_JSON}: cannot be read as JSON ({exc})") from None
    optimizer.load_state_dict(_optimizer_from_flat(tensors, saved["param_groups"]))
    if scheduler is not None and saved.get("scheduler"):
        scheduler.load_state_dict(saved["scheduler"])
    if scaler is not None and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    _set_rng_state(tensors, saved["rng"])
    return TrainingState(**saved["state"])
