"""A film's stored grey levels kept beside its display image (`read_image(..., keep_stored=True)`):
the imported models' 8-bit film made from them is the same, byte for byte, as the one made from
the display image, whatever the file's intensity chain, and a film that holds a NaN or an
infinity is still refused."""

from __future__ import annotations

import types
import warnings

import cv2
import numpy as np
import pytest
from pydicom import uid
from test_imageio_dicom import COLUMNS, ROWS, dataset, lut_item, save, synthetic

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.imageio import Radiograph, dicom, read_image
from lesionloc_runtime.imageio.display import StoredPixels
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.preprocess import PreprocessConfig, preprocess, to_uint8

# The three recipes that feed a model an 8-bit film: AFLoc's letterbox, BioViL's resize and
# centre crop, and a min-max letterbox.
EIGHT_BIT_CONFIGS = {
    "afloc": PreprocessConfig(image_size=64, intensity="uint8"),
    "biovil": PreprocessConfig(image_size=64, intensity="minmax-uint8", method="resize-crop",
                               interpolation="pil-bilinear", resize=72),
    "minmax-letterbox": PreprocessConfig(image_size=64, intensity="minmax-uint8"),
}


def _window(pixels: np.ndarray) -> dict[str, object]:
    return {"WindowCenter": 1800, "WindowWidth": 1200}  # levels on both sides of it clip


def _voi_lut(pixels: np.ndarray) -> dict[str, object]:
    return {"VOILUTSequence": [lut_item([2048, 1024, 8], np.arange(2048) // 8)]}


def _modality_lut(pixels: np.ndarray) -> dict[str, object]:
    item = lut_item([4096, 0, 16], (np.arange(4096) ** 2) // 4096 + 10)
    item.ModalityLUTType = "US"
    return {"ModalityLUTSequence": [item], "WindowCenter": 1000, "WindowWidth": 1001}


def _blank_window(pixels: np.ndarray) -> dict[str, object]:
    return {"WindowCenter": 60000, "WindowWidth": 2}  # every pixel one grey: the reader re-windows


HEADERS = {
    "plain": lambda pixels: {},
    "window": _window,
    "monochrome1": lambda pixels: {"photometric": "MONOCHROME1"},
    "negative slope": lambda pixels: {"RescaleSlope": -2.5, "RescaleIntercept": 100},
    "voi lut": _voi_lut,
    "modality lut": _modality_lut,
    "window over no pixel": _blank_window,
}


def _assert_same_inputs(plain: Radiograph, kept: Radiograph) -> None:
    assert np.array_equal(plain.pixels, kept.pixels)
    stored = kept.stored
    assert stored is not None and plain.stored is None
    assert np.array_equal(stored.table[stored.patterns.astype(np.int64)], kept.pixels)
    for config in EIGHT_BIT_CONFIGS.values():
        for threads in (1, 2):
            want, got = preprocess(plain, config, threads), preprocess(kept, config, threads)
            assert np.array_equal(want.tensor, got.tensor)
            assert want.window == got.window


@pytest.mark.parametrize("in_file", [True, False], ids=["pixels in file", "read whole"])
@pytest.mark.parametrize("header", HEADERS)
def test_the_8_bit_film_from_the_stored_levels_is_the_display_images(tmp_path, monkeypatch,
                                                                      header, in_file):
    monkeypatch.setattr(dicom, "_LEFT_IN_FILE_BYTES", 2048 if in_file else None)
    pixels = synthetic(12)
    pixels[5, 7] = 4095 | 0xF000  # an overlay bit above BitsStored: the table masks it
    elements = HEADERS[header](pixels)
    path = save(dataset(pixels, **elements), tmp_path / "film.dcm")
    _assert_same_inputs(read_image(path), read_image(path, keep_stored=True))


@pytest.mark.parametrize("signed", [False, True])
def test_eight_bit_and_signed_containers_keep_their_levels(tmp_path, signed):
    if signed:
        values = (synthetic(12).astype(np.int16) - 2048).astype(np.uint16) & 0x0FFF
        ds = dataset(values, signed=True)
    else:
        ds = dataset(synthetic(8), bits=8)
    path = save(ds, tmp_path / "film.dcm")
    _assert_same_inputs(read_image(path), read_image(path, keep_stored=True))


def test_a_compressed_film_keeps_its_decoded_levels(tmp_path):
    ds = dataset(synthetic(12))
    ds.compress(uid.RLELossless)
    path = save(ds, tmp_path / "rle.dcm")
    _assert_same_inputs(read_image(path), read_image(path, keep_stored=True))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_films_keep_their_levels(tmp_path, dtype):
    top = np.iinfo(dtype).max
    film = (np.random.default_rng(1).random((ROWS, COLUMNS)) * top).astype(dtype)
    film[0, 0], film[0, 1] = 0, top
    path = tmp_path / "film.png"
    cv2.imwrite(str(path), film)
    _assert_same_inputs(read_image(path), read_image(path, keep_stored=True))


def test_levels_the_film_does_not_hold_change_nothing_and_warn_nothing():
    """A table's entries for levels absent from the film may lie outside the film's range (a
    min-max film's extremes are its own) or be NaN (an overflowing rescale): the 8-bit film
    is still the display image's, with no warning from a cast of NaN or out-of-range values."""
    rng = np.random.default_rng(2)
    table = np.linspace(-0.5, 1.5, 4096, dtype=np.float32)
    table[4000:] = np.nan  # never held by the film below
    patterns = rng.integers(1200, 2900, (300, 200)).astype(np.uint16)  # values 0.09 to 0.92
    pixels = table[patterns.astype(np.int64)]
    plain = Radiograph(pixels, "film.dcm", "dicom")
    kept = Radiograph(pixels, "film.dcm", "dicom", stored=StoredPixels(patterns, table))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for config in EIGHT_BIT_CONFIGS.values():
            assert np.array_equal(preprocess(plain, config).tensor, preprocess(kept, config).tensor)
    # a min-max conversion through the table would be wrong with the table's own extremes
    finite = table[:4000]
    assert not np.array_equal(to_uint8(pixels, "minmax-uint8"),
                              to_uint8(finite, "minmax-uint8")[patterns.astype(np.int64)])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("config", EIGHT_BIT_CONFIGS)
def test_a_film_holding_a_non_finite_level_is_still_refused(config, bad):
    table = np.linspace(0, 1, 4096, dtype=np.float32)
    table[17] = bad
    patterns = np.random.default_rng(3).integers(0, 4096, (300, 200)).astype(np.uint16)
    patterns[-3, 101] = 17
    image = Radiograph(table[patterns.astype(np.int64)], "film.dcm", "dicom",
                       stored=StoredPixels(patterns, table))
    with pytest.raises(ImageReadError, match="non-finite"):
        preprocess(image, EIGHT_BIT_CONFIGS[config])


@pytest.mark.parametrize(("intensity", "kept"), [("percentile", False), ("none", False),
                                                 ("uint8", True), ("minmax-uint8", True)])
def test_the_localizer_keeps_the_levels_only_for_a_model_fed_an_8_bit_film(tmp_path, intensity,
                                                                            kept):
    path = save(dataset(synthetic(12)), tmp_path / "film.dcm")
    config = types.SimpleNamespace(intensity=intensity)
    localizer = types.SimpleNamespace(threads=2,
                                      bundle=types.SimpleNamespace(preprocessing=config))
    assert (Localizer.read_image(localizer, path).stored is not None) is kept
