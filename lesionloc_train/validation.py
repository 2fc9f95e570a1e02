"""Validation during training: localization metrics of the live model on the validation
manifest's grounded sentences, through the runtime's own pipeline and metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from lesionloc_runtime.errors import LesionlocError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.manifest import StudyRecord
from lesionloc_runtime.metrics import boxes_to_mask, mean_scores, score_heatmap
from lesionloc_train.config import TrainConfig
from lesionloc_train.data import read_manifest
from lesionloc_train.model import LesionLocModel
from lesionloc_train.torch_backend import torch_localizer

log = logging.getLogger(__name__)


def validate_localization(model: LesionLocModel, cfg: TrainConfig, tokenizer: Path,
                          device: torch.device, max_studies: int = 100) -> dict[str, float]:
    """Mean pointing game, CNR, mIoU... over finding sentences with boxes; {} when the
    validation data has no boxes (e.g. MIMIC-CXR) or there is no validation data."""
    manifest = cfg.data.val_manifest or cfg.data.train_manifest
    split = None if cfg.data.val_manifest else "val"
    try:
        records, _ = read_manifest(manifest, split=split, max_rows=max_studies) if manifest else ([], None)
    except LesionlocError:
        return {}
    grounded = [r for r in records if any(s.get("boxes") for s in r.sentences)]
    if not grounded:
        return {}
    model.eval()
    localizer = torch_localizer(model, cfg.preprocess_config(), tokenizer,
                                cfg.model.text.max_length, device=device)
    summary = score_manifest_records(localizer, grounded)
    return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float, np.floating))}


def score_manifest_records(localizer: Localizer, records: list[StudyRecord],
                           max_side: int = 256) -> dict[str, float]:
    """Score every finding sentence with boxes; heatmaps rendered at most `max_side` long."""
    scores = []
    for record in records:
        sentences = [s for s in record.sentences if s.get("kind") == "finding" and s.get("boxes")]
        image = read_image(record.image)
        encoded = localizer.encode_image(image)
        local, _ = localizer.encode_texts([s["text"] for s in sentences])
        scale = min(1.0, max_side / max(image.width, image.height))
        w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        for sentence, embed in zip(sentences, local, strict=True):
            heat = localizer.heatmap(encoded, embed).render(w, h)
            boxes = [[v * scale for v in box] for box in sentence["boxes"]]
            scores.append(score_heatmap(heat, boxes_to_mask(boxes, h, w)))
    return mean_scores(scores) | {"sentences": len(scores)}
