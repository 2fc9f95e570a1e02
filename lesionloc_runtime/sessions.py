"""ONNX Runtime sessions: one place that picks execution providers, threads and optimization,
checks a graph against what the bundle declares, and runs it. Created once per process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime.contract import EncoderSpec
from lesionloc_runtime.cpuinfo import usable_cpus
from lesionloc_runtime.errors import BundleError, ConfigError, printable
from lesionloc_runtime.privacy import quiet_sessions

__all__ = ["OnnxEncoder", "default_threads", "open_session", "session_options"]

_log = logging.getLogger(__name__)

_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

# Warnings already given in this process: a localizer opens two sessions (and a batch run
# more), and one warning says it.
_warned: set[str] = set()


def _warn_once(message: str, *args: object) -> None:
    key = message % args
    if key not in _warned:
        _warned.add(key)
        _log.warning(message, *args)


def _import_onnxruntime() -> Any:
    """Import onnxruntime with an actionable message when neither build is installed."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "ONNX Runtime is not installed: pip install 'lesionloc[cpu]' (or 'lesionloc[gpu]' "
            "for CUDA; install only one of the two)"
        ) from None
    quiet_sessions(onnxruntime)
    return onnxruntime


def _resolve_providers(requested: Sequence[str]) -> list[str]:
    """Map 'cpu'/'cuda' to ORT provider names; keep only available ones (CPU always last).
    Asking for CUDA where it is unavailable warns and falls back to CPU."""
    ort = _import_onnxruntime()
    available = set(ort.get_available_providers())
    chosen: list[str] = []
    for name in requested:
        full = _PROVIDER_ALIASES.get(name.lower(), name)
        if full not in _PROVIDER_ALIASES.values() and not full.endswith("ExecutionProvider"):
            raise ConfigError(f"unknown execution provider {name!r} (use cpu or cuda)")
        if full in available:
            if full not in chosen:
                chosen.append(full)
        else:
            _warn_once("%s was requested but is not available in this onnxruntime build; "
                       "install lesionloc[gpu] on a machine with CUDA", full)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


# ONNX Runtime optimizers switched off. QDQ propagation moves the QuantizeLinear that follows
# a MaxPool up in front of it. In the int8 image encoder that pool follows the fp32 first
# convolution, and ORT runs a uint8 MaxPool in NCHW with a scalar loop, many times slower
# than the fp32 pool in its blocked (NCHWc) layout.
# The output is the same either way (a quantizer is monotone: Q(max x) = max Q(x)).
_DISABLED_OPTIMIZERS = ("QDQPropagationTransformer",)
# On the CPU, also the fusion of a residual Add and its LayerNormalization into one
# SkipLayerNormalization: ONNX Runtime's CPU kernel for it is slower than the two it replaces
# (the exporter leaves them apart in CPU bundles for the same reason; an older bundle whose
# file holds the fused op keeps it). GPU sessions keep the fusion, fast there.
_DISABLED_ON_CPU = ("SkipLayerNormFusion",)


def session_options(threads: int | None = None) -> Any:
    """The SessionOptions of every session the runtime (and the exporter's parity check, and
    the latency benchmarks) open."""
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # All levels: the int8 graphs need the QDQ -> QLinearConv fusions (the basic level leaves
    # them out and runs much slower) and layout rewrites are hardware-specific, so they
    # cannot be saved at export; loading pays for them once per session.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Threads spin while a run is on (the text encoder's many small operators wait less for
    # each other) and stop when it ends: ORT's default
    # spins on after each run, on the cores the rendering and PNG encoding that follow need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    # The session's threads treat denormal floats as zero (flush-to-zero, denormals-are-zero),
    # which the CPU otherwise computes on a slow path: inside the int8 text encoder's attention
    # (QAttention; no operator's output holds one) they cost the benchmarks' full-size model
    # a quarter of its attention's time (docs/latency.md). Only values below 1.2e-38 change;
    # the reference report's embeddings did not, bit for bit.
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return options


def open_session(path: Path, options: Any, providers: Sequence[str]) -> Any:
    """An InferenceSession with `options` and the runtime's _DISABLED_OPTIMIZERS (and, when
    it runs on the CPU alone, _DISABLED_ON_CPU)."""
    ort = _import_onnxruntime()
    disabled = list(_DISABLED_OPTIMIZERS)
    if all(p == "CPUExecutionProvider" for p in providers):
        disabled += _DISABLED_ON_CPU
    # Built on a thread of its own: ONNX Runtime also sets flush-to-zero on the thread that
    # builds a process's first session, for good (session.set_denormal_as_zero, above), and the
    # caller's thread (a user's, numpy's and PyTorch's arithmetic on it) must keep IEEE floats.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lesionloc-session") as one:
        return one.submit(ort.InferenceSession, str(path), options, providers=list(providers),
                          disabled_optimizers=disabled).result()


class OnnxEncoder:
    """One ONNX graph of a bundle. Validates its declared inputs/outputs at load time and feeds
    only the inputs the graph declares."""

    def __init__(
        self,
        path: Path,
        spec: EncoderSpec,
        providers: Sequence[str] = ("cpu",),
        threads: int | None = None,
    ) -> None:
        chosen = _resolve_providers(providers)
        try:
            self.session = open_session(path, session_options(threads), chosen)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise BundleError(f"{path}: ONNX Runtime cannot load this graph "
                              f"({printable(str(exc), 300)})") from None
        active = self.session.get_providers()
        if any(p != "CPUExecutionProvider" for p in chosen) and active == ["CPUExecutionProvider"]:
            _warn_once("CUDA was requested but the session runs on CPU only")
        self.providers = active
        self.path = path
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_shapes = {i.name: list(i.shape) for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_shapes = {o.name: list(o.shape) for o in self.session.get_outputs()}
        spec.check_graph(path.name, {i.name: (i.type, list(i.shape)) for i in self.session.get_inputs()},
                         {o.name: (o.type, list(o.shape)) for o in self.session.get_outputs()})

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {name: feeds[name] for name in self.input_names}
        outputs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outputs, strict=True))


def default_threads() -> int:
    """The CPUs this process can use: its affinity and its control group's CPU limit (a
    container's) counted (`cpuinfo.usable_cpus`)."""
    return usable_cpus()
