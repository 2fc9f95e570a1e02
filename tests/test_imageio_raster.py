"""PNG and JPEG reading (8/16 bit, grey, RGB, RGBA, grey+alpha), in-memory arrays, and the
refusals that do not depend on the format: missing, empty, directory, text, tiny, truncated."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.imageio import Radiograph, read_image

ROWS, COLUMNS = 96, 80


def synthetic(dtype: type = np.uint8) -> np.ndarray:
    """A smooth gradient with a bright vertical band over most of the dtype's range."""
    y, x = np.mgrid[0:ROWS, 0:COLUMNS].astype(np.float64)
    image = 0.1 + 0.5 * (y / (ROWS - 1)) + 0.05 * np.sin(x / 7.0)
    image[:, 34:46] += 0.35
    top = np.iinfo(dtype).max
    out = np.round(image / image.max() * top).astype(dtype)
    out[0, 0] = 0
    return out


def write(path: Path, image: np.ndarray, *params: int) -> Path:
    assert cv2.imwrite(str(path), image, list(params)), path
    return path


def png_grey_alpha(path: Path, grey: np.ndarray, alpha: np.ndarray) -> Path:
    """A PNG of colour type 4 (grey + alpha), which cv2.imwrite cannot produce."""
    depth = grey.dtype.itemsize * 8
    pairs = np.stack([grey, alpha], axis=2).astype(">u2" if depth == 16 else "u1")
    raw = b"".join(b"\x00" + row.tobytes() for row in pairs)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", grey.shape[1], grey.shape[0], depth, 4, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def assert_refused(path: Path, *words: str) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_png_divides_by_full_scale(tmp_path, dtype):
    pixels = synthetic(dtype)
    image = read_image(write(tmp_path / "grey.png", pixels))
    assert image.format == "png" and image.pixels.dtype == np.float32
    full = float(np.iinfo(dtype).max)
    np.testing.assert_array_equal(image.pixels, (pixels / full).astype(np.float32))
    assert image.notes == () and image.dicom is None and image.pixel_spacing_mm is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgb_png_of_a_grey_image_equals_the_grey_png(tmp_path, dtype):
    pixels = synthetic(dtype)
    grey = read_image(write(tmp_path / "grey.png", pixels)).pixels
    rgb = read_image(write(tmp_path / "rgb.png", cv2.merge([pixels] * 3))).pixels
    np.testing.assert_array_equal(rgb, grey)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgba_png_ignores_alpha(tmp_path, dtype):
    pixels = synthetic(dtype)
    grey = read_image(write(tmp_path / "grey.png", pixels)).pixels
    alpha = np.full_like(pixels, np.iinfo(dtype).max)
    alpha[:10] = 0
    image = read_image(write(tmp_path / "rgba.png", cv2.merge([pixels] * 3 + [alpha])))
    np.testing.assert_array_equal(image.pixels, grey)
    assert "alpha channel ignored" in image.notes


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_alpha_png_reads_the_grey_channel(tmp_path, dtype):
    pixels = synthetic(dtype)
    grey = read_image(write(tmp_path / "grey.png", pixels)).pixels
    opaque = np.full_like(pixels, np.iinfo(dtype).max)
    image = read_image(png_grey_alpha(tmp_path / "la.png", pixels, opaque))
    np.testing.assert_array_equal(image.pixels, grey)


def test_grey_jpeg_within_compression_tolerance(tmp_path):
    pixels = synthetic(np.uint8)
    image = read_image(write(tmp_path / "grey.jpg", pixels, cv2.IMWRITE_JPEG_QUALITY, 95))
    assert image.format == "jpeg"
    error = np.abs(image.pixels - pixels / 255.0)
    assert error.mean() < 0.01 and error.max() < 0.06


def test_rgb_jpeg_of_a_grey_image_within_tolerance(tmp_path):
    pixels = synthetic(np.uint8)
    path = write(tmp_path / "rgb.jpg", cv2.merge([pixels] * 3), cv2.IMWRITE_JPEG_QUALITY, 95)
    error = np.abs(read_image(path).pixels - pixels / 255.0)
    assert error.mean() < 0.01 and error.max() < 0.06


def test_sixteen_bit_jpeg_request_is_stored_as_8_bit_and_reads(tmp_path):
    # Baseline JPEG holds 8 bits; OpenCV falls back to 8 bits for a 16-bit array.
    path = write(tmp_path / "deep.jpg", synthetic(np.uint8).astype(np.uint16) * 257)
    image = read_image(path)
    assert image.pixels.shape == (ROWS, COLUMNS) and 0 <= image.pixels.min() <= image.pixels.max() <= 1


def test_format_comes_from_content_not_the_name(tmp_path):
    pixels = synthetic(np.uint8)
    path = write(tmp_path / "grey.png", pixels)
    renamed = tmp_path / "actually_png.dcm"
    renamed.write_bytes(path.read_bytes())
    np.testing.assert_array_equal(read_image(renamed).pixels, read_image(path).pixels)


def test_colour_photograph_is_refused(tmp_path):
    hue = np.mgrid[0:ROWS, 0:COLUMNS][1].astype(np.float32) * (180.0 / COLUMNS)
    hsv = cv2.merge([hue.astype(np.uint8), np.full((ROWS, COLUMNS), 220, np.uint8),
                     np.full((ROWS, COLUMNS), 200, np.uint8)])
    path = write(tmp_path / "photo.png", cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))
    assert_refused(path, "colour")


def test_grey_image_with_a_coloured_annotation_is_read(tmp_path):
    pixels = cv2.merge([synthetic(np.uint8)] * 3)
    pixels[40:44, 10:30] = (0, 0, 255)  # a red arrow
    image = read_image(write(tmp_path / "annotated.png", pixels))
    assert "RGB image converted to grey" in image.notes


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_raster_is_refused(tmp_path, suffix):
    path = write(tmp_path / f"full{suffix}", synthetic(np.uint8))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    assert_refused(cut, "truncated")


def test_corrupt_png_is_refused(tmp_path):
    data = bytearray(write(tmp_path / "good.png", synthetic(np.uint8)).read_bytes())
    data[60:120] = bytes(60)  # zeroes over the compressed data: CRC and zlib fail
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    assert_refused(path, "corrupt")


def test_png_with_valid_checksums_but_broken_compressed_data_is_one_line(tmp_path, capfd):
    """The chunk walk passes it; libpng fails and prints. What it printed is in our message,
    and nothing reaches the terminal on its own."""
    data = bytearray(write(tmp_path / "good.png", synthetic(np.uint8)).read_bytes())
    pos = data.find(b"IDAT")
    (length,) = struct.unpack(">I", data[pos - 4 : pos])
    body = bytearray(data[pos + 4 : pos + 4 + length])
    body[10:30] = bytes(20)
    data[pos + 4 : pos + 4 + length] = body
    data[pos + 4 + length : pos + 8 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + body))
    path = tmp_path / "inflate.png"
    path.write_bytes(bytes(data))
    assert_refused(path, "corrupt", "libpng")
    assert capfd.readouterr().err == ""


def test_jpeg_with_damaged_scan_data_is_refused_not_filled_with_grey(tmp_path, capfd):
    data = bytearray(write(tmp_path / "good.jpg", synthetic(np.uint8)).read_bytes())
    middle = (data.find(b"\xff\xda") + len(data)) // 2
    data[middle : middle + 40] = b"\xff" * 40  # markers in the middle of the scan
    path = tmp_path / "damaged.jpg"
    path.write_bytes(bytes(data))
    assert_refused(path, "damaged", "premature end")
    assert capfd.readouterr().err == ""


def test_jpeg_decoder_warning_on_an_intact_picture_becomes_a_note(tmp_path, capfd):
    """Stray bytes before the end marker (some encoders write them) lose no pixel: the
    picture reads as it is, and libjpeg's warning is a note instead of a terminal line."""
    noise = np.random.default_rng(0).random((128, 128)) * 255
    good = write(tmp_path / "good.jpg", cv2.GaussianBlur(noise.astype(np.uint8), (0, 0), 3))
    data = good.read_bytes()  # (libjpeg reads ahead: on some streams the bytes go unnoticed)
    path = tmp_path / "stray.jpg"
    path.write_bytes(data[:-2] + b"\x00\x01\x02" + data[-2:])
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, read_image(good).pixels)
    assert any(n.startswith("decoder: ") and "extraneous bytes" in n for n in image.notes)
    assert capfd.readouterr().err == ""


def test_tiff_with_a_private_tag_reads_with_libtiffs_warning_as_a_note(tmp_path, capfd):
    from PIL import Image, TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[65000] = "private scanner tag"
    path = tmp_path / "tagged.tif"
    Image.fromarray(synthetic(np.uint8)).save(path, tiffinfo=tags)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, synthetic(np.uint8) / np.float32(255.0))
    assert any(n.startswith("decoder: TIFFReadDirectory: Unknown field with tag 65000")
               for n in image.notes), image.notes
    assert capfd.readouterr().err == ""


def test_decoding_without_a_temporary_directory_still_reads(tmp_path, monkeypatch):
    import tempfile

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    path = write(tmp_path / "good.png", synthetic(np.uint8))
    expected = read_image(path).pixels
    monkeypatch.setattr(tempfile, "TemporaryFile", no_space)
    np.testing.assert_array_equal(read_image(path).pixels, expected)


def test_tiny_png_is_refused(tmp_path):
    assert_refused(write(tmp_path / "tiny.png", synthetic(np.uint8)[:20, :20]), "too small")


def test_missing_file_is_refused(tmp_path):
    assert_refused(tmp_path / "absent.dcm", "no such file")


def test_directory_is_refused(tmp_path):
    assert_refused(tmp_path, "directory")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    assert_refused(path, "empty")


@pytest.mark.parametrize("name", ["report.dcm", "report.png", "report.jpg", "report"])
def test_text_file_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_text("FINDINGS: The lungs are clear.\nIMPRESSION: No acute disease.\n")
    assert_refused(path)


# ------------------------------------------------------------------------------- from_array


@pytest.mark.parametrize(("dtype", "full"), [(np.uint8, 255.0), (np.uint16, 65535.0)])
def test_from_array_scales_unsigned_by_full_scale(dtype, full):
    pixels = synthetic(dtype)
    image = Radiograph.from_array(pixels)
    assert image.format == "array" and image.pixels.dtype == np.float32
    np.testing.assert_array_equal(image.pixels, (pixels / full).astype(np.float32))


def test_from_array_min_max_scales_other_dtypes():
    pixels = synthetic(np.uint16).astype(np.float64) * 3.0 - 7.0
    image = Radiograph.from_array(pixels, source="mem")
    assert image.source == "mem" and image.pixels.min() == 0.0 and image.pixels.max() == 1.0


@pytest.mark.parametrize("bad", [np.zeros((64, 64, 3)), np.full((64, 64), np.nan),
                                 np.zeros((8, 64)), np.array([["a"] * 64] * 64)])
def test_from_array_refuses_what_is_not_a_greyscale_image(bad):
    with pytest.raises(ImageReadError, match="<array>"):
        Radiograph.from_array(bad)


# ------------------------------------------------------------------ blank, huge, odd files


@pytest.mark.parametrize("image", [
    np.zeros((64, 64), np.uint16),
    np.full((64, 64), 128, np.uint8),
])
def test_constant_image_is_refused_for_lack_of_contrast(tmp_path, image):
    assert_refused(write(tmp_path / "blank.png", image), "no contrast", "every pixel is")


def test_fully_transparent_png_is_refused(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = synthetic(np.uint8)[:64, :64, None]
    assert_refused(write(tmp_path / "clear.png", rgba), "fully transparent")


def test_bytes_after_iend_are_ignored(tmp_path):
    path = write(tmp_path / "good.png", synthetic(np.uint8))
    padded = tmp_path / "padded.png"
    padded.write_bytes(path.read_bytes() + b"trailing garbage" * 10)
    np.testing.assert_array_equal(read_image(padded).pixels, read_image(path).pixels)


def test_png_declaring_more_pixels_than_the_limit_is_refused_before_decoding(tmp_path):
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 30001 * 4)) + chunk(b"IEND", b""))
    assert_refused(path, "30000x30000", "megapixels")


def test_multi_page_tiff_is_refused(tmp_path):
    path = tmp_path / "pages.tif"
    assert cv2.imwritemulti(str(path), [synthetic(np.uint8)] * 2)
    assert_refused(path, "multi-page", "2 pages")


def test_single_page_tiff_reads(tmp_path):
    image = read_image(write(tmp_path / "one.tif", synthetic(np.uint16)))
    assert image.format == "tiff"
    np.testing.assert_allclose(image.pixels, synthetic(np.uint16) / 65535.0, atol=1e-7)


def test_symbolic_link_loop_is_named(tmp_path):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    assert_refused(tmp_path / "a.png", "symbolic link loop")


def test_corrupt_png_prints_nothing_itself(tmp_path, capfd):
    data = bytearray(write(tmp_path / "good.png", synthetic(np.uint8)).read_bytes())
    data[60:120] = bytes(60)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    assert_refused(path, "corrupt")
    assert capfd.readouterr().err == ""


def exif(orientation: int) -> bytes:
    """A little-endian EXIF block (a TIFF header and IFD0) holding only Orientation."""
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0))


def jpeg_with_exif(path: Path, image: np.ndarray, orientation: int) -> Path:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    payload = b"Exif\x00\x00" + exif(orientation)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = encoded.tobytes()
    path.write_bytes(data[:2] + app1 + data[2:])
    return path


@pytest.mark.parametrize("orientation, transform", [
    (1, lambda a: a),
    (3, lambda a: np.rot90(a, 2)),
    (6, lambda a: np.rot90(a, -1)),
    (8, lambda a: np.rot90(a, 1)),
])
def test_jpeg_exif_orientation_is_applied_as_viewers_show_it(tmp_path, orientation, transform):
    stored = synthetic(np.uint8)
    image = read_image(jpeg_with_exif(tmp_path / "o.jpg", stored, orientation))
    expected = transform(stored) / 255.0
    assert image.pixels.shape == expected.shape
    assert np.abs(image.pixels - expected).mean() < 0.01
    assert any("EXIF orientation" in n for n in image.notes) == (orientation != 1)


def test_png_exif_chunk_orientation_is_applied(tmp_path):
    data = write(tmp_path / "plain.png", synthetic(np.uint8)).read_bytes()
    body = exif(6)
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    path = tmp_path / "rotated.png"
    path.write_bytes(data[:33] + chunk + data[33:])  # after the 8-byte signature and IHDR
    image = read_image(path)
    np.testing.assert_allclose(image.pixels, np.rot90(synthetic(np.uint8), -1) / 255.0, atol=1e-7)
