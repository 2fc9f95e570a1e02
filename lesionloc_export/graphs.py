"""Torch -> ONNX for both encoders (dynamic batch, dynamic sequence for text), then ONNX
Runtime's own optimizations saved into the file: transformer fusions for the text encoder
(what Optimum's ORTOptimizer drives), constant folding and fusions for the image encoder."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lesionloc_runtime.contract import (
    IMAGE_INPUTS,
    IMAGE_OUTPUTS,
    TEXT_INPUTS,
    TEXT_OUTPUTS,
    dynamic_axes,
    names,
)

log = logging.getLogger(__name__)
# Opset 17 has LayerNormalization and is supported by every ONNX Runtime release since 1.14,
# which is what hospital workstations tend to run.
OPSET = 17


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, kind: str) -> None:
    # The TorchScript exporter produces the graph patterns ONNX Runtime's transformer
    # optimizer recognises (Attention, EmbedLayerNormalization, SkipLayerNormalization).
    inputs, outputs = (IMAGE_INPUTS, IMAGE_OUTPUTS) if kind == "image" else (TEXT_INPUTS, TEXT_OUTPUTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=list(names(inputs)),
                          output_names=list(names(outputs)), dynamic_axes=dynamic_axes(kind),
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)


def export_image_encoder(graph: nn.Module, image_size: int, path: Path) -> Path:
    """`graph`: pixel_values (B, 1, S, S) -> image_embeds (B, D), patch_embeds (B, h, w, D)."""
    graph = graph.eval()
    example = torch.rand(1, 1, image_size, image_size)
    with torch.no_grad():
        _export(graph, (example,), path, "image")
    return path


def export_text_encoder(graph: nn.Module, backbone: nn.Module, path: Path) -> Path:
    """`graph`: input_ids, attention_mask (N, L) -> sentence_embeds, global_embeds (N, D);
    `backbone` is its transformers model, whose attention is exported eagerly."""
    previous = getattr(backbone.config, "_attn_implementation", None)
    if hasattr(backbone, "set_attn_implementation"):
        # eager attention exports as MatMul/Softmax, which ORT fuses into its Attention op;
        # SDPA exports as a pattern it does not recognise.
        backbone.set_attn_implementation("eager")
    graph = graph.eval()
    ids = torch.randint(5, 50, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    try:
        with torch.no_grad():
            _export(graph, (ids, mask), path, "text")
    finally:
        if previous and hasattr(backbone, "set_attn_implementation"):
            backbone.set_attn_implementation(previous)
    return path


def optimize_text_encoder(backbone_config: Any, source: Path, target: Path,
                          fp16: bool = False) -> dict[str, int]:
    """ORT transformer fusions, saved; returns the fused-operator counts for the record.
    With fp16, the optimizer's own conversion, which knows the fused ops' type constraints.

    The CPU graphs (fp32, and int8, which is quantized from this one) keep each residual Add
    and LayerNormalization apart: ONNX Runtime's CPU SkipLayerNormalization kernel took 0.2 ms
    for a report's 112 tokens x 768 (the 24 of BERT-base 5.2 ms, a quarter of the int8 text
    encoder, on a 2-core Xeon with AMX), the Add and its LayerNormalization kernel a fraction
    of that. The fp16 graph (GPUs, where the fused kernel is the fast one) keeps the fusion."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = fusions.enable_bias_skip_layer_norm = fp16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(str(source), model_type="bert",
                                   num_heads=int(backbone_config.num_attention_heads),
                                   hidden_size=int(backbone_config.hidden_size), opt_level=1,
                                   optimization_options=fusions)
    if fp16:
        optimized.convert_float_to_float16(keep_io_types=True)
    optimized.save_model_to_file(str(target))
    stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    return stats


def optimize_image_encoder(source: Path, target: Path) -> None:
    """ORT's portable (extended-level) graph optimizations, saved, so a workstation does not
    redo them at every start. Layout-specific (ALL-level) rewrites stay at load time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
