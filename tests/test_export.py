"""lesionloc-export: every precision loads in the runtime and matches PyTorch within its
threshold; inconsistent graphs are refused; bad checkpoints and existing outputs are handled
without ever leaving a half-written bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lesionloc_export.bundle_writer import ExportOptions, export_bundle
from lesionloc_export.parity import THRESHOLDS
from lesionloc_runtime.batch_manifest import read_manifest
from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.errors import BundleError, CheckpointError, ConfigError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.text import read_report


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("precision", ["none", "fp16", "int8"])
def test_bundle_matches_pytorch_within_its_threshold(precision, tiny_bundle_factory, tiny_checkpoint,
                                                     phantom_set):
    from lesionloc_train.checkpoint import load_checkpoint
    from lesionloc_train.torch_backend import torch_localizer

    bundle = ModelBundle.load(tiny_bundle_factory(precision))
    assert bundle.quantization == precision
    assert bundle.text_encoder.packed == (precision != "fp16")  # fp16 (GPUs) stays padded
    recorded = bundle.card["parity"]
    assert recorded["passed"] and recorded["precision"] == precision
    onnx = Localizer.load(bundle, threads=1)
    ckpt = load_checkpoint(tiny_checkpoint)
    torch_loc = torch_localizer(ckpt.model, ckpt.config.preprocess_config(), ckpt.tokenizer,
                                bundle.max_length)
    records, _ = read_manifest(phantom_set, split="test")
    mean_min, worst_min = THRESHOLDS[precision]
    for record in records:
        image = read_image(record.image)
        got, want = onnx.encode_image(image), torch_loc.encode_image(image)
        patches = _cos(got.patches, want.patches)
        assert patches.mean() >= mean_min and patches.min() >= worst_min - 0.01
        assert _cos(got.global_embed[None], want.global_embed[None]).min() >= worst_min
        texts = [s.text for s in read_report(record.report).sentences]
        got_local, _ = onnx.encode_texts(texts)
        want_local, _ = torch_loc.encode_texts(texts)
        assert _cos(got_local, want_local).mean() >= mean_min


def test_a_graph_whose_inputs_differ_from_the_card_is_refused(tmp_path, tiny_bundle):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    card = json.loads((bundle / "lesionloc.json").read_text())
    size = card["preprocessing"]["image_size"]
    card["image_encoder"]["inputs"] = {"pixel_values": ["batch", 3, size, size]}
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="pixel_values"):
        Localizer.load(bundle)
    card["image_encoder"]["inputs"] = {"image": ["batch", 1, size, size]}
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="this runtime feeds"):  # a name it would not feed
        Localizer.load(bundle)
    card["image_encoder"]["inputs"] = {"pixel_values": ["batch", 1, size, size]}
    card["text_encoder"]["inputs"]["token_type_ids"] = ["batch", "sequence"]
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="a packed text graph takes"):  # not with packed windows
        Localizer.load(bundle)
    del card["text_encoder"]["inputs"]["token_type_ids"]
    card["text_encoder"]["inputs"]["window_mask"] = ["batch", "sequence"]
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="'window_mask' has shape"):
        Localizer.load(bundle)


@pytest.mark.parametrize(("precision", "floor"), [("none", 0.99999), ("int8", 0.999)])
def test_the_packed_text_graph_gives_each_sentence_what_the_padded_one_does(
        precision, floor, tiny_bundle_factory, phantom_set):
    """The same export packed and padded: the sentences of a report, and a long text of several
    windows, embed alike (int8 within its activations' per-run quantization)."""
    import onnx

    packed = Localizer.load(tiny_bundle_factory(precision), threads=1)
    padded = Localizer.load(tiny_bundle_factory(precision, "padded"), threads=1)
    assert packed.bundle.text_encoder.packed and not padded.bundle.text_encoder.packed
    graph = onnx.load(str(packed.bundle.file(packed.bundle.text_encoder.file))).graph
    assert [i.name for i in graph.input] == ["input_ids", "position_ids", "window_mask",
                                             "window_pooling"]
    records, _ = read_manifest(phantom_set, split="test")
    texts = [s.text for r in records[:3] for s in read_report(r.report).sentences]
    texts.append(" ".join(texts))  # longer than the window: several windows averaged
    assert len(packed.tokenizer.windows(texts)[-1]) > 1
    for got, want in zip(packed.encode_texts(texts), padded.encode_texts(texts), strict=True):
        assert _cos(got, want).min() >= floor


def test_pytorch_runs_packed_windows_as_it_runs_each_window_alone(tiny_checkpoint, phantom_set):
    from lesionloc_runtime.tokens import SentenceTokenizer, encode_windows
    from lesionloc_train.checkpoint import load_checkpoint
    from lesionloc_train.torch_backend import TextGraph, TorchEncoder, torch_localizer

    ckpt = load_checkpoint(tiny_checkpoint)
    records, _ = read_manifest(phantom_set, split="test")
    texts = [s.text for r in records[:3] for s in read_report(r.report).sentences]
    tokens = SentenceTokenizer(ckpt.tokenizer, 16).encode(texts)
    graph = TextGraph(ckpt.model)
    alone = encode_windows(TorchEncoder(graph, "text"), tokens, len(texts))
    packed = encode_windows(TorchEncoder(graph, "packed-text"), tokens, len(texts), "mean")
    for name, want in alone.items():
        assert _cos(packed[name], want).min() >= 0.99999
    localizer = torch_localizer(ckpt.model, ckpt.config.preprocess_config(), ckpt.tokenizer, 16)
    assert localizer.bundle.text_encoder.packed  # the latency baseline packs as the bundle does


def test_packing_leaves_a_graph_it_does_not_recognise_alone(tmp_path, tiny_bundle_factory):
    from lesionloc_export.packing import pack_text_graph

    bundle = tiny_bundle_factory("int8", "padded")
    target = tmp_path / "packed.onnx"
    assert not pack_text_graph(bundle / "image_encoder.onnx", target)  # no text graph at all
    assert not pack_text_graph(tiny_bundle_factory("int8") / "text_encoder.onnx", target)  # twice
    # a mean-pooled graph read as pooled by its first token
    assert not pack_text_graph(bundle / "text_encoder.onnx", target, "first")
    assert not pack_text_graph(bundle / "text_encoder.onnx", target, "sum")  # its divisor varies
    assert pack_text_graph(bundle / "text_encoder.onnx", target, "mean")
    target.unlink()
    assert not target.exists()
    with pytest.raises(ConfigError, match="--text-layout"):
        ExportOptions(text_layout="ragged")


def test_a_packed_text_graph_with_a_pooling_it_cannot_pack_is_refused(tiny_bundle):
    import dataclasses

    from lesionloc_runtime import bundle as bundles
    from lesionloc_runtime.architectures import TextConfig

    packed = ModelBundle.load(tiny_bundle)
    for pooling in ("mean", "cls", "cls-projection", "afloc-last4-sum"):  # every card pooling
        bundles._check_description(dataclasses.replace(packed, text=TextConfig(pooling=pooling)),
                                   "card")
    # a pooling the runtime has no weights for (a card's is checked against the known ones)
    other = dataclasses.replace(packed, text=TextConfig(pooling="max"))
    with pytest.raises(BundleError, match="packed text graph pools by one of"):
        bundles._check_description(other, "card")


def test_a_bundle_exported_padded_is_packed_without_its_checkpoint(tmp_path, tiny_bundle_factory):
    import subprocess
    import sys

    from lesionloc_export.repack import pack_bundle
    from lesionloc_runtime.errors import ExportError
    from lesionloc_runtime.fileio import sha256_file

    padded = tiny_bundle_factory("int8", "padded")
    before = sha256_file(padded / "text_encoder.onnx")
    out = tmp_path / "packed"
    record = pack_bundle(padded, out)
    assert record["passed"] and record["texts"] > 5
    assert sha256_file(padded / "text_encoder.onnx") == before  # the source is untouched
    packed = Localizer.load(out)  # checksums, card and graph agree
    assert packed.bundle.packed_pooling == "mean"
    assert packed.bundle.card["parity"]["packed_from_padded"] == record
    assert "Text graph packed after export" in (out / "MODEL_CARD.md").read_text()
    texts = ["No pneumothorax.", "There is a right upper lobe opacity.", "The heart is enlarged."]
    for got, want in zip(packed.encode_texts(texts), Localizer.load(padded).encode_texts(texts),
                         strict=True):
        assert _cos(got, want).min() >= 0.999
    with pytest.raises(ExportError, match="packed already"):
        pack_bundle(out, tmp_path / "again")
    with pytest.raises(ExportError, match="fp16"):
        pack_bundle(tiny_bundle_factory("fp16"), tmp_path / "fp16")
    assert not (tmp_path / "again").exists() and not (tmp_path / "fp16").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["packed"]  # no staging left behind
    script = Path(__file__).resolve().parents[1] / "scripts" / "pack_bundle.py"
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True)
    assert done.returncode != 0 and "packed already" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_padded_text_graph_declaring_an_input_it_has_not_is_refused(tmp_path,
                                                                      tiny_bundle_factory):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_factory("int8", "padded"), bundle)
    card = json.loads((bundle / "lesionloc.json").read_text())
    assert sorted(card["text_encoder"]["inputs"]) == ["attention_mask", "input_ids"]
    card["text_encoder"]["inputs"]["token_type_ids"] = ["batch", "sequence"]
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="differ from the bundle card"):  # the graph has not
        Localizer.load(bundle)


def test_a_card_whose_heatmap_and_score_conventions_disagree_is_refused(tmp_path, tiny_bundle):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    card = json.loads((bundle / "lesionloc.json").read_text())
    assert (card["heatmap"]["similarity"], card["heatmap"]["score"]) == ("cosine", "local-attention")
    card["heatmap"]["similarity"] = "global-share"  # a global-only model's maps, local scores
    (bundle / "lesionloc.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="global-share"):
        Localizer.load(bundle)


def test_bundle_records_what_the_runtime_and_an_auditor_need(tiny_bundle):
    manifest = json.loads((tiny_bundle / "lesionloc.json").read_text())
    assert manifest["format_version"] == 2
    assert set(manifest["files"]) == {"image_encoder.onnx", "text_encoder.onnx", "tokenizer.json",
                                      "MODEL_CARD.md"}
    assert len(manifest["provenance"]["checkpoint_sha256"]) == 64
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest["provenance"]["versions"])
    assert manifest["preprocessing"]["image_size"] == 128
    assert manifest["heatmap"]["attention_temperature"] == 0.25
    assert "Not for clinical use" in (tiny_bundle / "MODEL_CARD.md").read_text() or \
        "not validated for clinical use" in (tiny_bundle / "MODEL_CARD.md").read_text()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        export_bundle(tmp_path / "nope", tmp_path / "out", ExportOptions())


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny_checkpoint):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        export_bundle(ckpt, tmp_path / "out", ExportOptions())
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path, tiny_checkpoint):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["backbones"]["image"]["hidden_sizes"] = [8, 16, 24, 48]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        export_bundle(ckpt, tmp_path / "out", ExportOptions())


def test_existing_output_is_refused_without_overwrite(tmp_path, tiny_checkpoint, tiny_bundle):
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    with pytest.raises(ConfigError, match="--overwrite"):
        export_bundle(tiny_checkpoint, out, ExportOptions())
    other = tmp_path / "not-a-bundle"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a model bundle"):
        export_bundle(tiny_checkpoint, other, ExportOptions(overwrite=True))
    assert (other / "precious.txt").read_text() == "keep me"


def test_failed_export_leaves_the_good_bundle_in_place(tmp_path, tiny_checkpoint, tiny_bundle,
                                                       phantom_set, monkeypatch):
    import lesionloc_export.bundle_writer as writer

    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure while quantizing")

    monkeypatch.setattr(writer, "quantize_text_int8", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        export_bundle(tiny_checkpoint, out, ExportOptions(overwrite=True, calibration=phantom_set,
                                                          calibration_images=4, parity_images=2))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


def test_degraded_parity_fails_with_the_figures_unless_allowed(tmp_path, tiny_checkpoint,
                                                               phantom_set, monkeypatch):
    import lesionloc_export.parity as parity

    monkeypatch.setitem(parity.THRESHOLDS, "none", (1.01, 1.01))  # impossible to reach
    options = dict(quantize="none", calibration=phantom_set, calibration_images=2, parity_images=2)
    with pytest.raises(Exception, match=r"patch_embeds: mean [01]\.\d{6} \(>= 1.01\)"):
        export_bundle(tiny_checkpoint, tmp_path / "out", ExportOptions(**options))
    assert not (tmp_path / "out").exists()
    result = export_bundle(tiny_checkpoint, tmp_path / "out",
                           ExportOptions(allow_degraded=True, **options))
    assert json.loads((Path(result.bundle) / "lesionloc.json").read_text())["parity"]["passed"] is False


def test_int8_falls_back_to_the_next_scheme_when_parity_fails(tmp_path, tiny_checkpoint, phantom_set,
                                                              monkeypatch):
    import numpy as np

    import lesionloc_export.bundle_writer as writer
    from lesionloc_export.quantize import quantize_image_int8

    def quantize(source, target, calibration, scheme="u8s8-reduced"):
        if scheme == "broken":  # calibrated on black images: every activation range is wrong
            calibration = [np.zeros_like(c) for c in calibration]
            scheme = "u8s8-reduced"
        quantize_image_int8(source, target, calibration, scheme)

    monkeypatch.setattr(writer, "INT8_IMAGE_SCHEMES", ("broken", "u8s8-reduced"))
    monkeypatch.setattr(writer, "quantize_image_int8", quantize)
    messages = []
    result = export_bundle(tiny_checkpoint, tmp_path / "b", ExportOptions(
        calibration=phantom_set, calibration_images=8, parity_images=4), say=messages.append)
    assert any("trying u8s8-reduced" in m for m in messages)
    manifest = json.loads((result.bundle / "lesionloc.json").read_text())
    assert manifest["image_encoder"]["precision"].endswith("(u8s8-reduced)")
    assert manifest["parity"]["passed"]


def test_a_global_only_model_exports_its_class_activation_grid(tmp_path, phantom_set, phantom_study):
    """Trained without the local loss, the bundle's heatmaps come from the global projections
    at stride 32 (its local heads never learned anything), end to end through the runtime."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundle
    from lesionloc_runtime.imageio import read_image
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_train.config import load_config
    from lesionloc_train.train import pretrain

    cfg = load_config(["tiny", "global_only"], [f"data.train_manifest={phantom_set}",
                                                "optim.max_steps=2", "checkpoint_every=2"])
    checkpoint = pretrain(cfg, tmp_path / "run", progress=False).checkpoint
    export_bundle(checkpoint, tmp_path / "bundle", ExportOptions(quantize="none", parity_images=2))
    localizer = Localizer.load(tmp_path / "bundle")
    assert localizer.bundle.grid_stride == 32 and localizer.bundle.heatmap_source == "global"
    image, report, _ = phantom_study
    result = localizer.localize(image, report)
    size = cfg.model.image.image_size
    assert result.grounded and all(s.heatmap.grid.shape == (size // 32, size // 32)
                                   for s in result.grounded)
    # through ONNX too, the cells average to the image embedding: the unsmoothed grid's mean
    # is the sentence's global score, which is the sentence score such a model reports
    encoded = localizer.encode_image(read_image(image))
    texts = [s.text for s in result.grounded]
    local, _ = localizer.encode_texts(texts)
    for sentence, embed in zip(result.grounded, local, strict=True):
        grid = np.tensordot(encoded.patches, embed, axes=([2], [0]))
        assert float(grid.mean()) == pytest.approx(sentence.score, abs=1e-4)
        assert sentence.score == pytest.approx(float(embed @ encoded.global_embed), abs=1e-6)


def test_a_fused_stride_8_grid_exports_and_keeps_parity_in_int8(tmp_path, phantom_set):
    """local_stage 2 with stages 3 and 4 fused (the demo model's grid): the padded, corner-
    aligned upsampling goes through ONNX and static int8, and the bundle says stride 8."""
    from lesionloc_export.bundle_writer import ExportOptions, export_bundle
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_train.config import load_config
    from lesionloc_train.train import pretrain

    cfg = load_config("tiny", [f"data.train_manifest={phantom_set}", "optim.max_steps=2",
                               "checkpoint_every=2", "model.image.local_stage=2",
                               "model.image.local_fusion=true"])
    checkpoint = pretrain(cfg, tmp_path / "run", progress=False).checkpoint
    export_bundle(checkpoint, tmp_path / "bundle", ExportOptions(
        calibration=phantom_set, calibration_images=8, parity_images=4))
    bundle = Localizer.load(tmp_path / "bundle").bundle
    manifest = json.loads((tmp_path / "bundle" / "lesionloc.json").read_text())
    assert bundle.grid_stride == 8 and manifest["parity"]["passed"]
    assert manifest["parity"]["cosine"]["patch_embeds"]["min"] >= 0.98


def test_int8_image_encoder_pools_in_fp32_with_the_same_result(tmp_path, tiny_bundle):
    """ORT's QDQ propagation would move the quantizer after the first max-pool in front of
    it, and ORT runs a uint8 MaxPool with a scalar loop (14 of ~180 ms in ResNet-50 at 448
    px); the runtime's sessions switch that optimizer off. The pool then reads fp32, and the
    encoder's outputs are exactly those of a session with every ORT optimizer on."""
    import onnx
    import onnxruntime as ort

    from lesionloc_runtime.sessions import open_session, session_options

    graph = tiny_bundle / "image_encoder.onnx"
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / "as-run.onnx")
    ours = open_session(graph, options, ["CPUExecutionProvider"])
    model = onnx.load(str(tmp_path / "as-run.onnx"))
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert pools, [n.op_type for n in model.graph.node]
    assert all(producers.get(n.input[0]) not in ("QuantizeLinear", "QLinearConv") for n in pools)
    # with propagation (ORT's default) the same pool reads the quantizer's uint8 output
    every = ort.SessionOptions()
    every.intra_op_num_threads = 1
    every.optimized_model_filepath = str(tmp_path / "default.onnx")
    default = ort.InferenceSession(str(graph), every, providers=["CPUExecutionProvider"])
    model = onnx.load(str(tmp_path / "default.onnx"))
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    assert any(producers.get(n.input[0]) == "QuantizeLinear" for n in model.graph.node
               if n.op_type == "MaxPool")
    size = ours.get_inputs()[0].shape[-1]
    x = {"pixel_values": np.random.default_rng(0).random((2, 1, size, size), dtype=np.float32)}
    for got, want in zip(ours.run(None, x), default.run(None, x), strict=True):
        np.testing.assert_array_equal(got, want)


def test_runtime_sessions_spin_only_while_a_run_is_on(tiny_bundle):
    """Spinning threads answer the text encoder's many small operators sooner; ORT's default
    keeps them spinning after the run, on the cores the drawing threads need next."""
    from lesionloc_runtime.localizer import Localizer

    localizer = Localizer.load(tiny_bundle, threads=2)
    for encoder in (localizer.image_encoder, localizer.text_encoder):
        options = encoder.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"


FIRST_SESSION = """
import sys
import numpy as np
from lesionloc_runtime.localizer import demo_bundle_path
from lesionloc_runtime.sessions import open_session, session_options
options = session_options(2)
session = open_session(demo_bundle_path() / "text_encoder.onnx", options, ["CPUExecutionProvider"])
halved = np.array([1e-38], np.float32) * np.float32(0.5)  # a denormal: 0 when flushed
print(options.get_session_config_entry("session.set_denormal_as_zero"), float(halved[0]))
"""


def test_runtime_sessions_flush_denormals_on_their_threads_and_leave_the_callers():
    """The sessions' threads treat denormals as zero (the int8 text encoder's attention met
    them, docs/latency.md); ONNX Runtime would also flush them for good on the thread that
    builds a process's first session, so the runtime builds its sessions on a thread of their
    own and the caller's arithmetic keeps IEEE denormals. A process of its own: the first
    session."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FIRST_SESSION], capture_output=True,
                          text=True, check=True)
    option, halved = done.stdout.split()
    assert option == "1"
    assert float(halved) > 0  # flushed: 0.0


def test_resnet_on_a_grey_image_is_the_same_as_on_it_repeated_on_three_channels():
    """BioViL feeds its grey film on three channels: the export sums the first convolution's
    three kernels and runs it once on the one channel."""
    import torch

    from lesionloc_export.sources.resnet import ResNet50

    torch.manual_seed(0)
    model = ResNet50(with_fc=False).eval()
    for module in model.modules():  # statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    grey = torch.rand(2, 1, 96, 80)
    with torch.no_grad():
        repeated = model.stages(grey.expand(-1, 3, -1, -1))
        once = model.stages(grey, grey=True)
    for a, b in zip(repeated, once, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def _small_resnet_stem(path: Path, size: int = 48, projection: bool = False) -> Path:
    """A first convolution, ReLU, max-pool and two quantizable convolutions that share the
    first one's (zero) bias, as the ONNX export of a freshly initialized model does; with
    `projection`, a 1 x 1 projection to 8 channels (with a bias) after them, as our encoder's
    local projection."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["pixel_values", "w0", "bias"], ["c0"], kernel_shape=[7, 7],
                         strides=[2, 2], pads=[3, 3, 3, 3], name="stem"),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("MaxPool", ["r0"], ["p0"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p0", "w1", "bias"], ["c1"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], name="wide"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "bias"], ["c2"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], name="small"),
        helper.make_node("Relu", ["c2"], ["r2" if projection else "patch_embeds"]),
    ]
    inits = [weight("w0", 16, 1, 7, 7), weight("w1", 16, 16, 3, 3), weight("w2", 16, 16, 3, 3),
             numpy_helper.from_array(np.zeros(16, np.float32), "bias")]
    if projection:
        nodes.append(helper.make_node("Conv", ["r2", "w3", "b3"], ["patch_embeds"],
                                      kernel_shape=[1, 1], name="/encoder/local_proj/Conv"))
        inits += [weight("w3", 8, 16, 1, 1), weight("b3", 8)]
    graph = helper.make_graph(
        nodes, "stem", [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                                      ["batch", 1, size, size])],
        [helper.make_tensor_value_info("patch_embeds", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_int8_keeps_a_shared_bias_of_the_fp32_convolution_in_fp32(tmp_path):
    """The quantizer quantized a bias shared by the fp32 first convolution and quantized ones,
    and fed the first one a dequantized copy: ONNX Runtime's fast fp32 kernel needs a constant
    bias, so the benchmark's random-init ResNet ran its first convolution 3 ms slower than a
    trained one would. Each node now owns its initializers before quantization."""
    import onnx

    from lesionloc_export.quantize import own_initializers, quantize_image_int8

    source = _small_resnet_stem(tmp_path / "raw.onnx")
    assert own_initializers(source, tmp_path / "owned.onnx") == 2
    owned = onnx.load(str(tmp_path / "owned.onnx"))
    biases = [n.input[2] for n in owned.graph.node if n.op_type == "Conv"]
    assert len(set(biases)) == 3
    calibration = [np.random.default_rng(i).random((1, 48, 48), dtype=np.float32) for i in range(4)]
    quantize_image_int8(source, tmp_path / "int8.onnx", calibration)
    model = onnx.load(str(tmp_path / "int8.onnx"))
    initializers = {i.name for i in model.graph.initializer}
    stem = next(n for n in model.graph.node if n.name == "stem")
    assert all(name in initializers for name in stem.input[1:]), list(stem.input)


def test_int8_late_convolutions_in_gemm_form_give_the_same_bytes(tmp_path):
    """Weight zero point 1 (weights raised by 1) sends ONNX Runtime's QLinearConv to its
    integer matrix product instead of its symmetric convolution kernel: only the small-output
    convolutions are rewritten, and the outputs are identical on this CPU, whichever path
    its kernels take."""
    import onnx
    from onnx import numpy_helper

    from lesionloc_export.quantize import quantize_image_int8
    from lesionloc_runtime.sessions import open_session, session_options

    source = _small_resnet_stem(tmp_path / "raw.onnx")
    calibration = [np.random.default_rng(i).random((1, 48, 48), dtype=np.float32) for i in range(4)]
    # 48 px: "wide" writes 12 x 12 = 144 positions, "small" 6 x 6 = 36
    quantize_image_int8(source, tmp_path / "sym.onnx", calibration, gemm_max_positions=0)
    quantize_image_int8(source, tmp_path / "gemm.onnx", calibration, gemm_max_positions=100)

    def zero_points(path: Path) -> dict[str, int]:
        model = onnx.load(str(path))
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        producer = {out: n for n in model.graph.node for out in n.output}
        return {n.name: int(inits[producer[n.input[1]].input[2]].max())
                for n in model.graph.node if n.op_type == "Conv" and n.input[1] in producer}

    assert zero_points(tmp_path / "sym.onnx") == {"wide": 0, "small": 0}
    assert zero_points(tmp_path / "gemm.onnx") == {"wide": 0, "small": 1}
    x = {"pixel_values": np.random.default_rng(9).random((3, 1, 48, 48), dtype=np.float32)}
    sym, gemm = (open_session(tmp_path / f"{name}.onnx", session_options(1), ["CPUExecutionProvider"])
                 for name in ("sym", "gemm"))
    want, got = sym.run(None, x)[0], gemm.run(None, x)[0]
    assert np.abs(want).max() > 0
    np.testing.assert_array_equal(got, want)


def test_int8_projection_of_8_bit_inputs_becomes_an_integer_product(tmp_path):
    """The fp32 1 x 1 projection after a quantized stage runs as uint8 x int8 (7-bit weights)
    with a float output: only the weights' rounding is added, the first convolution (whose
    input is the float image) and the u8u8 fallback scheme keep their float convolution."""
    import onnx

    from lesionloc_export.quantize import quantize_image_int8
    from lesionloc_runtime.sessions import open_session, session_options

    source = _small_resnet_stem(tmp_path / "raw.onnx", projection=True)
    calibration = [np.random.default_rng(i).random((1, 48, 48), dtype=np.float32) for i in range(4)]
    quantize_image_int8(source, tmp_path / "float.onnx", calibration, integer_projections=False)
    quantize_image_int8(source, tmp_path / "int.onnx", calibration)
    quantize_image_int8(source, tmp_path / "u8u8.onnx", calibration, scheme="u8u8")

    def ops(name: str) -> dict[str, str]:
        return {n.name: n.op_type for n in onnx.load(str(tmp_path / name)).graph.node}

    assert ops("float.onnx")["/encoder/local_proj/Conv"] == "Conv"
    assert ops("u8u8.onnx")["/encoder/local_proj/Conv"] == "Conv"
    rewritten = ops("int.onnx")
    assert "/encoder/local_proj/Conv" not in rewritten and rewritten["stem"] == "Conv"
    assert list(rewritten.values()).count("MatMulInteger") == 1
    model = onnx.load(str(tmp_path / "int.onnx"))
    weights = {i.name: i for i in model.graph.initializer}
    assert "w3" not in weights  # the float weights are gone with the convolution
    ints = onnx.numpy_helper.to_array(weights["/encoder/local_proj/Conv/int8_weight"])
    assert ints.shape == (16, 8) and np.abs(ints).max() == 63  # 7 bits, per output channel
    x = {"pixel_values": np.random.default_rng(9).random((3, 1, 48, 48), dtype=np.float32)}
    want, got = (open_session(tmp_path / name, session_options(1), ["CPUExecutionProvider"])
                 .run(None, x)[0] for name in ("float.onnx", "int.onnx"))
    assert got.shape == want.shape == (3, 8, 6, 6)
    a, b = want.transpose(0, 2, 3, 1).reshape(-1, 8), got.transpose(0, 2, 3, 1).reshape(-1, 8)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999 and not np.array_equal(a, b)


def _normalized_stem(path: Path, constants_as_nodes: bool) -> Path:
    """A grey image repeated on three channels, normalized per channel and convolved (7 x 7,
    stride 2, zero padding 3), as our encoder's export starts."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    values = {"mean": mean, "std": std, "shape": np.array([1, 3, 1, 1], np.int64)}
    if constants_as_nodes:
        nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, k))
                 for k, v in values.items()]
        inits = []
    else:
        nodes, inits = [], [numpy_helper.from_array(v, k) for k, v in values.items()]
    nodes += [helper.make_node("Expand", ["pixel_values", "shape"], ["rgb"]),
              helper.make_node("Sub", ["rgb", "mean"], ["centred"]),
              helper.make_node("Div", ["centred", "std"], ["normal"]),
              helper.make_node("Conv", ["normal", "w", "b"], ["out"], kernel_shape=[7, 7],
                               strides=[2, 2], pads=[3, 3, 3, 3], name="stem")]
    inits += [numpy_helper.from_array(rng.normal(0, 0.1, (8, 3, 7, 7)).astype(np.float32), "w"),
              numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b")]
    graph = helper.make_graph(
        nodes, "stem", [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                                      ["batch", 1, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("constants_as_nodes", [False, True])
def test_channel_normalization_folds_into_a_two_channel_first_convolution(tmp_path,
                                                                          constants_as_nodes):
    """(x - mean_c) / std_c on a grey image repeated on three channels, then a convolution,
    becomes one convolution over the image and an image of ones: the same outputs, the
    zero-padded border included, without the per-channel passes."""
    import onnx
    import onnxruntime as ort

    from lesionloc_export.graphs import fold_channel_normalization

    source = _normalized_stem(tmp_path / "stem.onnx", constants_as_nodes)
    folded = tmp_path / "folded.onnx"
    shutil.copyfile(source, folded)
    assert fold_channel_normalization(folded)
    model = onnx.load(str(folded))
    ops = [n.op_type for n in model.graph.node]
    assert "Sub" not in ops and "Div" not in ops and "Expand" not in ops
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    kernel = next(i for i in model.graph.initializer if i.name == conv.input[1])
    assert list(kernel.dims) == [8, 2, 7, 7] and {i.name for i in model.graph.initializer} == {
        kernel.name, "b"}
    x = {"pixel_values": np.random.default_rng(2).random((2, 1, 37, 50), dtype=np.float32)}
    want, got = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, x)[0]
                 for p in (source, folded))
    assert got.shape == want.shape == (2, 8, 19, 25)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(want[:, :, 0] - want[:, :, 5]).max() > 0.01  # the border is not the interior


def test_channel_normalization_is_left_alone_when_the_graph_starts_otherwise(tmp_path):
    import onnx

    from lesionloc_export.graphs import fold_channel_normalization

    source = _normalized_stem(tmp_path / "stem.onnx", constants_as_nodes=False)
    model = onnx.load(str(source))
    div = next(n for n in model.graph.node if n.op_type == "Div")
    model.graph.node.append(onnx.helper.make_node("Relu", [div.output[0]], ["also"]))
    model.graph.output.append(onnx.helper.make_tensor_value_info("also", 1, None))
    onnx.save(model, str(source))  # the normalized image has a second reader: keep it
    before = source.read_bytes()
    assert not fold_channel_normalization(source) and source.read_bytes() == before
    assert not fold_channel_normalization(_small_resnet_stem(tmp_path / "grey.onnx"))


def _residual_layer_norm(path: Path, width: int = 64) -> Path:
    """x + skip, then LayerNormalization: the pattern ORT fuses into SkipLayerNormalization."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    gamma = numpy_helper.from_array(rng.random(width, dtype=np.float32), "gamma")
    beta = numpy_helper.from_array(rng.random(width, dtype=np.float32), "beta")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "skip"], ["sum"], name="residual"),
         helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1,
                          epsilon=1e-12, name="norm")],
        "residual", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 5, width])
                     for n in ("x", "skip")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, width])], [gamma, beta])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _ops_as_run(path: Path, out: Path, providers: list[str], runtime: bool = True) -> list[str]:
    import onnx
    import onnxruntime as ort

    from lesionloc_runtime.sessions import open_session, session_options

    options = session_options(1) if runtime else ort.SessionOptions()
    options.optimized_model_filepath = str(out)
    if runtime:
        open_session(path, options, providers)
    else:
        ort.InferenceSession(str(path), options, providers=providers)
    return [n.op_type for n in onnx.load(str(out)).graph.node]


def test_cpu_sessions_keep_a_residual_add_and_its_layer_norm_apart(tmp_path):
    """ORT's CPU SkipLayerNormalization is slower than the Add and LayerNormalization it
    fuses (a quarter of the int8 text encoder's time on a 2-core Xeon): the runtime's CPU
    sessions leave them apart, where ORT's default fuses them; the outputs agree."""
    import onnxruntime as ort

    from lesionloc_runtime.sessions import open_session, session_options

    graph = _residual_layer_norm(tmp_path / "residual.onnx")
    cpu = ["CPUExecutionProvider"]
    assert sorted(_ops_as_run(graph, tmp_path / "ours.onnx", cpu)) == ["Add", "LayerNormalization"]
    assert _ops_as_run(graph, tmp_path / "default.onnx", cpu, runtime=False) == [
        "SkipLayerNormalization"]
    feeds = {n: np.random.default_rng(k).random((2, 5, 64), dtype=np.float32)
             for k, n in enumerate(("x", "skip"))}
    ours = open_session(graph, session_options(1), cpu).run(None, feeds)[0]
    fused = ort.InferenceSession(str(graph), providers=cpu).run(None, feeds)[0]
    np.testing.assert_allclose(ours, fused, rtol=0, atol=1e-5)


def test_cpu_bundles_leave_the_residual_layer_norms_unfused_and_fp16_fuses_them(
        tiny_bundle_factory):
    import onnx

    def ops(precision: str) -> set[str]:
        graph = onnx.load(str(tiny_bundle_factory(precision) / "text_encoder.onnx"))
        return {n.op_type for n in graph.graph.node}

    for precision in ("none", "int8"):
        assert "SkipLayerNormalization" not in ops(precision)
        assert {"LayerNormalization", "QAttention" if precision == "int8" else "Attention"} <= ops(
            precision)
        fusions = ModelBundle.load(tiny_bundle_factory(precision)).card
        assert "SkipLayerNormalization" not in json.dumps(fusions)
    assert "SkipLayerNormalization" in ops("fp16")


def test_an_export_that_cannot_write_says_where_and_leaves_nothing(tmp_path, tiny_checkpoint,
                                                                   monkeypatch):
    """A full TMPDIR (a small tmpfs /tmp: the full-size model's work files are large) or a
    read-only place for the bundle ended `lesionloc-export` with an OSError traceback."""
    import errno
    import tempfile

    from lesionloc_export import bundle_writer
    from lesionloc_runtime.errors import OutputError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bundle_writer, "held_out_images", full)
    with pytest.raises(OutputError, match=r"the export's work files in .* set TMPDIR .*: No "
                       r"space left on device") as caught:
        export_bundle(tiny_checkpoint, tmp_path / "b", ExportOptions(quantize="none"))
    assert caught.value.exit_code == 10 and caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    real = tempfile.mkdtemp

    def read_only(suffix=None, prefix=None, dir=None):
        if dir == tmp_path:  # the bundle's staging folder beside --out
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".b.staging"))
        return real(suffix, prefix, dir)

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(OutputError, match=r"cannot write .*\.b\.staging: Read-only file system$"):
        export_bundle(tiny_checkpoint, tmp_path / "b", ExportOptions(quantize="none"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
