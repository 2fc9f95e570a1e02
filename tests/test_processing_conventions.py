"""The processing conventions a bundle card can state, each against the code it reproduces:
BioViL's resize and centre crop, AFLoc's 8-bit letterbox, scipy's reflecting Gaussian,
PyTorch's bilinear upsampling into a crop with NaN outside it, the sources' text preparation,
and tokenizer.json against the source's own BertTokenizer."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lesionloc_runtime.geometry import CentreCrop, Letterbox
from lesionloc_runtime.heatmap import Heatmap, HeatmapConfig, smooth_grid
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.metrics import unseen_as_lowest
from lesionloc_runtime.preprocess import PreprocessConfig, preprocess, to_uint8
from lesionloc_runtime.tokens import prepare_text

BIOVIL = PreprocessConfig(image_size=480, intensity="minmax-uint8", interpolation="pil-bilinear",
                          method="resize-crop", resize=512)


def film(width: int, height: int, seed: int = 0) -> Radiograph:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = 0.3 + 0.4 * np.sin(x / 37.0) * np.cos(y / 23.0) + 0.05 * rng.random((height, width))
    return Radiograph(pixels.astype(np.float32), "film.png", "png")


@pytest.mark.parametrize("width,height", [(1841, 1955), (2500, 2048), (512, 512), (700, 533)])
def test_resize_crop_is_torchvisions_resize_and_centre_crop_on_hi_mls_8_bit_image(width, height):
    from PIL import Image

    image = film(width, height)
    out = preprocess(image, BIOVIL)
    crop = out.letterbox
    assert isinstance(crop, CentreCrop) and out.tensor.shape == (1, 480, 480)
    # torchvision.transforms.Resize(512) on a PIL image: shorter side 512, longer int()-cut
    short, long = min(width, height), max(width, height)
    new = (512, int(512 * long / short)) if width <= height else (int(512 * long / short), 512)
    assert (crop.resized_width, crop.resized_height) == new
    array = image.pixels.astype(np.float64)
    array -= array.min()
    uint8 = (array / array.max() * 255).astype(np.uint8)  # hi-ml's remap_to_uint8
    resized = np.asarray(Image.fromarray(uint8).resize(new, Image.BILINEAR))
    top, left = int(round((new[1] - 480) / 2.0)), int(round((new[0] - 480) / 2.0))
    want = resized[top:top + 480, left:left + 480].astype(np.float32) / 255
    assert np.array_equal(out.tensor[0], want)
    # the region the model saw: hi-ml's square window of side int(480 * short / 512)
    side = int(480 * short / 512)
    assert crop.seen_region() == ((width - side) // 2, (height - side) // 2, side, side)


@pytest.mark.parametrize("width,height", [(440, 440), (1841, 1955), (1955, 1841), (1000, 333)])
def test_afloc_letterbox_truncates_the_short_side_and_resizes_the_8_bit_image(width, height):
    import afloc_reference

    image = film(width, height, seed=1)
    config = PreprocessConfig(image_size=224, intensity="uint8", interpolation="area",
                              size_rounding="floor")
    out = preprocess(image, config)
    want = afloc_reference.resize_img(to_uint8(image.pixels, "uint8"), 224).astype(np.float32) / 255
    assert np.array_equal(out.tensor[0], want)
    box = out.letterbox
    assert max(box.new_width, box.new_height) == 224
    assert min(box.new_width, box.new_height) == int(min(width, height) * (224 / max(width, height)))


@pytest.mark.parametrize("shape,sigma", [((14, 14), 1.5), ((19, 19), 1.5), ((5, 4), 3.0)])
def test_reflect_smoothing_is_scipys_gaussian_filter(shape, sigma):
    from scipy import ndimage

    grid = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    want = ndimage.gaussian_filter(grid, sigma=(sigma, sigma), order=0)
    assert np.abs(smooth_grid(grid, sigma, "reflect") - want).max() <= 1e-6


def test_bilinear_heatmap_is_pytorchs_upsampling_into_the_crop_and_nan_outside():
    crop = CentreCrop.fit(1841, 1955, 512, 448)
    grid = np.random.default_rng(3).random((14, 14)).astype(np.float32)
    heat = Heatmap(grid, crop, 32.0, 16.0, "bilinear")
    full = heat.render()
    x, y, side, _ = crop.seen_region()
    want = F.interpolate(torch.tensor(grid)[None, None], size=(side, side), mode="bilinear",
                         align_corners=False)[0, 0].numpy()
    assert np.abs(full[y:y + side, x:x + side] - want).max() <= 1e-5
    outside = np.ones(full.shape, bool)
    outside[y:y + side, x:x + side] = False
    assert np.isnan(full[outside]).all() and np.isfinite(full[~outside]).all()
    # peak and boxes only where the model looked
    px, py, value = heat.peak()
    assert x <= px < x + side and y <= py < y + side and value == pytest.approx(grid.max())
    for box in heat.boxes(HeatmapConfig(box_threshold=0.3, min_box_fraction=0.0)):
        assert x - 8 <= box.x and box.x + box.width <= x + side + 8


@pytest.mark.parametrize("upsampling", ["bilinear", "cubic"])
def test_each_box_scores_the_highest_value_of_its_component(upsampling):
    """A box's score is the maximum of the working render over its connected component (read
    with OpenCV's masked maximum inside the component's extent), NaN where the model saw
    nothing never counting: against labels and maxima computed here with numpy."""
    geometry = (CentreCrop.fit(1841, 1955, 512, 448) if upsampling == "bilinear"
                else Letterbox.fit(1841, 1955, 448))
    grid = np.random.default_rng(8).random((14, 14)).astype(np.float32) * 0.3
    # a ring around a hotter centre: the ring's extent holds a higher value than the ring
    rows, cols = np.indices(grid.shape)
    grid[np.maximum(abs(rows - 7), abs(cols - 7)) == 5] = 0.8
    grid[np.maximum(abs(rows - 7), abs(cols - 7)) < 3] = 0.0
    grid[7, 7] = 1.0
    heat = Heatmap(grid, geometry, 32.0, 16.0, upsampling)
    boxes = heat.boxes(HeatmapConfig(box_threshold=0.4, min_box_fraction=0.0, max_boxes=1000))
    work = heat.render(round(1841 * 256 / 1955), 256)
    lo, hi = np.nanmin(work), np.nanmax(work)
    with np.errstate(invalid="ignore"):
        mask = ((work - lo) >= 0.4 * (hi - lo)).astype(np.uint8)
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    want = sorted((float(work[labels == k].max()) for k in range(1, count)), reverse=True)
    assert len(boxes) == count - 1 >= 2
    assert [box.score for box in boxes] == want
    assert np.isnan(work).any() == (upsampling == "bilinear")


@pytest.mark.parametrize("cells,size", [((14, 14), (256, 256)), ((15, 15), (1955, 1841)),
                                        ((1, 9), (40, 300)), ((7, 1), (333, 5))])
def test_bilinear_render_equals_the_two_tap_matrix_product(cells, size):
    """Rendered two cells per output (no BLAS threads left spinning), the same float32 as
    (rows x grid) x cols^T with the dense two-tap weight matrices."""
    from lesionloc_runtime.heatmap import _bilinear, _bilinear_taps

    def dense(taps: tuple[np.ndarray, np.ndarray], cells: int) -> np.ndarray:
        low, frac = taps
        weights = np.zeros((len(low), cells))
        weights[np.arange(len(low)), low] = 1.0 - frac
        if cells > 1:
            weights[np.arange(len(low)), low + 1] += frac
        return weights

    grid = np.random.default_rng(4).standard_normal(cells)
    rows = _bilinear_taps(size[0], cells[0], cells[0] / size[0], 0.5 * cells[0] / size[0] - 0.5)
    cols = _bilinear_taps(size[1], cells[1], cells[1] / size[1], 0.5 * cells[1] / size[1] - 0.5)
    want = (dense(rows, cells[0]) @ grid @ dense(cols, cells[1]).T).astype(np.float32)
    assert np.array_equal(_bilinear(grid, rows, cols), want)


def test_similarity_grid_and_local_score_are_their_matrix_formulas():
    """Computed as products in bands (no BLAS threads left spinning), the dot products of the
    matrix formulas: s.P per patch, and r = cos(s, sum_k softmax(s.P / tau)_k P_k)."""
    from lesionloc_runtime.heatmap import local_alignment_score, similarity_grid

    rng = np.random.default_rng(5)
    patches = rng.standard_normal((12, 9, 64)).astype(np.float32)
    sentence = rng.standard_normal(64).astype(np.float32)
    flat = patches.reshape(-1, 64).astype(np.float64)
    grid = similarity_grid(sentence, patches)
    assert grid.dtype == np.float32 and grid.shape == (12, 9)
    assert np.allclose(grid, (flat @ sentence).reshape(12, 9), rtol=1e-5, atol=1e-5)
    logits = flat @ sentence / 0.25
    weights = np.exp(logits - logits.max())
    context = (weights / weights.sum()) @ flat
    want = context @ sentence / np.linalg.norm(context)
    assert local_alignment_score(sentence, patches, 0.25) == pytest.approx(want, rel=1e-5)


def test_products_in_bands_are_the_product_each_band_small_enough_for_one_thread():
    """matmul_in_bands splits a product into column bands of at most ONE_THREAD_WORK
    multiply-adds (one column at least), which together are the whole product."""
    from lesionloc_runtime.products import ONE_THREAD_WORK, column_bands, matmul_in_bands

    for rows, inner, columns in ((8, 512, 784), (217, 28, 217), (1, 768, 1024), (3, 5, 7),
                                 (600, 600, 3), (0, 4, 5), (4, 0, 5)):
        bands = column_bands(rows, inner, columns)
        assert [i for band in bands for i in range(columns)[band]] == list(range(columns))
        assert all(rows * inner * (band.stop - band.start) <= ONE_THREAD_WORK
                   or band.stop - band.start == 1 for band in bands)
        rng = np.random.default_rng(rows + inner + columns)
        a = rng.standard_normal((rows, inner)).astype(np.float32)
        b = rng.standard_normal((inner, columns)).astype(np.float32)
        got = matmul_in_bands(a, b)
        assert got.dtype == np.float32 and got.shape == (rows, columns)
        np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    assert len(column_bands(8, 512, 784)) > 1  # the grid of a study's sentences is split
    assert matmul_in_bands(np.ones((2, 3)), np.ones((3, 2), np.float32)).dtype == np.float64
    with pytest.raises(ValueError, match="cannot multiply"):
        matmul_in_bands(np.ones((2, 3)), np.ones((4, 2)))


def test_every_sentence_of_a_study_in_one_product_is_each_alone():
    """The localizer computes one product of the patches with all of a study's sentences: each
    sentence's grid and score are what it gets alone (float rounding apart), a sentence whose
    attention context vanishes scores 0, and a study of no sentence has none."""
    from lesionloc_runtime.heatmap import (
        local_alignment_score,
        local_alignment_scores,
        similarity_grid,
    )

    rng = np.random.default_rng(6)
    patches = rng.standard_normal((7, 5, 32)).astype(np.float32)
    sentences = rng.standard_normal((6, 32)).astype(np.float32)
    grids = similarity_grid(sentences, patches)
    assert grids.shape == (6, 7, 5) and grids.dtype == np.float32
    for k, sentence in enumerate(sentences):
        np.testing.assert_allclose(grids[k], similarity_grid(sentence, patches), rtol=1e-6, atol=1e-6)
    scores = local_alignment_scores(sentences, patches, 0.25, grids)
    np.testing.assert_allclose(scores, local_alignment_scores(sentences, patches, 0.25), rtol=1e-6)
    alone = [local_alignment_score(sentence, patches, 0.25) for sentence in sentences]
    np.testing.assert_allclose(scores, alone, rtol=1e-5, atol=1e-6)
    assert local_alignment_scores(sentences, np.zeros_like(patches), 0.25).tolist() == [0.0] * 6
    assert local_alignment_scores(sentences[:0], patches, 0.25).shape == (0,)


def test_an_overlay_draws_no_heat_where_the_model_saw_nothing():
    from lesionloc_runtime.render import _blend_heatmap

    grey = np.full((40, 40), 100, np.uint8)
    heat = np.full((40, 40), np.nan, np.float32)
    heat[10:30, 10:30] = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    rgb = _blend_heatmap(grey, heat)
    assert (rgb[:10] == 100).all() and (rgb[:, 30:] == 100).all()
    assert (rgb[25:30, 25:30] != 100).any()


def test_unseen_pixels_score_as_the_lowest_value():
    heat = np.array([[np.nan, 0.2], [0.5, np.nan]], np.float32)
    np.testing.assert_array_equal(unseen_as_lowest(heat), np.float32([[0.2, 0.2], [0.5, 0.2]]))
    assert np.isnan(unseen_as_lowest(np.full((2, 2), np.nan))).all()


def test_letterbox_rounding_keeps_the_long_side_exact():
    for width, height in [(1841, 1955), (3000, 2999), (224, 7)]:
        for rounding in ("round", "floor"):
            box = Letterbox.fit(width, height, 224, rounding)
            assert max(box.new_width, box.new_height) == 224
    assert Letterbox.fit(1000, 333, 224, "floor").new_height == math.floor(333 * (224 / 1000))


@pytest.mark.parametrize("text,want", [
    ("Small left pleural effusion.", "small left pleural effusion"),
    ("1. Left effusion. 2. Cardiomegaly.\nNo pneumothorax!", "left effusion no pneumothorax"),
    ("Opacité in the right base.", "opacit in the right base"),
    ("Pneumothorax.", "pneumothorax"),  # AFLoc would encode nothing; the word is kept
])
def test_afloc_text_preparation_follows_its_process_text(text, want):
    assert prepare_text(text, "afloc") == want


def test_hi_ml_text_preparation_strips_trailing_punctuation_only():
    assert prepare_text("Left effusion?!.", "hi-ml") == "Left effusion"
    assert prepare_text("No change. Stable.", "hi-ml") == "No change. Stable"
    assert prepare_text("Left effusion.", "none") == "Left effusion."


@pytest.mark.parametrize("lower_case", [True, None, False])
def test_tokenizer_json_tokenizes_as_the_sources_bert_tokenizer(tmp_path, lower_case):
    from tokenizers import Tokenizer
    from transformers import BertTokenizer

    from lesionloc_export.sources.published import write_tokenizer_files
    from lesionloc_export.sources.tokenizer import bert_tokenizer_json

    write_tokenizer_files(tmp_path, 3000, lower_case=lower_case)
    ours = Tokenizer.from_file(str(bert_tokenizer_json(tmp_path, tmp_path / "t.json", "test")))
    theirs = BertTokenizer.from_pretrained(tmp_path)  # as hi-ml and AFLoc load theirs
    for text in ["Small LEFT pleural effusion.", "Opacité, 3 cm; no PTX!", "xyzzy lobe"]:
        assert ours.encode(text).ids == theirs(text)["input_ids"]
