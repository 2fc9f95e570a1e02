"""`--providers openvino`: the image encoder compiled by OpenVINO's runtime, the text encoder on
ONNX Runtime; the rewrite that lets OpenVINO run the exporter's int8 forms as int8."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lesionloc_runtime.privacy import import_openvino

try:  # as the runtime imports it: without the conversion tools, which report usage
    ov = import_openvino()
except ImportError:
    pytest.skip("needs OpenVINO: pip install 'lesionloc[cpu,openvino]'", allow_module_level=True)

from lesionloc_export.parity import THRESHOLDS, cosines
from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.errors import ConfigError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.openvino_engine import (
    OpenVinoEncoder,
    as_low_precision_patterns,
    compile_options,
)
from lesionloc_runtime.preprocess import preprocess
from lesionloc_runtime.sessions import OnnxEncoder

BIN = Path(sys.executable).parent


def _image_feeds(bundle: ModelBundle, phantom_set: Path, count: int = 4) -> list[dict]:
    rows = [json.loads(line) for line in phantom_set.read_text().splitlines()][:count]
    return [{"pixel_values": preprocess(read_image(phantom_set.parent / row["image"]),
                                        bundle.preprocessing).tensor[None]} for row in rows]


def _quantized_forms(path: Path) -> tuple[int, int]:
    """(convolutions whose int8 weights have zero point 1, integer products) in an ONNX graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    shifted = 0
    for node in graph.node:
        dq = producer.get(node.input[1]) if node.op_type == "Conv" else None
        if dq is not None and dq.op_type == "DequantizeLinear" and len(dq.input) > 2:
            shifted += int(inits.get(dq.input[2], np.zeros(1)).any())
    return shifted, sum(node.op_type == "MatMulInteger" for node in graph.node)


def _runtime_precisions(compiled) -> dict[str, list[str]]:
    """The precision each executed node of a compiled model runs in, by node type."""
    found: dict[str, list[str]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        found.setdefault(info["layerType"].astype(str), []).append(
            info["runtimePrecision"].astype(str))
    return found


def test_rewrite_puts_every_int8_convolution_and_product_on_int8_kernels(tiny_bundle):
    bundle = ModelBundle.load(tiny_bundle)
    path = bundle.file(bundle.image_encoder.file)
    shifted, products = _quantized_forms(path)
    assert shifted > 0 and products > 0, "the tiny export should have both forms to rewrite"
    core = ov.Core()
    as_written = core.compile_model(core.read_model(str(path)), "CPU", compile_options(1))
    model = core.read_model(str(path))
    assert as_low_precision_patterns(model, ov) == shifted + products
    rewritten = core.compile_model(model, "CPU", compile_options(1))
    before, after = _runtime_precisions(as_written), _runtime_precisions(rewritten)
    convolutions = len(after["Convolution"])
    # the first convolution reads the float film: fp32 by design, the others 8-bit
    assert after["Convolution"].count("f32") == 1, after["Convolution"]
    assert before["Convolution"].count("f32") == 1 + shifted, before["Convolution"]
    assert convolutions == len(before["Convolution"])
    products_before = before.get("MatMul", []) + before.get("FullyConnected", [])
    products_after = after.get("MatMul", []) + after.get("FullyConnected", [])
    # as written, OpenVINO widens an integer product to float; rewritten, it runs in 8 bits
    assert products_after.count("i8") == products_before.count("i8") + products, (
        products_before, products_after)


def test_integer_products_rewritten_keep_their_sums(tiny_bundle, phantom_set):
    """OpenVINO's int32 product and the rewritten 8-bit one give the same sums: the image
    encoder's outputs with and without that rewrite agree to float rounding."""
    from lesionloc_runtime import openvino_engine

    bundle = ModelBundle.load(tiny_bundle)
    path = bundle.file(bundle.image_encoder.file)
    core, outputs = ov.Core(), []
    for products in (False, True):
        model = core.read_model(str(path))
        for node in model.get_ordered_ops():
            if node.get_type_name() == "Subtract":
                openvino_engine._weights_to_zero_point_0(node, ov)
            elif products and node.get_type_name() == "MatMul":
                openvino_engine._integer_product_as_float(node, ov, ov.opset13)
        compiled = core.compile_model(model, "CPU", compile_options(1))
        feeds = _image_feeds(bundle, phantom_set, 1)[0]
        outputs.append(compiled({"pixel_values": feeds["pixel_values"]})[compiled.outputs[1]])
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["int8", "none"])
def test_openvino_image_encoder_agrees_with_onnx_runtime(tiny_bundle_factory, phantom_set, precision):
    bundle = ModelBundle.load(tiny_bundle_factory(precision))
    path = bundle.file(bundle.image_encoder.file)
    reference = OnnxEncoder(path, bundle.image_encoder, threads=1)
    engine = OpenVinoEncoder(path, bundle.image_encoder, threads=1, int8=precision == "int8")
    assert engine.input_shapes["pixel_values"][1:] == reference.input_shapes["pixel_values"][1:]
    # int8: the two runtimes round activations each their own way, within the export's
    # parity thresholds against PyTorch; fp32: the same float graph
    mean_min, worst_min = THRESHOLDS["int8" if precision == "int8" else "none"]
    for feeds in _image_feeds(bundle, phantom_set):
        want, got = reference.run(feeds), engine.run(feeds)
        assert set(got) == set(want)
        for name in want:
            assert got[name].shape == want[name].shape and got[name].dtype == np.float32
            cos = cosines(want[name], got[name])
            assert cos.mean() >= mean_min and cos.min() >= worst_min, (name, cos.min())


def _int8_engine(tiny_bundle: Path) -> tuple[ModelBundle, OpenVinoEncoder]:
    bundle = ModelBundle.load(tiny_bundle)
    return bundle, OpenVinoEncoder(bundle.file(bundle.image_encoder.file), bundle.image_encoder,
                                   1, int8=True)


def test_another_batch_size_is_compiled_when_it_comes(tiny_bundle, phantom_set):
    bundle, engine = _int8_engine(tiny_bundle)
    feeds = _image_feeds(bundle, phantom_set, 2)
    one = [engine.run(f)["patch_embeds"] for f in feeds]
    both = engine.run({"pixel_values": np.concatenate([f["pixel_values"] for f in feeds])})
    assert both["patch_embeds"].shape[0] == 2 and sorted(engine._compiled) == [1, 2]
    for i in range(2):
        assert cosines(one[i], both["patch_embeds"][i:i + 1]).min() > 0.999


def test_localizer_runs_the_image_encoder_on_openvino(tiny_bundle, phantom_study):
    image, report, _ = phantom_study
    openvino = Localizer.load(tiny_bundle, providers=("openvino",), threads=1)
    onnx = Localizer.load(tiny_bundle, threads=1)
    assert openvino.providers == ["openvino", "CPUExecutionProvider"]
    assert isinstance(openvino.image_encoder, OpenVinoEncoder)
    assert isinstance(openvino.text_encoder, OnnxEncoder)
    got, want = (loc.localize(read_image(image), report) for loc in (openvino, onnx))
    assert [s.text for s in got.sentences] == [s.text for s in want.sentences]
    for a, b in zip(got.sentences, want.sentences, strict=True):
        assert abs(a.score - b.score) < 0.05, (a.text, a.score, b.score)


def test_openvino_with_cuda_is_refused():
    with pytest.raises(ConfigError, match="cannot be combined with cuda"):
        Localizer.load(None, providers=("openvino", "cuda"))


def test_openvino_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'lesionloc\[cpu,openvino\]'"):
        Localizer.load(None, providers=("openvino",))


def test_cli_runs_with_openvino_and_says_so(tmp_path, tiny_bundle, phantom_study):
    image, report, _ = phantom_study
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(image), "--report", str(report),
                           "--model", str(tiny_bundle), "--out", str(tmp_path / "out"),
                           "--providers", "openvino"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "out" / image.stem / "study.json").read_text())
    assert doc["model"]["execution_providers"] == ["openvino", "CPUExecutionProvider"]
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(image), "--report", str(report),
                           "--model", str(tiny_bundle), "--out", str(tmp_path / "other"),
                           "--providers", "cuda,openvino"], capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stderr.startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "other" / image.stem).exists()


def test_fp32_bundles_stay_fp32_and_int8_ones_take_bf16_where_the_cpu_has_it(tiny_bundle_factory):
    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    for precision in ("none", "int8"):
        bundle = ModelBundle.load(tiny_bundle_factory(precision))
        engine = OpenVinoEncoder(bundle.file(bundle.image_encoder.file), bundle.image_encoder, 1,
                                 int8=precision == "int8")
        found = _runtime_precisions(engine._compiled[1][0])
        everything = [p for kinds in found.values() for p in kinds]
        if precision == "none" or not bf16:
            assert "bf16" not in everything and engine.float_precision == "f32", found
        else:  # the first convolution, the one that reads the float film
            assert found["Convolution"].count("bf16") == 1, found["Convolution"]
            assert engine.float_precision == "bf16"


def test_an_evaluation_records_that_openvino_ran():
    from lesionloc_runtime.evaluation.cli import make_provider

    _, provenance = make_provider(None, ("openvino",), 1)
    assert provenance["execution_providers"] == ["openvino", "CPUExecutionProvider"]
    assert provenance["demo"] is True


def test_a_graph_openvino_cannot_read_is_a_bundle_error(tmp_path, tiny_bundle):
    from lesionloc_runtime.errors import BundleError

    bundle = ModelBundle.load(tiny_bundle)
    broken = tmp_path / "image_encoder.onnx"
    broken.write_bytes(b"not an ONNX graph")
    with pytest.raises(BundleError, match="OpenVINO cannot read this graph"):
        OpenVinoEncoder(broken, bundle.image_encoder, 1)


def test_a_graph_openvino_cannot_compile_is_a_bundle_error(tiny_bundle, monkeypatch):
    from lesionloc_runtime.errors import BundleError

    def refuse(*_args, **_kwargs):
        raise RuntimeError("Exception from src/inference/src/cpp/core.cpp: no kernel")

    monkeypatch.setattr(ov.Core, "compile_model", refuse)
    bundle = ModelBundle.load(tiny_bundle)
    with pytest.raises(BundleError, match="cannot compile this graph.*--providers cpu"):
        OpenVinoEncoder(bundle.file(bundle.image_encoder.file), bundle.image_encoder, 1)


def test_one_localizer_serves_several_threads(tiny_bundle, phantom_set):
    from concurrent.futures import ThreadPoolExecutor

    bundle, engine = _int8_engine(tiny_bundle)
    feeds = _image_feeds(bundle, phantom_set, 4)
    alone = [engine.run(f)["patch_embeds"] for f in feeds]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda f: engine.run(f)["patch_embeds"], feeds * 4))
    for i, got in enumerate(together):
        np.testing.assert_array_equal(got, alone[i % 4])


def test_with_two_threads_the_encoders_run_side_by_side(tiny_bundle, phantom_study):
    """The image encoder on OpenVINO (all threads) beside the text encoder (half of them):
    the same results as one after the other, and the study's timings say what overlapped."""
    image, report, _ = phantom_study
    beside = Localizer.load(tiny_bundle, providers=("openvino",), threads=2)
    in_turn = Localizer.load(tiny_bundle, providers=("openvino",), threads=1)
    assert beside._beside is not None and in_turn._beside is None
    assert beside.text_encoder.session.get_session_options().intra_op_num_threads == 1
    assert beside.image_encoder.threads == 2
    import threading

    ran_in: list[str] = []
    encode = beside._encode_preprocessed
    beside._encode_preprocessed = lambda prep: ran_in.append(  # type: ignore[method-assign]
        threading.current_thread().name) or encode(prep)
    got, want = (loc.localize(read_image(image), report) for loc in (beside, in_turn))
    assert len(ran_in) == 1 and ran_in[0].startswith("lesionloc-image"), ran_in
    for a, b in zip(got.sentences, want.sentences, strict=True):
        assert a.text == b.text and abs(a.score - b.score) < 1e-3, (a.text, a.score, b.score)
    timings = got.timings_ms
    assert timings["encoders"] >= max(timings["image_encoder"], timings["text_encoder"])
    ort = Localizer.load(tiny_bundle, threads=2)  # ONNX Runtime alone: one after the other
    assert ort._beside is None
    assert ort.text_encoder.session.get_session_options().intra_op_num_threads == 2


def test_a_batch_keeps_every_thread_for_its_sentences_ahead(tiny_bundle, tmp_path):
    from lesionloc_runtime import batch
    from lesionloc_runtime.outputs import OutputOptions

    settings = batch.RunSettings(str(tiny_bundle), ("openvino",), 2, (), "findings", tmp_path,
                                 OutputOptions())
    batch._init_worker(settings)
    localizer = batch._WORKER.pop("localizer")
    batch._WORKER.pop("settings")
    assert localizer._beside is None and localizer.providers[0] == "openvino"
    assert localizer.text_encoder.session.get_session_options().intra_op_num_threads == 2
