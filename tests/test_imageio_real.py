"""Public real chest radiographs (scripts/fetch_test_data.py lists them) read correctly: the
documented shapes, exact pixels across re-encodings, and lungs dark, bones bright. Each test
skips, saying why, when its file is in neither $LESIONLOC_TEST_DATA nor ../shared."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from conftest import require_real_file as real
from lesionloc_runtime.imageio import read_image

SHAPES = {  # (rows, columns), as scripts/fetch_test_data.py describes the files
    "CR-MONO1-10-chest.dcm": (440, 440),
    "CR-MONO1-10-chest_explicitLE.dcm": (440, 440),
    "CR-MONO1-10-chest_RLE.dcm": (440, 440),
    "CR-MONO1-10-chest_JPEGLosslessSV1.dcm": (440, 440),
    "RG1_J2KI.dcm": (1955, 1841),
    "SIIM_chest_jpeg_baseline.dcm": (1024, 1024),
}
DERIVED = [
    "CR-MONO1-10-chest_explicitLE.dcm",
    "CR-MONO1-10-chest_RLE.dcm",
    "CR-MONO1-10-chest_JPEGLosslessSV1.dcm",
]


def linear_window(stored: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.clip((stored - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_real_file_reads_with_documented_shape(name):
    image = read_image(real(name))
    assert image.format == "dicom"
    assert image.pixels.shape == SHAPES[name]
    assert image.pixels.dtype == np.float32
    assert 0.0 <= float(image.pixels.min()) < float(image.pixels.max()) <= 1.0
    assert "PixelData" not in image.dicom


@pytest.mark.parametrize("name", DERIVED)
def test_derived_cr_files_decode_to_the_original_pixels(name):
    original = read_image(real("CR-MONO1-10-chest.dcm")).pixels
    np.testing.assert_array_equal(read_image(real(name)).pixels, original)


def test_acr_nema_cr_file_follows_its_window_and_monochrome1():
    # No preamble, no file meta: MONOCHROME1, 10 of 16 bits, window 550/1024.
    path = real("CR-MONO1-10-chest.dcm")
    assert path.read_bytes()[128:132] != b"DICM"
    stored = pydicom.dcmread(path, force=True)
    stored.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    expected = 1.0 - linear_window(stored.pixel_array & 0x3FF, 550, 1024)
    np.testing.assert_allclose(read_image(path).pixels, expected, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_jpeg_2000_cr_file_follows_its_window_and_monochrome1(threads):
    # pydicom's pixel_array decodes with its own first choice (pylibjpeg-openjpeg); the reader
    # with imagecodecs on `threads` threads (imageio/decoders.py): the same lossy film, exactly
    path = real("RG1_J2KI.dcm")
    stored = pydicom.dcmread(path).pixel_array
    expected = 1.0 - linear_window(stored, 15000, 30000)
    np.testing.assert_allclose(read_image(path, threads=threads).pixels, expected, atol=1e-6)


def test_jpeg_baseline_file_spans_its_8_bits_with_spacing():
    path = real("SIIM_chest_jpeg_baseline.dcm")
    stored = pydicom.dcmread(path).pixel_array
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, stored / 255.0, atol=1e-7)
    assert image.pixel_spacing_mm == pytest.approx((0.168, 0.168))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_lungs_are_dark_and_mediastinum_bright(name):
    pixels = read_image(real(name)).pixels
    rows, cols = pixels.shape
    mid = slice(int(0.30 * rows), int(0.60 * rows))  # the lung fields' height

    def band(lo: float, hi: float) -> float:
        return float(pixels[mid, int(lo * cols) : int(hi * cols)].mean())

    right_lung, spine, left_lung = band(0.20, 0.30), band(0.45, 0.55), band(0.70, 0.80)
    assert spine > right_lung + 0.15 and spine > left_lung + 0.15, (right_lung, spine, left_lung)
    # Every one of these films has air outside the body in a corner: darker than the lungs.
    k = max(rows, cols) // 16
    corners = [pixels[:k, :k], pixels[:k, -k:], pixels[-k:, :k], pixels[-k:, -k:]]
    darkest = min(float(c.mean()) for c in corners)
    assert darkest < min(right_lung, left_lung) - 0.1, darkest
