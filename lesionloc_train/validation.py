"""Validation during training: localization metrics of the live model on the validation
split's grounded sentences, through the runtime's own pipeline, evaluation loop and metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from lesionloc_runtime.errors import LesionlocError
from lesionloc_runtime.evaluation.datasets import open_dataset
from lesionloc_runtime.evaluation.records import DatasetStream
from lesionloc_runtime.evaluation.runner import evaluate
from lesionloc_runtime.metrics import mean_scores
from lesionloc_train.config import TrainConfig
from lesionloc_train.model import LesionLocModel
from lesionloc_train.torch_backend import torch_localizer

log = logging.getLogger(__name__)
SCORE_SIZE = 256  # long side of the scoring grid: validation is a trend, not the benchmark


def validation_stream(cfg: TrainConfig) -> DatasetStream | None:
    """The grounded validation studies: `data.val_manifest`, else the 'val' split of the
    training manifest; None when there are none (e.g. MIMIC-CXR has no boxes)."""
    manifest = cfg.data.val_manifest or cfg.data.train_manifest
    if not manifest:
        return None
    split = "all" if cfg.data.val_manifest else "val"
    try:
        stream = open_dataset("phantoms", Path(manifest), split=split)
    except LesionlocError:
        return None
    return stream if stream.total else None


def validate_localization(model: LesionLocModel, cfg: TrainConfig, tokenizer: Path,
                          device: torch.device, max_studies: int = 100) -> dict[str, float]:
    """Mean pointing game, CNR, mIoU... over up to `max_studies` validation studies."""
    stream = validation_stream(cfg)
    if stream is None:
        return {}
    model.eval()
    localizer = torch_localizer(model, cfg.preprocess_config(), tokenizer,
                                cfg.model.text.max_length, device=device)
    run = evaluate(stream, localizer, score_size=SCORE_SIZE, limit=max_studies, progress=False)
    if not run.samples:
        return {}
    return mean_scores([s.scores for s in run.samples]) | {"sentences": float(len(run.samples))}
