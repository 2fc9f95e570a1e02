"""The encoders exactly as exported (graph-shaped wrappers) and a torch-backed `Localizer`:
the runtime's own pipeline with PyTorch in place of ONNX Runtime, for validation during
training, export parity checks and the PyTorch-eager latency baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lesionloc_runtime.architectures import GridSpec, TextConfig
from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.contract import CONTRACT, EncoderSpec, names
from lesionloc_runtime.heatmap import HeatmapConfig
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.preprocess import PreprocessConfig
from lesionloc_runtime.tokens import PACKED_POOLING, SentenceTokenizer
from lesionloc_train.model import LesionLocModel


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

    def packed(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
               window_mask: torch.Tensor, window_pooling: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The packed contract's inputs: the embeddings per window."""
        return self.encoder.forward_packed(input_ids, position_ids, window_mask, window_pooling)


class TorchEncoder:
    """Runs a graph-shaped module on numpy feeds, like an ONNX session: `kind` "image",
    "text" or "packed-text" (the text graph's `packed` method) names its inputs and outputs
    from the runtime's contract."""

    def __init__(self, module: nn.Module, kind: str, device: torch.device | str = "cpu") -> None:
        self.module = module.eval()
        self.call = module.packed if kind == "packed-text" else module
        required, _, outputs = CONTRACT[kind]
        self.inputs, self.outputs = names(required), names(outputs)
        self.device = torch.device(device)
        self.providers = [f"torch-{self.device.type}"]

    @torch.inference_mode()
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.inputs]
        outs = self.call(*args)
        return {n: o.float().cpu().numpy() for n, o in zip(self.outputs, outs, strict=True)}


def packs_windows(model: LesionLocModel) -> bool:
    """Whether the torch localizer runs the model's text encoder on packed windows, as the
    exporter's packed graphs do (every pooling our models have)."""
    return model.text_encoder.pooling in PACKED_POOLING


def heatmap_defaults(model: LesionLocModel, attention_temperature: float = 0.25) -> HeatmapConfig:
    """Our models' heatmap conventions: cosine maps scored by the local loss's attention, or,
    for a model trained without the local loss, global shares scored by the global cosine."""
    if model.image_encoder.heatmap_source == "global":
        return HeatmapConfig(attention_temperature=attention_temperature,
                             similarity="global-share", score="global-cosine")
    return HeatmapConfig(attention_temperature=attention_temperature)


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
    grid = GridSpec.receptive_field(size, model.grid_stride, model.grid_origin)
    dim = model.config.embed_dim
    return ModelBundle(
        path=tokenizer.parent,
        card={"name": name, "quantization": "torch-fp32", "demo": False},
        preprocessing=preprocessing,
        heatmap=heatmap or heatmap_defaults(model),
        image_encoder=EncoderSpec.image("", size, grid.shape, dim),
        text_encoder=EncoderSpec.text("", dim, packed=packs_windows(model)),
        tokenizer_file=tokenizer.name,
        max_length=max_length,
        embed_dim=dim,
        grid=grid,
        card_sha256="",
        text=TextConfig(pooling=model.config.text.pooling),
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
        TorchEncoder(ImageGraph(model), "image", device),
        TorchEncoder(TextGraph(model), "packed-text" if packs_windows(model) else "text", device),
        SentenceTokenizer(tokenizer, max_length),
    )
