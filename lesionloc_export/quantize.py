"""Reduced precision with ONNX Runtime's own tools (what Optimum's ORTQuantizer drives):
static per-channel QDQ int8 for the image encoder, calibrated on images that went through the
runtime's preprocessing; dynamic int8 for the text encoder; fp16 with fp32 inputs/outputs."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

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
    keep += [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
             and ("_proj/" in n.name or n.name.startswith("/resample/"))]
    return keep


def quantize_image_int8(source: Path, target: Path, calibration: Sequence[np.ndarray],
                        scheme: str = INT8_IMAGE_SCHEMES[0]) -> None:
    """Static QDQ int8, per-channel symmetric weights, asymmetric uint8 activations, MinMax
    calibration (deterministic, and robust enough on a few dozen radiographs); the first
    convolution and the projections stay fp32 (`fp32_nodes`)."""
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
        quantize_static(
            str(prepared), str(target), _ImageReader(calibration),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=scheme == "u8s8-reduced",
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8 if scheme == "u8s8-reduced" else QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=fp32_nodes(prepared),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                           "CalibTensorRangeSymmetric": False},
        )


def quantize_text_int8(source: Path, target: Path) -> None:
    """Dynamic int8 (weights int8, activations quantized on the fly): the standard choice for
    transformer encoders on CPU, applied to the fused graph."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the fused graph holds contrib ops (Attention, SkipLayerNormalization) that ONNX shape
        # inference cannot type; their outputs are float
        # reduce_range (7-bit weights): u8 x s8 products saturate the 16-bit accumulators of
        # AVX2 CPUs without VNNI, which cost 0.02 of cosine on small encoders; 7 bits do not
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
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
