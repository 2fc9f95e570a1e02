"""The fixed model and batch shared by the DDP worker and its single-process reference."""

from __future__ import annotations

import torch

from lesionloc_train.config import load_config
from lesionloc_train.data import Batch
from lesionloc_train.model import LesionLocModel

BATCH, SENTENCES = 4, 2


def make_case():
    # no dropout, so both runs draw nothing random after construction
    cfg = load_config("tiny", ['model.text.bert={"vocab_size": 300, "hidden_size": 32, '
                               '"num_hidden_layers": 1, "num_attention_heads": 2, '
                               '"intermediate_size": 64, "max_position_embeddings": 64, '
                               '"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}'])
    torch.manual_seed(0)
    return cfg, LesionLocModel(cfg.model).train()


def make_batch(cfg, part: int = 0, parts: int = 1) -> Batch:
    """The whole fixed batch (parts=1) or one process's contiguous share of it."""
    gen = torch.Generator().manual_seed(42)
    size = cfg.model.image.image_size
    pixels = torch.rand(BATCH, 1, size, size, generator=gen)
    reports = torch.randint(5, 300, (BATCH, 10), generator=gen)
    sentences = torch.randint(5, 300, (BATCH * SENTENCES, 6), generator=gen)
    valid = torch.ones(BATCH, SENTENCES, dtype=torch.bool)
    valid[1, 1] = False  # one report with a single sentence
    per = BATCH // parts
    rows = slice(part * per, (part + 1) * per)
    v = valid[rows]
    sent = sentences.view(BATCH, SENTENCES, -1)[rows][v]
    slots = torch.nonzero(v.flatten()).flatten()
    return Batch(pixels[rows], reports[rows], torch.ones_like(reports[rows]), sent,
                 torch.ones_like(sent), slots, v, list(range(BATCH))[rows], [])
