"""The runtime's localization: heatmaps land on the right original pixels (square, portrait,
landscape), the API returns typed results and a versioned JSON document, and batch mode
survives bad studies, kills and reruns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lesionloc_runtime.errors import ReportError
from lesionloc_runtime.heatmap import Heatmap, HeatmapConfig
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.preprocess import Letterbox
from lesionloc_runtime.results import STUDY_SCHEMA, STUDY_SCHEMA_VERSION
from lesionloc_runtime.text import parse_report

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("width,height", [(2048, 2048), (1500, 2500), (2500, 1800), (640, 480)])
@pytest.mark.parametrize("smoothing", [0.0, 1.0])
@pytest.mark.parametrize("origin", [0.5, 8.0])
def test_single_hot_patch_maps_onto_its_region_of_the_original(width, height, smoothing, origin):
    size, stride = 448, 16
    box = Letterbox.fit(width, height, size)
    grid = np.zeros((size // stride, size // stride), np.float32)
    # a cell near the top-left of the image content, off the diagonal (catches transposes)
    row = (box.pad_y + box.new_height // 5) // stride
    col = (box.pad_x + box.new_width * 2 // 3) // stride
    grid[row, col] = 1.0
    if smoothing:
        import cv2

        grid = cv2.GaussianBlur(grid, (0, 0), smoothing)
    heat = Heatmap(grid, box, stride, origin)
    full = heat.render()
    assert full.shape == (height, width)
    want_x, want_y = box.to_original(origin + col * stride, origin + row * stride)
    y, x = np.unravel_index(int(np.argmax(full)), full.shape)
    tolerance = 0.5 / box.scale_x + 1  # half an original pixel per model pixel, plus rounding
    assert abs(x + 0.5 - want_x) <= tolerance and abs(y + 0.5 - want_y) <= tolerance
    px, py, value = heat.peak()
    assert abs(px - want_x) <= 1 and abs(py - want_y) <= 1 and value == pytest.approx(grid.max())
    # the hot region is where the cell is: its original-pixel footprint holds the mass
    half = stride / box.scale_x
    region = full[max(0, int(want_y - half)):int(want_y + half),
                  max(0, int(want_x - half)):int(want_x + half)]
    assert region.max() == pytest.approx(full.max())
    boxes = heat.boxes(HeatmapConfig(box_threshold=0.5, min_box_fraction=0.0))
    assert boxes and boxes[0].x <= want_x <= boxes[0].x + boxes[0].width
    assert boxes[0].y <= want_y <= boxes[0].y + boxes[0].height


def test_peak_lies_between_cell_centres_where_the_neighbours_put_it():
    from lesionloc_runtime.heatmap import REFINE

    size, stride, origin = 320, 16, 0.5
    box = Letterbox.fit(2048, 2048, size)
    grid = np.zeros((20, 20), np.float32)
    grid[8, 5], grid[8, 6] = 1.0, 0.8  # a lesion between two cells, nearer the first
    heat = Heatmap(grid, box, stride, origin)
    assert np.array_equal(heat.fine[::REFINE, ::REFINE], grid)  # the cells keep their values
    px, py, value = heat.peak()
    left, y8 = box.to_original(origin + 5 * stride, origin + 8 * stride)
    right, _ = box.to_original(origin + 6 * stride, origin + 8 * stride)
    assert left < px < (left + right) / 2 and py == pytest.approx(y8)
    assert value > 1.0 - 1e-6
    full = heat.render()
    y, x = np.unravel_index(int(np.argmax(full)), full.shape)
    assert abs(x + 0.5 - px) <= (right - left) / REFINE and abs(y + 0.5 - py) <= (right - left) / REFINE
    # equal neighbours: the peak is halfway
    grid[8, 6] = 1.0
    px, _, _ = Heatmap(grid, box, stride, origin).peak()
    assert px == pytest.approx((left + right) / 2, abs=(right - left) / REFINE)


def test_the_refined_grid_is_opencvs_bicubic_interpolant():
    """The refinement's two products give OpenCV's bicubic warp of the grid (float rounding
    apart) on grids of any shape, the cells' own values exactly; a grid with a NaN goes
    through the warp itself, where the NaN spoils only the nodes around it."""
    from lesionloc_runtime.heatmap import REFINE, _cubic_warp

    box = Letterbox.fit(2048, 1536, 320)
    rng = np.random.default_rng(11)
    for shape in ((20, 15), (2, 2), (2, 9), (7, 3), (28, 28)):
        grid = rng.standard_normal(shape).astype(np.float32)
        fine = Heatmap(grid, box, 16, 0.5).fine
        want = _cubic_warp(grid, REFINE)
        assert fine.shape == want.shape == ((shape[0] - 1) * REFINE + 1, (shape[1] - 1) * REFINE + 1)
        assert fine.dtype == np.float32
        np.testing.assert_allclose(fine, want, rtol=0, atol=2e-6)
        assert np.array_equal(fine[::REFINE, ::REFINE], grid)
    grid = rng.standard_normal((12, 12)).astype(np.float32)
    grid[2, 3] = np.nan
    fine = Heatmap(grid, box, 16, 0.5).fine
    assert np.isnan(fine[2 * REFINE, 3 * REFINE]) and np.isfinite(fine[10 * REFINE:, :]).all()
    assert np.isfinite(fine[:, 8 * REFINE:]).all()


class _FakeImageEncoder:
    """A patch grid with one patch pointing along e0 and the rest along e1."""

    def __init__(self, grid: int, row: int, col: int, dim: int = 8) -> None:
        self.grid, self.row, self.col, self.dim = grid, row, col, dim

    def run(self, feeds):
        patches = np.zeros((1, self.grid, self.grid, self.dim), np.float32)
        patches[..., 1] = 1.0
        patches[0, self.row, self.col] = 0.0
        patches[0, self.row, self.col, 0] = 1.0
        return {"image_embeds": np.eye(1, self.dim, dtype=np.float32),
                "patch_embeds": patches}


class _FakeTextEncoder:
    """Sentences mentioning 'opacity' point along e0 (the hot patch), others along e2."""

    def __init__(self, tokenizer, dim: int = 8) -> None:
        self.tokenizer, self.dim = tokenizer, dim
        self.hot = tokenizer.tokenizer.token_to_id("opacity")

    def run(self, feeds):
        ids = feeds["input_ids"]
        if "window_pooling" in feeds:  # a packed graph's card: one output row per window
            ids = [ids.ravel()[weights > 0] for weights in feeds["window_pooling"]]
        out = np.zeros((len(ids), self.dim), np.float32)
        for k, row in enumerate(ids):
            out[k, 0 if self.hot in row else 2] = 1.0
        return {"sentence_embeds": out, "global_embeds": out}


def test_localizer_puts_the_peak_where_the_matching_patch_is(tiny_bundle):
    real = Localizer.load(tiny_bundle)
    bundle = real.bundle
    grid = bundle.preprocessing.image_size // bundle.grid_stride
    row, col = 2, grid - 3
    loc = Localizer(bundle, _FakeImageEncoder(grid, row, col), _FakeTextEncoder(real.tokenizer),
                    real.tokenizer)
    image = Radiograph.from_array(np.random.default_rng(0).random((300, 500)).astype(np.float32))
    report = parse_report("FINDINGS: There is a right upper lobe opacity. No pneumothorax.")
    result = loc.localize(image, report)
    finding, negated = result.sentences
    assert finding.kind == "finding" and finding.grounded and not negated.grounded
    box = result.letterbox
    want = box.to_original(bundle.grid_origin + col * bundle.grid_stride,
                           bundle.grid_origin + row * bundle.grid_stride)
    assert finding.peak[0] == pytest.approx(want[0], abs=1)
    assert finding.peak[1] == pytest.approx(want[1], abs=1)
    # r = cos(s, sum a_k P_k) with a = softmax(s.P / tau): by hand for one hot patch among K
    k, tau = grid * grid, bundle.heatmap.attention_temperature
    w = np.exp(1 / tau) / (np.exp(1 / tau) + k - 1)
    assert finding.score == pytest.approx(w / np.hypot(w, 1 - w), rel=1e-4)
    assert negated.score == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_sentences_of_different_lengths_embed_as_if_each_ran_alone(layout, tiny_bundle_factory):
    # padded: the text pass groups sentences by length and trims their padding; packed: the
    # sentences share one row. Every embedding must be what that sentence gives alone, and a
    # short report costs one run (padded: two, the long sentence apart). fp32: int8's
    # dynamic activation scales depend on the whole batch, so there a sentence's embedding
    # varies slightly with its neighbours in any grouping. No sentence cache: every call runs
    localizer = Localizer.load(tiny_bundle_factory("none", layout), sentence_cache=0)
    runs = []
    real_run = localizer.text_encoder.run
    localizer.text_encoder.run = lambda feeds: runs.append(feeds["input_ids"].shape) or real_run(feeds)
    texts = ["Small right pleural effusion."] * 3 + ["No pneumothorax."] * 3 + [
        "There is a large area of consolidation in the right lower zone with air bronchograms "
        "and a small associated effusion, and the left lung shows a nodule in its mid zone."]
    local, glob = localizer.encode_texts(texts)
    if layout == "padded":
        assert len(runs) == 2 and runs[0][1] < runs[1][1]  # the long sentence ran on its own
    else:
        assert len(runs) == 1 and runs[0][0] == 1  # three distinct sentences in one row
    runs.clear()
    for text, want_local, want_glob in zip(texts, local, glob, strict=True):
        alone_local, alone_glob = localizer.encode_texts([text])
        np.testing.assert_allclose(alone_local[0], want_local, atol=2e-5)
        np.testing.assert_allclose(alone_glob[0], want_glob, atol=2e-5)
    before = len(runs)  # a sentence alone may take two runs: over the window, it is two windows
    localizer.encode_texts(texts[:6])
    assert len(runs) == before + 1  # repeats encoded once, the two lengths in one run


def test_localize_returns_typed_results_and_a_versioned_document(tiny_bundle, phantom_study):
    image, report, row = phantom_study
    result = Localizer.load(tiny_bundle).localize(image, report, queries=["right basal opacity"])
    doc = result.to_dict()
    assert doc["schema"] == STUDY_SCHEMA and doc["schema_version"] == STUDY_SCHEMA_VERSION
    assert doc["input"]["width"] == row["width"] and doc["model"]["quantization"] == "int8"
    assert doc["sentences"][-1]["section"] == "query" and doc["sentences"][-1]["grounded"]
    texts = [s["text"] for s in doc["sentences"] if s["section"] != "query"]
    assert texts == [" ".join(s["text"].split()) for s in row["sentences"]]
    for sentence in doc["sentences"]:
        assert sentence["kind"] in ("finding", "negated", "normal")
        if sentence["grounded"]:
            assert 0 <= sentence["peak"]["x"] < row["width"] and 0 <= sentence["peak"]["y"] < row["height"]
            for b in sentence["boxes"]:
                x, y, w, h = b["box"]
                assert 0 <= x and 0 <= y and x + w <= row["width"] + 0.5 and y + h <= row["height"] + 0.5
    assert set(doc["timings_ms"]) >= {"read", "preprocess", "image_encoder", "text_encoder", "heatmaps"}
    json.dumps(doc)  # serializable


def test_report_text_passed_where_a_path_goes_is_a_clear_error(tiny_bundle, phantom_study):
    image, report, _ = phantom_study
    localizer = Localizer.load(tiny_bundle)
    with pytest.raises(ReportError, match="parse_report"):
        localizer.localize(image, Path(report).read_text())
    parsed = localizer.localize(image, parse_report(Path(report).read_text()))
    from_file = localizer.localize(image, report)
    assert [x.text for x in parsed.sentences] == [x.text for x in from_file.sentences]


def test_save_raw_writes_float32_heatmaps_on_the_original_grid(tmp_path, tiny_bundle, phantom_study):
    image, report, row = phantom_study
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(image), "--report", str(report),
                           "--model", str(tiny_bundle), "--out", str(tmp_path), "--save-raw", "-q",
                           "--all-sentences"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / image.stem / "study.json").read_text())
    assert all(s["grounded"] for s in doc["sentences"])  # --all-sentences
    for sentence in doc["sentences"]:
        raw = np.load(tmp_path / image.stem / sentence["files"]["heatmap"])
        assert raw.dtype == np.float32 and raw.shape == (row["height"], row["width"])
    # nothing names the patient
    assert "PatientName" not in json.dumps(doc) and "identifiers" not in doc


def _batch_dir(tmp_path: Path, phantom_set: Path, n: int = 5) -> Path:
    source = tmp_path / "studies"
    source.mkdir()
    rows = [json.loads(line) for line in phantom_set.read_text().splitlines()][:n]
    for row in rows:
        shutil.copy(phantom_set.parent / row["image"], source)
        shutil.copy(phantom_set.parent / row["report"], source)
    (source / "broken.dcm").write_bytes(b"\x00" * 200)
    (source / "broken.txt").write_text("FINDINGS: Right lower lobe opacity.")
    return source


def _add_bad_studies(source: Path) -> list[str]:
    """Studies that must each fail alone: truncated DICOM, binary and 5 MB reports."""
    good = sorted(p for p in source.glob("*.dcm") if p.stem != "broken")[0]
    (source / "cut.dcm").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (source / "cut.txt").write_text("FINDINGS: Right lower lobe opacity.")
    shutil.copy(good, source / "binrep.dcm")
    (source / "binrep.txt").write_bytes(bytes(range(256)) * 4)
    shutil.copy(good, source / "hugerep.dcm")
    (source / "hugerep.txt").write_text("FINDINGS: Right lower lobe opacity. " * 150_000)
    return ["binrep", "cut", "hugerep"]


def test_batch_reports_bad_studies_finishes_the_others_and_resumes(tmp_path, tiny_bundle, phantom_set):
    source = _batch_dir(tmp_path, phantom_set)
    bad = sorted(["broken", *_add_bad_studies(source)])
    out = tmp_path / "out"
    cmd = [str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle), "--out", str(out), "-q"]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 1, first.stderr  # some studies failed
    assert f"5 studies done, 0 already done, {len(bad)} failed" in first.stdout
    assert "Traceback" not in first.stderr
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["done"] == 5 and sorted(f["study_id"] for f in summary["failed"]) == bad
    reasons = {f["study_id"]: f["error"] for f in summary["failed"]}
    assert "truncated" in reasons["cut"] and "binary" in reasons["binrep"]
    assert "exceeds" in reasons["hugerep"] or "MB" in reasons["hugerep"]
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert f"0 studies done, 5 already done, {len(bad)} failed" in again.stdout


def test_killed_batch_loses_nothing_and_redoes_only_unfinished(tmp_path, tiny_bundle, phantom_set):
    source = _batch_dir(tmp_path, phantom_set)
    (source / "broken.dcm").unlink()
    (source / "broken.txt").unlink()
    out = tmp_path / "out"
    cmd = [str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle), "--out", str(out), "-q"]
    env = dict(os.environ, LESIONLOC_FAULT_KILL_AFTER_STUDIES="2")
    killed = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert killed.returncode == -9
    done = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/study.json")}
    assert 2 <= len(done) < 5
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{5 - len(done)} studies done, {len(done)} already done, 0 failed" in rerun.stdout
    for study, mtime in done.items():
        assert (out / study / "study.json").stat().st_mtime_ns == mtime  # not redone


@pytest.mark.parametrize(("workers", "signal_name"), [("1", "TERM"), ("2", "TERM"), ("2", "HUP")])
def test_a_terminated_batch_stops_cleanly_and_resumes(tmp_path, tiny_bundle, phantom_set, workers,
                                                      signal_name):
    """SIGTERM (a scheduler stopping the job) after the second study: the batch stops as on
    Ctrl-C, "terminated" and exit 143, no traceback, every study it wrote whole, and the
    summary and the index say what this run did (before, both were left as an earlier run
    had written them, or not written at all)."""
    source = _batch_dir(tmp_path, phantom_set)
    (source / "broken.dcm").unlink()
    (source / "broken.txt").unlink()
    out = tmp_path / "out"
    cmd = [str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle), "--out", str(out),
           "--workers", workers, "-q"]
    env = dict(os.environ, LESIONLOC_FAULT_KILL_AFTER_STUDIES=f"2:{signal_name}")
    stopped = subprocess.run(cmd, capture_output=True, text=True, env=env)
    said, code = {"TERM": ("terminated", 143), "HUP": ("hung up", 129)}[signal_name]
    assert stopped.returncode == code, stopped.stderr
    assert stopped.stderr.endswith(f"{said}\n") and "Traceback" not in stopped.stderr
    assert "leaked" not in stopped.stderr  # the pool and the sentence store were shut down
    done = list(out.glob("*/study.json"))
    assert 2 <= len(done) <= 5
    for doc in done:
        json.loads(doc.read_text())
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["stopped"] == (f"terminated (SIG{signal_name}); stopped the batch, "
                                  f"{5 - len(done)} of 5 studies not done")
    assert summary["done"] == len(done) and summary["total"] == 5
    index = (out / "index.html").read_text()
    assert all(f'"id":"{doc.parent.name}"' in index for doc in done)
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{5 - len(done)} studies done, {len(done)} already done, 0 failed" in rerun.stdout
    assert json.loads((out / "batch_summary.json").read_text())["stopped"] is None


def test_a_batch_under_nohup_goes_on_after_a_hangup(tmp_path, tiny_bundle, phantom_set):
    """`nohup lesionloc-run ...`: SIGHUP ignored by the parent stays ignored."""
    import signal

    source = _batch_dir(tmp_path, phantom_set)
    (source / "broken.dcm").unlink()
    (source / "broken.txt").unlink()
    cmd = [str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle), "--out",
           str(tmp_path / "out"), "-q"]
    env = dict(os.environ, LESIONLOC_FAULT_KILL_AFTER_STUDIES="2:HUP")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert done.returncode == 0, done.stderr
    assert "5 studies done" in done.stdout


def test_a_second_run_of_the_same_batch_is_refused_while_the_first_writes(tmp_path, tiny_bundle,
                                                                          phantom_set):
    """Two runs of one batch into one OUT would each remove the other's temporary files: the
    second is refused at once, naming the first; a shard of the batch still runs beside it."""
    from lesionloc_runtime.batch_lock import batch_lock

    source = _batch_dir(tmp_path, phantom_set, n=2)
    (source / "broken.dcm").unlink()
    out = tmp_path / "out"
    cmd = [str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle), "--out", str(out),
           "-q"]
    with batch_lock(out, "batch_summary.json"):  # the first run, here in the test's process
        second = subprocess.run(cmd, capture_output=True, text=True)
        shard = subprocess.run([*cmd, "--shard", "0/2"], capture_output=True, text=True)
    assert second.returncode == 10, second.stderr  # OutputError
    assert f"is being written by another run of this batch (pid {os.getpid()} on " in \
        second.stderr and "Traceback" not in second.stderr
    assert shard.returncode == 0, shard.stderr
    assert len(list(out.glob("*/study.json"))) == 1  # the shard's study
    after = subprocess.run(cmd, capture_output=True, text=True)  # the first has ended
    assert after.returncode == 0, after.stderr
    assert "1 studies done, 1 already done, 0 failed" in after.stdout


def _descendants(pid: int) -> set[int]:
    """The processes `pid` started (and theirs), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:  # the task ended meanwhile
                continue
            todo += children - found
            found |= children
    return found


def _running(pid: int) -> bool:
    try:  # a zombie waits only for its reaper: it holds no memory and runs nothing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_a_killed_batch_leaves_no_worker_or_store_process(tmp_path, tiny_bundle, phantom_set):
    """kill -9 of lesionloc-run --workers 2 (here after its first study) must not leave the
    workers, each holding a model, or the shared sentence store waiting for work forever."""
    import time

    source = _batch_dir(tmp_path, phantom_set)
    env = dict(os.environ, LESIONLOC_FAULT_KILL_AFTER_STUDIES="1")
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:  # a file: a pipe would stay open while an orphan holds it
        proc = subprocess.Popen([str(BIN / "lesionloc-run"), str(source), "--model",
                                 str(tiny_bundle), "--out", str(tmp_path / "out"),
                                 "--workers", "2", "-q"],
                                env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        started: set[int] = set()
        while proc.poll() is None:  # every process the batch starts, until it is killed
            started |= _descendants(proc.pid)
    assert proc.returncode == -9, log.read_text()
    assert len(started) >= 3, started  # a worker, the store and the resource tracker
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel signals them at once; they may take a moment to go
    assert not [pid for pid in started if _running(pid)]


def test_shards_split_a_batch_without_overlap(tmp_path, tiny_bundle, phantom_set):
    source = _batch_dir(tmp_path, phantom_set, n=4)
    (source / "broken.dcm").unlink()
    seen = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        proc = subprocess.run([str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle),
                               "--out", str(out), "--shard", f"{i}/2", "-q"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        seen.append({p.parent.name for p in out.glob("*/study.json")})
        assert (out / f"batch_summary.shard-{i}-of-2.json").is_file()
    assert seen[0].isdisjoint(seen[1]) and len(seen[0] | seen[1]) == 4


@pytest.mark.slow
def test_two_workers_give_the_same_results_as_one(tmp_path, tiny_bundle, phantom_set):
    source = _batch_dir(tmp_path, phantom_set, n=4)
    (source / "broken.dcm").unlink()
    docs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        # no sentence cache: with it, a sentence's int8 embedding is the one from the run
        # (the study) that first met it, which depends on how studies fall to workers
        proc = subprocess.run([str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle),
                               "--out", str(out), "--workers", str(workers), "-q",
                               "--sentence-cache", "0"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        docs.append({p.parent.name: [s["score"] for s in json.loads(p.read_text())["sentences"]]
                     for p in out.glob("*/study.json")})
    assert docs[0].keys() == docs[1].keys()
    for key in docs[0]:
        assert docs[0][key] == pytest.approx(docs[1][key], abs=2e-4)
    # with the cache the two workers share what they encode: each text is encoded or found
    plain = json.loads((tmp_path / "w2" / "batch_summary.json").read_text())
    assert plain["sentences_encoded"] > 0 and plain["sentences_from_cache"] == 0
    out = tmp_path / "cached"
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle),
                           "--out", str(out), "--workers", "2", "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cached = json.loads((out / "batch_summary.json").read_text())
    assert cached["sentences_from_cache"] > 0
    assert (cached["sentences_encoded"] + cached["sentences_from_cache"]
            == plain["sentences_encoded"])


def test_bad_shard_spec_is_a_one_line_error(tmp_path, tiny_bundle, phantom_set):
    source = _batch_dir(tmp_path, phantom_set, n=1)
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(source), "--model", str(tiny_bundle),
                           "--shard", "3/2"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --shard")


def test_demo_notice_is_in_every_output_of_a_demo_bundle(tmp_path, tiny_bundle, phantom_study):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "lesionloc.json").read_text())
    manifest["demo"] = True
    (bundle / "lesionloc.json").write_text(json.dumps(manifest))
    image, report, _ = phantom_study
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(image), "--report", str(report),
                           "--model", str(bundle), "--out", str(tmp_path / "out"), "--overlays"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "DEMO MODEL" in proc.stdout
    folder = tmp_path / "out" / image.stem
    doc = json.loads((folder / "study.json").read_text())
    assert doc["notice"].startswith("DEMO MODEL") and doc["model"]["demo"] is True
    assert doc["notice"] in (folder / "study.html").read_text()  # the browser test sees it shown
    import cv2

    # the burned-in pictures (not the page's radiograph and heatmap layers, which are data)
    pictures = [*folder.glob("sentence_[0-9][0-9].png"), folder / "summary.png"]
    assert len(pictures) == 1 + sum(s["grounded"] for s in doc["sentences"])
    for picture in pictures:
        bgr = cv2.imread(str(picture))
        notice_ink = (bgr[..., 2] > 200) & (bgr[..., 1] > 140) & (bgr[..., 1] < 215) & (bgr[..., 0] < 110)
        assert notice_ink.sum() > 200, f"{picture.name} carries no notice text"


@pytest.mark.parametrize("source", ["dcm", "png"])
def test_dicom_out_writes_sr_and_sc_that_read_back_like_the_json(tmp_path, tiny_bundle, phantom_study,
                                                                  source):
    from lesionloc_runtime.dicom_out.structured_report import read_back_sr

    image, report, row = phantom_study
    if source == "png":
        image = image.with_suffix(".png")
    out = tmp_path / "out"
    args = [str(BIN / "lesionloc-run"), str(image), "--report", str(report), "--model", str(tiny_bundle),
            "--out", str(out), "--dicom-out", "-q"]
    if source == "png":
        args += ["--patient-id", "SYN001", "--accession", "ACC9"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    study = out / image.stem
    doc = json.loads((study / "study.json").read_text())
    sr = study / doc["files"]["dicom_sr"]
    assert (study / doc["files"]["dicom_sc"]).is_file()
    back = {item["text"]: item for item in read_back_sr(sr)}
    for sentence in doc["sentences"]:
        item = back[sentence["text"]]
        assert item["kind"] == sentence["kind"]
        assert item["score"] == pytest.approx(sentence["score"], abs=1e-4)
    import pydicom

    sc = pydicom.dcmread(study / doc["files"]["dicom_sc"])
    if source == "png":
        assert sc.PatientID == "SYN001" and sc.AccessionNumber == "ACC9"
    else:
        src = pydicom.dcmread(image)
        assert sc.StudyInstanceUID == src.StudyInstanceUID and sc.PatientID == src.PatientID
        assert sc.SeriesInstanceUID != src.SeriesInstanceUID


def test_heatmap_blend_colours_the_peak_and_leaves_cold_pixels_alone():
    import cv2

    from lesionloc_runtime.render import _blend_heatmap

    base = np.full((40, 60), 100, np.uint8)
    heat = np.zeros((40, 60), np.float32)
    heat[30, 50] = 2.0  # the peak; everything else is the minimum
    out = _blend_heatmap(base, heat, alpha=0.55)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    hot = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_JET)[0, 0, ::-1]  # RGB
    expected = np.round(100 * 0.45 + hot.astype(float) * 0.55)
    assert np.abs(out[30, 50].astype(float) - expected).max() <= 1
    cold = np.ones((40, 60), bool)
    cold[30, 50] = False
    assert (out[cold] == 100).all()


def test_heatmap_blend_table_equals_the_per_pixel_formula_within_one_level():
    """grey * (1 - w) + jet(heat) * w, w = 0.55 * heat^1.5 on the min-max scaled heat, computed
    per pixel in float64; the table lookup quantizes the heat to 256 levels first."""
    import cv2

    from lesionloc_runtime.render import _blend_heatmap

    rng = np.random.default_rng(7)
    grey = rng.integers(0, 256, (97, 131), dtype=np.uint8)
    heat = cv2.GaussianBlur(rng.normal(size=(97, 131)).astype(np.float32), (0, 0), 5) * 3 - 1
    out = _blend_heatmap(grey, heat, alpha=0.55)
    norm = (heat.astype(np.float64) - heat.min()) / (heat.max() - heat.min())
    jet = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]
    colour = jet[np.rint(norm * 255).astype(int)].astype(np.float64)
    weight = (0.55 * norm**1.5)[..., None]
    expected = grey[..., None] * (1 - weight) + colour * weight
    assert np.abs(out - expected).max() <= 1.0
    assert np.abs(out - expected).mean() < 0.3
    flat = _blend_heatmap(grey, np.full(grey.shape, 0.3, np.float32))
    assert (flat == grey[..., None]).all()  # no contrast in the heatmap: the image unchanged


@pytest.mark.parametrize("shape", [(792, 640, 3), (1, 1, 3), (5, 7, 3), (33, 17), (1, 9)])
def test_png_encoding_round_trips_exactly_through_two_decoders(shape):
    import io

    import cv2
    from PIL import Image

    from lesionloc_runtime.render import encode_png

    picture = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    picture[: shape[0] // 2] = 40  # runs as well as noise, so rows repeat and "up" is exercised
    data = encode_png(picture)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if picture.ndim == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    assert np.array_equal(decoded, picture)
    image = Image.open(io.BytesIO(data))
    image.load()  # Pillow checks every chunk's CRC
    assert image.mode == ("RGB" if picture.ndim == 3 else "L")
    assert np.array_equal(np.asarray(image), picture)


@pytest.mark.parametrize("picture", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8),
                                     np.zeros((0, 4, 3), np.uint8)])
def test_png_encoding_refuses_what_it_cannot_write(picture):
    from lesionloc_runtime.render import encode_png

    with pytest.raises(ValueError, match="8-bit grey or RGB"):
        encode_png(picture)


def test_cuda_asked_for_without_it_warns_once_falls_back_and_says_so(tmp_path, tiny_bundle, phantom_study):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA: the fallback is not what runs here")
    image, report, _ = phantom_study
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(image), "--report", str(report),
                           "--model", str(tiny_bundle), "--out", str(tmp_path / "out"),
                           "--providers", "cuda"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "CUDAExecutionProvider" in line]
    # two sessions (image and text) are opened: one warning says it
    assert len(warnings) == 1 and warnings[0].startswith("warning:"), proc.stderr
    doc = json.loads((tmp_path / "out" / image.stem / "study.json").read_text())
    assert doc["model"]["execution_providers"] == ["CPUExecutionProvider"]


def test_unknown_execution_provider_is_a_one_line_usage_error(tmp_path, tiny_bundle, phantom_study):
    image, report, _ = phantom_study
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(image), "--report", str(report),
                           "--model", str(tiny_bundle), "--providers", "tpu"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("error:") and "tpu" in proc.stderr


@pytest.mark.parametrize(("count", "per_row"), [(5, 3), (4, 4), (7, 4), (9, 3)])
def test_summary_figure_places_each_tile_in_its_cell(tiny_bundle, phantom_study, count, per_row):
    """At most four per row, rows as even as they can be (5 tiles are 3 + 2, not 4 + 1)."""
    from lesionloc_runtime.render import sentence_overlay, summary_figure, summary_tile

    image, _, _ = phantom_study
    queries = ["right basal opacity", "left apical pneumothorax", "cardiomegaly",
               "left effusion", "right upper lobe mass", "left lower lobe nodule",
               "right pleural effusion", "hilar mass", "left basal atelectasis"][:count]
    result = Localizer.load(tiny_bundle).localize(image, queries=queries)
    overlays = [sentence_overlay(result, s) for s in result.grounded]
    tiles = [summary_tile(o) for o in overlays]
    figure = summary_figure(result, overlays=tiles)
    np.testing.assert_array_equal(figure, summary_figure(result, overlays=overlays))
    assert len(tiles) == count
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // per_row)
    top = figure.shape[0] - rows * height
    assert figure.shape[1] == per_row * width and top > 0  # the header above the grid
    for k, tile in enumerate(tiles):
        y, x = top + (k // per_row) * height, (k % per_row) * width
        np.testing.assert_array_equal(figure[y:y + tile.shape[0], x:x + tile.shape[1]], tile)
    if len(tiles) % per_row:
        last = top + (rows - 1) * height
        assert (figure[last:, len(tiles) % per_row * width:] == 24).all()  # empty cells


def test_pipelined_batch_writes_what_one_study_at_a_time_writes(tmp_path, tiny_bundle, phantom_set):
    """Reading ahead and writing behind the encoders changes nothing but the time: the same
    documents and files, the failures in their place, the outcomes in input order."""
    from lesionloc_runtime.batch import RunSettings, run_batch
    from lesionloc_runtime.batch_discovery import discover
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_runtime.outputs import OutputOptions

    source = _batch_dir(tmp_path, phantom_set, n=4)
    tasks = discover(source, None)
    localizer = Localizer.load(tiny_bundle, sentence_cache=0)
    docs = {}
    for pipeline in (True, False):
        out = tmp_path / f"pipeline-{pipeline}"
        settings = RunSettings(str(tiny_bundle), ("cpu",), None, (), "findings", out,
                               OutputOptions(index_link=True), pipeline=pipeline)
        summary = run_batch(tasks, settings, progress=False, localizer=localizer)
        assert summary.done == 4 and [f["study_id"] for f in summary.failed] == ["broken"]
        docs[pipeline] = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/study.json")}
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [*docs[pipeline], "batch_summary.json", "index.html", ".batch_summary.json.lock"])
    assert docs[True].keys() == docs[False].keys()
    for key, doc in docs[True].items():
        theirs = docs[False][key]
        assert [s["score"] for s in doc["sentences"]] == [s["score"] for s in theirs["sentences"]]
        assert [s.get("peak") for s in doc["sentences"]] == [s.get("peak") for s in theirs["sentences"]]
        assert doc["files"] == theirs["files"]


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_workers_take_chunks_in_order_that_shrink_towards_the_end(workers):
    from lesionloc_runtime.batch import chunk_bounds

    for count in (0, 1, 7, 16, 63, 64, 200, 1001):
        bounds = chunk_bounds(count, workers, most=16)
        assert [start for start, _ in bounds] == [0, *(end for _, end in bounds[:-1])][:len(bounds)]
        assert (bounds[-1][1] if bounds else 0) == count
        sizes = [end - start for start, end in bounds]
        assert all(1 <= size <= 16 for size in sizes)
        assert sizes == sorted(sizes, reverse=True)  # never a long chunk after short ones
        # when the last chunks start, the others are short enough to finish about together
        assert all(size <= max(1, (count - start) // (2 * workers))
                   for (start, _), size in zip(bounds, sizes, strict=True))


def _fake_chunks(monkeypatch, names: list[list[str]], ground: str = "findings",
                 chunk: str = "chunk"):
    """`batch._here_and_in_workers` over chunks of StudyTasks named `names`, with
    `tests/batch_fakes.py` as the worker's initializer and chunk."""
    from multiprocessing import get_context

    import batch_fakes

    from lesionloc_runtime import batch
    from lesionloc_runtime.outputs import OutputOptions

    monkeypatch.setattr(batch, "_init_worker", batch_fakes.init)
    monkeypatch.setattr(batch, "_process_studies", getattr(batch_fakes, chunk))
    settings = batch.RunSettings(None, ("cpu",), 1, (), ground, Path("out"), OutputOptions())
    chunks = [[batch.StudyTask(name, Path(f"{name}.dcm"), None) for name in chunk]
              for chunk in names]
    return batch._here_and_in_workers(chunks, settings, 2, None, get_context("spawn"))


def _batch_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "lesionloc-batch-here"]


def test_two_workers_are_this_process_and_one_spawned_taking_chunks_in_turn(monkeypatch):
    """With --workers 2 the batch's own process is one of the workers: one process is
    spawned, the first chunk goes to it, this process takes the next while it starts, and
    the outcomes come back in input order whichever process finished first."""
    names = [[f"s{k}{i}" for i in range(2)] for k in range(5)]
    outcomes = list(_fake_chunks(monkeypatch, names))
    assert [o["study_id"] for o in outcomes] == [name for chunk in names for name in chunk]
    spawned = {o["pid"] for o in outcomes if o["spawned"]}
    here = {o["pid"] for o in outcomes if not o["spawned"]}
    assert here == {os.getpid()} and len(spawned) == 1 and spawned != here
    assert outcomes[0]["spawned"] and outcomes[1]["spawned"]  # the first chunk
    assert not _batch_threads()


def test_a_worker_killed_ends_the_batch_with_its_own_error_not_a_traceback(monkeypatch):
    """The kernel's out-of-memory killer (or `kill -9`) ending a spawned worker came out of
    the CLI as a BrokenProcessPool traceback, exit 1."""
    from lesionloc_runtime.errors import WorkerLost

    with pytest.raises(WorkerLost, match="a worker process died .* each of the 2 workers"):
        list(_fake_chunks(monkeypatch, [["die"], ["b"], ["c"]], chunk="chunk_or_die"))
    assert not _batch_threads()


def test_a_failure_in_a_spawned_worker_or_in_this_process_ends_the_batch(monkeypatch):
    with pytest.raises(RuntimeError, match="a worker failed on fail-in-worker"):
        list(_fake_chunks(monkeypatch, [["fail-in-worker"], ["b"], ["c"]]))
    assert not _batch_threads()
    with pytest.raises(RuntimeError, match="this process could not load the model"):
        list(_fake_chunks(monkeypatch, [["a"], ["b"], ["c"]], ground="fail-here"))
    assert not _batch_threads()
    import multiprocessing

    assert not multiprocessing.active_children()


def test_workers_beyond_the_chunks_of_a_small_batch_are_not_started(tmp_path, tiny_bundle,
                                                                    phantom_set, monkeypatch):
    """--workers 4 on a study or two: a spawned worker would only start (about a second of
    CPU) and this process would load a model for nothing."""
    from lesionloc_runtime import batch, batch_discovery
    from lesionloc_runtime.outputs import OutputOptions

    source = _batch_dir(tmp_path, phantom_set, n=1)
    (source / "broken.dcm").unlink()
    pools = []

    def no_pool(*args, **kwargs):
        pools.append(args)
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(batch, "ProcessPoolExecutor", no_pool)
    settings = batch.RunSettings(str(tiny_bundle), ("cpu",), None, (), "findings",
                                 tmp_path / "out", OutputOptions())
    summary = batch.run_batch(batch_discovery.discover(source, None), settings, workers=4, progress=False)
    assert summary.done == 1 and not pools
    assert batch.chunk_bounds(3, 4) == [(0, 1), (1, 2), (2, 3)]  # three chunks: three workers


def test_a_batch_stopped_early_leaves_no_thread_or_worker_behind(monkeypatch):
    """A consumer that stops (a fatal write error) ends the dispatch: the chunks in progress
    finish, the spawned worker ends and this process's thread too."""
    import multiprocessing

    outcomes = _fake_chunks(monkeypatch, [[f"s{k}"] for k in range(40)])
    assert next(outcomes)["study_id"] == "s0"
    outcomes.close()
    assert not _batch_threads() and not multiprocessing.active_children()


def test_a_stopped_batch_counts_the_studies_other_workers_finished(tmp_path, tiny_bundle,
                                                                 phantom_set, monkeypatch):
    """Outcomes come back in input order, so a batch stopped by the first study's full disk
    never reads those of studies another worker had finished meanwhile: OUT says they are
    done (and the index lists them), and so must the summary."""
    from lesionloc_runtime import batch, batch_discovery
    from lesionloc_runtime.outputs import OutputOptions, is_done

    source = _batch_dir(tmp_path, phantom_set, n=3)
    (source / "broken.dcm").unlink()
    tasks = batch_discovery.discover(source, None)
    settings = batch.RunSettings(str(tiny_bundle), ("cpu",), None, (), "findings",
                                 tmp_path / "elsewhere", OutputOptions())
    assert batch.run_batch(tasks[2:], settings, progress=False).done == 1
    out = tmp_path / "out"

    def dispatch(todo, settings, workers, localizer=None):
        shutil.copytree(tmp_path / "elsewhere" / todo[2].study_id, out / todo[2].study_id)
        yield {"study_id": todo[0].study_id, "ok": False, "fatal": True,
               "error": "cannot write: No space left on device"}
        raise AssertionError("the batch reads no outcome after the stopping one")

    monkeypatch.setattr(batch, "_dispatch", dispatch)
    summary = batch.run_batch(tasks, batch.RunSettings(**{**settings.__dict__, "out": out}),
                              workers=2, progress=False)
    assert is_done(out, tasks[2].study_id) and summary.done == 1 and not summary.failed
    assert summary.stopped == ("cannot write: No space left on device; stopped the batch, "
                               "2 of 3 studies not done")
    assert tasks[2].study_id in (out / "index.html").read_text()


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_batch_encodes_the_next_studies_sentences_together(tmp_path, tiny_bundle_factory,
                                                             phantom_set, monkeypatch, pipeline):
    """With the sentence cache, the sentences of every few studies go through the text
    encoder in one call, and each study's own finds them: fewer calls, the same scores (fp32),
    and the summary still counts each sentence once, as encoded or found in the cache."""
    from lesionloc_runtime import batch_steps
    from lesionloc_runtime.batch import RunSettings, run_batch
    from lesionloc_runtime.batch_discovery import discover
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_runtime.outputs import OutputOptions

    bundle = tiny_bundle_factory("none")
    source = _batch_dir(tmp_path, phantom_set, n=6)
    tasks = discover(source, None)
    monkeypatch.setattr(batch_steps, "AHEAD_STUDIES", 4)
    results, calls, summaries = {}, {}, {}
    for cache in (4096, 0):
        localizer = Localizer.load(bundle, sentence_cache=cache)
        real = localizer._run_text_encoder
        calls[cache] = []
        localizer._run_text_encoder = lambda windows, real=real, seen=calls[cache]: (
            seen.append(len(windows)) or real(windows))
        out = tmp_path / f"cache-{cache}"
        settings = RunSettings(str(bundle), ("cpu",), None, (), "findings", out, OutputOptions(),
                               sentence_cache=cache, pipeline=pipeline)
        summaries[cache] = run_batch(tasks, settings, progress=False, localizer=localizer)
        assert summaries[cache].done == 6
        results[cache] = {p.parent.name: [s["score"] for s in json.loads(p.read_text())["sentences"]]
                          for p in out.glob("*/study.json")}
    assert len(calls[4096]) == 2  # studies 1-4 and 5-7 (the broken one among them)
    assert len(calls[0]) == 6
    assert results[4096].keys() == results[0].keys()
    for key, scores in results[4096].items():
        assert scores == pytest.approx(results[0][key], abs=2e-5)
    assert sum(calls[4096]) < sum(calls[0])
    # the broken study's sentence was encoded ahead, but only studies done are counted
    ours, plain = summaries[4096], summaries[0]
    assert ours.sentences_encoded == sum(calls[4096]) - 1
    assert ours.sentences_encoded + ours.sentences_from_cache == plain.sentences_encoded


def test_a_batch_goes_on_when_the_sentences_cannot_be_encoded_ahead(tmp_path, tiny_bundle,
                                                                    phantom_set, caplog,
                                                                    monkeypatch):
    """Encoding the next studies' sentences together is an optimization: if it fails, every
    study encodes its own, the batch finishes, and one warning says so (not one a window)."""
    from lesionloc_runtime import batch_steps
    from lesionloc_runtime.batch import RunSettings, run_batch
    from lesionloc_runtime.batch_discovery import discover
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_runtime.outputs import OutputOptions

    source = _batch_dir(tmp_path, phantom_set, n=3)
    monkeypatch.setattr(batch_steps, "AHEAD_STUDIES", 2)  # two windows of the 4 studies
    localizer = Localizer.load(tiny_bundle)
    calls = []

    def failing(studies):
        calls.append(len(studies))
        raise MemoryError("no room for the run")

    localizer.encode_ahead = failing
    settings = RunSettings(str(tiny_bundle), ("cpu",), None, (), "findings", tmp_path / "out",
                           OutputOptions(), pipeline=False)
    with caplog.at_level("WARNING"):
        summary = run_batch(discover(source, None), settings, progress=False, localizer=localizer)
    assert summary.done == 3 and summary.sentences_encoded > 0 and calls == [2, 2]
    warned = [r.getMessage() for r in caplog.records if "encoded together" in r.getMessage()]
    assert warned == ["the next studies' sentences could not be encoded together (no room for "
                      "the run): each study encodes its own"]
