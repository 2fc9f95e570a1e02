"""AFLoc (Yang et al.; github.com/YH0517/AFLoc, Apache-2.0) from its Lightning checkpoint and
the Bio_ClinicalBERT snapshot it was trained from. Its localization map, as its evaluation
code makes it: the query's report embedding (the last four BERT layers summed over the
tokens, divided by the 97 word slots) dotted with the stage-3 patch embeddings of a 224 px
letterbox upsampled to 299 inside the model; the lines matched are in docs/published-models.md."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lesionloc_export.source import SourceModel, file_digest
from lesionloc_export.sources.pickles import load_pickle, lookup, plain
from lesionloc_export.sources.resnet import ResNet50
from lesionloc_export.sources.tokenizer import bert_tokenizer_json
from lesionloc_export.sources.weights import load_mapped, read_bert_config
from lesionloc_runtime.architectures import GridSpec, TextConfig
from lesionloc_runtime.errors import CheckpointError, ConfigError
from lesionloc_runtime.heatmap import HeatmapConfig
from lesionloc_runtime.preprocess import PreprocessConfig

IMAGE_SIZE = 224  # inference.py sets cfg.data.image.imsize = 224
MODEL_SIZE = 299  # vision_model.resnet_forward upsamples to 299 x 299
GRID = 19  # layer3 of a 299 px input
# What this converter reproduces: AFLoc's afloc/config.yaml. A checkpoint trained otherwise is
# refused rather than converted wrongly.
EXPECTED = {"model.vision.model_name": "resnet_50", "model.text.last_n_layers": 4,
            "model.text.aggregate_method": "sum", "model.text.agg_tokens": True,
            "model.text.norm": False, "transforms.norm": "half"}
WORD_SLOTS = 97  # data.text.word_num of config.yaml
IMAGE_RENAME = (("img_encoder.model.", "resnet."), ("img_encoder.global_embedder.", "global_proj."),
                ("img_encoder.local_embedder.", "local_proj."))
TEXT_RENAME = (("text_encoder.model.", "bert."),)


def align_corners_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in): bilinear resampling with align_corners=True along one axis, so
    that A @ x @ A.T is nn.Upsample(mode="bilinear", align_corners=True) of x. Positions are
    computed in float32 as PyTorch's kernel computes them (float64 ones differ by 1e-5)."""
    scale = torch.tensor((size_in - 1) / (size_out - 1), dtype=torch.float32)
    position = scale * torch.arange(size_out, dtype=torch.float32)
    low = position.floor().long().clamp(max=size_in - 2)
    frac = position - low.float()
    matrix = torch.zeros(size_out, size_in)
    matrix[torch.arange(size_out), low] = 1 - frac
    matrix[torch.arange(size_out), low + 1] += frac
    return matrix


class Resample(nn.Module):
    """AFLoc's 224 -> 299 upsampling as two fixed matrix products: the same bilinear
    interpolation, with shapes ONNX can infer (a Resize fed a computed size leaves the graph's
    output shapes unknown) and kept in fp32 by int8 export."""

    def __init__(self, size_in: int, size_out: int) -> None:
        super().__init__()
        self.register_buffer("matrix", align_corners_matrix(size_in, size_out), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.matrix, x), self.matrix.t())


class AflocImageGraph(nn.Module):
    """pixel_values (B, 1, 224, 224) in [0, 1] -> the raw global embedding (global_embedder of
    pooled layer4) and the raw stage-3 patch embeddings (local_embedder) (B, 19, 19, D)."""

    def __init__(self, dim: int = 768) -> None:
        super().__init__()
        self.resample = Resample(IMAGE_SIZE, MODEL_SIZE)
        self.resnet = ResNet50(with_fc=False)
        self.global_proj = nn.Linear(2048, dim)
        self.local_proj = nn.Conv2d(1024, dim, 1, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (pixel_values.expand(-1, 3, -1, -1) - 0.5) / 0.5  # transforms.norm "half"
        x = self.resample(x)  # nn.Upsample((299, 299), bilinear, align_corners=True)
        _, _, stage3, stage4 = self.resnet.stages(x)
        image = self.global_proj(stage4.mean(dim=(2, 3)))
        return image, self.local_proj(stage3).permute(0, 2, 3, 1)


class AflocTextGraph(nn.Module):
    """input_ids, attention_mask -> the report embedding: the last four hidden layers summed,
    summed over the tokens from [CLS] to [SEP], divided by the word slots (AFLoc averages over
    its 97 padded word positions, whose padding is zeros). Raw, for AFLoc's dot product."""

    def __init__(self, config: object, word_slots: int = WORD_SLOTS) -> None:
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(config, add_pooling_layer=False)
        self.word_slots = float(word_slots)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        output_hidden_states=True)
        layers = torch.stack(out.hidden_states[-4:]).sum(dim=0)
        mask = attention_mask.unsqueeze(-1).to(layers.dtype)
        report = (layers * mask).sum(dim=1) / self.word_slots
        return report, report

    def packed(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
               window_mask: torch.Tensor, window_pooling: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token windows packed into rows (the runtime's contract.PACKED_TEXT_INPUTS), each
        window's tokens summed by its row of `window_pooling` (ones), then / the word slots."""
        from lesionloc_train.model import pool_packed

        summed = pool_packed(self.bert, input_ids, position_ids, window_mask, window_pooling,
                             lambda out: torch.stack(out.hidden_states[-4:]).sum(dim=0),
                             output_hidden_states=True)
        report = summed / self.word_slots
        return report, report


def checkpoint_parts(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict with AFLoc's module names, hyper-parameters as plain values)."""
    checkpoint = load_pickle(path, "AFLoc checkpoint")
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    # builder.load_model: the Lightning module holds the model as `afloc`
    state = {k.split("afloc.")[-1]: v for k, v in checkpoint["state_dict"].items()}
    hyper = plain(checkpoint.get("hyper_parameters")) or {}
    for key, want in EXPECTED.items():
        got = lookup(hyper, key, want)
        if got != want:
            raise CheckpointError(f"{path}: AFLoc checkpoint trained with {key}={got!r}; this "
                                  f"converter reproduces AFLoc's published configuration ({want!r})")
    return state, hyper


def afloc_source(path: Path, text_model: Path | None, work: Path) -> SourceModel:
    if text_model is None:
        raise ConfigError("--from afloc needs --text-model DIR: the emilyalsentzer/Bio_ClinicalBERT "
                          "snapshot AFLoc was trained from (its vocab.txt and config.json)")
    if not text_model.is_dir():
        raise CheckpointError(f"{text_model}: Bio_ClinicalBERT snapshot directory not found")
    state, hyper = checkpoint_parts(path)
    config = read_bert_config(text_model, "Bio_ClinicalBERT")
    slots = lookup(hyper, "data.text.word_num", WORD_SLOTS)
    if isinstance(slots, bool) or not isinstance(slots, int) or not 2 <= slots <= 512:
        raise CheckpointError(f"{path}: data.text.word_num={slots!r} is not a word count")
    text = AflocTextGraph(config, slots)
    load_mapped(text, state, TEXT_RENAME, "AFLoc text encoder weights", path)
    dim = int(config.hidden_size)  # the text embedding size is the image embedders' width
    image = AflocImageGraph(dim)
    load_mapped(image, state, IMAGE_RENAME, "AFLoc image encoder weights", path)
    return SourceModel(
        architecture="afloc", image_graph=image.eval(), text_graph=text.eval(),
        text_backbone=text.bert,
        tokenizer=bert_tokenizer_json(text_model, work / "tokenizer.json", "Bio_ClinicalBERT"),
        max_length=slots, embed_dim=dim,
        preprocessing=PreprocessConfig(image_size=IMAGE_SIZE, intensity="uint8", interpolation="area",
                                       size_rounding="floor", pad_value=0.0),
        grid=GridSpec.cell_centres(IMAGE_SIZE, GRID),
        text=TextConfig(preparation="afloc", pooling="afloc-last4-sum"),
        heatmap=HeatmapConfig(smoothing_sigma=1.5, similarity="dot", score="global-cosine",
                              smoothing_border="reflect", upsampling="bilinear"),
        default_name="afloc", trained_on="MIMIC-CXR (as published by the AFLoc authors)",
        provenance={"source": "github.com/YH0517/AFLoc", "checkpoint": file_digest(path),
                    "text_model": file_digest(text_model / "config.json"),
                    "hyper_parameters": "read" if hyper else "absent: AFLoc's config.yaml assumed"},
        describe=describe,
    )


def describe(trained_on: str) -> list[str]:
    return [
        "## What it is",
        "AFLoc (Yang et al., \"Multi-modal vision-language model for generalizable annotation-free "
        "pathology localization\"; github.com/YH0517/AFLoc, Apache-2.0), converted from its "
        "published checkpoint: ResNet-50 and Bio_ClinicalBERT. Its map, as its evaluation code "
        "makes it: the plain dot product of the query's report embedding with the stage-3 patch "
        "embeddings of a 224 px letterbox (upsampled to 299 inside the model), smoothed with "
        "sigma 1.5 on the 19 x 19 grid and upsampled bilinearly.", "",
        "## Training", f"- data: {trained_on}", "- see the AFLoc paper and repository", "",
        "## Intended use",
        "Research on annotation-free localization in chest radiographs. Not for diagnosis, "
        "triage or any clinical decision.", "",
        "## Limitations",
        "A research model: not a medical device, not clinically validated. Its map values are "
        "unnormalized dot products: compare them within one image, not across images.",
    ]
