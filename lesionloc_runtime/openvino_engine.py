"""A bundle's image encoder through OpenVINO's runtime (`--providers openvino`): the same
ONNX graph, compiled by OpenVINO for the CPU, where its int8 convolutions use AMX (Intel Xeon
4th generation and later) instead of ONNX Runtime's VNNI kernels. The text encoder stays on
ONNX Runtime: OpenVINO cannot read its fused attention operators."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime.contract import EncoderSpec
from lesionloc_runtime.errors import BundleError, ConfigError, printable
from lesionloc_runtime.openvino_cache import CompiledCache, cache_dir
from lesionloc_runtime.privacy import import_openvino
from lesionloc_runtime.sessions import OnnxEncoder

__all__ = ["PROVIDER", "OpenVinoEncoder", "as_low_precision_patterns", "compile_options",
           "image_engine_for"]

_log = logging.getLogger(__name__)
# The name `--providers` takes, and what the study records as the image encoder's provider.
PROVIDER = "openvino"
_ORT_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)",
              "i32": "tensor(int32)", "u8": "tensor(uint8)", "i8": "tensor(int8)"}


def _import_openvino() -> Any:
    try:
        openvino = import_openvino()  # without the conversion tools, which report usage
    except ImportError:
        raise ConfigError("--providers openvino needs OpenVINO's runtime: pip install "
                          "'lesionloc[cpu,openvino]'") from None
    return openvino


class OpenVinoEncoder:
    """An image encoder graph compiled by OpenVINO for `threads` CPU threads, for one image a
    call (the runtime's; another batch size is compiled when it first comes). Runs like
    `OnnxEncoder`: the same feeds and outputs, checked against the card the same way.
    `cache`: the folder of compiled graphs (`openvino_cache`; None: compile every time)."""

    def __init__(self, path: Path, spec: EncoderSpec, threads: int, int8: bool = False,
                 cache: Path | None = None) -> None:
        self._ov = _import_openvino()
        self.core = self._ov.Core()
        self.path = path
        self.threads = threads
        self.int8 = int8
        self.providers = [PROVIDER]
        self.options = compile_options(threads, not int8)
        self._model: Any = None  # read and rewritten when a batch size must be compiled
        self._cache = CompiledCache.open(cache, path, self.options, self._ov.get_version())
        hit = self._cache.load(1) if self._cache else None
        self.ports = hit.ports if hit else self._read()
        inputs, outputs = self.ports["inputs"], self.ports["outputs"]  # name: (type, shape)
        spec.check_graph(path.name, inputs, outputs)
        self.input_names = list(inputs)
        self.input_shapes = {name: shape for name, (_, shape) in inputs.items()}
        self.output_shapes = {name: shape for name, (_, shape) in outputs.items()}
        # an infer request runs one call at a time; ONNX Runtime's sessions take concurrent
        # calls, and a Localizer shared between threads must keep working
        self._lock = threading.Lock()
        self._compiled: dict[int, tuple[Any, Any]] = {}
        self.cache_hit = False  # whether the first compiled form came from the cache
        # compiled (or imported) now: loading is where a study expects to wait
        self._request(1, hit.blob if hit else None)

    def _read(self) -> dict[str, Any]:
        """Read the graph and rewrite it for OpenVINO's int8 kernels; its ports as read."""
        try:
            model = self.core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise BundleError(f"{self.path}: OpenVINO cannot read this graph "
                              f"({printable(str(exc), 300)})") from None
        ports = {"inputs": {i.any_name: _port(i) for i in model.inputs},
                 "outputs": {o.any_name: _port(o) for o in model.outputs}}
        as_low_precision_patterns(model, self._ov)
        self._model = model
        return ports

    def _request(self, batch: int, cached: bytes | None = None) -> tuple[Any, Any]:
        if batch not in self._compiled:
            if cached is None and self._cache is not None:
                hit = self._cache.load(batch)
                cached = hit.blob if hit else None
            compiled = self._import(cached) if cached is not None else None
            self.cache_hit = self.cache_hit or (compiled is not None and not self._compiled)
            if compiled is None:
                compiled = self._compile(batch)
            self._compiled[batch] = (compiled, compiled.create_infer_request())
        return self._compiled[batch]

    def _import(self, blob: bytes) -> Any:
        try:
            return self.core.import_model(blob, "CPU", self.options)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            _log.warning("%s: OpenVINO refused its compiled form from the cache (%s); compiling "
                         "again", self.path, printable(str(exc), 200))
            return None  # compiled, and the entry replaced

    def _compile(self, batch: int) -> Any:
        if self._model is None:
            self._read()
        model = self._model.clone()
        model.reshape({self.input_names[0]: [batch, *self.input_shapes[self.input_names[0]][1:]]})
        try:
            compiled = self.core.compile_model(model, "CPU", self.options)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise BundleError(f"{self.path}: OpenVINO cannot compile this graph for the "
                              f"CPU ({printable(str(exc), 300)}); --providers cpu runs it "
                              "on ONNX Runtime") from None
        if self._cache is not None:
            self._cache.store(batch, compiled.export_model().getvalue(), self.ports)
        return compiled

    @property
    def float_precision(self) -> str:
        """What the graph's float operators run in, as compiled: "f32" or "bf16"."""
        compiled = self._compiled[1][0]  # compiled when the engine was made
        return str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        first = feeds[self.input_names[0]]
        with self._lock:
            compiled, request = self._request(int(first.shape[0]))
            results = request.infer({name: np.ascontiguousarray(feeds[name])
                                     for name in self.input_names})
        # infer returns copies (share_outputs=False): a later call leaves them alone; the
        # outputs keep the graph's order, not always its names once rewritten
        return {name: results[port]
                for name, port in zip(self.output_shapes, compiled.outputs, strict=True)}


def image_engine_for(providers: Sequence[str], threads: int, int8: bool = False,
                     beside: bool = True
                     ) -> tuple[Callable[[Path, EncoderSpec], Any], tuple[str, ...], int]:
    """What opens a bundle's image encoder (a callable of its path and card entry), the
    providers left for ONNX Runtime's text session, and that session's threads.

    `openvino` puts the image encoder on OpenVINO's runtime (CPU only, all `threads`) and the
    text encoder on ONNX Runtime's CPU provider with half of them: the Localizer then runs the
    two side by side (on two cores 29.8 ms against 34.7 one after the other on both; the
    text encoder alone on one thread takes 28.8 instead of 17.4, docs/latency.md); not
    `beside`, the text session keeps every thread (a batch, which encodes most sentences ahead
    of their studies). `int8`: the bundle is int8, whose float operators OpenVINO may run in
    bf16 (`compile_options`)."""
    others = tuple(p for p in providers if p.lower() != PROVIDER)
    if len(others) == len(providers):
        return partial(OnnxEncoder, providers=providers, threads=threads), tuple(providers), threads
    if any(p.lower() != "cpu" for p in others):
        raise ConfigError(f"--providers {PROVIDER} runs on the CPU; it cannot be combined with "
                          f"{', '.join(p for p in others if p.lower() != 'cpu')}")
    return (partial(OpenVinoEncoder, threads=threads, int8=int8, cache=cache_dir()), ("cpu",),
            max(1, threads // 2) if beside else threads)


def compile_options(threads: int, fp32: bool = True) -> dict[str, Any]:
    """How the runtime compiles an image encoder with OpenVINO. `fp32`: the graph's float
    operators in fp32, as ONNX Runtime computes them (an fp32 bundle's, whose parity is held
    to 1e-4). Otherwise OpenVINO's choice: bf16 where the CPU computes it natively (AMX,
    AVX-512 BF16), fp32 elsewhere. In an int8 graph the float operators are the first
    convolution and the projections; the first convolution's bf16 products land in an 8-bit
    quantizer's steps, which are coarser, and the parity against PyTorch did not move (docs/
    latency.md)."""
    options: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
        # batch workers are processes of one thread each: pinned, they could share a core
        "ENABLE_CPU_PINNING": False}
    if fp32:
        options["INFERENCE_PRECISION_HINT"] = "f32"
    return options


def _port(port: Any) -> tuple[str, list[Any]]:
    shape = [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]
    return _ORT_TYPES.get(port.get_element_type().get_type_name(), "?"), shape


def as_low_precision_patterns(model: Any, ov: Any) -> int:
    """Rewrite, in place, the two int8 forms our exporter writes for ONNX Runtime's kernels into
    the patterns OpenVINO's low-precision passes run as int8. Both keep every integer sum:
    - a convolution's int8 weights with zero point 1 (the export's matrix-product form, see
      lesionloc_export.quantize.late_convs_in_gemm_form): OpenVINO runs a convolution with
      non-zero weight zero points in float, so the weights go back to w - 1 with zero point
      0, the same dequantized values;
    - an integer product (MatMulInteger, the export's projections of 8-bit inputs), which
      OpenVINO runs as a product of 32-bit integers: it becomes a float product of the two
      dequantized integer tensors (scale 1), which OpenVINO runs with its 8-bit weights.
    Returns how many nodes were rewritten."""
    ops = ov.opset13
    rewritten = 0
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        if kind == "Subtract":
            rewritten += _weights_to_zero_point_0(node, ov)
        elif kind == "MatMul" and node.get_output_element_type(0) == ov.Type.i32:
            rewritten += _integer_product_as_float(node, ov, ops)
    return rewritten


def _source(node: Any, index: int) -> Any:
    return node.input(index).get_source_output().get_node()


def _weights_to_zero_point_0(subtract: Any, ov: Any) -> int:
    """Convert(int8 weights) - zero point, with one zero point != 0 for every channel."""
    convert, zero = _source(subtract, 0), _source(subtract, 1)
    if convert.get_type_name() != "Convert":
        return 0
    weights = _source(convert, 0)
    while zero.get_type_name() in ("Reshape", "Convert"):
        zero = _source(zero, 0)
    if (weights.get_type_name() != "Constant" or weights.get_element_type() != ov.Type.i8
            or zero.get_type_name() != "Constant"):
        return 0
    z = zero.get_data()
    if not z.any() or not (z == z.flat[0]).all():
        return 0
    w = weights.get_data().astype(np.int16) - int(z.flat[0])
    if w.min() < -128 or w.max() > 127:
        return 0
    weights.output(0).replace(ov.op.Constant(w.astype(np.int8)).output(0))
    zero.output(0).replace(ov.op.Constant(np.zeros_like(z)).output(0))
    return 1


def _integer_product_as_float(matmul: Any, ov: Any, ops: Any) -> int:
    """(Convert(a) - za) x (Convert(b) - zb) in int32, read back as float by its users."""
    users = [target.get_node() for target in matmul.output(0).get_target_inputs()]
    if not users or any(u.get_type_name() != "Convert"
                        or u.get_output_element_type(0) != ov.Type.f32 for u in users):
        return 0
    sides = []
    for index in (0, 1):
        subtract = _source(matmul, index)
        if subtract.get_type_name() != "Subtract":
            return 0
        value, zero = _source(subtract, 0), _source(subtract, 1)
        if value.get_type_name() != "Convert" or zero.get_type_name() != "Convert":
            return 0
        centred = ops.subtract(ops.convert(value.input(0).get_source_output(), "f32"),
                               ops.convert(zero.input(0).get_source_output(), "f32"))
        sides.append(ops.multiply(centred, ops.constant(np.float32(1.0))))
    attributes = matmul.get_attributes()
    product = ops.matmul(sides[0], sides[1], attributes["transpose_a"], attributes["transpose_b"])
    for user in users:
        names = user.output(0).get_names()
        user.output(0).replace(product.output(0))
        product.output(0).get_tensor().add_names(names)  # a graph output keeps its name
    return 1
