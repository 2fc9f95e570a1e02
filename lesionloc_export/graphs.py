"""Torch -> ONNX for both encoders (dynamic batch, dynamic sequence for text), then ONNX
Runtime's own optimizations saved into the file: transformer fusions for the text encoder
(what Optimum's ORTOptimizer drives), constant folding and fusions for the image encoder."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from lesionloc_train.model import LesionLocModel
from lesionloc_train.torch_backend import (
    IMAGE_INPUTS,
    IMAGE_OUTPUTS,
    TEXT_INPUTS,
    TEXT_OUTPUTS,
    ImageGraph,
    TextGraph,
)

log = logging.getLogger(__name__)
# Opset 17 has LayerNormalization and is supported by every ONNX Runtime release since 1.14,
# which is what hospital workstations tend to run.
OPSET = 17


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path,
            inputs: tuple[str, ...], outputs: tuple[str, ...],
            dynamic_axes: dict[str, dict[int, str]]) -> None:
    # The TorchScript exporter produces the graph patterns ONNX Runtime's transformer
    # optimizer recognises (Attention, EmbedLayerNormalization, SkipLayerNormalization).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes=dynamic_axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)


def export_image_encoder(model: LesionLocModel, image_size: int, path: Path) -> Path:
    graph = ImageGraph(model).eval()
    example = torch.rand(1, 1, image_size, image_size)
    axes = {name: {0: "batch"} for name in IMAGE_INPUTS + IMAGE_OUTPUTS}
    with torch.no_grad():
        _export(graph, (example,), path, IMAGE_INPUTS, IMAGE_OUTPUTS, axes)
    return path


def export_text_encoder(model: LesionLocModel, path: Path) -> Path:
    backbone = model.text_encoder.backbone
    previous = getattr(backbone.config, "_attn_implementation", None)
    if hasattr(backbone, "set_attn_implementation"):
        # eager attention exports as MatMul/Softmax, which ORT fuses into its Attention op;
        # SDPA exports as a pattern it does not recognise.
        backbone.set_attn_implementation("eager")
    graph = TextGraph(model).eval()
    ids = torch.randint(5, 50, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    axes = {name: {0: "batch", 1: "sequence"} for name in TEXT_INPUTS}
    axes.update({name: {0: "batch"} for name in TEXT_OUTPUTS})
    try:
        with torch.no_grad():
            _export(graph, (ids, mask), path, TEXT_INPUTS, TEXT_OUTPUTS, axes)
    finally:
        if previous and hasattr(backbone, "set_attn_implementation"):
            backbone.set_attn_implementation(previous)
    return path


def optimize_text_encoder(model: LesionLocModel, source: Path, target: Path,
                          fp16: bool = False) -> dict[str, int]:
    """ORT transformer fusions, saved; returns the fused-operator counts for the record.
    With fp16, the optimizer's own conversion, which knows the fused ops' type constraints."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.text_encoder.backbone.config
    model_type = "bert" if config.model_type in ("bert", "distilbert", "roberta") else "bert"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(str(source), model_type=model_type,
                                   num_heads=int(config.num_attention_heads),
                                   hidden_size=int(config.hidden_size), opt_level=1)
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
