"""The study page's files and the batch index without a browser: heatmap layers, the study
document's version 2 fields, what the page may show, and the index following what is done."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lesionloc_runtime import outputs
from lesionloc_runtime.cli import main
from lesionloc_runtime.heatmap import Heatmap
from lesionloc_runtime.imageio import Radiograph, read_image
from lesionloc_runtime.localizer import DEMO_EXAMPLES, Localizer
from lesionloc_runtime.outputs import OutputOptions, write_study
from lesionloc_runtime.render import _JET_RGB, window_to_uint8
from lesionloc_runtime.viewer import index as index_module
from lesionloc_runtime.viewer.index import BatchIndex, index_row, scan
from lesionloc_runtime.viewer.page import (
    LAYER_SIZE,
    LOSSLESS_SIZE,
    STATIC,
    layer_levels,
    script_json,
)


@pytest.fixture(scope="module")
def localizer() -> Localizer:
    return Localizer.load()


@pytest.fixture(scope="module")
def example(localizer):
    radiograph = read_image(DEMO_EXAMPLES / "example1.dcm")
    return radiograph, localizer.localize(radiograph, DEMO_EXAMPLES / "example1.txt")


def page_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="lesionloc-data">(.*?)</script>', html,
                      re.S)
    assert found, "no data element"
    return json.loads(found.group(1))


def test_layer_spans_the_image_and_peaks_at_the_heatmap_peak(example):
    _, result = example
    for sentence in result.grounded:
        levels, lo, hi = layer_levels(sentence.heatmap, 256, 256)
        assert levels.dtype == np.uint8 and levels.min() == 1 and levels.max() == 255
        values = sentence.heatmap.render(256, 256)
        assert (lo, hi) == (pytest.approx(values.min()), pytest.approx(values.max()))
        scale = result.width / 256  # layer pixel (col, row) covers [col, col + 1) * scale
        x, y, _ = sentence.peak
        # the peak's layer pixel is lit at the top of the scale (a flat top may tie elsewhere,
        # so the layer's first argmax is only required nearby)
        assert levels[int(y // scale), int(x // scale)] == 255
        row, col = np.unravel_index(int(np.argmax(levels)), levels.shape)
        assert abs((col + 0.5) * scale - x) <= 5 * scale and abs((row + 0.5) * scale - y) <= 5 * scale


def test_layer_marks_nodes_without_a_value_as_level_zero(example):
    _, result = example
    heat = result.grounded[0].heatmap
    grid = heat.grid.copy()
    grid[:, :5] = np.nan
    nan_heat = Heatmap(grid, heat.letterbox, heat.stride, heat.origin)
    levels, lo, hi = layer_levels(nan_heat, 200, 200)
    rendered = nan_heat.render(200, 200)
    assert np.array_equal(levels == 0, np.isnan(rendered)) and (levels == 0).any()
    assert levels[~np.isnan(rendered)].min() == 1 and np.isfinite([lo, hi]).all()
    x, _, value = nan_heat.peak()
    assert np.isfinite(value) and x > 5 * heat.stride  # never in the region without values
    everywhere = Heatmap(np.full_like(grid, np.nan), heat.letterbox, heat.stride, heat.origin)
    assert not layer_levels(everywhere, 20, 20)[0].any()


def test_script_json_cannot_end_its_element_and_has_no_nan():
    text = script_json({"t": "</script><!-- & >", "v": float("nan"), "w": [float("inf"), 1.5]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"t": "</script><!-- & >", "v": None, "w": [None, 1.5]}


def test_page_colours_are_the_jet_of_the_burned_in_overlays():
    html = (STATIC / "study.html").read_text()
    tables = [list(map(float, re.search(f'<feFunc{c} type="table" tableValues="([^"]+)"', html)
                       .group(1).split())) for c in "RGB"]
    for channel, table in enumerate(tables):
        level = np.linspace(0, 1, 256)
        page = np.interp(level, np.linspace(0, 1, len(table)), table) * 255
        assert np.abs(page - _JET_RGB[:, 0, channel]).max() <= 10, "RGB"[channel]


def test_default_outputs_are_the_page_its_radiograph_and_layers(tmp_path, example):
    radiograph, result = example
    write_study(result, radiograph, tmp_path)
    folder = tmp_path / result.study_id
    doc = json.loads((folder / "study.json").read_text())
    assert doc["schema_version"] == 2
    assert doc["radiograph_images"]["screen"] == doc["radiograph_images"]["full"] == {
        "file": "radiograph.png", "width": 1024, "height": 1024}
    assert doc["files"] == {"radiograph": "radiograph.png", "page": "study.html",
                            "study": "study.json"}
    for s in doc["sentences"]:
        assert ("layer" in s) == s["grounded"] and "overlay" not in s["files"]
        if s["grounded"]:
            layer = cv2.imread(str(folder / s["layer"]["file"]), cv2.IMREAD_UNCHANGED)
            assert layer.shape == (s["layer"]["height"], s["layer"]["width"]) == (256, 256)
            # the layer samples the refined grid between its nodes: its top is near the peak
            assert s["layer"]["min"] < s["peak"]["value"] <= s["layer"]["max"] + 0.01
    film = cv2.imread(str(folder / "radiograph.png"), cv2.IMREAD_UNCHANGED)
    assert film.shape == (1024, 1024) and film.dtype == np.uint8
    assert sorted(p.name for p in folder.iterdir()) == sorted(outputs.listed_files(doc))


def test_large_film_is_written_once_as_jpeg_at_full_resolution(tmp_path, localizer, example):
    pixels = cv2.resize(example[0].pixels, (1500, 1200))
    radiograph = Radiograph.from_array(pixels, "wide.png")
    result = localizer.localize(radiograph, DEMO_EXAMPLES / "example1.txt", study_id="wide")
    # an earlier version's second copy of the film, at screen size: a rerun removes it
    (tmp_path / "wide").mkdir()
    (tmp_path / "wide" / "radiograph_full.jpg").write_bytes(b"old")
    write_study(result, radiograph, tmp_path)
    folder = tmp_path / "wide"
    doc = json.loads((folder / "study.json").read_text())
    film = {"file": "radiograph.jpg", "width": 1500, "height": 1200}
    assert doc["radiograph_images"] == {"screen": film, "full": film}
    assert doc["files"]["radiograph"] == "radiograph.jpg" and "radiograph_full" not in doc["files"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(outputs.listed_files(doc))
    full = cv2.imread(str(folder / "radiograph.jpg"), cv2.IMREAD_GRAYSCALE)
    assert full.shape == (1200, 1500) and max(full.shape) > LOSSLESS_SIZE
    windowed = window_to_uint8(result.display, result.display_window)
    assert np.abs(full.astype(int) - windowed).mean() < 2  # the same film, the same window
    layers = [s["layer"] for s in doc["sentences"] if s["grounded"]]
    assert layers and all((x["width"], x["height"]) == (LAYER_SIZE, 205) for x in layers)


def test_page_names_the_patient_only_with_include_identifiers(tmp_path, example):
    radiograph, result = example
    for include in (False, True):
        write_study(result, radiograph, tmp_path / str(include),
                    OutputOptions(include_identifiers=include))
        html = (tmp_path / str(include) / result.study_id / "study.html").read_text()
        data = page_data(html)
        patient = str(radiograph.dicom.PatientID)  # the example's phantom id, e.g. p000008
        assert (f"Phantom^{patient}" in html) is include and (patient in html) is include
        assert ("identifiers" in data) is include
        assert "example1.dcm" not in html and "example1.txt" not in html  # no source paths
    result.identifiers = {}


def test_overlays_option_adds_the_burned_in_pictures(tmp_path, example):
    radiograph, result = example
    write_study(result, radiograph, tmp_path, OutputOptions(overlays=True))
    doc = json.loads((tmp_path / result.study_id / "study.json").read_text())
    assert doc["files"]["summary"] == "summary.png" and doc["files"]["page"] == "study.html"
    assert all(s["files"]["overlay"] == f"sentence_{s['index'] + 1:02d}.png"
               for s in doc["sentences"] if s["grounded"])


def test_study_of_schema_version_1_is_not_done(tmp_path, example):
    radiograph, result = example
    written = write_study(result, radiograph, tmp_path)
    assert outputs.is_done(tmp_path, result.study_id)
    doc = json.loads(written.read_text())
    written.write_text(json.dumps({**doc, "schema_version": 1}))
    assert not outputs.is_done(tmp_path, result.study_id)  # redone, so it gets its page


def test_index_lists_exactly_the_done_studies(tmp_path, example):
    radiograph, result = example
    for study_id in ("b", "a", "c"):
        result.study_id = study_id
        write_study(result, radiograph, tmp_path)
    (tmp_path / "c" / "radiograph.png").unlink()  # not done: a resumed batch redoes it
    (tmp_path / "notes").mkdir()
    rows = scan(tmp_path)
    assert list(rows) == ["a", "b"]
    assert rows["a"]["sentences"][2] == {"k": "finding", "s": round(result.sentences[2].score, 4),
                                         "t": result.sentences[2].text, "g": 1}
    index = BatchIndex(tmp_path)
    data = page_data(index.write().read_text())
    assert [s["id"] for s in data["studies"]] == ["a", "b"] and data["studies"][0]["demo"]


def test_batch_index_is_rewritten_as_studies_finish_then_rescanned(tmp_path, example, monkeypatch):
    radiograph, result = example
    index = BatchIndex(tmp_path)
    monkeypatch.setattr(index_module, "REWRITE_SECONDS", 0.0)
    monkeypatch.setattr(index_module, "REWRITE_SHARE", 0)
    for study_id in ("x", "y"):
        result.study_id = study_id
        write_study(result, radiograph, tmp_path)
        index.add(index_row(result.to_dict()))
        listed = [s["id"] for s in page_data((tmp_path / "index.html").read_text())["studies"]]
        assert listed[-1] == study_id
    shutil.rmtree(tmp_path / "x")  # gone from OUT: a rescan before the last write drops it
    index.rescan()
    assert [s["id"] for s in page_data(index.write().read_text())["studies"]] == ["y"]


def test_resumed_batch_index_lists_earlier_and_new_studies(tmp_path, tiny_bundle, phantom_set):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    rows = [json.loads(line) for line in phantom_set.read_text().splitlines()][:3]
    for row in rows[:2]:
        for key in ("image", "report"):
            shutil.copy(phantom_set.parent / row[key], source)
    args = [str(source), "--model", str(tiny_bundle), "--out", str(out), "-q"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert f"open {out / 'index.html'}" in first.stdout
    listed = [s["id"] for s in page_data((out / "index.html").read_text())["studies"]]
    assert listed == sorted(Path(r["image"]).stem for r in rows[:2])
    for key in ("image", "report"):
        shutil.copy(phantom_set.parent / rows[2][key], source)
    again = CliRunner().invoke(main, args)
    assert "1 studies done, 2 already done" in again.stdout
    listed = [s["id"] for s in page_data((out / "index.html").read_text())["studies"]]
    assert listed == sorted(Path(r["image"]).stem for r in rows)
    page = page_data((out / listed[0] / "study.html").read_text())
    assert page["index"] == "../index.html"
