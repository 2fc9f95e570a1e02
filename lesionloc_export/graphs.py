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


def export_image_encoder(graph: nn.Module, image_size: int, path: Path,
                         fold_normalization: bool = True) -> Path:
    """`graph`: pixel_values (B, 1, S, S) -> image_embeds (B, D), patch_embeds (B, h, w, D);
    its per-channel input normalization folded into the first convolution
    (`fold_channel_normalization`) unless `fold_normalization` is False."""
    graph = graph.eval()
    example = torch.rand(1, 1, image_size, image_size)
    with torch.no_grad():
        _export(graph, (example,), path, "image")
    if fold_normalization:
        fold_channel_normalization(path)
    return path


def fold_channel_normalization(path: Path) -> bool:
    """Rewrite, in place, a grey input repeated on C channels, normalized per channel and fed
    to a convolution (`(x - mean_c) / std_c`, then Conv with C input channels: our encoder's
    ImageNet normalization) as one convolution over two channels: the grey image, with the
    kernels divided by std_c and summed, and an image of ones, with the kernels times
    -mean_c / std_c summed. Inside the image that is the same sum regrouped; in the border
    the convolution's zero padding contributes nothing either way, since the padded pixels
    are zero in every channel of both inputs. The same outputs within float rounding, for two
    thirds of the first convolution's work and no per-channel pass over the image. False (and
    nothing written) when the graph does not start so."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    found = _normalized_first_conv(graph)
    if found is None:
        return False
    (expand, sub, div, conv), (mean, std, weight) = found
    (pixels,) = names(IMAGE_INPUTS)
    prefix = "/fold_channel_normalization/"
    grey = (weight / std).sum(axis=1, keepdims=True)
    ones = -(weight * (mean / std)).sum(axis=1, keepdims=True)
    kernel = np.concatenate([grey, ones], axis=1).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(kernel, prefix + "kernel"))
    new = [helper.make_node("Shape", [pixels], [prefix + "shape"], name=prefix + "Shape"),
           helper.make_node("ConstantOfShape", [prefix + "shape"], [prefix + "ones"],
                            name=prefix + "Ones", value=numpy_helper.from_array(
                                np.ones(1, np.float32))),
           helper.make_node("Concat", [pixels, prefix + "ones"], [prefix + "input"],
                            name=prefix + "Concat", axis=1)]
    at = list(graph.node).index(expand)
    for node in (expand, sub, div):
        graph.node.remove(node)
    for k, node in enumerate(new):
        graph.node.insert(at + k, node)
    conv.input[0], conv.input[1] = prefix + "input", prefix + "kernel"
    drop_unused(graph)
    onnx.save(model, str(path))
    return True


def _normalized_first_conv(graph: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """(Expand, Sub, Div, Conv) reading the image one after the other, each the only reader of
    the one before, and (mean, std, kernel) as float64 arrays; None when the graph does not
    start so (constants that are not constants, a grouped convolution, shapes that differ)."""
    import numpy as np
    from onnx import numpy_helper

    (pixels,) = names(IMAGE_INPUTS)
    consts = constants(graph)
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)

    def only_user(name: str, op: str) -> Any:
        found = users.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op else None

    expand = only_user(pixels, "Expand")
    sub = expand and only_user(expand.output[0], "Sub")
    div = sub and only_user(sub.output[0], "Div")
    conv = div and only_user(div.output[0], "Conv")
    if conv is None or any(a.name == "group" and a.i != 1 for a in conv.attribute):
        return None
    tensors = [consts.get(sub.input[1]), consts.get(div.input[1]), consts.get(conv.input[1])]
    if any(c is None for c in tensors) or sub.input[0] != expand.output[0]:
        return None
    mean, std, weight = (numpy_helper.to_array(c).astype(np.float64) for c in tensors)
    channels = weight.shape[1] if weight.ndim == 4 else 0
    if channels < 2 or mean.shape != (1, channels, 1, 1) or std.shape != mean.shape:
        return None
    return (expand, sub, div, conv), (mean, std, weight)


def constants(graph: Any) -> dict[str, Any]:
    """Every constant tensor of the graph by name (TensorProto): its initializers and the
    outputs of its Constant nodes (the exporter writes small constants so)."""
    consts = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts.setdefault(node.output[0], node.attribute[0].t)
    return consts


def drop_unused(graph: Any) -> None:
    """Remove the nodes and initializers nothing reads any more after a rewrite (what fed
    only the nodes it replaced: constants, a dequantization, float weights)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for n in graph.node for name in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {name for n in graph.node for name in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


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
