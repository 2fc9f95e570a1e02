"""OpenVINO's execution provider against ONNX Runtime's CPU provider on the same graphs of a
bundle: each encoder's time (paired, in turn, one process) and how far its outputs move (the
int8 parity thresholds of the export: cosine of the patch grid and of the sentence embeddings).

`onnxruntime-openvino` installs the same `onnxruntime` module as `onnxruntime`, so it runs in a
venv of its own, with numpy and nothing of lesionloc (the inputs are made here):

    python3 -m venv OV && OV/bin/pip install onnxruntime-openvino==1.24.1 numpy
    OV/bin/python benchmarks/openvino_check.py .benchmarks/cache/full-model/bundle-int8 \\
        --record benchmarks/results/openvino-int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROUNDS = 7


def sessions(graph: Path, threads: int) -> dict[str, object]:
    import onnxruntime as ort

    def options() -> object:
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.log_severity_level = 3
        return o

    return {
        "cpu": ort.InferenceSession(str(graph), options(), providers=["CPUExecutionProvider"],
                                    disabled_optimizers=["QDQPropagationTransformer"]),
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
    all_feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: all_feeds[n] for n in names}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def measure(graph: Path, kind: str, size: int, threads: int) -> dict[str, object]:
    rng = np.random.default_rng(0)
    opened = sessions(graph, threads)
    feed = feeds(opened["cpu"], kind, size, rng)
    outs = {name: s.run(None, feed) for name, s in opened.items()}  # warm-up and parity
    times: dict[str, list[float]] = {name: [] for name in opened}
    for _ in range(ROUNDS):
        for name, session in opened.items():
            start = time.perf_counter()
            session.run(None, feed)
            times[name].append((time.perf_counter() - start) * 1e3)
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
    args = parser.parse_args()
    import onnxruntime as ort

    card = json.loads((args.bundle / "lesionloc.json").read_text())
    size = card["preprocessing"]["image_size"]
    record = {"bundle": str(args.bundle), "quantization": card.get("quantization"),
              "onnxruntime": ort.__version__, "machine": platform.processor() or platform.machine(),
              "cpu_model": next((line.split(":", 1)[1].strip() for line in
                                 Path("/proc/cpuinfo").read_text().splitlines()
                                 if line.startswith("model name")), "?"),
              "threads": args.threads, "load_average_1min": os.getloadavg()[0], "encoders": {}}
    for kind, name in (("image", "image_encoder.onnx"), ("text", "text_encoder.onnx")):
        record["encoders"][kind] = measure(args.bundle / name, kind, size, args.threads)
        print(kind, json.dumps(record["encoders"][kind]), flush=True)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
