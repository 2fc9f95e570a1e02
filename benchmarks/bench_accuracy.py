"""Localization accuracy (values in `extra_info`): pointing game, CNR, mIoU, Dice, AUROC,
overall and per finding type, on the standard phantom test set (200 studies at 2048 px with
--full), for the demo model trained with the full loss, the global loss only and the local
loss only (int8 and fp32 bundles), the baselines (random, centre prior, brightest region,
text prior), the oracle ceiling at the model's grid, and the best global shift of the heatmaps.
Robustness: the same studies without markers, text and devices, and in the held-out style, and
the share of heatmap peaks on a laterality marker or burned-in text (or on a device).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionloc_runtime.evaluation.baselines import BaselineHeatmaps, TextPrior
from lesionloc_runtime.evaluation.datasets import open_dataset
from lesionloc_runtime.evaluation.runner import EvaluationRun, evaluate
from lesionloc_runtime.heatmap import Heatmap
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.metrics import boxes_to_mask, mean_scores
from lesionloc_runtime.preprocess import Letterbox

SCORE_SIZE = 512  # long side of the grid metrics are computed on (the model grid is 16-32)
VARIANTS = ("full", "global_only", "local_only")
ROBUSTNESS_SETS = ("standard", "clean", "heldout")


def summarize(run: EvaluationRun) -> dict:
    by_type: dict[str, list] = defaultdict(list)
    for sample in run.samples:
        by_type[sample.category].append(sample.scores)
    return {"overall": mean_scores([s.scores for s in run.samples]),
            "by_finding": {k: mean_scores(v) for k, v in sorted(by_type.items())},
            "sentences": len(run.samples), "images": run.n_images}


def film_long_side_mm(test_set: Path) -> float | None:
    """The median film's long side in mm (peak distances are fractions of it), or None when
    the set records no pixel spacing."""
    manifest = test_set if test_set.name == "manifest.jsonl" else test_set / "manifest.jsonl"
    sides = [max(row["width"], row["height"]) * row["pixel_spacing_mm"]
             for row in map(json.loads, manifest.read_text().splitlines())
             if row.get("pixel_spacing_mm")]
    return float(np.median(sides)) if sides else None


def _run(test_set: Path, provider, limit: int | None = None) -> EvaluationRun:
    stream = open_dataset("phantoms", test_set.parent if test_set.name == "manifest.jsonl"
                          else test_set, split="test")
    return evaluate(stream, provider, score_size=SCORE_SIZE, progress=False, limit=limit)


class RecordingLocalizer:
    """The localizer as a heatmap provider that also keeps each heatmap's peak (for the
    best-global-shift analysis) in original pixels, keyed by (image, text)."""

    def __init__(self, localizer: Localizer) -> None:
        self.localizer = localizer
        self.peaks: dict[tuple[str, str], tuple[float, float]] = {}
        self.stride = float(localizer.bundle.grid_stride)
        self.letterboxes: dict[str, Letterbox] = {}

    def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
        encoded = self.localizer.encode_image(image)
        local, _ = self.localizer.encode_texts(texts)
        maps = []
        for text, embed in zip(texts, local, strict=True):
            heat = self.localizer.heatmap(encoded, embed)
            self.peaks[(image.source, text)] = heat.peak()[:2]
            maps.append(heat.render())
        self.letterboxes[image.source] = encoded.letterbox
        return np.stack(maps)


class OracleProvider:
    """A perfect heatmap seen through the model's grid: the ground-truth mask letterboxed
    like the image, averaged over each patch, and mapped back exactly as model heatmaps are."""

    def __init__(self, manifest: Path, image_size: int, stride: int, origin: float = 0.5) -> None:
        self.size, self.stride, self.origin = image_size, stride, origin
        self.boxes: dict[tuple[str, str], list] = {}
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            for s in row["sentences"]:
                for key in (row["image"], row.get("image_png")):
                    if key:
                        path = str(manifest.parent / key)
                        self.boxes[(path, s["text"].strip())] = s.get("boxes") or []

    def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
        box = Letterbox.fit(image.width, image.height, self.size)
        grid = self.size // self.stride
        out = []
        for text in texts:
            mask = boxes_to_mask(self.boxes[(image.source, text)], image.height, image.width)
            small = cv2.resize(mask.astype(np.float32), (box.new_width, box.new_height),
                               interpolation=cv2.INTER_AREA)
            canvas = np.zeros((self.size, self.size), np.float32)
            canvas[box.pad_y:box.pad_y + box.new_height, box.pad_x:box.pad_x + box.new_width] = small
            # cell k sees the stride-wide window centred on origin + k * stride: shift so that
            # the window is [k * stride, (k + 1) * stride) before area pooling
            shift = self.stride / 2 - self.origin
            moved = cv2.warpAffine(canvas, np.float32([[1, 0, shift], [0, 1, shift]]),
                                   (self.size, self.size), flags=cv2.INTER_LINEAR)
            cells = cv2.resize(moved, (grid, grid), interpolation=cv2.INTER_AREA)
            out.append(Heatmap(cells, box, self.stride, self.origin).render())
        return np.stack(out)


def best_global_shift(recorder: RecordingLocalizer, run: EvaluationRun, test_set: Path,
                      reach: float = 2.0, step: float = 0.25) -> dict:
    """The (dx, dy) shift, in patches, of every heatmap peak that maximizes the pointing game.
    A trained model should need none; a large one means a systematic offset (a mapping bug, or
    a learned one as seen with sharp attention)."""
    boxes = OracleProvider(test_set, 0, 1).boxes  # the ground-truth index only
    hits: dict[tuple[float, float], list[bool]] = defaultdict(list)
    shifts = np.arange(-reach, reach + 1e-9, step)
    for (source, text), (px, py) in recorder.peaks.items():
        gt = boxes.get((source, text))
        if not gt:
            continue
        box = recorder.letterboxes[source]
        patch_x, patch_y = recorder.stride / box.scale_x, recorder.stride / box.scale_y
        for dx in shifts:
            for dy in shifts:
                x, y = px + dx * patch_x, py + dy * patch_y
                hits[(dx, dy)].append(any(bx <= x <= bx + bw and by <= y <= by + bh
                                          for bx, by, bw, bh in gt))
    rates = {k: float(np.mean(v)) for k, v in hits.items()}
    best = max(rates, key=lambda k: (rates[k], -abs(k[0]) - abs(k[1])))
    return {"best_shift_patches": [float(best[0]), float(best[1])],
            "pointing_game_at_best_shift": rates[best], "pointing_game_unshifted": rates[(0.0, 0.0)]}


@pytest.fixture(scope="session")
def accuracy_sets(full, request) -> tuple[Path, Path]:
    if not full:
        quick = request.getfixturevalue("quick_phantoms")
        return quick, quick
    test = Path(request.config.getoption("--test-set"))
    train = Path(request.config.getoption("--train-set"))
    for path in (test, train):
        if not path.is_file():
            pytest.fail(f"{path} not found: run scripts/make_demo_model.sh first (it makes the sets)")
    return test, train


@pytest.fixture(scope="session")
def accuracy_bundles(full, request, tmp_path_factory):
    """{(variant, precision): bundle}: the demo recipe's bundles, or the quick tiny model."""
    if not full:
        from benchmarks.conftest import export_cached

        quick_checkpoint = request.getfixturevalue("quick_checkpoint")
        quick_phantoms = request.getfixturevalue("quick_phantoms")
        root = tmp_path_factory.mktemp("acc-bundles")
        return {("full", p): export_cached(quick_checkpoint, root / p, p, quick_phantoms)
                for p in ("int8", "none")}
    root = Path(request.config.getoption("--demo-runs")) / "bundles"
    found = {(v, p): root / f"{v}-{p}" for v in VARIANTS for p in ("int8", "none")
             if (root / f"{v}-{p}" / "lesionloc.json").is_file()}
    if not found:
        pytest.fail(f"no demo bundles in {root}: run scripts/make_demo_model.sh first")
    return found


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("precision", ["int8", "none"])
def test_model_accuracy(benchmark, variant, precision, accuracy_bundles, accuracy_sets):
    if (variant, precision) not in accuracy_bundles:
        pytest.skip(f"no {variant}-{precision} bundle")
    test_set, _ = accuracy_sets
    recorder = RecordingLocalizer(Localizer.load(accuracy_bundles[(variant, precision)]))
    run = benchmark.pedantic(_run, args=(test_set, recorder), rounds=1, iterations=1)
    summary = summarize(run)
    assert summary["sentences"] > 0
    benchmark.extra_info.update({"kind": "model", "variant": variant, "precision": precision,
                                 **summary, **best_global_shift(recorder, run, test_set),
                                 "film_long_side_mm": film_long_side_mm(test_set),
                                 "grid": recorder.localizer.bundle.preprocessing.image_size
                                 // recorder.localizer.bundle.grid_stride})


@pytest.mark.parametrize("name", ["random", "centre_prior", "brightest_region", "text_prior"])
def test_baseline_accuracy(benchmark, name, accuracy_sets):
    test_set, train_set = accuracy_sets
    prior = None
    if name == "text_prior":
        rows = [json.loads(line) for line in train_set.read_text().splitlines()]
        prior = TextPrior.fit(rows, "train")
    run = benchmark.pedantic(_run, args=(test_set, BaselineHeatmaps(name, prior)), rounds=1,
                             iterations=1)
    benchmark.extra_info.update({"kind": "baseline", "variant": name, **summarize(run),
                                 "film_long_side_mm": film_long_side_mm(test_set)})


def test_oracle_ceiling_at_model_grid(benchmark, accuracy_bundles, accuracy_sets):
    test_set, _ = accuracy_sets
    bundle = Localizer.load(next(iter(accuracy_bundles.values()))).bundle
    size, stride = bundle.preprocessing.image_size, bundle.grid_stride
    oracle = OracleProvider(test_set, size, stride, bundle.grid_origin)
    run = benchmark.pedantic(_run, args=(test_set, oracle),
                             rounds=1, iterations=1)
    summary = summarize(run)
    benchmark.extra_info.update({"kind": "oracle", "variant": f"oracle@{size // stride}x{size // stride}",
                                 **summary, "film_long_side_mm": film_long_side_mm(test_set)})
    assert summary["overall"]["pointing_game"] > 0.5


def overlay_index(manifest: Path) -> dict[str, dict[str, list]]:
    """image path -> {"marker_text": boxes of markers and burned-in text, "devices": boxes}."""
    index = {}
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        regions = {"marker_text": [o["box"] for o in row.get("overlays", [])
                                   if o["type"] in ("marker", "text")],
                   "devices": [d["box"] for d in row.get("devices", []) if d.get("box")]}
        for key in (row["image"], row.get("image_png")):
            if key:
                index[str(manifest.parent / key)] = regions
    return index


def peak_shares(recorder: RecordingLocalizer, manifest: Path) -> dict:
    """How many finding-sentence peaks fall on a marker or burned-in text, or on a device:
    over all peaks, and over the peaks on films that carry such a thing."""
    index = overlay_index(manifest)

    def inside(x: float, y: float, boxes: list) -> bool:
        return any(bx <= x < bx + bw and by <= y < by + bh for bx, by, bw, bh in boxes)

    out: dict = {"peaks": len(recorder.peaks)}
    for kind in ("marker_text", "devices"):
        on = carrying = 0
        for (source, _), (x, y) in recorder.peaks.items():
            boxes = index.get(source, {}).get(kind, [])
            carrying += bool(boxes)
            on += inside(x, y, boxes)
        out[f"peaks_on_{kind}"] = on
        out[f"share_on_{kind}"] = on / max(1, len(recorder.peaks))
        out[f"peaks_on_films_with_{kind}"] = carrying
        out[f"share_on_{kind}_where_present"] = on / max(1, carrying)
    return out


@pytest.fixture(scope="session")
def robustness_sets(full, request, accuracy_sets) -> dict[str, Path]:
    """The standard test set and the same studies without markers, text and devices, and in
    the held-out style."""
    test_set, _ = accuracy_sets
    if not full:
        variants = request.getfixturevalue("quick_phantom_variants")
        return {"standard": test_set, **variants}
    sets = {"standard": test_set,
            "clean": Path(request.config.getoption("--clean-test-set")),
            "heldout": Path(request.config.getoption("--heldout-test-set"))}
    for path in sets.values():
        if not path.is_file():
            pytest.fail(f"{path} not found: run scripts/make_demo_model.sh first (it makes the sets)")
    return sets


@pytest.mark.parametrize("precision", ["int8", "none"])
def test_robustness(benchmark, precision, accuracy_bundles, robustness_sets):
    """The full-loss demo model on the standard test set, without markers, text and devices,
    and in the held-out style; and where its peaks fall."""
    if ("full", precision) not in accuracy_bundles:
        pytest.skip(f"no full-{precision} bundle")
    localizer = Localizer.load(accuracy_bundles[("full", precision)])

    def run_all() -> dict:
        out = {}
        for name in ROBUSTNESS_SETS:
            recorder = RecordingLocalizer(localizer)
            run = _run(robustness_sets[name], recorder)
            out[name] = summarize(run)
            if name == "standard":
                out["peaks"] = peak_shares(recorder, robustness_sets[name])
        return out

    result = benchmark.pedantic(run_all, rounds=1, iterations=1)
    pg = {name: result[name]["overall"]["pointing_game"] for name in ROBUSTNESS_SETS}
    assert result["standard"]["sentences"] == result["clean"]["sentences"], \
        "the clean set holds the same studies and finding sentences"
    benchmark.extra_info.update({
        "kind": "robustness", "variant": "full", "precision": precision, "sets": result,
        "pointing_game": pg, "clean_minus_standard": pg["clean"] - pg["standard"],
        "standard_minus_heldout": pg["standard"] - pg["heldout"], **result["peaks"]})
