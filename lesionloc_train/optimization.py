"""One optimization step's parts, shared by the training loop, the DDP test and the GPU check:
the model's forward arguments for a batch, the loss from its outputs, AdamW's parameter groups
and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any

import torch

from lesionloc_train.config import TrainConfig
from lesionloc_train.data import Batch
from lesionloc_train.losses import LesionLocLoss
from lesionloc_train.model import LesionLocModel


def batch_inputs(batch: Batch, cfg: TrainConfig) -> tuple[Any, ...]:
    """The model's forward arguments for a batch (one call, so DDP sees every parameter)."""
    return (batch.pixel_values, batch.report_ids, batch.report_mask, batch.sentence_ids,
            batch.sentence_attention, cfg.loss.uses_global, cfg.loss.uses_local)


def loss_from_outputs(loss_fn: LesionLocLoss, outputs: tuple[Any, ...], batch: Batch,
                      logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scatter the sentence embeddings into (B, max_sentences, D) slots and apply the loss."""
    image_global, patches, report_global, sentence_embeds = outputs
    dim = patches.shape[-1]
    sentences = patches.new_zeros((batch.sentence_valid.numel(), dim), dtype=torch.float32)
    if sentence_embeds is not None:
        sentences = sentences.index_copy(0, batch.sentence_slots, sentence_embeds.float())
    sentences = sentences.view(*batch.sentence_valid.shape, dim)
    if report_global is None:
        report_global = image_global.new_zeros(image_global.shape)
    return loss_fn(image_global.float(), patches.float(), report_global.float(), sentences,
                   batch.sentence_valid, logit_scale.exp(), batch.sentence_finding,
                   batch.sentence_group)


def build_optimizer(model: LesionLocModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and the temperature; its own LR for the text."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_text = name.startswith("text_encoder.backbone.")
        decay = param.ndim >= 2 and "embeddings" not in name
        groups.setdefault((is_text, decay), []).append(param)
    text_lr = cfg.optim.text_lr if cfg.optim.text_lr is not None else cfg.optim.lr
    return torch.optim.AdamW(
        [{"params": params, "lr": text_lr if is_text else cfg.optim.lr,
          "weight_decay": cfg.optim.weight_decay if decay else 0.0}
         for (is_text, decay), params in sorted(groups.items())],
        betas=(0.9, 0.98), eps=1e-6,
    )


def warmup_cosine(warmup: int, total: int, floor: float = 0.01) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor
