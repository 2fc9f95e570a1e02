"""Latency of the runtime (pytest-benchmark): the reference study end to end for ONNX Runtime
int8, ONNX Runtime fp32 and PyTorch eager fp32 of the same model and pipeline, side by side,
and int8 against PyTorch in paired rounds; each encoder by input size; cold start; batch
throughput; peak memory.

Numbers land in the benchmark JSON (`extra_info` carries breakdowns); BENCHMARKS.md is
generated from that JSON by scripts/benchmarks_report.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.conftest import PUBLISHED, published_latency_model
from benchmarks.cpu import cpu_kind
from benchmarks.engines import (
    one_study,
    outside,
    outside_ms,
    published_torch_localizer,
    torch_localizer,
    unwritten,
    unwritten_ms,
)
from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.errors import ConfigError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.outputs import OutputOptions, write_study
from lesionloc_runtime.sessions import default_threads, open_session, session_options


def _needs_openvino() -> None:
    """Skip where OpenVINO is not installed: looked up, not imported (the runtime imports it
    without its conversion tools, which report usage: lesionloc_runtime/privacy.py)."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        pytest.skip("needs OpenVINO: pip install 'lesionloc[cpu,openvino]'")


@pytest.mark.parametrize("engine", ["ort-int8", "ort-fp32", "torch-fp32", "ov-int8"])
def test_end_to_end_reference_study(benchmark, engine, latency_model, reference_study, tmp_path):
    """Read the DICOM, localize every finding sentence, write the default outputs (the study
    page, its radiograph and heatmap layers, the study JSON). ov-int8: the int8 bundle with its
    image encoder on OpenVINO (`--providers openvino`)."""
    checkpoint, bundles = latency_model
    image, report = reference_study
    int8 = Localizer.load(bundles["int8"])
    if engine == "ort-int8":
        localizer = int8
    elif engine == "ov-int8":
        localizer = Localizer.load(bundles["int8"], providers=_providers(engine))
    elif engine == "ort-fp32":
        localizer = Localizer.load(bundles["none"])
    else:
        localizer = torch_localizer(checkpoint, int8.bundle.max_length)
    timings: list[dict[str, float]] = []

    def study() -> None:
        timings.append(one_study(localizer, image, report, tmp_path / f"out-{len(timings)}"))

    benchmark.pedantic(study, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.enabled:  # the warm-up round (cold caches) is not timed; --benchmark-disable
        timings = timings[1:]  # runs the study once, without one
    assert len(timings) == (5 if benchmark.enabled else 1), len(timings)
    benchmark.extra_info.update({
        "engine": engine, "timings_ms": {k: float(np.median([t[k] for t in timings]))
                                         for k in timings[0]},  # per phase, median of 5 rounds
        "end_to_end_ms": float(np.median([t["end_to_end"] for t in timings])),
        "outside_encoders_fraction": float(np.median([outside(t) for t in timings])),
        "outside_encoders_ms": float(np.median([outside_ms(t) for t in timings])),
        "unwritten_fraction": float(np.median([unwritten(t) for t in timings])),
        "unwritten_ms": float(np.median([unwritten_ms(t) for t in timings])),
        "cpu_ms": float(np.median([t["cpu"] for t in timings])),
        "image": f"{read_image(image).width}x{read_image(image).height}",
        "sentences": 8, "findings": 5, "threads": default_threads(),
        "outputs": "study page: study.html, radiograph, heatmap layers, study JSON",
        "sentence_cache": "emptied before each study", "cpu_kind": cpu_kind(),
    })


def test_speedup_in_paired_rounds(benchmark, latency_model, reference_study, tmp_path):
    """ONNX Runtime int8 and PyTorch eager fp32 study by study in turn. On a shared machine
    the speed of both drifts by 10-20% over minutes, so engines measured one after another
    (the test above) can land in different phases; here each int8 round is compared with the
    PyTorch round just before it, and the speed-up is the median of those ratios."""
    checkpoint, bundles = latency_model
    image, report = reference_study
    int8 = Localizer.load(bundles["int8"])
    torch_fp32 = torch_localizer(checkpoint, int8.bundle.max_length)
    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    before: list[dict[str, float]] = []

    def torch_round() -> None:  # untimed by pytest-benchmark: pedantic's setup
        before.append(one_study(torch_fp32, image, report, tmp_path / f"torch-{len(before)}"))

    def int8_round() -> None:
        pairs.append((before[-1], one_study(int8, image, report, tmp_path / f"int8-{len(pairs)}")))

    rounds = 9 if benchmark.enabled else 1
    benchmark.pedantic(int8_round, setup=torch_round, rounds=rounds, iterations=1,
                       warmup_rounds=1 if benchmark.enabled else 0)
    pairs = pairs[-rounds:]
    ratios = [t["end_to_end"] / i["end_to_end"] for t, i in pairs]
    assert len(ratios) == rounds and all(r > 0 for r in ratios)
    benchmark.extra_info.update({
        "rounds": rounds, "speedups": [round(r, 3) for r in ratios],
        "speedup_median": float(np.median(ratios)),
        "int8_ms_median": float(np.median([i["end_to_end"] for _, i in pairs])),
        "torch_ms_median": float(np.median([t["end_to_end"] for t, _ in pairs])),
        "outside_encoders_fraction": float(np.median([outside(i) for _, i in pairs])),
        "outside_encoders_ms": float(np.median([outside_ms(i) for _, i in pairs])),
        "unwritten_fraction": float(np.median([unwritten(i) for _, i in pairs])),
        "unwritten_ms": float(np.median([unwritten_ms(i) for _, i in pairs])),
        "cpu_speedups": [round(t["cpu"] / i["cpu"], 3) for t, i in pairs],
        "sentence_cache": "emptied before each study", "cpu_kind": cpu_kind(),
        "load_average_1min": os.getloadavg()[0],
        # both engines run the report's sentences as the int8 bundle's text graph takes them
        "text_layout": "packed" if int8.bundle.text_encoder.packed else "padded",
    })
    assert torch_fp32.bundle.text_encoder.packed == int8.bundle.text_encoder.packed


def test_openvino_speedup_in_paired_rounds(benchmark, latency_model, reference_study, tmp_path):
    """As the paired rounds above, with a third engine: the int8 bundle with its image encoder
    on OpenVINO's runtime (`--providers openvino`). Each round runs PyTorch, then ONNX Runtime
    int8 and OpenVINO int8 in alternating order; each speed-up is over that round's PyTorch."""
    _needs_openvino()
    checkpoint, bundles = latency_model
    image, report = reference_study
    engines = {"ort-int8": Localizer.load(bundles["int8"]),
               "ov-int8": Localizer.load(bundles["int8"], providers=("openvino",))}
    torch_fp32 = torch_localizer(checkpoint, engines["ort-int8"].bundle.max_length)
    rounds_run: list[dict[str, dict[str, float]]] = []

    def one_round() -> None:
        done = {"torch-fp32": one_study(torch_fp32, image, report,
                                        tmp_path / f"torch-{len(rounds_run)}")}
        order = list(engines) if len(rounds_run) % 2 == 0 else list(reversed(engines))
        for name in order:
            done[name] = one_study(engines[name], image, report,
                                   tmp_path / f"{name}-{len(rounds_run)}")
        rounds_run.append(done)

    rounds = 9 if benchmark.enabled else 1
    benchmark.pedantic(one_round, rounds=rounds, iterations=1,
                       warmup_rounds=1 if benchmark.enabled else 0)
    runs = rounds_run[-rounds:]
    info: dict[str, Any] = {"rounds": rounds, "torch_ms_median": float(np.median(
        [r["torch-fp32"]["end_to_end"] for r in runs]))}
    for name in engines:
        ratios = [r["torch-fp32"]["end_to_end"] / r[name]["end_to_end"] for r in runs]
        info[name] = {
            "speedups": [round(x, 3) for x in ratios], "speedup_median": float(np.median(ratios)),
            "ms_median": float(np.median([r[name]["end_to_end"] for r in runs])),
            "image_encoder_ms": float(np.median([r[name]["image_encoder"] for r in runs])),
            "outside_encoders_ms": float(np.median([outside_ms(r[name]) for r in runs])),
            "outside_encoders_fraction": float(np.median([outside(r[name]) for r in runs]))}
    assert all(info[name]["speedup_median"] > 0 for name in engines)
    benchmark.extra_info.update({
        **info, "sentence_cache": "emptied before each study", "cpu_kind": cpu_kind(),
        "load_average_1min": os.getloadavg()[0],
        "text_layout": "packed" if engines["ort-int8"].bundle.text_encoder.packed else "padded",
        # the int8 graph's float operators on OpenVINO (fp32 in the first runs, then bf16),
        # and whether its image encoder ran beside the text encoder (since run 1900)
        "openvino_float_precision": engines["ov-int8"].image_encoder.float_precision,
        "openvino_encoders": "side by side" if engines["ov-int8"]._beside else "in turn"})


WRITE_LAYOUTS = {  # schema 1's default outputs (burned-in overlays, summary) and the page's
    "overlays": OutputOptions(page=False, overlays=True),
    "page": OutputOptions(),
}


def test_write_time_of_the_reference_study_by_layout(benchmark, latency_model, reference_study,
                                                     tmp_path):
    """Writing one localized study, the two layouts in turn (each round writes both into new
    folders, in alternating order), so both see the same phase of a shared machine's speed.
    `overlays` is what every study wrote before the study page; `page` is the default now."""
    import time

    _, bundles = latency_model
    image, report = reference_study
    radiograph = read_image(image)
    result = Localizer.load(bundles["int8"]).localize(radiograph, report)
    times: dict[str, list[float]] = {name: [] for name in WRITE_LAYOUTS}
    cpu: dict[str, list[float]] = {name: [] for name in WRITE_LAYOUTS}
    rounds = 15 if benchmark.enabled else 1

    def one_round() -> None:
        k = len(times["page"])
        for name in (WRITE_LAYOUTS if k % 2 else reversed(WRITE_LAYOUTS)):
            start, start_cpu = time.perf_counter(), time.process_time()
            write_study(result, radiograph, tmp_path / f"{name}-{k}", WRITE_LAYOUTS[name])
            times[name].append((time.perf_counter() - start) * 1e3)
            # CPU time of every thread: what the writing costs other work on a busy machine
            cpu[name].append((time.process_time() - start_cpu) * 1e3)

    benchmark.pedantic(one_round, rounds=rounds, iterations=1,
                       warmup_rounds=1 if benchmark.enabled else 0)
    measured = {name: values[-rounds:] for name, values in times.items()}
    ratios = [o / p for o, p in zip(measured["overlays"], measured["page"], strict=True)]
    benchmark.extra_info.update({
        "rounds": rounds, "image": f"{radiograph.width}x{radiograph.height}",
        "sentences": len(result.sentences), "grounded": len(result.grounded),
        **{f"{name}_ms_median": float(np.median(v)) for name, v in measured.items()},
        **{f"{name}_cpu_ms_median": float(np.median(v[-rounds:])) for name, v in cpu.items()},
        **{f"{name}_ms": [round(t, 2) for t in v] for name, v in measured.items()},
        "overlays_over_page_median": float(np.median(ratios)),
        # wall time far above CPU time means other work shared the cores: say how much
        "load_average_1min": os.getloadavg()[0],
    })


def _image_graph(checkpoint: Path, size: int, precision: str, work: Path, calibration: list,
                 gemm_max_positions: int | None = None, integer_projections: bool = True,
                 fold_normalization: bool = True):
    """The image encoder exported at another input size (fp32 or int8), as a session; int8
    with the export's convolution forms, or `gemm_max_positions` (0: all symmetric), and its
    projection as an integer product unless `integer_projections` is False; its input
    normalization folded into the first convolution unless `fold_normalization` is False."""
    from lesionloc_export.graphs import export_image_encoder
    from lesionloc_export.quantize import GEMM_MAX_POSITIONS, quantize_image_int8
    from lesionloc_train.checkpoint import load_checkpoint

    forms = GEMM_MAX_POSITIONS if gemm_max_positions is None else gemm_max_positions
    form = f"-gemm{forms}{'' if integer_projections else '-float-proj'}"
    unfolded = "" if fold_normalization else "-unfolded"
    target = work / f"image-{size}{unfolded}-{precision}{'' if precision != 'int8' else form}.onnx"
    if not target.is_file():
        from lesionloc_train.torch_backend import ImageGraph

        raw = work / f"image-{size}{unfolded}-raw.onnx"
        if not raw.is_file():
            export_image_encoder(ImageGraph(load_checkpoint(checkpoint).model), size, raw,
                                 fold_normalization)
        if precision == "int8":
            quantize_image_int8(raw, target, calibration, gemm_max_positions=forms,
                                integer_projections=integer_projections)
        else:
            shutil.copyfile(raw, target)
    # the runtime's own session (lesionloc_runtime.sessions): threads, optimizations
    return open_session(target, session_options(default_threads()), ["CPUExecutionProvider"])


@pytest.mark.parametrize("precision", ["int8", "fp32"])
@pytest.mark.parametrize("size", [224, 448, 512])
def test_image_encoder_by_input_size(benchmark, size, precision, latency_model, full, tmp_path_factory):
    from lesionloc_runtime.preprocess import PreprocessConfig, preprocess

    checkpoint, _ = latency_model
    if not full and size != 224:
        pytest.skip("quick mode measures one size")
    work = tmp_path_factory.getbasetemp() / "image-graphs"
    work.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    calibration = [preprocess(rng.random((600, 500)).astype(np.float32),
                              PreprocessConfig(image_size=size)).tensor for _ in range(8)]
    session = _image_graph(checkpoint, size, precision, work, calibration)
    feed = {"pixel_values": calibration[0][None]}
    benchmark.pedantic(session.run, args=(None, feed), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"encoder": "image", "size": size, "precision": precision})


def test_int8_image_encoder_conv_forms(benchmark, latency_model, tmp_path_factory):
    """The int8 image encoder as exported (convolutions with small outputs in the matrix-
    product form, lesionloc_export.quantize.GEMM_MAX_POSITIONS) against every convolution in
    the symmetric form, in alternated rounds on the model's input size. The two must give the
    same bytes; which is faster depends on the CPU's int8 kernels (AMX or not), so the figure
    is kept per CPU kind."""
    from lesionloc_export.quantize import GEMM_MAX_POSITIONS

    medians, outputs, size = _image_forms_in_rounds(benchmark, latency_model, tmp_path_factory,
                                                    "int8", "symmetric", gemm_max_positions=0)
    for got, want in zip(outputs["exported"], outputs["symmetric"], strict=True):
        np.testing.assert_array_equal(got, want)
    benchmark.extra_info.update({**medians, "size": size, "gemm_max_positions": GEMM_MAX_POSITIONS,
                                 "cpu_kind": cpu_kind(), "load_average_1min": os.getloadavg()[0]})


def _image_forms_in_rounds(benchmark, latency_model, tmp_path_factory, precision: str,
                           other: str, **without: Any) -> tuple[dict[str, float], dict, int]:
    """The image encoder as exported and as `other`: the same export without one of its
    rewrites (`without`, an `_image_graph` keyword), timed in alternated rounds so that drift
    in the machine's speed hits both alike. Returns the median ms of each, each form's outputs
    on one image, and the input size."""
    from lesionloc_runtime.bundle import ModelBundle
    from lesionloc_runtime.preprocess import preprocess

    checkpoint, bundles = latency_model
    config = ModelBundle.load(bundles["int8"]).preprocessing
    work = tmp_path_factory.getbasetemp() / "image-graphs"
    work.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    calibration = [preprocess(rng.random((600, 500)).astype(np.float32), config).tensor
                   for _ in range(8)]
    args = (checkpoint, config.image_size, precision, work, calibration)
    forms = {"exported": _image_graph(*args), other: _image_graph(*args, **without)}
    feed = {"pixel_values": calibration[0][None]}
    outputs = {name: session.run(None, feed) for name, session in forms.items()}
    times: dict[str, list[float]] = {name: [] for name in forms}

    def both() -> None:
        for name, session in forms.items():
            start = time.perf_counter()
            for _ in range(3):
                session.run(None, feed)
            times[name].append((time.perf_counter() - start) / 3 * 1e3)

    rounds = 9 if benchmark.enabled else 1
    benchmark.pedantic(both, rounds=rounds, iterations=1, warmup_rounds=1 if benchmark.enabled else 0)
    medians = {f"{name}_ms": float(np.median(v[-rounds:])) for name, v in times.items()}
    return medians, outputs, config.image_size


def _patch_cosines(outputs: dict, names: tuple[str, str]) -> np.ndarray:
    """Cosine of each patch embedding (the image graph's second output) between two forms."""
    a, b = (outputs[name][1].reshape(-1, outputs[name][1].shape[-1]) for name in names)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_int8_image_encoder_projection_forms(benchmark, latency_model, tmp_path_factory):
    """The int8 image encoder as exported (its local projection an integer product with a
    float output, `projections_as_integer_products`) against the projection as a float
    convolution, in alternated rounds; and how far the patch embeddings moved (cosine)."""
    medians, outputs, size = _image_forms_in_rounds(benchmark, latency_model, tmp_path_factory,
                                                    "int8", "float_projection",
                                                    integer_projections=False)
    cosine = _patch_cosines(outputs, ("exported", "float_projection"))
    assert cosine.min() > 0.999, cosine.min()
    benchmark.extra_info.update({
        **medians, "patch_cosine_min": float(cosine.min()),
        "patch_cosine_mean": float(cosine.mean()), "size": size, "cpu_kind": cpu_kind(),
        "load_average_1min": os.getloadavg()[0]})


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_image_encoder_normalization_forms(benchmark, precision, latency_model, tmp_path_factory):
    """The image encoder as exported (its per-channel input normalization folded into a two-
    channel first convolution, `fold_channel_normalization`) against the graph as PyTorch
    exports it, in alternated rounds; and how far the outputs moved."""
    medians, outputs, size = _image_forms_in_rounds(benchmark, latency_model, tmp_path_factory,
                                                    precision, "unfolded",
                                                    fold_normalization=False)
    cosine = _patch_cosines(outputs, ("exported", "unfolded"))
    # fp32: the same sums regrouped; int8: a rounding that moved sends an 8-bit level over
    assert cosine.min() > (0.99999 if precision == "fp32" else 0.995), cosine.min()
    benchmark.extra_info.update({
        **medians, "patch_cosine_min": float(cosine.min()),
        "patch_cosine_mean": float(cosine.mean()), "precision": precision, "size": size,
        "cpu_kind": cpu_kind(), "load_average_1min": os.getloadavg()[0]})


@pytest.mark.parametrize("threads", [1, 2])
def test_int8_image_encoder_by_provider(benchmark, threads, latency_model, reference_study):
    """The int8 bundle's image encoder on ONNX Runtime's CPU provider and on OpenVINO's runtime
    (`--providers openvino`), in alternated rounds at 1 thread (a batch worker's) and 2; and
    each one's outputs against the PyTorch model the bundle was exported from, as the export's
    parity check compares them (THRESHOLDS["int8"]), on the reference film and three phantom
    films."""
    _needs_openvino()
    from lesionloc_export.parity import THRESHOLDS, cosines
    from lesionloc_runtime.openvino_engine import OpenVinoEncoder
    from lesionloc_runtime.preprocess import preprocess
    from lesionloc_runtime.sessions import OnnxEncoder

    checkpoint, bundles = latency_model
    card = ModelBundle.load(bundles["int8"])
    path = card.file(card.image_encoder.file)
    engines = {"cpu": OnnxEncoder(path, card.image_encoder, threads=threads),
               "openvino": OpenVinoEncoder(path, card.image_encoder, threads, int8=True)}
    reference = torch_localizer(checkpoint, card.max_length).image_encoder
    image, _ = reference_study
    films = [image, *[f for f in sorted(image.parent.glob(f"*{image.suffix}")) if f != image][:3]]
    feeds = [{"pixel_values": preprocess(read_image(f), card.preprocessing).tensor[None]}
             for f in films]
    parity: dict[str, dict[str, dict[str, float]]] = {}
    want = [reference.run(feed) for feed in feeds]
    for name, engine in engines.items():
        got = [engine.run(feed) for feed in feeds]
        parity[name] = {}
        for output in ("image_embeds", "patch_embeds"):
            cos = np.concatenate([cosines(w[output], g[output]) for w, g in zip(want, got, strict=True)])
            parity[name][output] = {"mean": float(cos.mean()), "min": float(cos.min())}
    mean_min, worst_min = THRESHOLDS["int8"]
    times: dict[str, list[float]] = {name: [] for name in engines}

    def both() -> None:
        for name in (engines if len(times["cpu"]) % 2 == 0 else reversed(list(engines))):
            start = time.perf_counter()
            for _ in range(3):
                engines[name].run(feeds[0])
            times[name].append((time.perf_counter() - start) / 3 * 1e3)

    rounds = 15 if benchmark.enabled else 1
    benchmark.pedantic(both, rounds=rounds, iterations=1, warmup_rounds=1 if benchmark.enabled else 0)
    medians = {f"{name}_ms": float(np.median(v[-rounds:])) for name, v in times.items()}
    benchmark.extra_info.update({
        **medians, "speedup": medians["cpu_ms"] / medians["openvino_ms"], "threads": threads,
        "openvino_float_precision": engines["openvino"].float_precision,
        "parity_against_pytorch": parity, "thresholds": {"mean": mean_min, "worst": worst_min},
        "films": len(films), "size": card.preprocessing.image_size, "cpu_kind": cpu_kind(),
        "load_average_1min": os.getloadavg()[0]})
    for name in engines:
        for output, figures in parity[name].items():
            assert figures["mean"] >= mean_min and figures["min"] >= worst_min, (name, output, figures)


@pytest.mark.parametrize("precision", ["int8", "fp32"])
@pytest.mark.parametrize("count", [1, 4, 8, 16, 32])
def test_text_encoder_by_sentence_count(benchmark, count, precision, latency_model, full):
    from benchmarks.full_model import REPORT_SENTENCES

    if not full and count not in (1, 8):
        pytest.skip("quick mode measures two counts")
    _, bundles = latency_model
    # Without the sentence cache: with it, every round after the warm-up is a cache hit and
    # the table measured a dictionary lookup (0.04 ms for one sentence), not the encoder.
    localizer = Localizer.load(bundles["int8" if precision == "int8" else "none"],
                               sentence_cache=0)
    # Distinct sentences: the encoder encodes a sentence repeated within one call once, so
    # copies of the eight would measure eight sentences in the 16 and 32 rows.
    texts = [text if k == 0 else f"{text[:-1]}, as on view {k + 1}."
             for k in range(4) for text in REPORT_SENTENCES][:count]
    assert len(set(texts)) == count
    benchmark.pedantic(localizer.encode_texts, args=(texts,), rounds=5, iterations=1,
                       warmup_rounds=1)
    assert localizer.sentence_cache.hits == 0, "the text encoder, not the cache, is measured"
    batch = localizer.tokenizer.encode(texts)
    benchmark.extra_info.update({"encoder": "text", "sentences": count, "precision": precision,
                                 "tokens": int(batch.attention_mask.sum()),
                                 "runs": len(batch.packed() if localizer.bundle.text_encoder.packed
                                             else batch.by_length())})


@pytest.mark.parametrize("engine", ["int8", "fp32", "pytorch"])
def test_text_encoder_layouts(benchmark, engine, latency_model, padded_latency_bundles):
    """The reference report's 8 sentences through the text encoder packed in one row (the
    export's default: `lesionloc_export.packing`) and padded, one row each in runs by length
    (`--text-layout padded`), in alternated rounds; the ONNX int8 and fp32 graphs and PyTorch
    eager (which packs with a 4-D attention mask). And how far the embeddings moved."""
    import torch

    from benchmarks.full_model import REPORT_SENTENCES
    from lesionloc_runtime.tokens import encode_windows
    from lesionloc_train.checkpoint import load_checkpoint
    from lesionloc_train.torch_backend import TextGraph, TorchEncoder

    checkpoint, bundles = latency_model
    precision = "none" if engine == "fp32" else "int8"
    packed = Localizer.load(bundles[precision], sentence_cache=0)
    pooling = packed.bundle.packed_pooling
    assert pooling is not None
    if engine == "pytorch":
        torch.set_num_threads(default_threads())
        graph = TextGraph(load_checkpoint(checkpoint).model)
        encoders = {"packed": TorchEncoder(graph, "packed-text"), "padded": TorchEncoder(graph, "text")}
    else:
        padded = Localizer.load(padded_latency_bundles[precision], sentence_cache=0)
        assert padded.bundle.packed_pooling is None
        encoders = {"packed": packed.text_encoder, "padded": padded.text_encoder}
    batch = packed.tokenizer.encode(REPORT_SENTENCES)
    count = len(REPORT_SENTENCES)
    layout = {"packed": pooling, "padded": None}
    outputs = {name: encode_windows(encoder, batch, count, layout[name])
               for name, encoder in encoders.items()}
    times: dict[str, list[float]] = {name: [] for name in encoders}

    def both() -> None:
        for name, encoder in encoders.items():
            start = time.perf_counter()
            encode_windows(encoder, batch, count, layout[name])
            times[name].append((time.perf_counter() - start) * 1e3)

    rounds = 15 if benchmark.enabled else 1
    benchmark.pedantic(both, rounds=rounds, iterations=1, warmup_rounds=1 if benchmark.enabled else 0)
    a, b = (outputs[name]["sentence_embeds"] for name in ("packed", "padded"))
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    # int8 quantizes its activations per run: any regrouping moves them a little
    assert cosine.min() > (0.999 if engine == "int8" else 0.99999), cosine.min()
    benchmark.extra_info.update({
        **{f"{name}_ms": float(np.median(v[-rounds:])) for name, v in times.items()},
        "engine": engine, "sentences": count, "tokens": int(batch.attention_mask.sum()),
        "padded_runs": len(batch.by_length()), "packed_runs": len(batch.packed(pooling)),
        "sentence_cosine_min": float(cosine.min()), "cpu_kind": cpu_kind(),
        "load_average_1min": os.getloadavg()[0]})


def test_encoders_in_turn_or_side_by_side(benchmark, latency_model, reference_study):
    """The reference study's two encoders (int8) in turn on all cores, as the runtime runs them,
    against side by side: the image encoder in a second thread and the text encoder in this
    one, each session with half the cores. Side by side would pay where ONNX Runtime's threads
    wait on each other (small text batches); measured, so that a change can be judged."""
    from concurrent.futures import ThreadPoolExecutor

    _, bundles = latency_model
    image, report = reference_study
    threads = default_threads()
    whole = Localizer.load(bundles["int8"], threads=threads, sentence_cache=0)
    half = Localizer.load(bundles["int8"], threads=max(1, threads // 2), sentence_cache=0)
    study = whole.prepare(read_image(image), report)
    texts = [s.grounded_text for s in study.sentences]
    pool = ThreadPoolExecutor(1)

    def in_turn() -> None:
        whole._encode_preprocessed(study.prep)
        whole.encode_texts(texts)

    def side_by_side() -> None:
        pending = pool.submit(half._encode_preprocessed, study.prep)
        half.encode_texts(texts)
        pending.result()

    def median_ms(run, rounds: int) -> float:
        times = []
        for _ in range(rounds + 1):  # the first round is a warm-up
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times[1:]))

    rounds = 9 if benchmark.enabled else 1
    pairs: list[tuple[float, float]] = []

    def both() -> None:  # alternated, so that drift in the machine's speed hits both alike
        pairs.append((median_ms(in_turn, 1), median_ms(side_by_side, 1)))

    benchmark.pedantic(both, rounds=rounds, iterations=1, warmup_rounds=1 if benchmark.enabled else 0)
    pool.shutdown()
    pairs = pairs[-rounds:]
    turn, side = (float(np.median([p[k] for p in pairs])) for k in (0, 1))
    assert turn > 0 and side > 0
    benchmark.extra_info.update({
        "in_turn_ms": turn, "side_by_side_ms": side, "threads": threads,
        "threads_each_side_by_side": max(1, threads // 2), "sentences": len(texts),
        "cpu_kind": cpu_kind(), "load_average_1min": os.getloadavg()[0],
    })


COLD_START = """
import json, sys, time
start = time.perf_counter()


def peak_rss_mb():
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child of a
    # 2 GB pytest process would report the parent's peak
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.imageio import read_image
imported = time.perf_counter()
localizer = Localizer.load(sys.argv[1], providers=tuple(sys.argv[4].split(",")))
loaded = time.perf_counter()
result = localizer.localize(read_image(sys.argv[2]), sys.argv[3])
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported,
                  "first_result_s": done - loaded, "bundle_to_first_result_s": done - imported,
                  "process_s": done - start,
                  "peak_rss_mb": peak_rss_mb()}))
"""


@pytest.mark.parametrize("precision", ["int8", "none", "int8-openvino", "int8-openvino-cached"])
def test_cold_start_and_peak_memory(benchmark, precision, latency_model, reference_study,
                                    tmp_path):
    """A fresh process: import, bundle load (checksums, sessions), first result; peak RSS.
    int8-openvino: the int8 bundle with its image encoder on OpenVINO's runtime, compiled in
    the process (its cache of compiled graphs off); -cached: imported from the cache, which a
    process before the rounds filled (every run on a machine after its first)."""
    from lesionloc_runtime.openvino_cache import CACHE_ENV

    _, bundles = latency_model
    image, report = reference_study
    bundle, _, engine = precision.partition("-")
    providers = _providers("ov-" if engine.startswith("openvino") else "ort-")
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache") if engine.endswith("cached") else "off"}
    runs: list[dict] = []

    def cold() -> None:
        proc = subprocess.run([sys.executable, "-c", COLD_START, str(bundles[bundle]),
                               str(image), str(report), ",".join(providers)],
                              capture_output=True, text=True, check=True, env=env)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    if engine.endswith("cached"):
        cold()
        runs.clear()
    benchmark.pedantic(cold, rounds=3, iterations=1)
    benchmark.extra_info.update({"precision": precision, "providers": list(providers),
                                 "openvino_cache": env[CACHE_ENV] != "off", **{
        k: float(np.median([r[k] for r in runs])) for k in runs[0]}})


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_throughput(benchmark, workers, latency_model, reference_study, tmp_path, full):
    _batch_throughput(benchmark, workers, 8 if full else 4, latency_model, reference_study,
                      tmp_path)


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_throughput_of_64_studies(benchmark, workers, latency_model, reference_study,
                                        tmp_path, full):
    """Where one process and two workers are about even on two cores (--full only)."""
    if not full:
        pytest.skip("64 studies a round: --full only")
    _batch_throughput(benchmark, workers, 64, latency_model, reference_study, tmp_path)


def _batch_throughput(benchmark, workers, count, latency_model, reference_study,
                      tmp_path) -> None:
    from lesionloc_runtime.batch import RunSettings, StudyTask, run_batch
    from lesionloc_runtime.outputs import OutputOptions

    _, bundles = latency_model
    image, report = reference_study
    tasks = [StudyTask(f"study{i:02d}", image, report) for i in range(count)]
    rounds = iter(range(100))
    rates: list[float] = []

    def batch() -> None:
        settings = RunSettings(str(bundles["int8"]), ("cpu",), None, (), "findings",
                               tmp_path / f"round{next(rounds)}", OutputOptions())
        summary = run_batch(tasks, settings, workers=workers, progress=False)
        assert summary.done == count
        rates.append(count / summary.seconds)  # includes each worker's session start

    benchmark.pedantic(batch, rounds=2, iterations=1)
    benchmark.extra_info.update({"workers": workers, "studies": count,
                                 "studies_per_s": float(np.mean(rates))})


PUBLISHED_ENGINES = ("torch-fp32", "ort-int8", "ort-fp32", "ov-int8")


@pytest.mark.parametrize("kind", PUBLISHED)
def test_published_model_end_to_end_in_paired_rounds(benchmark, kind, reference_study, full,
                                                     tmp_path):
    """An imported architecture (full size, random init, converted from its published layout
    by the real converter) on the reference study: PyTorch eager fp32 of its own modules, then
    ONNX Runtime int8 and fp32 of its bundles, study by study in turn; each ONNX round is
    compared with the PyTorch round just before it."""
    if not full:
        pytest.skip("full-size published models: --full only")
    source, bundles = published_latency_model(kind)
    image, report = reference_study
    engines = {"torch-fp32": published_torch_localizer(kind, source, bundles["none"]),
               "ort-int8": Localizer.load(bundles["int8"]), "ort-fp32": Localizer.load(bundles["none"])}
    try:  # the int8 bundle with its image encoder on OpenVINO, where it is installed
        engines["ov-int8"] = Localizer.load(bundles["int8"], providers=("openvino",))
    except ConfigError:
        pass
    rounds = 5 if benchmark.enabled else 1
    timings: dict[str, list[dict[str, float]]] = {e: [] for e in PUBLISHED_ENGINES if e in engines}

    def one_round() -> None:
        for engine in timings:
            folder = tmp_path / f"{engine}-{len(timings[engine])}"
            timings[engine].append(one_study(engines[engine], image, report, folder))

    benchmark.pedantic(one_round, rounds=rounds, iterations=1,
                       warmup_rounds=1 if benchmark.enabled else 0)
    measured = {e: t[-rounds:] for e, t in timings.items()}
    torch_rounds = measured["torch-fp32"]
    benchmark.extra_info.update({
        "kind": kind, "rounds": rounds, "cpu_kind": cpu_kind(),
        "sentence_cache": "emptied before each study",
        "load_average_1min": os.getloadavg()[0],
        "engines": {e: {
            "end_to_end_ms": float(np.median([t["end_to_end"] for t in runs])),
            "timings_ms": {k: float(np.median([t[k] for t in runs])) for k in runs[0]},
            "outside_encoders_fraction": float(np.median([outside(t) for t in runs])),
            "outside_encoders_ms": float(np.median([outside_ms(t) for t in runs])),
            "speedup_median": float(np.median([p["end_to_end"] / t["end_to_end"]
                                               for p, t in zip(torch_rounds, runs, strict=True)])),
        } for e, runs in measured.items()},
        "grid": list(engines["ort-int8"].bundle.grid.shape),
        "image_size": engines["ort-int8"].bundle.preprocessing.image_size,
    })



COMPRESSED = {"jpeg2000": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
              "jpeg-ls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
              "htj2k": ("1.2.840.10008.1.2.4.201",)}


def _htj2k_copy(film: Path, out: Path) -> Path | None:
    """`film` with its pixels as an HTJ2K lossless codestream (imagecodecs' encoder; pydicom
    has none, and the phantom set no such film); None without the encoder."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import HTJ2KLossless

    try:
        import imagecodecs
    except ImportError:
        return None
    if not imagecodecs.HTJ2K.available:
        return None
    ds = pydicom.dcmread(film)
    ds.PixelData = encapsulate([imagecodecs.htj2k_encode(ds.pixel_array)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = HTJ2KLossless
    ds.save_as(out, enforce_file_format=True)
    return out


@pytest.mark.parametrize("syntax", list(COMPRESSED))
def test_compressed_film_study_by_decoder(benchmark, syntax, latency_model, reference_study,
                                          tmp_path, monkeypatch):
    """A study on the phantom set's compressed film of that syntax (2048 px with --full; for
    HTJ2K, which the phantom set has none of, the reference film re-encoded), read, localized
    with int8 and written as `lesionloc-run` does it, with the decoder imageio/decoders.py
    picks (JPEG 2000 and HTJ2K on the engine's threads, JPEG-LS through CharLS) and with
    pydicom's own order, in alternating rounds: what the decoder choice saves a study."""
    import pydicom

    from lesionloc_runtime.imageio import decoders, dicom

    _, bundles = latency_model
    image, report = reference_study
    if syntax == "htj2k":
        film = _htj2k_copy(image, tmp_path / "reference-htj2k.dcm")
    else:
        film = next((f for f in sorted(image.parent.glob(f"*{image.suffix}"))
                     if pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID
                     in COMPRESSED[syntax]), None)
    if film is None:
        pytest.skip(f"the phantom set has no {syntax} film" if syntax != "htj2k" else
                    "no HTJ2K encoder (imagecodecs) to make the film")
    localizer = Localizer.load(bundles["int8"])
    ways = {"chosen": decoders.decode_options, "pydicom": lambda *args: {}}
    times: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    rounds = 7 if benchmark.enabled else 1

    def one_round() -> None:
        k = len(times["chosen"])
        for way in (ways if k % 2 else reversed(ways)):
            monkeypatch.setattr(dicom, "decode_options", ways[way])
            times[way].append(one_study(localizer, film, report, tmp_path / f"{way}-{k}"))

    benchmark.pedantic(one_round, rounds=rounds, iterations=1,
                       warmup_rounds=1 if benchmark.enabled else 0)

    def median(way: str, key: str) -> float:
        return float(np.median([t[key] for t in times[way][-rounds:]]))

    benchmark.extra_info.update({
        "syntax": syntax, "film": film.name, "rounds": rounds, "threads": localizer.threads,
        **{f"{way}_{key}_ms_median": median(way, key) for way in ways
           for key in ("end_to_end", "read_dicom")},
        "cpu_kind": cpu_kind(), "load_average_1min": os.getloadavg()[0],
    })


BATCH_ENGINES = ("ort-int8", "ort-int8-no-cache", "ort-int8-serial", "torch-fp32",
                 "torch-fp32-no-cache", "ort-int8-compressed-films", "torch-fp32-compressed-films",
                 "ort-int8-2-workers", "torch-fp32-2-workers", "ov-int8", "ov-int8-2-workers")


def _providers(engine: str) -> tuple[str, ...]:
    """ov-: the image encoder on OpenVINO's runtime (`--providers openvino`), skipped where it
    is not installed."""
    if engine.startswith("ov-"):
        _needs_openvino()
        return ("openvino",)
    return ("cpu",)


def _compressed(film: Path) -> bool:
    import pydicom

    return pydicom.dcmread(film, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed


def _batch_tasks(films: list[Path], count: int, out: Path) -> list:
    from benchmarks.report_samples import realistic_reports
    from lesionloc_runtime.batch import StudyTask

    tasks = []
    for i, text in enumerate(realistic_reports(count, seed=21)):
        report = out / f"study{i:03d}.txt"
        report.write_text(text, encoding="utf-8")
        tasks.append(StudyTask(f"study{i:03d}", films[i % len(films)], report))
    return tasks


@pytest.fixture(scope="session")
def realistic_batch(full, reference_study, tmp_path_factory):
    """200 studies (8 in quick mode) of the reference kind: the phantom set's uncompressed
    12-bit films in turn (8 of its 12), with generated reports in which normal statements and
    negations repeat word for word; and the same reports on all 12 films, three of them
    JPEG 2000 and one JPEG-LS (`compressed-films` engines)."""
    image, _ = reference_study
    films = sorted(image.parent.glob(f"*{image.suffix}"))
    reference = [f for f in films if not _compressed(f)]
    assert not _compressed(image) and len(reference) >= 4, "the reference kind is uncompressed"
    count = 200 if full else 8
    return {"reference": _batch_tasks(reference, count, tmp_path_factory.mktemp("reference-batch")),
            "compressed": _batch_tasks(films, count, tmp_path_factory.mktemp("mixed-batch"))}


@pytest.mark.parametrize("engine", BATCH_ENGINES)
def test_batch_of_realistic_studies(benchmark, engine, latency_model, realistic_batch, tmp_path,
                                    monkeypatch):
    """Studies per second of one batch in one process on all cores, the encoders loaded
    beforehand: `lesionloc-run DIR` after its start. Every engine runs the same pipeline
    (prepare / localize / write, the reading of the next study and the writing of the last
    overlapped with the encoders, except -serial); -no-cache runs without the sentence cache."""
    from lesionloc_runtime.batch import RunSettings, run_batch
    from lesionloc_runtime.sentence_cache import SentenceCache

    checkpoint, bundles = latency_model
    films = "compressed" if engine.endswith("compressed-films") else "reference"
    tasks = realistic_batch[films]
    cache = 0 if engine.endswith("no-cache") else 4096
    if engine.endswith("2-workers"):
        return _batch_in_two_workers(benchmark, engine, checkpoint, bundles, tasks, tmp_path,
                                     monkeypatch)
    if engine.startswith("torch"):
        localizer = torch_localizer(checkpoint, ModelBundle.load(bundles["int8"]).max_length)
        localizer.sentence_cache = SentenceCache(cache)
    else:
        localizer = Localizer.load(bundles["int8"], sentence_cache=cache,  # as run_batch's
                                   providers=_providers(engine), side_by_side=False)
    settings = RunSettings(str(bundles["int8"]), _providers(engine), None, (), "findings",
                           tmp_path / "out",
                           OutputOptions(index_link=True), sentence_cache=cache,
                           pipeline=not engine.endswith("serial"))
    # the first study of a process pays one-time costs (ORT's first runs, OpenCV's threads)
    run_batch(tasks[:1], RunSettings(**{**settings.__dict__, "out": tmp_path / "warm"}),
              progress=False, localizer=localizer)
    localizer.sentence_cache.clear()
    seconds: list[float] = []
    sentences: list[int] = []

    def batch() -> None:
        start_cpu = time.process_time()
        summary = run_batch(tasks, settings, progress=False, localizer=localizer)
        assert summary.done == len(tasks), summary.failed
        seconds.extend([summary.seconds, time.process_time() - start_cpu])
        # the summary's counts: the cache's own also count the lookups of the sentences
        # encoded ahead (batch_steps.SentencesAhead)
        sentences.extend([summary.sentences_from_cache, summary.sentences_encoded])

    benchmark.pedantic(batch, rounds=1, iterations=1)
    studies = len(tasks)
    benchmark.extra_info.update({
        "engine": engine, "films": films, "studies": studies, "studies_per_s": studies / seconds[0],
        "cpu_s_per_study": seconds[1] / studies, "threads": default_threads(),
        "sentence_cache_entries": cache, "pipeline": settings.pipeline,
        "sentence_cache_hits": sentences[0], "sentence_cache_misses": sentences[1],
        "cpu_kind": cpu_kind(), "load_average_1min": os.getloadavg()[0],
    })


def test_two_workers_with_the_shared_store_or_their_own_caches(benchmark, latency_model,
                                                               realistic_batch, tmp_path,
                                                               monkeypatch):
    """`--workers 2` on the realistic batch with the batch's shared sentence store and with a
    cache per worker (as before the store), in alternated rounds: a single run of each cannot
    resolve a few percent on a shared machine whose speed drifts by more."""
    from lesionloc_runtime import sentence_cache
    from lesionloc_runtime.batch import RunSettings, run_batch

    _, bundles = latency_model
    tasks = realistic_batch["reference"]
    starts = {"shared": sentence_cache.start_shared_store, "own": lambda *args: (None, None)}
    rates: dict[str, list[float]] = {way: [] for way in starts}
    encoded: dict[str, int] = {}

    def both() -> None:
        k = len(rates["shared"])
        for way in (starts if k % 2 else reversed(starts)):
            monkeypatch.setattr(sentence_cache, "start_shared_store", starts[way])
            settings = RunSettings(str(bundles["int8"]), ("cpu",), 1, (), "findings",
                                   tmp_path / f"{way}-{k}", OutputOptions(index_link=True),
                                   sentence_cache=4096, pipeline=False)
            start = time.perf_counter()
            summary = run_batch(tasks, settings, workers=2, progress=False)
            rates[way].append(len(tasks) / (time.perf_counter() - start))
            assert summary.done == len(tasks), summary.failed
            encoded[way] = summary.sentences_encoded

    rounds = 4 if benchmark.enabled else 1
    benchmark.pedantic(both, rounds=rounds, iterations=1)
    benchmark.extra_info.update({
        "studies": len(tasks), "rounds": rounds, "workers": 2, "threads": 1,
        **{f"{way}_studies_per_s_median": float(np.median(v)) for way, v in rates.items()},
        **{f"{way}_studies_per_s": v for way, v in rates.items()},
        **{f"{way}_sentences_encoded": n for way, n in encoded.items()},
        "shared_faster_rounds": sum(a > b for a, b in zip(rates["shared"], rates["own"],
                                                           strict=True)),
        "cpu_kind": cpu_kind(), "load_average_1min": os.getloadavg()[0],
    })


def _torch_worker(settings, shared=None, parent=None, *, checkpoint: Path,
                  max_length: int) -> None:
    """run_batch's worker initializer (`lesionloc-run DIR --workers N`) with PyTorch encoders:
    the same process, store and parent's death as `_init_worker`, another localizer."""
    # A spawned process starts with its parent's sys.path. After the hi-ml parity tests that
    # holds .venv/hi-ml, whose torchvision loads only beside the operator schemas those tests
    # declare (tests/hi_ml_reference.py), and transformers imports torchvision wherever it
    # finds it: this worker needs neither.
    # (The batch's own process, one of the workers, runs this too: its sys.path is left alone.)
    if parent is not None:
        sys.path[:] = [p for p in sys.path if Path(p) != Path(sys.prefix) / "hi-ml"]
    import torch

    from lesionloc_runtime import batch as runtime_batch
    from lesionloc_runtime.processes import die_with_parent
    from lesionloc_runtime.sentence_cache import SentenceCache

    if parent is not None:
        die_with_parent(parent)
    runtime_batch._WORKER["localizer"] = torch_localizer(checkpoint, max_length)
    torch.set_num_threads(settings.threads)  # torch_localizer sets all cores
    runtime_batch._WORKER["localizer"].sentence_cache = SentenceCache(settings.sentence_cache,
                                                                      shared=shared)
    runtime_batch._WORKER["settings"] = settings


def _batch_cpu() -> float:
    """CPU seconds (user and system) of this process (one of a batch's workers) and of its
    ended and waited-for children (the others and the sentence store)."""
    import resource

    return sum(usage.ru_utime + usage.ru_stime for usage in (
        resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def _batch_in_two_workers(benchmark, engine, checkpoint, bundles, tasks, tmp_path,
                          monkeypatch) -> None:
    """The batch in two workers of one thread each, as `--workers 2` runs it (this process
    and one spawned), timed from the start of the workers (each loads its own sessions or
    modules) to the last study: what a user waits for. Both engines are run_batch itself; the
    PyTorch one's workers start with `_torch_worker`, whose localizer has PyTorch encoders."""
    import functools

    from lesionloc_runtime import batch as runtime_batch
    from lesionloc_runtime.batch import RunSettings, run_batch

    settings = RunSettings(str(bundles["int8"]), _providers(engine), 1, (), "findings",
                           tmp_path / "out", OutputOptions(index_link=True), sentence_cache=4096,
                           pipeline=False)
    if engine.startswith("torch"):
        max_length = ModelBundle.load(bundles["int8"]).max_length  # the card: no sessions
        monkeypatch.setattr(runtime_batch, "_init_worker", functools.partial(
            _torch_worker, checkpoint=checkpoint, max_length=max_length))
    elif engine.startswith("ov-"):
        # the workers import the image encoder that an earlier run on this machine compiled
        # (the session's cache of compiled graphs), as every batch after a machine's first does
        Localizer.load(bundles["int8"], providers=settings.providers, threads=1,
                       side_by_side=False)
    seconds: list[float] = []
    sentences: list[int] = [0, 0]  # (found in a cache, encoded)

    def run() -> None:
        import torch

        threads = torch.get_num_threads()  # this process's worker sets one: later suites need all
        start, start_cpu = time.perf_counter(), _batch_cpu()
        try:
            summary = run_batch(tasks, settings, workers=2, progress=False)
        finally:
            torch.set_num_threads(threads)
        # the spawned worker and the store have ended and been waited for
        seconds.extend([time.perf_counter() - start, _batch_cpu() - start_cpu])
        assert summary.done == len(tasks), summary.failed
        sentences[:] = [summary.sentences_from_cache, summary.sentences_encoded]

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "engine": engine, "films": "reference", "studies": len(tasks),
        "studies_per_s": len(tasks) / seconds[0], "workers": 2, "threads": 1,
        "cpu_s_per_study": seconds[1] / len(tasks), "sentence_cache_entries": 4096,
        "pipeline": False,
        "sentence_cache_hits": sentences[0], "sentence_cache_misses": sentences[1],
        "shared_sentence_store": True,
        "openvino_cache": "filled before the batch" if engine.startswith("ov-") else None,
        "includes": "the workers' start (spawn, imports, loading the model); CPU: the "
                    "batch's process (one of the workers), the spawned worker's and the "
                    "store's, start included",
        "cpu_kind": cpu_kind(), "load_average_1min": os.getloadavg()[0],
    })
