"""OpenVINO against ONNX Runtime's CPU provider: each encoder's time (paired, in turn, one
process) and how far its outputs move (the int8 parity thresholds of the export: cosine of the
patch grid and of the sentence embeddings).

Two ways to run OpenVINO:
- `--runtime ep` (default): OpenVINO's execution provider for ONNX Runtime on the same graphs.
  `onnxruntime-openvino` installs the same `onnxruntime` module as `onnxruntime`, so it runs in
  a venv of its own, with numpy and nothing of lesionloc (the inputs are made here):

    python3 -m venv OV && OV/bin/pip install onnxruntime-openvino==1.24.1 numpy
    OV/bin/python benchmarks/openvino_check.py .benchmarks/cache/full-model/bundle-int8 \\
        --record benchmarks/results/openvino-int8.json

- `--runtime openvino`: OpenVINO's own runtime (the `openvino` package) on the graphs of
  `--openvino-bundle` (default: the same bundle) at `--precision` (bf16 is OpenVINO's default
  on CPUs with AMX), against ONNX Runtime's CPU provider on BUNDLE's graphs: e.g. OpenVINO in
  bf16 on the fp32 graphs against the int8 bundle. Its ONNX reader has no rule for ONNX
  Runtime's fused text operators (QAttention), so a graph it cannot read is recorded as such:

    python3 -m venv OV2 && OV2/bin/pip install openvino==2026.4.1 onnxruntime==1.32.0 numpy
    OV2/bin/python benchmarks/openvino_check.py .benchmarks/cache/full-model/bundle-int8 \\
        --runtime openvino --openvino-bundle .benchmarks/cache/full-model/bundle-none \\
        --precision bf16 --record benchmarks/results/openvino-direct-bf16.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script in a venv without lesionloc: the repository's benchmarks/cpu.py (standard
# library only) names the CPU and its int8 flags, as for every other benchmark record.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.cpu import cpu_kind

ROUNDS = 7


class OpenVinoSession:
    """OpenVINO's own runtime behind the two calls of an ONNX Runtime session used here."""

    def __init__(self, graph: Path, threads: int, precision: str) -> None:
        from lesionloc_runtime.privacy import import_openvino

        core = import_openvino().Core()
        model = core.read_model(str(graph))
        self.compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision})
        self.request = self.compiled.create_infer_request()
        self.precision = precision

    def run(self, _names: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.request.infer(feed)
        return [self.request.get_output_tensor(i).data.copy()
                for i in range(len(self.compiled.outputs))]

    def get_providers(self) -> list[str]:
        return [f"openvino runtime ({self.precision})"]


def sessions(graph: Path, threads: int, runtime: str = "ep", other: Path | None = None,
             precision: str = "bf16") -> dict[str, object]:
    import onnxruntime as ort

    def options() -> object:
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.log_severity_level = 3
        # as the runtime's sessions: threads spin during a run and stop when it ends
        o.add_session_config_entry("session.intra_op.allow_spinning", "1")
        o.add_session_config_entry("session.force_spinning_stop", "1")
        return o

    cpu = ort.InferenceSession(str(graph), options(), providers=["CPUExecutionProvider"],
                               disabled_optimizers=["QDQPropagationTransformer"])
    if runtime == "openvino":
        return {"cpu": cpu, "openvino": OpenVinoSession(other or graph, threads, precision)}
    return {
        "cpu": cpu,
        "openvino": ort.InferenceSession(str(graph), options(), providers=[
            ("OpenVINOExecutionProvider", {"device_type": "CPU", "num_of_threads": str(threads)}),
            "CPUExecutionProvider"]),
    }


def feeds(session: object, kind: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A radiograph-like image (smooth, in [0, 1]) or 8 sentences of 12-20 tokens."""
    names = [i.name for i in session.get_inputs()]
    if kind == "image":
        y, x = np.mgrid[0:size, 0:size] / size
        image = 0.5 + 0.3 * np.sin(6 * x) * np.cos(4 * y) + 0.05 * rng.standard_normal((size, size))
        return {names[0]: np.clip(image, 0, 1).astype(np.float32)[None, None]}
    lengths = rng.integers(12, 21, 8)
    ids = np.zeros((8, int(lengths.max())), np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = np.r_[101, rng.integers(1000, 20000, n - 2), 102]
        mask[row, :n] = 1
    if "window_pooling" in names:  # a packed text graph: the eight in one row
        window = np.repeat(np.arange(8), lengths)
        return {"input_ids": ids[mask == 1][None],
                "position_ids": np.concatenate([np.arange(n) for n in lengths])[None],
                "window_mask": (window[:, None] == window[None, :]).astype(np.int32)[None],
                "window_pooling": ((window[None, :] == np.arange(8)[:, None])
                                   / lengths[:, None]).astype(np.float32)}
    all_feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: all_feeds[n] for n in names}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def measure(graph: Path, kind: str, size: int, threads: int, runtime: str = "ep",
            other: Path | None = None, precision: str = "bf16",
            order: str = "alternate") -> dict[str, object]:
    rng = np.random.default_rng(0)
    try:
        opened = sessions(graph, threads, runtime, other, precision)
    except RuntimeError as error:  # OpenVINO's reader refuses the graph
        said = [line for line in str(error).splitlines() if "conversion rule" in line]
        return {"graph": graph.name,
                "failed": (said or str(error).strip().splitlines())[-1].lstrip("- ")[:300]}
    feed = feeds(opened["cpu"], kind, size, rng)
    outs = {name: s.run(None, feed) for name, s in opened.items()}  # warm-up and parity

    def timed(session: object) -> float:
        start = time.perf_counter()
        session.run(None, feed)
        return (time.perf_counter() - start) * 1e3

    times: dict[str, list[float]] = {name: [] for name in opened}
    if order == "blocks":  # each engine's rounds together, after its own warm-up run
        for name, session in opened.items():
            timed(session)
            times[name] = [timed(session) for _ in range(ROUNDS)]
    else:  # by turns, as a study's two encoders run
        for _ in range(ROUNDS):
            for name, session in opened.items():
                times[name].append(timed(session))
    ratios = [c / o for c, o in zip(times["cpu"], times["openvino"], strict=True)]
    parity = {out.name: {"mean": float(cosine(a, b).mean()), "min": float(cosine(a, b).min())}
              for out, a, b in zip(opened["cpu"].get_outputs(), outs["cpu"], outs["openvino"],
                                   strict=True)}
    return {"graph": graph.name, "providers": opened["openvino"].get_providers(),
            "cpu_ms": float(np.median(times["cpu"])), "openvino_ms": float(np.median(times["openvino"])),
            "speedup_median": float(np.median(ratios)), "cosine_openvino_vs_cpu": parity}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument("--runtime", choices=("ep", "openvino"), default="ep")
    parser.add_argument("--openvino-bundle", type=Path, default=None,
                        help="with --runtime openvino: the bundle whose graphs OpenVINO runs")
    parser.add_argument("--precision", choices=("bf16", "f32"), default="bf16",
                        help="with --runtime openvino: OpenVINO's inference precision")
    parser.add_argument("--order", choices=("alternate", "blocks"), default="alternate",
                        help="the engines run by turns, as the two encoders of a study do "
                             "(default), or each engine's rounds together")
    args = parser.parse_args()
    import onnxruntime as ort

    card = json.loads((args.bundle / "lesionloc.json").read_text())
    kind = cpu_kind()
    size = card["preprocessing"]["image_size"]
    record = {"bundle": str(args.bundle), "quantization": card.get("quantization"),
              "onnxruntime": ort.__version__, "machine": platform.processor() or platform.machine(),
              "cpu_model": kind["model"], "int8_flags": kind["int8_flags"],
              "runtime": args.runtime, "order": args.order,
              "threads": args.threads, "load_average_1min": os.getloadavg()[0], "encoders": {}}
    if args.runtime == "openvino":
        from lesionloc_runtime.privacy import import_openvino

        openvino = import_openvino()

        other_card = json.loads(((args.openvino_bundle or args.bundle) / "lesionloc.json").read_text())
        record.update(openvino=openvino.__version__, precision=args.precision,
                      openvino_bundle=str(args.openvino_bundle or args.bundle),
                      openvino_quantization=other_card.get("quantization"))
    for kind, name in (("image", "image_encoder.onnx"), ("text", "text_encoder.onnx")):
        other = (args.openvino_bundle or args.bundle) / name
        record["encoders"][kind] = measure(args.bundle / name, kind, size, args.threads,
                                           args.runtime, other, args.precision, args.order)
        print(kind, json.dumps(record["encoders"][kind]), flush=True)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
