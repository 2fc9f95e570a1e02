"""DICOM reading on generated files: every transfer syntax pydicom can write, the grey-level
mapping rules (hand-computed pixels), and every kind of file that must be refused."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder, get_encoder
from pydicom.tag import Tag

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.imageio import dicom, display, read_image

ROWS, COLUMNS = 96, 80
# Every test here runs twice: with large elements left in the file while the header is parsed
# (uncompressed little-endian pixels then read from the file by the display gather, any other
# file parsed again as a whole), the size made small enough for these small test films; and
# with every file read whole, as pydicom does.
LEFT_IN_FILE_BYTES = 2048


@pytest.fixture(autouse=True, params=["pixels in file", "read whole"])
def pixel_reading(request, monkeypatch):
    size = LEFT_IN_FILE_BYTES if request.param == "pixels in file" else None
    monkeypatch.setattr(dicom, "_LEFT_IN_FILE_BYTES", size)
    return request.param


def synthetic(bits: int = 12) -> np.ndarray:
    """A smooth gradient with a bright vertical band (a 'spine'), using the full BitsStored."""
    y, x = np.mgrid[0:ROWS, 0:COLUMNS].astype(np.float64)
    image = 0.15 + 0.45 * (y / (ROWS - 1)) + 0.1 * np.sin(x / 9.0)
    image[:, 34:46] += 0.3
    top = (1 << bits) - 1
    out = np.round(image / image.max() * top).astype(np.int64)
    out[0, 0], out[0, 1] = 0, top  # both ends of the range present
    return out.astype(np.uint16 if bits > 8 else np.uint8)


def dataset(
    pixels: np.ndarray,
    *,
    bits: int = 12,
    signed: bool = False,
    photometric: str = "MONOCHROME2",
    samples: int = 1,
    allocated: int | None = None,
    syntax: uid.UID = uid.ExplicitVRLittleEndian,
    **elements: object,
) -> Dataset:
    """A minimal single-frame CR-like dataset around `pixels` (stored as given)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = uid.ComputedRadiographyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.SOPClassUID = uid.ComputedRadiographyImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID = "PHANTOM-1"
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = samples
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = allocated or pixels.dtype.itemsize * 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = pixels.tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path, *, file_format: bool = True) -> Path:
    ds.save_as(path, enforce_file_format=file_format)
    return path


def compressed(tmp_path: Path, syntax: uid.UID, pixels: np.ndarray, bits: int, **kwargs: object) -> Path:
    if not get_encoder(syntax).is_available:
        pytest.skip(f"no encoder installed for {syntax.name}")
    ds = dataset(pixels, bits=bits)
    ds.compress(syntax, **kwargs)
    return save(ds, tmp_path / f"{syntax}.dcm")


def encapsulated(
    tmp_path: Path, syntax: uid.UID, codestream: bytes, pixels: np.ndarray, bits: int, name: str
) -> Path:
    ds = dataset(pixels, bits=bits, syntax=syntax)
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    return save(ds, tmp_path / name)


def needs_decoder(syntax: uid.UID) -> None:
    if not get_decoder(syntax).is_available:
        pytest.skip(f"no decoder installed for {syntax.name}")


def jpeg_lossless(pixels: np.ndarray, precision: int, predictor: int) -> bytes:
    """A JPEG lossless (process 14) codestream, ITU T.81 Annex H, for decoders we cannot
    otherwise feed: no encoder for it exists in the Python ecosystem."""
    rows, cols = pixels.shape
    x = pixels.astype(np.int64)
    bits: list[int] = []

    def emit(value: int, length: int) -> None:
        bits.extend((value >> i) & 1 for i in range(length - 1, -1, -1))

    for r in range(rows):
        for c in range(cols):
            if r == 0 and c == 0:
                guess = 1 << (precision - 1)
            elif r == 0:
                guess = x[r, c - 1]
            elif c == 0:
                guess = x[r - 1, c]
            else:
                a, b, d = x[r, c - 1], x[r - 1, c], x[r - 1, c - 1]
                guess = {1: a, 2: b, 3: d, 4: a + b - d, 5: a + ((b - d) >> 1),
                         6: b + ((a - d) >> 1), 7: (a + b) >> 1}[predictor]
            diff = int(x[r, c] - guess) % 65536
            diff = diff - 65536 if diff > 32768 else diff
            size = 16 if diff == 32768 else abs(diff).bit_length()
            emit(size, 5)  # every category has a 5-bit code: symbol s is code s
            if 0 < size < 16:
                emit(diff if diff > 0 else diff - 1, size)
    bits.extend([1] * (-len(bits) % 8))
    data = bytearray()
    for i in range(0, len(bits), 8):
        byte = int("".join(map(str, bits[i : i + 8])), 2)
        data.append(byte)
        if byte == 0xFF:
            data.append(0)

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", marker, len(payload) + 2) + payload

    sof = struct.pack(">BHHBBBB", precision, rows, cols, 1, 1, 0x11, 0)
    counts = bytes([0, 0, 0, 0, 17] + [0] * 11)
    dht = b"\x00" + counts + bytes(range(17))
    sos = bytes([1, 1, 0x00, predictor, 0, 0])
    return (b"\xff\xd8" + segment(0xFFC3, sof) + segment(0xFFC4, dht) + segment(0xFFDA, sos)
            + bytes(data) + b"\xff\xd9")


def assert_refused(path: Path, *words: str) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for word in words:
        assert word in message, message


# --------------------------------------------------------------------------- grey-level rules


def test_dicom_without_window_maps_stored_range_to_unit_interval(tmp_path):
    pixels = synthetic(12)
    image = read_image(save(dataset(pixels), tmp_path / "plain.dcm"))
    assert image.format == "dicom" and image.pixels.dtype == np.float32
    assert image.pixels.shape == (ROWS, COLUMNS) and image.pixels.flags.c_contiguous
    np.testing.assert_array_equal(image.pixels, (pixels / 4095.0).astype(np.float32))
    assert image.pixels[0, 0] == 0.0 and image.pixels[0, 1] == 1.0
    assert image.notes == ()


def test_stored_bits_define_the_full_range_not_the_container(tmp_path):
    pixels = synthetic(10)
    image = read_image(save(dataset(pixels, bits=10), tmp_path / "ten.dcm"))
    assert image.pixels[0, 1] == 1.0
    np.testing.assert_allclose(image.pixels, pixels / 1023.0, atol=1e-7)


def test_eight_bit_native_dicom(tmp_path):
    pixels = synthetic(8)
    image = read_image(save(dataset(pixels, bits=8), tmp_path / "eight.dcm"))
    np.testing.assert_array_equal(image.pixels, (pixels / 255.0).astype(np.float32))


def test_overlay_bits_above_bits_stored_are_ignored(tmp_path):
    pixels = synthetic(12)
    dirty = pixels | np.uint16(0x8000)  # an overlay plane in bit 15
    dirty[::3] |= np.uint16(0x5000)  # and garbage in bits 12 and 14
    clean = read_image(save(dataset(pixels), tmp_path / "clean.dcm")).pixels
    image = read_image(save(dataset(dirty), tmp_path / "overlay.dcm")).pixels
    np.testing.assert_array_equal(image, clean)


def test_signed_pixels_are_sign_extended_from_bits_stored(tmp_path):
    values = synthetic(12).astype(np.int16) - 2048  # -2048 .. 2047
    patterns = (values.astype(np.uint16) & 0x0FFF) | 0xA000  # garbage above bit 11
    image = read_image(save(dataset(patterns, signed=True), tmp_path / "signed.dcm"))
    np.testing.assert_allclose(image.pixels, (values + 2048) / 4095.0, atol=1e-7)
    assert image.pixels[0, 0] == 0.0 and image.pixels[0, 1] == 1.0


def test_monochrome1_is_the_inverse_of_monochrome2(tmp_path):
    pixels = synthetic(12)
    mono2 = read_image(save(dataset(pixels), tmp_path / "m2.dcm")).pixels
    mono1 = read_image(save(dataset(pixels, photometric="MONOCHROME1"), tmp_path / "m1.dcm"))
    np.testing.assert_allclose(mono1.pixels, 1.0 - mono2, atol=1e-7)


def test_presentation_lut_shape_inverse_inverts_monochrome2(tmp_path):
    pixels = synthetic(12)
    mono2 = read_image(save(dataset(pixels), tmp_path / "m2.dcm")).pixels
    inverse = dataset(pixels, PresentationLUTShape="INVERSE")
    np.testing.assert_allclose(read_image(save(inverse, tmp_path / "inv.dcm")).pixels,
                               1.0 - mono2, atol=1e-7)
    identity = dataset(pixels, PresentationLUTShape="IDENTITY")
    np.testing.assert_array_equal(read_image(save(identity, tmp_path / "id.dcm")).pixels, mono2)


def test_monochrome1_with_inverse_shape_is_inverted_once(tmp_path):
    # DX/CR files state MONOCHROME1's inversion again as PresentationLUTShape INVERSE.
    pixels = synthetic(12)
    mono1 = read_image(save(dataset(pixels, photometric="MONOCHROME1"), tmp_path / "m1.dcm"))
    both = dataset(pixels, photometric="MONOCHROME1", PresentationLUTShape="INVERSE")
    np.testing.assert_array_equal(read_image(save(both, tmp_path / "both.dcm")).pixels,
                                  mono1.pixels)


def hand_pixels(tmp_path: Path, name: str, **elements: object) -> dict[int, float]:
    """Display value of a few stored values, placed in the first row of a flat image."""
    stored = [0, 1000, 1535, 1536, 1537, 2047, 2048, 2558, 2560, 4095]
    pixels = np.full((ROWS, COLUMNS), 100, dtype=np.uint16)
    pixels[0, : len(stored)] = stored
    image = read_image(save(dataset(pixels, **elements), tmp_path / name))
    return {v: float(image.pixels[0, i]) for i, v in enumerate(stored)}


def test_linear_window_follows_ps3_3_c_11_2_1_2(tmp_path):
    got = hand_pixels(tmp_path, "linear.dcm", WindowCenter=2048, WindowWidth=1024)
    # y = (x - (c - 0.5)) / (w - 1) + 0.5, clipped: x <= 1536 -> 0, x > 2559 -> 1
    expected = {0: 0.0, 1536: 0.0, 1537: 1 / 1023, 2047: 0.5 - 0.5 / 1023,
                2048: 0.5 + 0.5 / 1023, 2558: 1 - 1 / 1023, 2560: 1.0, 4095: 1.0}
    for x, y in expected.items():
        assert got[x] == pytest.approx(y, abs=1e-6), x


def test_linear_exact_window(tmp_path):
    got = hand_pixels(tmp_path, "exact.dcm", WindowCenter=2048, WindowWidth=1024,
                      VOILUTFunction="LINEAR_EXACT")
    for x, y in {1000: 0.0, 1536: 0.0, 2048: 0.5, 2560: 1.0, 2047: 0.5 - 1 / 1024}.items():
        assert got[x] == pytest.approx(y, abs=1e-6), x


def test_sigmoid_window(tmp_path):
    got = hand_pixels(tmp_path, "sigmoid.dcm", WindowCenter=2048, WindowWidth=1024,
                      VOILUTFunction="SIGMOID")
    for x in (0, 1536, 2048, 2560, 4095):
        assert got[x] == pytest.approx(1 / (1 + np.exp(-4 * (x - 2048) / 1024)), abs=1e-6), x


def test_first_of_several_windows_is_used(tmp_path):
    got = hand_pixels(tmp_path, "multi.dcm", WindowCenter=[2048, 100], WindowWidth=[1024, 50])
    assert got[2048] == pytest.approx(0.5 + 0.5 / 1023, abs=1e-6)
    assert got[1535] == 0.0 and got[2560] == 1.0


def test_invalid_window_falls_back_to_the_stored_range_with_a_note(tmp_path):
    pixels = synthetic(12)
    image = read_image(save(dataset(pixels, WindowCenter=2048, WindowWidth=0), tmp_path / "w0.dcm"))
    np.testing.assert_allclose(image.pixels, pixels / 4095.0, atol=1e-7)
    assert any("window ignored" in note for note in image.notes)


def test_rescale_slope_intercept_before_the_window(tmp_path):
    # modality value m = 0.5 x - 100; window 500/1001: y = (m - 499.5) / 1000 + 0.5
    got = hand_pixels(tmp_path, "rescale.dcm", RescaleSlope=0.5, RescaleIntercept=-100,
                      WindowCenter=500, WindowWidth=1001)
    assert got[0] == 0.0
    assert got[2048] == pytest.approx((924 - 499.5) / 1000 + 0.5, abs=1e-6)
    assert got[1536] == pytest.approx((668 - 499.5) / 1000 + 0.5, abs=1e-6)
    assert got[4095] == 1.0


def test_negative_rescale_slope_without_window_reverses_the_range(tmp_path):
    # range: x in [0, 4095] -> m = 4095 - x in [0, 4095]
    got = hand_pixels(tmp_path, "neg.dcm", RescaleSlope=-1, RescaleIntercept=4095)
    for x in (0, 1000, 2048, 4095):
        assert got[x] == pytest.approx((4095 - x) / 4095, abs=1e-7), x


def lut_item(descriptor: list[int], data: np.ndarray, vr: str = "US") -> Dataset:
    item = Dataset()
    item.add_new("LUTDescriptor", "US", descriptor)
    if vr == "OW":
        item.add_new("LUTData", "OW", data.astype("<u2").tobytes())
    else:
        item.add_new("LUTData", "US", [int(v) for v in data])
    return item


@pytest.mark.parametrize("vr", ["US", "OW"])
def test_voi_lut_sequence_replaces_the_window(tmp_path, vr):
    # 2048 entries from 1024: x -> (x - 1024) // 8 in 8 bits; below/above clamp to the ends
    entries = np.arange(2048) // 8
    ds = dataset(np.zeros((ROWS, COLUMNS), np.uint16), WindowCenter=10, WindowWidth=2)
    ds.VOILUTSequence = [lut_item([2048, 1024, 8], entries, vr)]
    pixels = np.full((ROWS, COLUMNS), 100, dtype=np.uint16)
    stored = [0, 1024, 1100, 2047, 3071, 4095]
    pixels[0, :6] = stored
    ds.PixelData = pixels.tobytes()
    got = read_image(save(ds, tmp_path / f"voi_{vr}.dcm")).pixels[0, :6]
    expected = [0, 0, 76 // 8, (2047 - 1024) // 8, 255, 255]
    np.testing.assert_allclose(got, np.array(expected) / 255.0, atol=1e-7)


def test_voi_lut_with_negative_first_mapped_value_on_signed_data(tmp_path):
    values = np.full((ROWS, COLUMNS), 0, dtype=np.int16)
    values[0, :4] = [-2048, -1, 0, 2047]
    ds = dataset(values.astype(np.uint16) & 0x0FFF, signed=True)
    # First mapped value -2048 written as US (63488), as many writers do.
    ds.VOILUTSequence = [lut_item([4096, 63488, 12], np.arange(4096))]
    got = read_image(save(ds, tmp_path / "voi_signed.dcm")).pixels[0, :4]
    np.testing.assert_allclose(got, np.array([0, 2047, 2048, 4095]) / 4095.0, atol=1e-7)


def test_modality_lut_sequence_then_window(tmp_path):
    entries = (np.arange(4096) ** 2) // 4096 + 10  # a non-linear modality LUT
    pixels = synthetic(12)
    ds = dataset(pixels, WindowCenter=1000, WindowWidth=1001)
    ds.ModalityLUTSequence = [lut_item([4096, 0, 16], entries)]
    ds.ModalityLUTSequence[0].ModalityLUTType = "US"
    got = read_image(save(ds, tmp_path / "mlut_window.dcm")).pixels
    expected = np.clip((entries[pixels] - 999.5) / 1000 + 0.5, 0, 1)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_modality_lut_sequence_without_window_spans_its_output_range(tmp_path):
    entries = (np.arange(4096) ** 2) // 4096 + 10
    pixels = synthetic(12)
    ds = dataset(pixels)
    ds.ModalityLUTSequence = [lut_item([4096, 0, 16], entries)]
    got = read_image(save(ds, tmp_path / "mlut.dcm")).pixels
    lo, hi = entries.min(), entries.max()
    np.testing.assert_allclose(got, (entries[pixels] - lo) / (hi - lo), atol=1e-6)


# -------------------------------------------------------------------------- encodings


def write_acr_nema(ds: Dataset, path: Path) -> Path:
    """No preamble, no file meta, implicit VR little endian: what old modalities write."""
    del ds.file_meta
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[:2] == b"\x08\x00"  # a group 0008 tag first
    return path


def test_file_without_preamble_or_file_meta_reads_like_the_standard_file(tmp_path):
    pixels = synthetic(12)
    reference = read_image(save(dataset(pixels), tmp_path / "standard.dcm")).pixels
    image = read_image(write_acr_nema(dataset(pixels), tmp_path / "acr_nema.dcm"))
    np.testing.assert_array_equal(image.pixels, reference)
    windowed = dataset(pixels, WindowCenter=2048, WindowWidth=4096)  # = x / 4095 again
    image = read_image(write_acr_nema(windowed, tmp_path / "acr_window.dcm"))
    np.testing.assert_allclose(image.pixels, reference, atol=1e-6)


def test_voi_lut_in_an_implicit_vr_file(tmp_path):
    # Implicit VR leaves LUTData's VR (US or OW) to the reader.
    ds = dataset(synthetic(12))
    ds.VOILUTSequence = [lut_item([4096, 0, 16], 4095 - np.arange(4096), "OW")]
    image = read_image(write_acr_nema(ds, tmp_path / "voi_implicit.dcm"))
    np.testing.assert_allclose(image.pixels, (4095 - synthetic(12)) / 65535.0, atol=1e-7)


def test_explicit_vr_big_endian(tmp_path):
    pixels = synthetic(12)
    reference = read_image(save(dataset(pixels), tmp_path / "le.dcm")).pixels
    ds = dataset(pixels.astype(">u2"), syntax=uid.ExplicitVRBigEndian)
    path = tmp_path / "be.dcm"
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=False, enforce_file_format=True)
    np.testing.assert_array_equal(read_image(path).pixels, reference)


def test_deflated_explicit_vr_little_endian(tmp_path):
    pixels = synthetic(12)
    reference = read_image(save(dataset(pixels), tmp_path / "le.dcm")).pixels
    ds = dataset(pixels, syntax=uid.DeflatedExplicitVRLittleEndian)
    np.testing.assert_array_equal(read_image(save(ds, tmp_path / "dfl.dcm")).pixels, reference)


LOSSLESS = [
    (uid.RLELossless, {}),
    (uid.JPEGLSLossless, {}),
    (uid.JPEG2000Lossless, {}),
]


@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize(("syntax", "options"), LOSSLESS, ids=lambda v: getattr(v, "name", ""))
def test_lossless_syntaxes_decode_identically(tmp_path, syntax, options, bits):
    pixels = synthetic(bits)
    reference = read_image(save(dataset(pixels, bits=bits), tmp_path / "native.dcm")).pixels
    image = read_image(compressed(tmp_path, syntax, pixels, bits, **options))
    np.testing.assert_array_equal(image.pixels, reference)


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEG2000Lossless],
                         ids=lambda v: v.name)
def test_signed_lossless_syntaxes_decode_identically(tmp_path, syntax):
    values = synthetic(12).astype(np.int16) - 2048
    reference = read_image(save(dataset(values, signed=True), tmp_path / "native.dcm")).pixels
    if not get_encoder(syntax).is_available:
        pytest.skip(f"no encoder installed for {syntax.name}")
    ds = dataset(values, signed=True)
    ds.compress(syntax)
    np.testing.assert_array_equal(read_image(save(ds, tmp_path / "c.dcm")).pixels, reference)


def textured(bits: int, side: int = 320, signed: bool = False) -> np.ndarray:
    """Noise over a gradient, large enough for many JPEG 2000 code-blocks (64 x 64): what a
    decoder's threads share out."""
    rng = np.random.default_rng(bits)
    y, x = np.mgrid[0:side, 0:side]
    image = (1 << (bits - 2)) + (x + y) * ((1 << (bits - 2)) // (2 * side)) + \
        rng.integers(0, 1 << (bits - 3), (side, side))
    if signed:
        return (image - (1 << (bits - 1))).astype(np.int16)
    return image.astype(np.uint8 if bits <= 8 else np.uint16)


FAST_DECODED = [  # (syntax, bits, signed, encoder options): imageio/decoders.py picks these
    (uid.JPEG2000Lossless, 8, False, {}),
    (uid.JPEG2000Lossless, 12, False, {}),
    (uid.JPEG2000Lossless, 16, False, {}),
    (uid.JPEG2000Lossless, 12, True, {}),
    (uid.JPEG2000, 12, False, {"j2k_cr": [20]}),
    (uid.JPEGLSLossless, 12, False, {}),
    (uid.JPEGLSNearLossless, 12, False, {"jls_error": 2}),
]


@pytest.mark.parametrize(("syntax", "bits", "signed", "options"), FAST_DECODED,
                         ids=lambda v: getattr(v, "name", str(v)))
def test_the_faster_decoders_give_the_pixels_of_pydicoms_own_order(tmp_path, monkeypatch, syntax,
                                                                   bits, signed, options):
    """JPEG 2000 through imagecodecs on two threads and JPEG-LS through CharLS: the same
    pixels, bit for bit, as the decoder pydicom tries first."""
    from lesionloc_runtime.imageio import decoders

    if not get_encoder(syntax).is_available:
        pytest.skip(f"no encoder installed for {syntax.name}")
    ds = dataset(textured(bits, signed=signed), bits=bits, signed=signed)
    ds.compress(syntax, **options)
    fast, chosen, theirs = read_both_ways(save(ds, tmp_path / "film.dcm"), monkeypatch)
    expected = ("pyjpegls" if syntax in (uid.JPEGLSLossless, uid.JPEGLSNearLossless) else
                decoders.JPEG2000_PLUGIN)
    if expected == decoders.JPEG2000_PLUGIN and not decoders.is_available(syntax):
        pytest.skip("imagecodecs is not installed")
    assert chosen == [{"decoding_plugin": expected, **({"decode_threads": 2} if expected ==
                                                        decoders.JPEG2000_PLUGIN else {})}]
    np.testing.assert_array_equal(fast.pixels, theirs.pixels)


def read_both_ways(path: Path, monkeypatch) -> tuple:
    """`path` read on two threads with the decoder imageio/decoders.py picks, the choices it
    made (decode_options' answers), and `path` read with pydicom's own order."""
    from lesionloc_runtime.imageio import decoders

    chosen: list[dict] = []

    def recorded(*args):
        chosen.append(decoders.decode_options(*args))
        return chosen[-1]

    monkeypatch.setattr(dicom, "decode_options", recorded)
    fast = read_image(path, threads=2)
    monkeypatch.setattr(dicom, "decode_options", lambda *args: {})
    return fast, chosen, read_image(path)


HTJ2K_SYNTAXES = [uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K]


def htj2k_film(tmp_path: Path, syntax: uid.UID, pixels: np.ndarray, bits: int, *,
               signed: bool = False, reversible: bool = True) -> Path:
    """A film in an HTJ2K syntax: pydicom has no HTJ2K encoder, imagecodecs' OpenJPH does
    (reversible: the lossless 5/3 wavelet; otherwise the 9/7, lossy)."""
    imagecodecs = pytest.importorskip("imagecodecs")
    if not imagecodecs.HTJ2K.available:
        pytest.skip("this imagecodecs has no HTJ2K encoder")
    needs_decoder(syntax)
    ds = dataset(pixels, bits=bits, signed=signed, syntax=syntax)
    ds.PixelData = encapsulate([imagecodecs.htj2k_encode(pixels, reversible=reversible)])
    ds["PixelData"].VR = "OB"
    return save(ds, tmp_path / f"{syntax}.dcm")


@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("syntax", HTJ2K_SYNTAXES, ids=lambda v: v.name)
def test_htj2k_lossless_decodes_identically(tmp_path, syntax, bits):
    pixels = synthetic(bits)
    reference = read_image(save(dataset(pixels, bits=bits), tmp_path / "native.dcm")).pixels
    image = read_image(htj2k_film(tmp_path, syntax, pixels, bits), threads=2)
    np.testing.assert_array_equal(image.pixels, reference)


def test_signed_htj2k_lossless_decodes_identically(tmp_path):
    values = synthetic(12).astype(np.int16) - 2048
    reference = read_image(save(dataset(values, signed=True), tmp_path / "native.dcm")).pixels
    path = htj2k_film(tmp_path, uid.HTJ2KLossless, values, 12, signed=True)
    np.testing.assert_array_equal(read_image(path).pixels, reference)


@pytest.mark.parametrize(("syntax", "bits", "reversible"), [
    (uid.HTJ2KLossless, 12, True), (uid.HTJ2KLosslessRPCL, 16, True), (uid.HTJ2K, 12, True),
    (uid.HTJ2K, 12, False), (uid.HTJ2K, 8, False),
], ids=str)
def test_htj2k_goes_through_openjpeg_on_threads_with_the_pixels_of_pydicoms_own_order(
        tmp_path, monkeypatch, syntax, bits, reversible):
    """HTJ2K through imagecodecs' OpenJPEG on two threads: the pixels, bit for bit, of the
    decoder pydicom has (pylibjpeg-openjpeg, the same library on one thread), lossy 9/7
    codestreams included."""
    import imagecodecs

    from lesionloc_runtime.imageio import decoders

    path = htj2k_film(tmp_path, syntax, textured(bits), bits, reversible=reversible)
    release = tuple(int(v) for v in imagecodecs.jpeg2k_version().split()[-1].split(".")[:2])
    if not imagecodecs.JPEG2K.available or release < (2, 5):
        pytest.skip("imagecodecs' OpenJPEG cannot decode HTJ2K here")
    fast, chosen, theirs = read_both_ways(path, monkeypatch)
    assert chosen == [{"decoding_plugin": decoders.JPEG2000_PLUGIN, "decode_threads": 2}]
    np.testing.assert_array_equal(fast.pixels, theirs.pixels)
    if not reversible:  # the 9/7 codestream lost something: the two agree on a lossy image
        assert not np.array_equal(fast.pixels, read_image(
            save(dataset(textured(bits), bits=bits), tmp_path / "native.dcm")).pixels)


def test_htj2k_is_left_to_pydicom_where_imagecodecs_openjpeg_predates_it():
    from lesionloc_runtime.imageio.decoders import _decodes_htj2k

    assert _decodes_htj2k("openjpeg 2.5.4") and _decodes_htj2k("openjpeg 3.0")
    assert not _decodes_htj2k("openjpeg 2.4.0")
    assert not _decodes_htj2k("") and not _decodes_htj2k("openjpeg unknown")


class _Decoder:
    """What decode_options uses of a pydicom decoder."""

    def __init__(self, *available: str) -> None:
        self.available_plugins = available
        self.added: list[str] = []

    def add_plugin(self, label: str, import_path: tuple[str, str]) -> None:
        if label in self.added:
            raise ValueError("added before")
        self.added.append(label)


def test_decoder_choice_falls_back_to_pydicoms_order_when_the_faster_one_is_missing():
    from lesionloc_runtime.imageio.decoders import JPEG2000_PLUGIN, decode_options

    without = _Decoder("pylibjpeg", "pillow")  # imagecodecs missing: the plugin is unavailable
    assert decode_options(without, uid.JPEG2000Lossless, 4) == {}
    assert decode_options(without, uid.JPEG2000Lossless, 4) == {}  # added once, asked twice
    assert without.added == [JPEG2000_PLUGIN]
    assert decode_options(_Decoder("pylibjpeg", JPEG2000_PLUGIN), uid.JPEG2000, 0) == {
        "decoding_plugin": JPEG2000_PLUGIN, "decode_threads": 1}
    assert decode_options(_Decoder("pylibjpeg", JPEG2000_PLUGIN), uid.HTJ2KLossless, 2) == {
        "decoding_plugin": JPEG2000_PLUGIN, "decode_threads": 2}
    assert decode_options(_Decoder("pylibjpeg"), uid.HTJ2K, 2) == {}
    assert decode_options(_Decoder("pylibjpeg"), uid.JPEGLSLossless, 2) == {}
    assert decode_options(_Decoder("pylibjpeg", "pyjpegls"), uid.JPEGLSLossless, 2) == {
        "decoding_plugin": "pyjpegls"}
    assert decode_options(_Decoder("pylibjpeg", "pillow"), uid.JPEGBaseline8Bit, 2) == {}


@pytest.mark.parametrize(("syntax", "predictor"), [
    (uid.JPEGLosslessSV1, 1), (uid.JPEGLossless, 1), (uid.JPEGLossless, 4),
    (uid.JPEGLossless, 6), (uid.JPEGLossless, 7),
], ids=lambda v: getattr(v, "name", str(v)))
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_jpeg_lossless_process_14_decodes_identically(tmp_path, syntax, predictor, bits):
    needs_decoder(syntax)
    pixels = synthetic(bits)
    reference = read_image(save(dataset(pixels, bits=bits), tmp_path / "native.dcm")).pixels
    stream = jpeg_lossless(pixels, max(bits, 2), predictor)
    path = encapsulated(tmp_path, syntax, stream, pixels, bits, "jll.dcm")
    np.testing.assert_array_equal(read_image(path).pixels, reference)


def test_jpeg_ls_near_lossless_within_its_error_bound(tmp_path):
    pixels = synthetic(12)
    image = read_image(compressed(tmp_path, uid.JPEGLSNearLossless, pixels, 12, jls_error=3))
    assert np.abs(image.pixels * 4095.0 - pixels).max() <= 3 + 1e-3


def test_jpeg_2000_lossy_within_tolerance(tmp_path):
    pixels = synthetic(12)
    image = read_image(compressed(tmp_path, uid.JPEG2000, pixels, 12, j2k_cr=[10]))
    error = np.abs(image.pixels - pixels / 4095.0)
    assert error.mean() < 0.005 and error.max() < 0.05


def test_jpeg_baseline_8_bit_within_tolerance(tmp_path):
    import cv2

    needs_decoder(uid.JPEGBaseline8Bit)
    pixels = synthetic(8)
    ok, stream = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    path = encapsulated(tmp_path, uid.JPEGBaseline8Bit, stream.tobytes(), pixels, 8, "jpg.dcm")
    error = np.abs(read_image(path).pixels - pixels / 255.0)
    assert error.mean() < 0.01 and error.max() < 0.06


def test_jpeg_extended_12_bit_from_pydicom_test_data():
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "JPGExtended.dcm"
    if not path.exists():
        pytest.skip("pydicom's JPGExtended.dcm test file is not installed")
    needs_decoder(uid.JPEGExtended12Bit)
    raw = pydicom.dcmread(path).pixel_array
    image = read_image(path)
    assert image.pixels.shape == (1024, 256)
    np.testing.assert_allclose(image.pixels, raw / 4095.0, atol=1e-7)


def test_header_travels_without_pixel_data_and_spacing_is_read(tmp_path):
    ds = dataset(synthetic(12), PixelSpacing=[0.2, 0.1])
    image = read_image(save(ds, tmp_path / "spacing.dcm"))
    assert image.pixel_spacing_mm == (0.2, 0.1)
    assert image.dicom.PatientID == "PHANTOM-1" and "PixelData" not in image.dicom
    imager = dataset(synthetic(12), ImagerPixelSpacing=[0.15, 0.15])
    assert read_image(save(imager, tmp_path / "imager.dcm")).pixel_spacing_mm == (0.15, 0.15)
    assert read_image(save(dataset(synthetic(12)), tmp_path / "none.dcm")).pixel_spacing_mm is None


def test_missing_photometric_interpretation_is_read_as_monochrome2(tmp_path):
    pixels = synthetic(12)
    ds = dataset(pixels)
    del ds.PhotometricInterpretation
    image = read_image(save(ds, tmp_path / "nophoto.dcm"))
    np.testing.assert_allclose(image.pixels, pixels / 4095.0, atol=1e-7)
    assert any("MONOCHROME2" in note for note in image.notes)


@pytest.mark.parametrize(("keyword", "tag", "vr", "note", "top"), [
    ("PhotometricInterpretation", b"\x28\x00\x04\x00", b"CS",
     "PhotometricInterpretation unreadable: read as MONOCHROME2", 4095),
    ("BitsStored", b"\x28\x00\x01\x01", b"US", "BitsStored unreadable: taken as BitsAllocated",
     65535),
    ("PixelRepresentation", b"\x28\x00\x03\x01", b"US", None, 4095),
])
def test_element_with_a_damaged_vr_is_repaired_like_a_missing_one(tmp_path, keyword, tag, vr,
                                                                  note, top):
    """A damaged VR makes pydicom raise NotImplementedError when the element is read, and also
    when it is assigned over (found by fuzzing): the reader replaces it without reading it."""
    pixels = synthetic(12)
    data = save(dataset(pixels), tmp_path / "good.dcm").read_bytes()
    assert data.count(tag + vr) == 1
    damaged = tmp_path / f"damaged-{keyword}.dcm"
    damaged.write_bytes(data.replace(tag + vr, tag + b"JS"))
    image = read_image(damaged)
    np.testing.assert_allclose(image.pixels, pixels / top, atol=1e-7)
    if note is not None:
        assert any(n.startswith(note) for n in image.notes), image.notes


# ------------------------------------------------------------------------------- refusals


def test_multi_frame_is_refused(tmp_path):
    pixels = np.stack([synthetic(12)] * 2)
    ds = dataset(pixels[0], NumberOfFrames=2)
    ds.PixelData = pixels.tobytes()
    assert_refused(save(ds, tmp_path / "frames.dcm"), "multi-frame", "2 frames")


def test_frames_beyond_the_header_are_refused(tmp_path):
    ds = dataset(synthetic(12))  # no NumberOfFrames, but pixel data for two frames
    ds.PixelData = np.stack([synthetic(12)] * 2).tobytes()
    assert_refused(save(ds, tmp_path / "hidden_frames.dcm"), "2 frames")


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL", "YBR_FULL_422"])
def test_colour_dicom_is_refused(tmp_path, photometric):
    rgb = np.repeat(synthetic(8)[:, :, None], 3, axis=2)
    ds = dataset(rgb, bits=8, photometric=photometric, samples=3)
    assert_refused(save(ds, tmp_path / "colour.dcm"), "colour", photometric)


def test_palette_colour_dicom_is_refused(tmp_path):
    ds = dataset(synthetic(8), bits=8, photometric="PALETTE COLOR")
    assert_refused(save(ds, tmp_path / "palette.dcm"), "colour", "PALETTE COLOR")


def test_structured_report_is_refused(tmp_path):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    ds.SOPInstanceUID = uid.generate_uid()
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "No acute cardiopulmonary process."
    ds.ContentSequence = [item]
    assert_refused(save(ds, tmp_path / "report.dcm"), "Structured Report")


def test_dicom_without_pixel_data_is_refused(tmp_path):
    ds = dataset(synthetic(12))
    del ds.PixelData
    assert_refused(save(ds, tmp_path / "header_only.dcm"), "no pixel data")


def test_float_pixel_data_is_refused(tmp_path):
    ds = dataset(synthetic(12))
    del ds.PixelData
    ds.FloatPixelData = np.zeros((ROWS, COLUMNS), np.float32).tobytes()
    assert_refused(save(ds, tmp_path / "float.dcm"), "floating-point")


def test_truncated_native_pixel_data_is_refused(tmp_path):
    path = save(dataset(synthetic(12)), tmp_path / "full.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:-500])
    assert_refused(cut, "truncated")


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEG2000Lossless, uid.JPEGLSLossless,
                                    uid.HTJ2KLossless], ids=lambda v: v.name)
def test_truncated_compressed_file_is_refused(tmp_path, syntax):
    rng = np.random.default_rng(1)
    pixels = (synthetic(12) + rng.integers(0, 50, (ROWS, COLUMNS))).clip(0, 4095).astype(np.uint16)
    data = (htj2k_film(tmp_path, syntax, pixels, 12) if syntax == uid.HTJ2KLossless else
            compressed(tmp_path, syntax, pixels, 12)).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert_refused(cut, "truncated")


def test_rle_run_past_the_frame_is_refused_in_one_line(tmp_path, capfd):
    """pylibjpeg-rle panics on a run that starts inside the frame and ends past it, in the
    last segment (found by fuzzing). The panic is pyo3's PanicException, a BaseException that
    `except Exception` misses, and Rust prints it (and a backtrace) on fd 2: both must stay
    inside the one-line error."""
    needs_decoder(uid.RLELossless)
    side = 32
    header = np.zeros(16, "<u4")
    header[:3] = (2, 64, 64 + 16)  # two segments: high bytes, then low bytes
    high = bytes([0x81, 0x01]) * 8  # 8 runs of 128 = the 1024 high bytes
    low = bytes([0x81, 0x00]) * 7 + bytes([0x82, 0x00, 0x81, 0x00])  # 896 + 127, then 128
    pixels = np.zeros((side, side), np.uint16)
    path = encapsulated(tmp_path, uid.RLELossless, header.tobytes() + high + low, pixels, 12,
                        "rle_overrun.dcm")
    capfd.readouterr()
    assert_refused(path, "cannot be decoded", "RLE Lossless")
    assert capfd.readouterr().err == ""


def test_cut_codestream_in_complete_items_is_refused(tmp_path):
    # JPEG-LS decoders return a partial image from a cut codestream without complaint.
    rng = np.random.default_rng(2)
    pixels = (synthetic(12) + rng.integers(0, 50, (ROWS, COLUMNS))).clip(0, 4095).astype(np.uint16)
    if not get_encoder(uid.JPEGLSLossless).is_available:
        pytest.skip("no JPEG-LS encoder installed")
    ds = dataset(pixels)
    ds.compress(uid.JPEGLSLossless)
    stream = b"".join(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    path = encapsulated(tmp_path, uid.JPEGLSLossless, stream[: len(stream) // 2], pixels, 12,
                        "cut_stream.dcm")
    assert_refused(path, "truncated")


def _codestream(syntax: uid.UID, pixels: np.ndarray) -> bytes:
    if syntax == uid.JPEGLosslessSV1:
        return jpeg_lossless(pixels, 12, 1)
    if not get_encoder(syntax).is_available:
        pytest.skip(f"no encoder installed for {syntax.name}")
    ds = dataset(pixels)
    ds.compress(syntax)
    return b"".join(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))


@pytest.mark.parametrize("syntax", [uid.JPEG2000Lossless, uid.JPEGLSLossless, uid.JPEGLosslessSV1],
                         ids=lambda v: v.name)
def test_codestream_that_declares_another_size_is_refused_before_decoding(tmp_path, syntax):
    """Decoders allocate what the codestream declares: a damaged size in a J2K SIZ or a JPEG
    SOF cost OpenJPEG 50 s and gigabytes before it failed (found by fuzzing)."""
    needs_decoder(syntax)
    pixels = synthetic(12)
    stream = bytearray(_codestream(syntax, pixels))
    if syntax == uid.JPEG2000Lossless:
        at = stream.find(b"\xff\x4f\xff\x51") + 12  # Ysiz
        stream[at:at + 4] = (ROWS * 20000).to_bytes(4, "big")
    else:
        at = max(stream.find(m) for m in (b"\xff\xc3", b"\xff\xf7")) + 5  # SOF's height
        stream[at:at + 2] = (60000).to_bytes(2, "big")
    path = encapsulated(tmp_path, syntax, bytes(stream), pixels, 12, "big.dcm")
    declared = ROWS * 20000 if syntax == uid.JPEG2000Lossless else 60000
    assert_refused(path, f"declares {COLUMNS}x{declared} pixels", f"says {COLUMNS}x{ROWS}")


def test_corrupt_codestream_is_refused(tmp_path):
    junk = bytes(np.random.default_rng(3).integers(0, 255, 4000, dtype=np.uint8)) + b"\xff\xd9"
    path = encapsulated(tmp_path, uid.JPEG2000Lossless, junk, synthetic(12), 12, "junk.dcm")
    assert_refused(path, "cannot be decoded")


def test_transfer_syntax_without_decoder_is_refused(tmp_path):
    path = encapsulated(tmp_path, uid.MPEG2MPML, bytes(100), synthetic(12), 12, "mpeg.dcm")
    assert_refused(path, "no decoder")


def test_pixel_data_with_a_damaged_vr_is_refused(tmp_path):
    data = save(dataset(synthetic(12)), tmp_path / "good.dcm").read_bytes()
    tag_vr = b"\xe0\x7f\x10\x00OW"
    assert data.count(tag_vr) == 1
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(data.replace(tag_vr, b"\xe0\x7f\x10\x00O:"))
    assert_refused(damaged, "the pixel data element is damaged")


def test_damaged_header_values_are_not_echoed_into_errors(tmp_path):
    """A damaged length runs a value into the next elements, binary bytes and identifiers
    included (found by fuzzing): a message shows such a value by its length only."""
    path = encapsulated(tmp_path, uid.MPEG2MPML, bytes(100), synthetic(12), 12, "mpeg.dcm")
    good = str(uid.MPEG2MPML).encode()
    damaged = tmp_path / "bad_syntax.dcm"
    damaged.write_bytes(path.read_bytes().replace(good, good[:10] + b"\r" + good[11:]))
    assert_refused(damaged, f"transfer syntax UID is malformed (<{len(good)} unreadable "
                            "characters>)")
    two = tmp_path / "two_syntaxes.dcm"  # a backslash: pydicom reads two values
    two.write_bytes(path.read_bytes().replace(good, good[:4] + b"\\" + good[5:]))
    assert_refused(two, "transfer syntax UID is malformed")

    report = dataset(synthetic(12))
    del report.PixelData, report.Rows
    swallowed = "1.2.840.10008.5.1.4.1.1.1\x00\x08\x00\x18\x00PATIENT^JANE"
    with pytest.warns(UserWarning):  # pydicom warns about the invalid UID
        report.SOPClassUID = swallowed
        path = save(report, tmp_path / "swallowed.dcm")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert f"SOP Class UID <{len(swallowed)} unreadable characters>" in message, message
    assert "PATIENT" not in message and message.isprintable(), message

    for value, shown in ((b"9x" * 20, "<40 unreadable characters>"), (b"two ", "two")):
        frames = dataset(synthetic(12))  # an IS that pydicom would not let us set
        frames[0x00280008] = RawDataElement(Tag(0x00280008), "IS", len(value), value, 0, False,
                                            True)
        with pytest.warns(UserWarning):
            path = save(frames, tmp_path / "frames.dcm")
        assert_refused(path, f"NumberOfFrames {shown} is not a number")


def test_tiny_dicom_is_refused(tmp_path):
    assert_refused(save(dataset(synthetic(12)[:16, :16]), tmp_path / "tiny.dcm"), "too small")


def test_garbage_after_a_dicom_like_start_is_refused(tmp_path):
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"\x08\x00\x05\x00" + bytes(np.random.default_rng(4).integers(0, 255, 300,
                                                                                  dtype=np.uint8)))
    with pytest.raises(ImageReadError, match="garbage.dcm"):
        read_image(path)


# ------------------------------------------------- unusable values: a note or one clear line


def test_empty_modality_lut_is_ignored_with_a_note(tmp_path):
    pixels = synthetic(12)
    ds = dataset(pixels)
    ds.ModalityLUTSequence = [lut_item([4096, 0, 12], np.arange(0))]
    image = read_image(save(ds, tmp_path / "empty_lut.dcm"))
    np.testing.assert_allclose(image.pixels, pixels / 4095.0, atol=1e-7)
    assert any("Modality LUT ignored" in note for note in image.notes)


def test_overflowing_rescale_slope_is_refused_without_warnings(tmp_path, capfd):
    path = save(dataset(synthetic(12), RescaleSlope="1e308"), tmp_path / "slope.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would fail here
        assert_refused(path, "non-finite")
    assert capfd.readouterr().err == ""


def dx_film_values() -> np.ndarray:
    """Stored values of a real 16-bit JPEG 2000 DX film: 32744 to 65535 (its window 2725/5310
    lies far below all of them)."""
    return (32744 + np.round(synthetic(12) / 4095.0 * (65535 - 32744))).astype(np.uint16)


def test_window_that_puts_every_pixel_at_one_grey_level_uses_the_image_range(tmp_path):
    stored = dx_film_values()
    ds = dataset(stored, bits=16, photometric="MONOCHROME1", WindowCenter=2725,
                 WindowWidth=5310)
    if get_encoder(uid.JPEG2000Lossless).is_available:
        ds.compress(uid.JPEG2000Lossless)  # the film's own syntax, when an encoder is installed
    image = read_image(save(ds, tmp_path / "dx.dcm"))
    np.testing.assert_allclose(image.pixels, 1 - (stored - 32744.0) / (65535 - 32744), atol=1e-6)
    assert [n for n in image.notes if "window" in n] == [
        "window 2725/5310 puts every pixel at one grey level (values 32744 to 65535): a window "
        "over the image's own values used instead"]


def test_voi_lut_that_puts_every_pixel_at_one_grey_level_uses_the_image_range(tmp_path):
    stored = dx_film_values()
    ds = dataset(stored, bits=16)
    ds.VOILUTSequence = [lut_item([4096, 0, 12], np.arange(4096))]  # all inputs past its end
    image = read_image(save(ds, tmp_path / "voi_dx.dcm"))
    np.testing.assert_allclose(image.pixels, (stored - 32744.0) / (65535 - 32744), atol=1e-6)
    assert any(n.startswith("VOI LUT puts every pixel at one grey level") for n in image.notes)


def test_a_blank_image_under_a_window_is_still_refused(tmp_path):
    path = save(dataset(np.full((ROWS, COLUMNS), 3000, np.uint16), WindowCenter=100000,
                        WindowWidth=10), tmp_path / "blank.dcm")
    assert_refused(path, "no contrast", "every pixel is 0")


def test_a_window_with_contrast_somewhere_is_kept(tmp_path):
    """Only a window under which no two pixels differ is replaced: one that clips most of the
    image but not all of it is the sender's choice."""
    pixels = synthetic(12)
    image = read_image(save(dataset(pixels, WindowCenter=4095, WindowWidth=2),
                            tmp_path / "narrow.dcm"))
    assert image.pixels.max() == 1.0 and (image.pixels == 0).mean() > 0.99
    assert not any("grey level" in n for n in image.notes)


def test_unknown_pixel_representation_is_read_unsigned_with_a_note(tmp_path):
    pixels = synthetic(12)
    image = read_image(save(dataset(pixels, PixelRepresentation=7), tmp_path / "pr7.dcm"))
    np.testing.assert_allclose(image.pixels, pixels / 4095.0, atol=1e-7)
    assert any("PixelRepresentation 7" in note for note in image.notes)


def test_invalid_number_of_frames_gives_one_line_and_no_library_warning(tmp_path, capfd):
    path = save(dataset(synthetic(12), NumberOfFrames="1"), tmp_path / "frames.dcm")
    tag = b"\x28\x00\x08\x00IS\x02\x001 "
    data = path.read_bytes()
    assert tag in data
    path.write_bytes(data.replace(tag, b"\x28\x00\x08\x00IS\x02\x00x "))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_refused(path, "NumberOfFrames")
    assert capfd.readouterr().err == ""


def test_file_cut_in_its_header_logs_nothing(tmp_path, caplog):
    data = save(dataset(synthetic(12)), tmp_path / "whole.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:300])
    with pytest.raises(ImageReadError):
        read_image(cut)
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]


def test_overlapping_reads_leave_pydicom_logging_and_warnings_as_they_were(tmp_path):
    """Reads in several threads overlap without nesting (A in, B in, A out, B out). Saving
    and restoring per read left pydicom's logger and the warnings off for good."""
    import logging
    import threading

    from lesionloc_runtime.imageio.capture import quiet_libraries

    logger = logging.getLogger("pydicom")
    before = (logger.disabled, list(warnings.filters))
    first, second = quiet_libraries(), quiet_libraries()
    first.__enter__()
    second.__enter__()
    assert logger.disabled
    first.__exit__(None, None, None)
    assert logger.disabled  # the second read is still going
    second.__exit__(None, None, None)
    assert (logger.disabled, list(warnings.filters)) == before
    # and real reads in threads
    path = save(dataset(synthetic(12)), tmp_path / "t.dcm")
    threads = [threading.Thread(target=read_image, args=(path,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (logger.disabled, list(warnings.filters)) == before


def test_reader_notes_reach_the_study_result(tiny_bundle, tmp_path):
    from lesionloc_runtime.localizer import Localizer

    path = save(dataset(synthetic(12), WindowCenter=2048, WindowWidth=0), tmp_path / "w0.dcm")
    result = Localizer.load(tiny_bundle, threads=1).localize(path, queries=["right effusion"])
    assert any("window ignored" in note for note in result.notes)
    assert result.to_dict()["input"]["notes"] == result.notes


@pytest.mark.parametrize("shape", [(2051, 1031), (2048, 1536)])
def test_a_large_films_display_gather_on_several_threads_is_the_same_bit_for_bit(
        tmp_path, monkeypatch, shape):
    """The gather through the display table is shared between threads for a large film: each
    thread's rows are the ones one thread would give, whatever the size (an odd one leaves a
    last part shorter than the others)."""
    from lesionloc_runtime.imageio import display

    rng = np.random.default_rng(3)
    stored = rng.integers(0, 1 << 12, shape).astype(np.uint16)
    path = save(dataset(stored, WindowCenter=1800, WindowWidth=2600,
                        RescaleSlope=0.9, RescaleIntercept=-40), tmp_path / "large.dcm")
    shares: list[int] = []
    real = display._gather_into

    def counted(table, source, target, start, stop, *kept):
        shares.append(stop - start)
        real(table, source, target, start, stop, *kept)

    monkeypatch.setattr(display, "_gather_into", counted)
    one = read_image(path, threads=1).pixels
    assert shares == [stored.size]
    for threads in (2, 3):
        shares.clear()
        many = read_image(path, threads=threads).pixels
        np.testing.assert_array_equal(many, one)
        assert sum(shares) == stored.size and len(shares) == min(threads, stored.size >> 20)
        # the stored levels kept on the way (read into memory by the gather's threads)
        kept = read_image(path, threads=threads, keep_stored=True)
        np.testing.assert_array_equal(kept.pixels, one)
        np.testing.assert_array_equal(kept.stored.patterns, stored)
    # and what one thread gives is the window of PS3.3 C.11.2.1.2 on every pixel
    values = stored * 0.9 - 40
    expected = np.clip((values - (1800 - 0.5)) / (2600 - 1) + 0.5, 0, 1).astype(np.float32)
    np.testing.assert_allclose(one, expected, atol=1e-6)


@pytest.mark.parametrize("syntax, allocated, from_file", [
    (uid.ExplicitVRLittleEndian, 16, True), (uid.ImplicitVRLittleEndian, 16, True),
    (uid.ExplicitVRLittleEndian, 8, True), (uid.ExplicitVRBigEndian, 16, False),
    (uid.DeflatedExplicitVRLittleEndian, 16, False)], ids=str)
def test_uncompressed_little_endian_pixels_are_gathered_from_the_file(
        tmp_path, monkeypatch, syntax, allocated, from_file):
    """Only uncompressed pixels of a little-endian file are read from the file by the gather
    (a deflated file's offsets are those of the inflated data, a big-endian one's bytes need
    swapping: both are read whole), and they give the pixels of the file read whole."""
    pixels = synthetic(12 if allocated == 16 else 8)
    ds = dataset(pixels.astype(">u2") if syntax == uid.ExplicitVRBigEndian else pixels,
                 bits=12 if allocated == 16 else 8, syntax=syntax)
    path = tmp_path / "film.dcm"
    pydicom.dcmwrite(path, ds, implicit_vr=syntax == uid.ImplicitVRLittleEndian,
                     little_endian=syntax != uid.ExplicitVRBigEndian, enforce_file_format=True)
    reads: list[int] = []
    real = display.PixelFile.read
    monkeypatch.setattr(display.PixelFile, "read",
                        lambda self, start, buffer: reads.append(buffer.size) or real(self, start, buffer))
    monkeypatch.setattr(dicom, "_LEFT_IN_FILE_BYTES", None)
    whole = read_image(path)
    assert not reads
    monkeypatch.setattr(dicom, "_LEFT_IN_FILE_BYTES", LEFT_IN_FILE_BYTES)
    in_file = read_image(path)
    assert sum(reads) == (pixels.size * allocated // 8 if from_file else 0)
    np.testing.assert_array_equal(in_file.pixels, whole.pixels)
    assert in_file.notes == whole.notes and "PixelData" not in in_file.dicom


def test_pixels_that_end_before_the_frame_while_read_are_refused(tmp_path):
    """A file cut after its header was parsed (a copy still being written) ends the read with
    one line, not garbage."""
    path = tmp_path / "short.bin"
    path.write_bytes(bytes(150))
    with open(path, "rb") as handle:
        pixels = display.PixelFile(handle.fileno(), 50, np.dtype("<u2"), (10, 10), str(path))
        with pytest.raises(ImageReadError, match="short.bin: the pixel data is truncated"):
            pixels.load()
        assert pixels.read(0, np.empty(100, np.uint8)).shape == (50,)  # what is there reads


def test_the_display_table_is_made_once_per_mapping(tmp_path, monkeypatch):
    made: list[int] = []
    real = display.DisplayMapping.display
    monkeypatch.setattr(display.DisplayMapping, "display",
                        lambda self, stored: made.append(stored.size) or real(self, stored))
    monkeypatch.setattr(display, "_TABLES", type(display._TABLES)())
    first = save(dataset(synthetic(12), WindowCenter=1800, WindowWidth=2600), tmp_path / "a.dcm")
    second = save(dataset(synthetic(12), WindowCenter=1000, WindowWidth=900), tmp_path / "b.dcm")
    a = read_image(first).pixels
    assert made == [65536]
    np.testing.assert_array_equal(read_image(first).pixels, a)
    assert made == [65536]  # kept
    b = read_image(second).pixels
    assert made == [65536, 65536] and not np.array_equal(a, b)  # another window, another table
    np.testing.assert_array_equal(read_image(first).pixels, a)
    assert len(made) == 2
