"""Reduced precision with ONNX Runtime's own tools (what Optimum's ORTQuantizer drives):
static per-channel QDQ int8 for the image encoder, calibrated on images that went through the
runtime's preprocessing; dynamic int8 for the text encoder; fp16 with fp32 inputs/outputs."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_export.graphs import drop_unused
from lesionloc_runtime.contract import IMAGE_INPUTS, names

log = logging.getLogger(__name__)
(PIXELS,) = names(IMAGE_INPUTS)


class _ImageReader:
    """onnxruntime.quantization CalibrationDataReader over preprocessed (1, S, S) images."""

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self._items: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._items, None)
        return None if item is None else {PIXELS: item[None].astype(np.float32)}

    def rewind(self) -> None:  # part of the reader interface; one pass is all we need
        return None


# Static int8 schemes for the image encoder, fastest first. On x86 without VNNI (AVX2), ORT's
# u8 x s8 kernels add pairs of products in 16 bits and saturate: on a small ResNet that cost
# 0.3 of patch cosine. 7-bit weights (reduce_range) avoid it at full speed; u8 x u8 avoids it
# too but ran slower on ResNet-50. Export keeps the first scheme that passes parity.
INT8_IMAGE_SCHEMES = ("u8s8-reduced", "u8u8")


def fp32_nodes(model_path: Path) -> list[str]:
    """Nodes kept in fp32: the first convolution (int8 there means quantizing the radiograph
    itself to 256 grey levels, which cost the demo model's worst patch 0.03 of cosine), any
    resampling of the input (AFLoc's, for the same reason), and the projections to the
    embedding space (small, and their error lands directly on the output)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    keep = [convs[0].name] if convs else []
    keep += [n.name for n in graph.node if _is_projection(n) or (
        n.op_type in _LINEAR_OPS and n.name.startswith("/resample/"))]
    return keep


_LINEAR_OPS = ("Conv", "Gemm", "MatMul")


def _is_projection(node: Any) -> bool:
    """A projection to the embedding space: the exports name their modules `*_proj`."""
    return node.op_type in _LINEAR_OPS and "_proj/" in node.name


# Convolutions whose output has at most this many positions (ResNet-50's last two stages at a
# 448-512 px input) are written with weight zero point 1 instead of 0, their int8 weights
# raised by 1 to match: the same products, but ONNX Runtime then runs them as an integer
# matrix product (im2col + its u8 x s8 GEMM, which uses AMX where the CPU has it) instead of
# its symmetric direct-convolution kernel (AVX-512 VNNI at best). On the 2-core AMX Xeon the
# last two stages ran 1.6x faster so (ORT's profile: 16.2 -> 10.0 ms); the first two, whose
# outputs are large, ran slower.
# The outputs are the same bytes (the integer sums are exact either way, and both paths scale
# and round them alike): `benchmarks/bench_latency.py -k conv_forms` measures both forms and
# checks that, on whatever CPU it runs on.
GEMM_MAX_POSITIONS = 1024


def own_initializers(source: Path, target: Path) -> int:
    """Give every node its own copy of a float initializer it shares with another node. The
    ONNX export shares equal constants (all the zero biases of a freshly initialized model),
    and the quantizers then quantize a shared bias for its quantized consumers and feed the
    fp32 ones a dequantized copy: the first convolution then loses the fast fp32 kernel (ORT's
    blocked layout needs constant weights and bias) and is fed a rounded bias. A trained model
    rarely shares; a random-init benchmark model always does. Returns the copies made."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    floats = {i.name: i for i in graph.initializer
              if i.data_type == onnx.TensorProto.FLOAT and int(np.prod(i.dims)) > 1}
    seen: set[str] = set()  # used once already: a later use gets a copy
    copies = 0
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name not in floats:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(floats[name])
                copy.name = f"{name}__{node.name or copies}_{k}"
                graph.initializer.append(copy)
                node.input[k] = copy.name
                copies += 1
            seen.add(name)
    onnx.save(model, str(target))
    return copies


def late_convs_in_gemm_form(path: Path, max_positions: int = GEMM_MAX_POSITIONS) -> int:
    """Rewrite, in place, the static int8 convolutions whose output has at most
    `max_positions` positions with weight zero point 1 (see GEMM_MAX_POSITIONS). Only
    int8 weights with every zero point 0 and room below 127 are rewritten. Returns how many."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    graph = model.graph
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.value_info) + list(inferred.output)}
    inits = {i.name: i for i in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    rewritten = 0
    for node in graph.node:
        dq = producer.get(node.input[1]) if node.op_type == "Conv" else None
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
            continue
        weight, zero = inits.get(dq.input[0]), inits.get(dq.input[2])
        out = shapes.get(node.output[0], [])
        if (weight is None or zero is None or weight.data_type != onnx.TensorProto.INT8
                or users.get(dq.input[0]) != 1 or users.get(dq.input[2]) != 1
                or len(out) != 4 or not all(out[2:]) or out[2] * out[3] > max_positions):
            continue
        w, z = numpy_helper.to_array(weight), numpy_helper.to_array(zero)
        if z.any() or int(w.max()) >= 127:
            continue
        weight.CopyFrom(numpy_helper.from_array((w.astype(np.int16) + 1).astype(np.int8), weight.name))
        zero.CopyFrom(numpy_helper.from_array(np.ones_like(z), zero.name))
        rewritten += 1
    onnx.save(model, str(path))
    return rewritten


def projections_as_integer_products(path: Path, weight_bits: int = 7) -> int:
    """Rewrite, in place, each 1 x 1 projection convolution kept in fp32 (`fp32_nodes`) whose
    input is a dequantized uint8 tensor (the stage before it already rounded its input to 8
    bits) as an integer matrix product with a float output: the uint8 tensor in channels-last
    order times the weights quantized per output channel to `weight_bits` bits (7 where u8 x s8
    products could saturate AVX2's 16-bit accumulators), scaled back to float, plus the bias.
    Only the weights' rounding is added; the output keeps full precision. ONNX Runtime runs the
    product with its u8 x s8 GEMM (AMX where the CPU has it) instead of a float convolution:
    on the AMX Xeon a 1024 -> 512 projection over 28 x 28 patches took 0.6 ms against 3.5.
    Returns how many were rewritten."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    rewritten = 0
    for node in list(graph.node):
        projection = node.op_type == "Conv" and _is_projection(node)
        dq = producer.get(node.input[0]) if projection else None
        weight = inits.get(node.input[1]) if dq is not None else None
        if (weight is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3
                or not _is_pointwise(node) or len(weight.dims) != 4 or weight.dims[2:] != [1, 1]):
            continue
        scale, zero = inits.get(dq.input[1]), inits.get(dq.input[2])
        if (scale is None or zero is None or list(scale.dims) or list(zero.dims)
                or zero.data_type != onnx.TensorProto.UINT8):
            continue
        nodes, extra = _integer_product(node, dq, numpy_helper.to_array(weight),
                                        float(numpy_helper.to_array(scale)), weight_bits)
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for k, new in enumerate(nodes):
            graph.node.insert(at + k, new)
        graph.initializer.extend(extra)
        rewritten += 1
    if rewritten:
        drop_unused(graph)
        onnx.save(model, str(path))
    return rewritten


def _integer_product(conv: Any, dq: Any, weight: np.ndarray, input_scale: float,
                     weight_bits: int) -> tuple[list[Any], list[Any]]:
    """The nodes and initializers that compute the pointwise `conv` of `dq`'s uint8 input as
    uint8 x int8 products, scaled to float, the bias added, back in channels-first order."""
    import onnx
    from onnx import helper, numpy_helper

    qmax = (1 << (weight_bits - 1)) - 1
    w = weight.reshape(weight.shape[0], -1).astype(np.float64)
    step = np.abs(w).max(axis=1) / qmax
    step[step == 0] = 1.0
    ints = np.clip(np.rint(w / step[:, None]), -qmax, qmax).astype(np.int8)
    t = f"{conv.name or conv.output[0]}/"
    extra = [numpy_helper.from_array(np.ascontiguousarray(ints.T), t + "int8_weight"),
             numpy_helper.from_array(np.zeros(len(step), np.int8), t + "weight_zero"),
             numpy_helper.from_array((input_scale * step).astype(np.float32), t + "scale")]
    nodes = [helper.make_node("Transpose", [dq.input[0]], [t + "nhwc"], perm=[0, 2, 3, 1]),
             helper.make_node("MatMulInteger", [t + "nhwc", extra[0].name, dq.input[2],
                                                extra[1].name], [t + "int32"]),
             helper.make_node("Cast", [t + "int32"], [t + "sum"], to=onnx.TensorProto.FLOAT),
             helper.make_node("Mul", [t + "sum", extra[2].name], [t + "scaled"])]
    last = t + "scaled"
    if len(conv.input) > 2 and conv.input[2]:
        nodes.append(helper.make_node("Add", [last, conv.input[2]], [t + "biased"]))
        last = t + "biased"
    nodes.append(helper.make_node("Transpose", [last], [conv.output[0]], perm=[0, 3, 1, 2]))
    for k, node in enumerate(nodes):
        node.name = f"{t}{node.op_type}_{k}"
    return nodes, extra


def _is_pointwise(node: Any) -> bool:
    """A Conv with no padding, stride, dilation or groups (its 1 x 1 kernel is checked apart)."""
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
    # auto_pad pads nothing around a 1 x 1 kernel at stride 1
    return (all(v == 1 for v in attrs.get("strides", [1])) and not any(attrs.get("pads", []))
            and all(v == 1 for v in attrs.get("dilations", [1])) and attrs.get("group", 1) == 1)


def quantize_image_int8(source: Path, target: Path, calibration: Sequence[np.ndarray],
                        scheme: str = INT8_IMAGE_SCHEMES[0],
                        gemm_max_positions: int = GEMM_MAX_POSITIONS,
                        integer_projections: bool = True) -> None:
    """Static QDQ int8, per-channel symmetric weights, asymmetric uint8 activations, MinMax
    calibration (deterministic, and robust enough on a few dozen radiographs); the first
    convolution and the projections stay fp32 (`fp32_nodes`); the convolutions with small
    outputs in the matrix-product form (`late_convs_in_gemm_form`; 0: none); with
    `integer_projections` and 7-bit weights (the u8s8-reduced scheme), the pointwise
    projections of 8-bit inputs as integer products with float outputs
    (`projections_as_integer_products`)."""
    if scheme not in INT8_IMAGE_SCHEMES:
        raise ValueError(f"unknown int8 scheme {scheme!r}")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 calibration needs at least one image")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        own_initializers(prepared, prepared)
        quantize_static(
            str(prepared), str(target), _ImageReader(calibration),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=scheme == "u8s8-reduced",
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8 if scheme == "u8s8-reduced" else QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=fp32_nodes(prepared),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                           "CalibTensorRangeSymmetric": False},
        )
    if gemm_max_positions > 0:
        late_convs_in_gemm_form(target, gemm_max_positions)
    if integer_projections and scheme == "u8s8-reduced":  # u8u8 is the precision fallback
        projections_as_integer_products(target, weight_bits=7)


def quantize_text_int8(source: Path, target: Path) -> None:
    """Dynamic int8 (weights int8, activations quantized on the fly): the standard choice for
    transformer encoders on CPU, applied to the fused graph."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        owned = Path(tmp) / "owned.onnx"
        own_initializers(source, owned)  # a shared LayerNorm bias would be dequantized per run
        # the fused graph holds contrib ops (Attention, SkipLayerNormalization) that ONNX shape
        # inference cannot type; their outputs are float
        # reduce_range (7-bit weights): u8 x s8 products saturate the 16-bit accumulators of
        # AVX2 CPUs without VNNI, which cost 0.02 of cosine on small encoders; 7 bits do not
        quantize_dynamic(str(owned), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True, extra_options={"MatMulConstBOnly": True,
                                        "DefaultTensorType": onnx.TensorProto.FLOAT})


def convert_fp16(source: Path, target: Path) -> None:
    """fp16 weights and compute for GPUs (CUDA provider) of a plain graph (the image encoder;
    the fused text graph converts through its optimizer); inputs and outputs stay fp32. The
    final L2 normalization stays fp32, where a sum of squares could overflow fp16."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    converted = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=["ReduceL2", "ReduceSum", "ReduceMean", "Div"],
    )
    onnx.save(converted, str(target))
