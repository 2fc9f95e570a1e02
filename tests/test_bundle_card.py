"""The bundle card (lesionloc.json) version 2 describes the model and the runtime follows it;
version-1 cards, which users have, still load as our letterbox contract with the same
results; a description that does not match the graphs is refused with one line."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lesionloc_runtime.bundle import ModelBundle, write_card
from lesionloc_runtime.errors import BundleError
from lesionloc_runtime.localizer import Localizer

REPO = Path(__file__).resolve().parents[1]


def as_version_1(tiny_bundle: Path, out: Path) -> Path:
    """The tiny bundle with its card in the version-1 layout (as bundles exported before)."""
    shutil.copytree(tiny_bundle, out)
    card = json.loads((out / "lesionloc.json").read_text())
    old = {k: v for k, v in card.items() if k not in ("architecture", "grid", "text", "files",
                                                      "format", "format_version")}
    old["grid_stride"] = int(card["grid"]["stride"])
    old["grid_origin"] = card["grid"]["origin"]
    old["heatmap_source"] = "local"
    old["heatmap"] = {k: card["heatmap"][k] for k in ("attention_temperature", "smoothing_sigma",
                                                       "box_threshold", "min_box_fraction",
                                                       "max_boxes")}
    old["preprocessing"] = {k: v for k, v in card["preprocessing"].items()
                            if k not in ("method", "size_rounding", "resize")}
    write_card(out, old)
    written = json.loads((out / "lesionloc.json").read_text())
    written["format_version"] = 1
    (out / "lesionloc.json").write_text(json.dumps(written))
    return out


def test_a_version_1_bundle_loads_as_the_letterbox_contract_with_the_same_results(
        tiny_bundle, tmp_path, phantom_study):
    old = ModelBundle.load(as_version_1(tiny_bundle, tmp_path / "v1"))
    new = ModelBundle.load(tiny_bundle)
    assert old.card["format_version"] == 1 and new.card["format_version"] == 2
    assert (old.architecture, old.preprocessing, old.grid, old.heatmap, old.text) == \
        (new.architecture, new.preprocessing, new.grid, new.heatmap, new.text)
    image, report, _ = phantom_study
    a = Localizer.load(old, threads=1).localize(image, report)
    b = Localizer.load(new, threads=1).localize(image, report)
    assert [(s.score, s.peak) for s in a.sentences] == [(s.score, s.peak) for s in b.sentences]
    assert all(np.array_equal(s.heatmap.render(), t.heatmap.render())
               for s, t in zip(a.grounded, b.grounded, strict=True))


def test_upgrading_a_version_1_card_keeps_the_graphs_and_the_description(tiny_bundle, tmp_path):
    bundle = as_version_1(tiny_bundle, tmp_path / "v1")
    graphs = {p.name: p.read_bytes() for p in bundle.glob("*.onnx")}
    subprocess.run([sys.executable, str(REPO / "scripts" / "upgrade_bundle_card.py"), str(bundle)],
                   check=True, capture_output=True)
    upgraded = ModelBundle.load(bundle)
    assert upgraded.card["format_version"] == 2 and "grid_stride" not in upgraded.card
    assert upgraded.grid == ModelBundle.load(tiny_bundle).grid
    assert graphs == {p.name: p.read_bytes() for p in bundle.glob("*.onnx")}


def edited(tiny_bundle: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "edited"
    shutil.copytree(tiny_bundle, out)
    card = json.loads((out / "lesionloc.json").read_text())
    edit(card)
    (out / "lesionloc.json").write_text(json.dumps(card))
    return out


def test_a_grid_or_width_the_graphs_do_not_have_is_refused(tiny_bundle, tmp_path):
    def coarser(card: dict) -> None:  # a consistent stride-32 grid, but not the graph's
        size = card["preprocessing"]["image_size"]
        card["grid"].update(stride=32, shape=[size // 32, size // 32])

    with pytest.raises(BundleError, match="patch grid"):
        ModelBundle.load(edited(tiny_bundle, tmp_path, coarser))
    shutil.rmtree(tmp_path / "edited")
    with pytest.raises(BundleError, match="embed_dim"):
        ModelBundle.load(edited(tiny_bundle, tmp_path, lambda c: c.update(embed_dim=7)))


def test_our_card_cannot_state_another_sources_preprocessing(tiny_bundle, tmp_path):
    def crop(card: dict) -> None:
        card["preprocessing"].update(method="resize-crop", resize=512, intensity="minmax-uint8",
                                     interpolation="pil-bilinear")

    with pytest.raises(BundleError, match="'lesionloc' bundle takes preprocessing.method 'letterbox'"):
        ModelBundle.load(edited(tiny_bundle, tmp_path, crop))
    shutil.rmtree(tmp_path / "edited")
    with pytest.raises(BundleError, match="'afloc' bundle takes"):
        ModelBundle.load(edited(tiny_bundle, tmp_path, lambda c: c.update(architecture="afloc")))


def test_the_demo_card_is_version_2_and_describes_its_own_files():
    folder = REPO / "lesionloc_runtime/demo/bundle"
    card = json.loads((folder / "lesionloc.json").read_text())
    assert card["format_version"] == 2 and card["architecture"] == "lesionloc"
    assert card["grid"]["stride"] == 8  # the demo preset's stage-2 grid
    for name in ("image_encoder.onnx", "text_encoder.onnx", "tokenizer.json", "MODEL_CARD.md"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert card["files"][name]["sha256"] == digest, name
