"""The folder of image encoders compiled by OpenVINO (`openvino_cache`): a second process
imports what the first compiled and gets the same outputs; anything the compiled bytes depend
on changes the entry; a damaged entry is compiled again; a cache that cannot be written costs
nothing but a warning."""

from __future__ import annotations

import hashlib
import json
import logging
import os
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

from test_openvino_engine import _image_feeds

from lesionloc_runtime import openvino_cache
from lesionloc_runtime.bundle import ModelBundle
from lesionloc_runtime.errors import BundleError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.openvino_cache import CACHE_ENV, cache_dir, cpu_identity
from lesionloc_runtime.openvino_engine import OpenVinoEncoder

BIN = Path(sys.executable).parent


@pytest.fixture
def image_graph(tiny_bundle):
    bundle = ModelBundle.load(tiny_bundle)
    return bundle, bundle.file(bundle.image_encoder.file)


def _engine(image_graph, cache: Path | None, threads: int = 1, int8: bool = True):
    bundle, graph = image_graph
    return OpenVinoEncoder(graph, bundle.image_encoder, threads, int8=int8, cache=cache)


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _entry(folder: Path) -> tuple[Path, dict, bytes]:
    """The folder's one entry: its path, its card and the compiled bytes after it."""
    (path,) = folder.glob("*.compiled")
    head, _, blob = path.read_bytes().partition(b"\n")
    return path, json.loads(head), blob


def _rewrite(path: Path, card: dict, blob: bytes) -> None:
    path.write_bytes(json.dumps(card).encode() + b"\n" + blob)


def test_a_second_engine_imports_the_first_ones_compiled_graph(image_graph, phantom_set, tmp_path):
    cache = tmp_path / "cache"
    first = _engine(image_graph, cache)
    assert not first.cache_hit and len(_entries(cache)) == 1  # one file
    second = _engine(image_graph, cache)
    assert second.cache_hit and second._model is None  # the graph was not even read
    (feeds,) = _image_feeds(image_graph[0], phantom_set, 1)
    want, got = first.run(feeds), second.run(feeds)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert second.float_precision == first.float_precision
    assert second.input_shapes == first.input_shapes
    assert second.output_shapes == first.output_shapes
    compiled = second._compiled[1][0]
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    _, card, _ = _entry(cache)
    assert card["graph_sha256"] == image_graph[0].files[image_graph[0].image_encoder.file]
    assert card["batch"] == 1 and card["openvino"] == ov.get_version()


def test_another_batch_size_is_kept_beside_the_first(image_graph, phantom_set, tmp_path):
    cache = tmp_path / "cache"
    (feeds,) = _image_feeds(image_graph[0], phantom_set, 1)
    two = {"pixel_values": np.concatenate([feeds["pixel_values"]] * 2)}
    first = _engine(image_graph, cache)
    want = first.run(two)
    assert len(_entries(cache)) == 2
    second = _engine(image_graph, cache)
    got = second.run(two)  # imported: the graph is still not read
    assert second._model is None
    np.testing.assert_array_equal(got["patch_embeds"], want["patch_embeds"])


def test_what_the_compiled_graph_depends_on_makes_another_entry(image_graph, tmp_path,
                                                                  monkeypatch):
    cache = tmp_path / "cache"
    _engine(image_graph, cache)
    assert not _engine(image_graph, cache, threads=2).cache_hit  # compile options
    assert not _engine(image_graph, cache, int8=False).cache_hit  # float precision
    monkeypatch.setattr(openvino_cache, "cpu_identity", lambda: "Another CPU | avx2")
    assert not _engine(image_graph, cache).cache_hit
    assert len(_entries(cache)) == 4
    monkeypatch.undo()
    bundle, graph = image_graph
    other = tmp_path / "image_encoder.onnx"
    other.write_bytes(graph.read_bytes() + b"\0")  # another file, another digest
    with pytest.raises(BundleError):  # (OpenVINO's reader does not take the trailing byte)
        OpenVinoEncoder(other, bundle.image_encoder, 1, int8=True, cache=cache)
    assert _engine(image_graph, cache).cache_hit


def test_a_damaged_entry_is_compiled_again_and_replaced(image_graph, phantom_set, tmp_path,
                                                         caplog):
    cache = tmp_path / "cache"
    (feeds,) = _image_feeds(image_graph[0], phantom_set, 1)
    want = _engine(image_graph, cache).run(feeds)
    path, card, blob = _entry(cache)
    _rewrite(path, card, blob[:-100])  # cut short: not the bytes its card names
    with caplog.at_level(logging.WARNING):
        again = _engine(image_graph, cache)
    assert not again.cache_hit and "not the bytes its card names" in caplog.text
    np.testing.assert_array_equal(again.run(feeds)["patch_embeds"], want["patch_embeds"])
    assert _engine(image_graph, cache).cache_hit  # replaced by a whole one


def test_bytes_openvino_refuses_are_compiled_again(image_graph, tmp_path, caplog):
    cache = tmp_path / "cache"
    _engine(image_graph, cache)
    path, card, _ = _entry(cache)
    garbage = b"no compiled model" * 100  # and a card that names them: only OpenVINO can tell
    _rewrite(path, {**card, "blob_sha256": hashlib.sha256(garbage).hexdigest()}, garbage)
    with caplog.at_level(logging.WARNING):
        again = _engine(image_graph, cache)
    assert not again.cache_hit and "refused its compiled form" in caplog.text
    assert _engine(image_graph, cache).cache_hit


def test_a_hit_is_still_checked_against_the_bundle_card(image_graph, tmp_path):
    cache = tmp_path / "cache"
    _engine(image_graph, cache)
    path, card, blob = _entry(cache)
    card["ports"]["outputs"]["patch_embeds"][1][-1] += 1  # not what the bundle card declares
    _rewrite(path, card, blob)
    with pytest.raises(BundleError, match="patch_embeds"):
        _engine(image_graph, cache)


def test_a_cache_that_cannot_be_written_is_only_a_warning(image_graph, tmp_path, caplog):
    blocked = tmp_path / "a file"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING):
        engine = _engine(image_graph, blocked / "cache")
    assert engine._compiled and "cannot keep the compiled image encoder" in caplog.text
    assert CACHE_ENV in caplog.text


def test_no_cpu_identity_no_cache(image_graph, tmp_path, monkeypatch):
    monkeypatch.setattr(openvino_cache, "cpu_identity", lambda: None)
    _engine(image_graph, tmp_path / "cache")
    assert _entries(tmp_path / "cache") == []


def test_where_the_cache_lives():
    assert cache_dir({CACHE_ENV: "/srv/ov"}) == Path("/srv/ov")
    for off in ("off", "OFF", "", "0", "none"):
        assert cache_dir({CACHE_ENV: off}) is None
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/lesionloc/openvino")
    assert cache_dir({}) == Path.home() / ".cache" / "lesionloc" / "openvino"


def test_no_home_directory_no_cache(monkeypatch):
    def homeless():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", homeless)
    assert cache_dir({}) is None


def test_a_graph_that_cannot_be_read_is_still_a_bundle_error_with_a_cache(image_graph, tmp_path):
    bundle, _ = image_graph
    with pytest.raises(BundleError, match="OpenVINO cannot read this graph"):
        OpenVinoEncoder(tmp_path / "missing.onnx", bundle.image_encoder, 1, cache=tmp_path / "c")


def test_cpu_identity_names_the_model_and_every_flag(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nmodel name : Some Xeon\nflags : sse avx2 amx_int8\n\n"
                    "processor : 1\nmodel name : Some Xeon\nflags : sse avx2 amx_int8\n")
    assert cpu_identity(info) == "Some Xeon | amx_int8 avx2 sse"
    info.write_text("processor : 0\n")
    assert cpu_identity(info) is None
    assert cpu_identity(tmp_path / "missing") is None


def test_the_localizer_and_the_cli_use_the_folder_the_environment_names(
        tiny_bundle, phantom_study, tmp_path, monkeypatch):
    image, report, _ = phantom_study
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    first = Localizer.load(tiny_bundle, providers=("openvino",), threads=1)
    assert not first.image_encoder.cache_hit and len(_entries(cache)) == 1
    second = Localizer.load(tiny_bundle, providers=("openvino",), threads=1)
    assert second.image_encoder.cache_hit
    got, want = (loc.localize(read_image(image), report) for loc in (second, first))
    assert [s.score for s in got.sentences] == [s.score for s in want.sentences]
    monkeypatch.setenv(CACHE_ENV, "off")
    assert not Localizer.load(tiny_bundle, providers=("openvino",), threads=1).image_encoder.cache_hit
    assert len(_entries(cache)) == 1
    # a process of its own finds the entry (the CLI with the folder in its environment): it
    # is read, not written again
    entry, _, _ = _entry(cache)
    inode = entry.stat().st_ino
    proc = subprocess.run(
        [str(BIN / "lesionloc-run"), str(image), "--report", str(report), "--model",
         str(tiny_bundle), "--out", str(tmp_path / "out"), "--providers", "openvino",
         "--threads", "1"],
        capture_output=True, text=True, env={**os.environ, CACHE_ENV: str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert len(_entries(cache)) == 1 and entry.stat().st_ino == inode


def test_the_folder_keeps_the_entries_used_last(image_graph, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(openvino_cache, "MAX_ENTRIES", 2)
    one = _engine(image_graph, cache, threads=1)._cache.path(1)
    two = _engine(image_graph, cache, threads=2)._cache.path(1)
    os.utime(one, (1_000_000, 1_000_000))  # used long ago, and before the other
    os.utime(two, (2_000_000, 2_000_000))
    old = {one.name, two.name}
    assert _engine(image_graph, cache, threads=1).cache_hit  # used now
    _engine(image_graph, cache, threads=3)  # a third entry: the one not used goes
    assert len(_entries(cache)) == 2
    assert _engine(image_graph, cache, threads=1).cache_hit
    assert not _engine(image_graph, cache, threads=2).cache_hit
    assert old & set(_entries(cache))
