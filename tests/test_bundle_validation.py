"""A hand-edited card, lesionloc.json (the one file without a checksum of its own), is refused
with a BundleError (exit code 5) naming the field, at load time, never as a crash mid-study."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.errors import BundleError, ConfigError
from lesionloc_runtime.heatmap import HeatmapConfig


def edited_bundle(tiny_bundle: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    card_path = out / "lesionloc.json"
    card = json.loads(card_path.read_text())
    edit(card)
    card_path.write_text(json.dumps(card))  # NaN is written as the token NaN
    return out


def set_field(path: str, value: object):
    def edit(card: dict) -> None:
        *parents, last = path.split(".")
        node = card
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


@pytest.mark.parametrize("path, value, words", [
    ("heatmap.box_threshold", "abc", "box_threshold"),
    ("heatmap.box_threshold", 1.5, "box_threshold"),
    ("heatmap.smoothing_sigma", float("nan"), "smoothing_sigma"),
    ("heatmap.smoothing_sigma", -1.0, "smoothing_sigma"),
    ("heatmap.max_boxes", -1, "max_boxes"),
    ("heatmap.max_boxes", 2.5, "max_boxes"),
    ("heatmap.attention_temperature", 0, "attention_temperature"),
    ("heatmap.min_box_fraction", float("inf"), "min_box_fraction"),
    ("heatmap", "abc", "heatmap"),
    ("preprocessing.low_percentile", float("nan"), "percentile"),
    ("preprocessing.image_size", True, "image_size"),
    ("embed_dim", "128", "embed_dim"),
    ("grid.stride", 0, "stride"),
    ("grid.origin", float("nan"), "origin"),
    ("grid.shape", [4, 5], "grid"),
    ("grid.placement", "centre", "placement"),
    ("architecture", "gloria", "architecture"),
    ("text.pooling", "max", "pooling"),
    ("heatmap.similarity", "euclidean", "similarity"),
    ("tokenizer.max_length", 4.5, "max_length"),
    ("tokenizer", "tokenizer.json", "tokenizer"),
    ("heatmap.score", 3, "score"),
    ("image_encoder.inputs", {"pixels": ["batch", 1, 128, 128]}, "pixel_values"),
    ("image_encoder.inputs.pixel_values", ["batch", 1, -5, 128], "shape"),
])
def test_invalid_card_field_is_a_bundle_error(tiny_bundle, tmp_path, path, value, words):
    bundle = edited_bundle(tiny_bundle, tmp_path, set_field(path, value))
    with pytest.raises(BundleError, match=words):
        ModelBundle.load(bundle)


def test_card_python_cannot_hold_is_a_bundle_error(tiny_bundle, tmp_path):
    """A number of over 4,300 digits makes json.loads raise ValueError, not JSONDecodeError."""
    bundle = edited_bundle(tiny_bundle, tmp_path, lambda card: None)
    card = bundle / "lesionloc.json"
    card.write_text(card.read_text().replace('"embed_dim": ', '"embed_dim": ' + "9" * 5000
                                                     + ", \"x\": ", 1))
    with pytest.raises(BundleError, match="not valid JSON"):
        ModelBundle.load(bundle)


def test_image_size_that_differs_from_the_declared_graph_input_is_refused(tiny_bundle, tmp_path):
    size = ModelBundle.load(tiny_bundle).preprocessing.image_size
    bundle = edited_bundle(tiny_bundle, tmp_path, set_field("preprocessing.image_size", size + 32))
    with pytest.raises(BundleError, match="image_size"):
        ModelBundle.load(bundle)


def test_image_size_that_differs_from_the_graph_itself_is_refused_at_load(tiny_bundle, tmp_path):
    from lesionloc_runtime.localizer import Localizer

    size = ModelBundle.load(tiny_bundle).preprocessing.image_size

    def edit(card: dict) -> None:  # the card hides the graph's fixed size
        card["preprocessing"]["image_size"] = size + 32
        card["image_encoder"]["inputs"]["pixel_values"] = ["batch", 1, "height", "width"]

    bundle = edited_bundle(tiny_bundle, tmp_path, edit)
    with pytest.raises(BundleError, match="image_size"):
        Localizer.load(bundle, threads=1)


def test_valid_edit_still_loads(tiny_bundle, tmp_path):
    bundle = edited_bundle(tiny_bundle, tmp_path, set_field("heatmap.max_boxes", 1))
    assert ModelBundle.load(bundle).heatmap.max_boxes == 1


def test_heatmap_config_refuses_bad_values_when_built_in_code():
    with pytest.raises(ConfigError, match="max_boxes"):
        HeatmapConfig(max_boxes=0)
    with pytest.raises(ConfigError, match="box_threshold"):
        HeatmapConfig(box_threshold=float("nan"))


def test_cli_exits_5_with_one_line_for_an_edited_bundle(tiny_bundle, tmp_path):
    import cv2

    from lesionloc_runtime.cli import main

    bundle = edited_bundle(tiny_bundle, tmp_path, set_field("heatmap.box_threshold", "abc"))
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8))
    result = CliRunner().invoke(main, [str(image), "--query", "right effusion", "--model",
                                       str(bundle), "--out", str(tmp_path / "out")])
    assert result.exit_code == 5
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "box_threshold" in lines[-1]
    assert "Traceback" not in result.output


def test_a_graph_onnx_runtime_refuses_is_one_printable_line(tiny_bundle, monkeypatch):
    """ONNX Runtime's message may quote bytes of a damaged graph: the BundleError shows them
    as one printable line (found by tests/fuzz/bundles.py)."""
    from lesionloc_runtime import sessions
    from lesionloc_runtime.localizer import Localizer

    def refuse(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : bad\x1b[31m\x00\nnode")

    monkeypatch.setattr(sessions, "open_session", refuse)
    with pytest.raises(BundleError) as raised:
        Localizer.load(tiny_bundle, threads=1)
    message = str(raised.value)
    assert message.isprintable() and "INVALID_PROTOBUF : bad?[31m? node" in message
