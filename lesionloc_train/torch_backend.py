"""The encoders exactly as exported (graph-shaped wrappers) and a torch-backed `Localizer`:
the runtime's own pipeline with PyTorch in place of ONNX Runtime, for validation during
training, export parity checks and the PyTorch-eager latency baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lesionloc_runtime.bundle import EncoderSpec, HeatmapConfig, ModelBundle
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.preprocess import PreprocessConfig
from lesionloc_runtime.tokens import SentenceTokenizer
from lesionloc_train.model import LesionLocModel

IMAGE_INPUTS = ("pixel_values",)
IMAGE_OUTPUTS = ("image_embeds", "patch_embeds")
TEXT_INPUTS = ("input_ids", "attention_mask")
TEXT_OUTPUTS = ("sentence_embeds", "global_embeds")


class ImageGraph(nn.Module):
    """pixel_values (B, 1, S, S) -> image_embeds (B, D), patch_embeds (B, h, w, D)."""

    def __init__(self, model: LesionLocModel) -> None:
        super().__init__()
        self.encoder = model.image_encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(pixel_values)


class TextGraph(nn.Module):
    """input_ids, attention_mask (N, L) -> sentence_embeds (N, D), global_embeds (N, D)."""

    def __init__(self, model: LesionLocModel) -> None:
        super().__init__()
        self.encoder = model.text_encoder

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(input_ids, attention_mask)


class TorchEncoder:
    """Runs a graph-shaped module on numpy feeds, like an ONNX session."""

    def __init__(self, module: nn.Module, inputs: tuple[str, ...], outputs: tuple[str, ...],
                 device: torch.device | str = "cpu") -> None:
        self.module = module.eval()
        self.inputs, self.outputs = inputs, outputs
        self.device = torch.device(device)
        self.providers = [f"torch-{self.device.type}"]

    @torch.inference_mode()
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.inputs]
        outs = self.module(*args)
        return {n: o.float().cpu().numpy() for n, o in zip(self.outputs, outs, strict=True)}


def in_memory_bundle(
    model: LesionLocModel,
    preprocessing: PreprocessConfig,
    tokenizer: Path,
    max_length: int,
    heatmap: HeatmapConfig | None = None,
    name: str = "torch",
) -> ModelBundle:
    """A ModelBundle describing a live torch model (nothing on disk is verified)."""
    size = preprocessing.image_size
    grid = size // model.grid_stride
    dim = model.config.embed_dim
    return ModelBundle(
        path=tokenizer.parent,
        manifest={"name": name, "quantization": "torch-fp32", "demo": False},
        preprocessing=preprocessing,
        heatmap=heatmap or HeatmapConfig(),
        image_encoder=EncoderSpec("", {"pixel_values": ["batch", 1, size, size]},
                                  {"image_embeds": ["batch", dim],
                                   "patch_embeds": ["batch", grid, grid, dim]}),
        text_encoder=EncoderSpec("", {"input_ids": ["batch", "sequence"],
                                      "attention_mask": ["batch", "sequence"]},
                                 {"sentence_embeds": ["batch", dim], "global_embeds": ["batch", dim]}),
        tokenizer_file=tokenizer.name,
        max_length=max_length,
        embed_dim=dim,
        grid_stride=model.grid_stride,
        grid_origin=model.grid_origin,
        manifest_sha256="",
        heatmap_source=model.image_encoder.heatmap_source,
    )


def torch_localizer(
    model: LesionLocModel,
    preprocessing: PreprocessConfig,
    tokenizer: Path,
    max_length: int,
    heatmap: HeatmapConfig | None = None,
    device: torch.device | str = "cpu",
) -> Localizer:
    """The runtime pipeline with PyTorch encoders (same preprocessing, tokenizer, heatmaps)."""
    bundle = in_memory_bundle(model, preprocessing, tokenizer, max_length, heatmap)
    return Localizer(
        bundle,
        TorchEncoder(ImageGraph(model), IMAGE_INPUTS, IMAGE_OUTPUTS, device),
        TorchEncoder(TextGraph(model), TEXT_INPUTS, TEXT_OUTPUTS, device),
        SentenceTokenizer(tokenizer, max_length),
    )
