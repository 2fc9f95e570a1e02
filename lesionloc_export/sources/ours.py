"""A lesionloc training checkpoint as an export source (`--from lesionloc`, the default)."""

from __future__ import annotations

from pathlib import Path

from lesionloc_export.source import SourceModel
from lesionloc_runtime.architectures import GridSpec, TextConfig
from lesionloc_runtime.fileio import sha256_file
from lesionloc_train.checkpoint import MODEL_FILE, LoadedCheckpoint, load_checkpoint
from lesionloc_train.torch_backend import ImageGraph, TextGraph, heatmap_defaults


def lesionloc_source(path: Path) -> SourceModel:
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    prep = cfg.preprocess_config()
    return SourceModel(
        architecture="lesionloc",
        image_graph=ImageGraph(ckpt.model),
        text_graph=TextGraph(ckpt.model),
        text_backbone=ckpt.model.text_encoder.backbone,
        tokenizer=ckpt.tokenizer,
        max_length=cfg.model.text.max_length,
        embed_dim=cfg.model.embed_dim,
        preprocessing=prep,
        grid=GridSpec.receptive_field(prep.image_size, ckpt.model.grid_stride,
                                      ckpt.model.grid_origin),
        text=TextConfig(pooling=cfg.model.text.pooling),
        heatmap=heatmap_defaults(ckpt.model, cfg.loss.attention_temperature),
        default_name=f"lesionloc-{cfg.name}",
        trained_on="unspecified",
        provenance={"checkpoint_sha256": sha256_file(ckpt.path / MODEL_FILE),
                    "checkpoint_step": ckpt.meta.get("step"), "train_config": cfg.to_dict()},
        describe=lambda trained_on: _describe(ckpt, trained_on),
    )


def _describe(ckpt: LoadedCheckpoint, trained_on: str) -> list[str]:
    cfg = ckpt.config
    return [
        "## What it is",
        "A lesionloc model bundle: an image encoder (ResNet family, local patch grid at stride "
        f"{ckpt.model.grid_stride}) and a text encoder ({cfg.model.text.model or 'BERT built from config'}) "
        "pretrained on image-report pairs with a global contrastive loss and a local loss "
        "aligning report sentences to image regions (Yang et al., \"Multimodal self-supervised "
        "learning for lesion localization\"). Any sentence becomes a heatmap over the image.", "",
        "## Training", f"- data: {trained_on}", f"- preset: {cfg.name}",
        f"- image size: {cfg.model.image.image_size} px, embedding size {cfg.model.embed_dim}",
        f"- loss weights: {cfg.loss.global_t2i}/{cfg.loss.global_i2t} global, "
        f"{cfg.loss.local_t2i}/{cfg.loss.local_i2t} local; attention temperature "
        f"{cfg.loss.attention_temperature}; local sentence kinds {list(cfg.loss.local_kinds)}",
        f"- checkpoint step: {ckpt.meta.get('step')}",
        "- heatmaps: " + ("the global projections at each location of the last stage "
                          "(class-activation style: trained without the local loss)"
                          if cfg.model.heatmap_source == "global" else "the local heads"), "",
        "## Intended use",
        "Research on weakly supervised localization in chest radiographs; demonstrations of the "
        "lesionloc pipeline. Not for diagnosis, triage or any clinical decision.", "",
        "## Limitations",
        "Localization quality depends entirely on the training data. A model trained on phantoms "
        "has never seen real anatomy or real pathology.",
    ]
