"""The shared preprocessing: the letterbox geometry and its inverse, the grid affine that
brings heatmaps back onto original pixels, and the encoder input's shape, range and padding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lesionloc_runtime.errors import ConfigError
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.parts import MIN_PART, even_bounds, in_parts, part_bounds
from lesionloc_runtime.preprocess import (
    Letterbox,
    PreprocessConfig,
    apply_window,
    intensity_window,
    percentiles,
    preprocess,
    to_uint8,
    value_range,
)
from lesionloc_runtime.resampling import area_resize, pillow_bilinear


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1000, 1000, (448, 448, 0, 0)),  # square: fills the input
        (1000, 2000, (224, 448, 112, 0)),  # portrait: bars left and right
        (2048, 1024, (448, 224, 0, 112)),  # landscape: bars above and below
        (1001, 2000, (224, 448, 112, 0)),  # 224.2 rounds down
        (1003, 2000, (225, 448, 111, 0)),  # 224.7 rounds up; odd bars put the extra on the right
        (300, 200, (448, 299, 0, 74)),  # smaller than the input: scaled up
        (10, 5000, (1, 448, 223, 0)),  # a sliver keeps at least one column
    ],
)
def test_letterbox_fit_keeps_aspect_and_centres(width, height, expected):
    box = Letterbox.fit(width, height, 448)
    assert (box.new_width, box.new_height, box.pad_x, box.pad_y) == expected
    assert box.pad_x + box.new_width <= 448 and box.pad_y + box.new_height <= 448
    assert (box.orig_width, box.orig_height, box.size) == (width, height, 448)


@pytest.mark.parametrize(("width", "height"), [(1000, 1000), (1000, 2000), (2048, 1024), (1003, 777)])
def test_to_model_and_to_original_are_inverses(width, height):
    box = Letterbox.fit(width, height, 448)
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(0, 1, (50, 2)) * (width, height):
        mx, my = box.to_model(x, y)
        assert box.to_original(mx, my) == pytest.approx((x, y), abs=1e-9)
    for mx, my in rng.uniform(0, 448, (50, 2)):
        assert box.to_model(*box.to_original(mx, my)) == pytest.approx((mx, my), abs=1e-9)


def test_to_model_maps_the_image_corners_onto_the_letterboxed_region():
    box = Letterbox.fit(2048, 1024, 448)
    assert box.to_model(0, 0) == pytest.approx((0, 112))
    assert box.to_model(2048, 1024) == pytest.approx((448, 336))


def grid_cell_centres_in_image(box: Letterbox, stride: int, origin: float) -> list[tuple[int, int, int, int]]:
    """(row, col, x, y): grid cells whose centre (model coordinate origin + k * stride) lies on
    the image, and the original pixel (indices x, y) that contains that centre."""
    cells = []
    for r in range(box.size // stride):
        for c in range(box.size // stride):
            ox, oy = box.to_original(origin + c * stride, origin + r * stride)
            if 0 <= ox < box.orig_width and 0 <= oy < box.orig_height:
                cells.append((r, c, int(ox), int(oy)))
    return cells


# origin 8: cells centred in their stride-wide square; 0.5: a ResNet's receptive-field centres.
@pytest.mark.parametrize("origin", [8.0, 0.5])
@pytest.mark.parametrize(("width", "height"), [(2048, 1024), (1024, 2048), (1841, 1955), (440, 440)])
def test_grid_affine_maps_a_cell_centre_pixel_back_to_its_cell(width, height, origin):
    box = Letterbox.fit(width, height, 448)
    affine = box.original_to_grid_affine(16, origin)
    assert affine.shape == (2, 3)
    cells = grid_cell_centres_in_image(box, 16, origin)
    assert cells  # the image covers part of the 28 x 28 grid
    for r, c, x, y in cells:
        gx, gy = affine @ np.array([x, y, 1.0])
        # A pixel is 1 / scale model pixels wide: its centre is within half of it of the cell's.
        tolerance = 0.5 * max(box.scale_x, box.scale_y) / 16 + 1e-9
        assert abs(gx - c) <= tolerance and abs(gy - r) <= tolerance, (r, c, gx, gy)


def test_grid_affine_for_2048_by_1024_at_448_stride_16():
    box = Letterbox.fit(2048, 1024, 448)  # new 448 x 224, pad_y 112: grid rows 7..20 on image
    cells = grid_cell_centres_in_image(box, 16, 8.0)
    assert {r for r, _, _, _ in cells} == set(range(7, 21))
    assert {c for _, c, _, _ in cells} == set(range(28))
    affine = box.original_to_grid_affine(16, 8.0)
    for r, c, x, y in cells:
        gx, gy = affine @ np.array([x, y, 1.0])
        assert (round(gx), round(gy)) == (c, r)


@pytest.mark.parametrize("origin", [8.0, 0.5])
def test_grid_affine_warps_a_hot_cell_onto_its_original_pixels(origin):
    box = Letterbox.fit(2048, 1024, 448)
    grid = np.zeros((28, 28), np.float32)
    grid[12, 5] = 1.0
    heatmap = cv2.warpAffine(grid, box.original_to_grid_affine(16, origin), (2048, 1024),
                             flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    ys, xs = np.nonzero(heatmap)
    # Nearest cell: cell (12, 5) owns model x within half a stride of origin + 5 * 16, y of
    # origin + 12 * 16; original x = model x / 0.21875, y = (model y - 112) / 0.21875.
    x0, y0 = origin + 5 * 16 - 8, origin + 12 * 16 - 8 - 112
    assert xs.min() == pytest.approx(x0 / 0.21875, abs=1)
    assert xs.max() == pytest.approx((x0 + 16) / 0.21875, abs=1)
    assert ys.min() == pytest.approx(y0 / 0.21875, abs=1)
    assert ys.max() == pytest.approx((y0 + 16) / 0.21875, abs=1)


def chest(width: int, height: int) -> Radiograph:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = 0.2 + 0.5 * y / height
    pixels[:, int(0.45 * width) : int(0.55 * width)] = 0.9
    return Radiograph.from_array(pixels.astype(np.float32) * 0.8 + 0.1)


@pytest.mark.parametrize(("width", "height"), [(600, 600), (500, 800), (800, 500), (100, 60)])
def test_preprocess_output_shape_dtype_range(width, height):
    config = PreprocessConfig(image_size=256)
    out = preprocess(chest(width, height), config)
    assert out.tensor.shape == (1, 256, 256) and out.tensor.dtype == np.float32
    assert float(out.tensor.min()) >= 0.0 and float(out.tensor.max()) <= 1.0
    assert out.letterbox == Letterbox.fit(width, height, 256)


@pytest.mark.parametrize("pad_value", [0.0, 0.25])
def test_preprocess_pads_outside_the_image(pad_value):
    config = PreprocessConfig(image_size=256, pad_value=pad_value)
    out = preprocess(chest(800, 400), config)  # new 256 x 128, pad_y 64
    box = out.letterbox
    assert (box.pad_y, box.new_height) == (64, 128)
    assert np.all(out.tensor[0, :64] == pad_value) and np.all(out.tensor[0, 192:] == pad_value)
    inside = out.tensor[0, 64:192]
    assert inside.max() == pytest.approx(1.0)  # the percentile stretch reaches the top


def test_percentile_window_stretches_the_resized_image():
    config = PreprocessConfig(image_size=256)
    image = chest(512, 512)
    out = preprocess(image, config)
    resized = cv2.resize(image.pixels, (256, 256), interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(resized, [0.5, 99.5])
    assert out.window == pytest.approx((lo, hi))
    np.testing.assert_allclose(out.tensor[0], np.clip((resized - lo) / (hi - lo), 0, 1), atol=1e-6)


@pytest.mark.parametrize("shape, size", [
    ((2048, 2048), (448, 448)),  # the reference film: a factor of 4.57
    ((3056, 2544), (373, 448)),  # portrait, the two factors different
    ((1000, 3000), (448, 149)),
    ((896, 896), (448, 448)),  # an integer factor
    ((500, 300), (5, 7)),
    ((448, 600), (300, 448)),  # one axis kept as it is
    ((64, 64), (64, 64)),
])
def test_area_resize_is_opencvs_up_to_float_rounding(shape, size):
    pixels = np.random.default_rng(7).random(shape, dtype=np.float32)
    ours = area_resize(pixels, *size)
    assert ours.dtype == np.float32 and ours.shape == (size[1], size[0])
    np.testing.assert_allclose(ours, cv2.resize(pixels, size, interpolation=cv2.INTER_AREA),
                               rtol=0, atol=3e-7)
    for threads in (2, 3):  # the first three films' bands shared between threads: same bytes
        np.testing.assert_array_equal(area_resize(pixels, *size, threads), ours)


def test_area_resize_leaves_what_it_does_not_shrink_to_opencv():
    rng = np.random.default_rng(8)
    nan = rng.random((300, 200), dtype=np.float32)
    nan[123, 45] = np.nan  # 0 x NaN would spread NaN over the band's other outputs
    for pixels, size in ((nan, (64, 96)), (rng.random((40, 30), dtype=np.float32), (60, 80)),
                         (rng.random((300, 200)), (64, 96)),
                         ((rng.random((300, 200)) * 255).astype(np.uint8), (64, 96))):
        expected = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(area_resize(pixels, *size), expected)


def _percentile_cases():
    rng = np.random.default_rng(3)
    for case in range(240):
        n = int(rng.integers(1, 4000)) if case % 4 else int(rng.integers(1, 250_000))
        kind = case % 5
        if kind == 0:
            values = rng.random(n, dtype=np.float32)
        elif kind == 1:  # many ties, ranks falling inside runs of equal values
            values = rng.integers(0, 5, n).astype(np.float32)
        elif kind == 2:  # heavy tails: most values in a few bins
            values = (rng.standard_normal(n) ** 3).astype(np.float32)
        elif kind == 3:
            values = rng.random(n)  # float64
        else:  # a flat background with a few values on it
            values = np.full(n, 0.25, np.float32)
            values[: n // 10] = rng.random(n // 10, dtype=np.float32)
        qs = (0.5, 99.5) if case % 2 else (float(rng.uniform(0, 5)), float(rng.uniform(95, 100)))
        yield values, (0.0, 100.0) if case % 7 == 0 else qs
    for values in ([0.0, 1e-42, 2e-42], [-3e38, 3e38, 1.0], [0.3] * 9, [2.0], [np.nan, 1, 2],
                   [np.inf, 1, 2], [-np.inf, 0, 1]):
        yield np.array(values, np.float32), (0.5, 99.5)


def test_percentiles_are_numpys_to_the_last_bit():
    """The window's fast percentiles give np.percentile's floats exactly (the same windows as
    before, so bundles calibrated with numpy's see the same inputs), ties, tails, either float
    width, the extreme ranks and the cases it leaves to numpy (non-finite, one value, a range
    its bins cannot divide) included."""
    with np.errstate(all="ignore"):
        for values, qs in _percentile_cases():
            expected, got = np.percentile(values, qs), percentiles(values, qs)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected, err_msg=f"{values.size} values, {qs}")


def test_intensity_none_keeps_display_values():
    config = PreprocessConfig(image_size=256, intensity="none")
    image = chest(256, 256)
    out = preprocess(image, config)
    assert out.window == (0.0, 1.0)
    np.testing.assert_allclose(out.tensor[0], image.pixels, atol=1e-6)


def test_flat_image_stays_flat():
    config = PreprocessConfig(image_size=64)
    out = preprocess(np.full((100, 100), 0.3, np.float32), config)
    lo, hi = out.window
    assert hi - lo == pytest.approx(1.0)
    # INTER_AREA leaves float32 rounding noise (0.3 vs 0.29999998); it must not be amplified.
    assert float(out.tensor.max()) < 1e-6 and float(out.tensor.min()) == 0.0


def test_apply_window_clips_and_keeps_float32():
    values = np.array([[0.0, 0.2, 0.5, 0.8, 1.0]], np.float32)
    out = apply_window(values, (0.2, 0.8))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-6)
    assert intensity_window(values, PreprocessConfig(intensity="none")) == (0.0, 1.0)


@pytest.mark.parametrize("bad", [{"image_size": 100}, {"image_size": 16}, {"intensity": "zscore"},
                                 {"low_percentile": 60, "high_percentile": 40},
                                 {"interpolation": "lanczos"}])
def test_invalid_config_is_refused(bad):
    with pytest.raises(ConfigError):
        PreprocessConfig(**bad)


def test_config_round_trips_through_a_dict():
    config = PreprocessConfig(image_size=512, low_percentile=1.0)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown"):
        PreprocessConfig.from_dict({**config.to_dict(), "gamma": 2.0})


_BIOVIL = {"method": "resize-crop", "interpolation": "pil-bilinear", "intensity": "minmax-uint8",
           "resize": 96}


@pytest.mark.parametrize("config", [{}, {"intensity": "uint8"}, _BIOVIL],
                         ids=["ours", "afloc", "biovil"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_an_image_error_not_a_nan_input(config, bad):
    """Every intensity refuses a NaN or an infinity, however it finds it (the percentile
    window, the min-max range, a finiteness pass), on one thread or a large film's parts."""
    from lesionloc_runtime.errors import ImageReadError

    config = PreprocessConfig(image_size=64, **config)
    for shape, threads in (((300, 200), 1), ((2100, 1000), 2), ((40, 30), 1)):  # last: enlarged
        pixels = np.random.default_rng(0).random(shape).astype(np.float32)
        pixels[-3, shape[1] // 2 + 1] = bad  # off the reader's strided contrast sample; in the last part
        image = Radiograph(pixels, "film.dcm", "dicom")  # as the DICOM reader builds it
        with pytest.raises(ImageReadError, match="non-finite"):
            preprocess(image, config, threads)
        pixels[-3, shape[1] // 2 + 1] = 0.5
        assert np.isfinite(preprocess(image, config, threads).tensor).all()


def test_contrast_sample_does_not_hide_a_blank_image_or_refuse_a_faint_one():
    from lesionloc_runtime.errors import ImageReadError
    from lesionloc_runtime.imageio.radiograph import check_contrast

    blank = np.full((256, 256), 0.25, np.float32)
    with pytest.raises(ImageReadError, match="no contrast"):
        check_contrast(blank, "blank")
    blank[3, 5] = 0.75  # one bright pixel between the sampled ones: not blank after all
    check_contrast(blank, "faint")


def _whole_image_uint8(pixels: np.ndarray, intensity: str) -> np.ndarray:
    """The 8-bit conversions as the source models' code writes them, on the whole image."""
    if intensity == "minmax-uint8":  # hi-ml's remap_to_uint8
        array = pixels.astype(np.float64)
        array -= array.min()
        top = array.max()
        if top > 0:
            array /= top
        return (array * 255).astype(np.uint8)
    return np.clip(np.rint(pixels.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def test_work_in_parts_covers_the_array_in_whole_blocks_and_waits_for_every_part():
    """At most min(threads, 4, size // MIN_PART) parts, each but the last whole blocks; the
    first on the calling thread; results in order; a failing part's error raised only once
    every other part has ended."""
    import threading

    assert part_bounds(10, 4, 3) == [0, 10]  # small: one part
    assert part_bounds(0, 4, 3) == [0, 0]
    size = 3 * MIN_PART + 5
    bounds = part_bounds(size, 8, 1000)
    assert len(bounds) == 4 and bounds[0] == 0 and bounds[-1] == size
    assert all(b % 1000 == 0 for b in bounds[:-1]) and bounds == sorted(bounds)
    assert part_bounds(size, 2, 1000)[1] == (size + 1) // 2 // 1000 * 1000
    assert even_bounds(10, 3) == [0, 3, 6, 10] and even_bounds(2, 8) == [0, 1, 2]
    assert even_bounds(0, 2) == [0, 0] and even_bounds(50, 9) == [0, 12, 25, 37, 50]
    here = threading.get_ident()
    got = in_parts(lambda a, b: (a, b, threading.get_ident() == here), size, 8, 1000)
    assert [(a, b) for a, b, _ in got] == list(zip(bounds[:-1], bounds[1:], strict=True))
    assert [on_caller for _, _, on_caller in got] == [True, False, False]
    ended, failed = [], threading.Event()

    def work(a, b):
        if a == 0:
            failed.set()
            raise ValueError("first part")
        failed.wait()  # the helpers work on after the first part has failed
        np.sort(np.random.default_rng(a).random(400_000))
        ended.append(a)

    with pytest.raises(ValueError, match="first part"):
        in_parts(work, size, 3, 1000)
    assert len(ended) == 2  # both helpers had finished when the error came out


@pytest.mark.parametrize("intensity", ["minmax-uint8", "uint8"])
def test_to_uint8_in_blocks_is_the_whole_image_conversion_bit_for_bit(intensity):
    rng = np.random.default_rng(3)
    films = [
        (rng.integers(0, 4096, (1531, 1000)) / 4095).astype(np.float32),  # a 12-bit film
        rng.normal(0.5, 0.6, (517, 301)).astype(np.float32),  # outside [0, 1]: clipped
        rng.random((400, 300), dtype=np.float32)[::2, 1::3],  # a strided view
        0.2 + 1e-3 * rng.random((70001, 1), dtype=np.float32),  # a narrow range, a long column
        np.full((64, 48), 0.3, np.float32),  # flat: the maximum after the shift is 0
    ]
    for film in films:
        got = to_uint8(film, intensity)
        assert got.shape == film.shape and got.dtype == np.uint8
        assert np.array_equal(got, _whole_image_uint8(film, intensity))
    # on several threads (the first film is large enough to be split): the same bytes
    assert len(part_bounds(films[0].size, 3, 1 << 15)) - 1 == 1  # 1.5 M pixels: one part
    big = np.concatenate([films[0]] * 3)  # 4.6 M pixels: three parts on three threads
    big[-1, -1] = 1.0  # the maximum in the last part, the minimum in the first
    big[0, 0] = 0.0
    assert len(part_bounds(big.size, 3, 1 << 15)) - 1 == 3
    want = _whole_image_uint8(big, intensity)
    for threads in (1, 2, 3, 8):
        assert np.array_equal(to_uint8(big, intensity, threads), want)


def test_pillow_bilinear_in_row_bands_is_pillows_resize_byte_for_byte():
    """The first pass in row bands on several threads, then the second: the bytes of one
    Pillow resize, for films shrunk, grown and stretched one way (2021 x 1733 is a size whose
    output-row bands were not exact)."""
    from PIL import Image

    rng = np.random.default_rng(7)
    cases = [((2048, 2048), (512, 512)), ((2021, 1733), (512, 597)), ((1733, 2021), (597, 512)),
             ((3000, 2500), (480, 576)), ((2048, 1024), (2048, 1024)), ((2048, 1024), (700, 1024)),
             ((1100, 1024), (1024, 2300)), ((37, 53), (11, 90))]
    for (rows, columns), (width, height) in cases:
        film = rng.integers(0, 256, (rows, columns), dtype=np.uint8)
        film ^= (np.add.outer(np.arange(rows), np.arange(columns)) % 256).astype(np.uint8)
        want = np.asarray(Image.fromarray(film).resize((width, height), Image.BILINEAR))
        for threads in (1, 2, 3):
            got = pillow_bilinear(film, width, height, threads)
            assert got.dtype == np.uint8 and np.array_equal(got, want), ((rows, columns), threads)
    assert len(part_bounds(2021 * 1733, 2, 1733)) == 3  # that film is split in two


def test_value_range_is_numpys_on_any_number_of_threads():
    rng = np.random.default_rng(5)
    film = rng.normal(0.3, 2.0, (2100, 1100)).astype(np.float32)
    for threads in (1, 2, 4):
        assert value_range(film, threads) == (float(film.min()), float(film.max()))
    film[-1, -1] = np.nan  # in the last part
    assert all(np.isnan(value_range(film, 2)))
    assert value_range(np.zeros((0, 4), np.float32)) == (0.0, 0.0)
