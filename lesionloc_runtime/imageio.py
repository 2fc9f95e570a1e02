"""Reading chest radiographs (DICOM, PNG, JPEG) into one display-oriented greyscale array.

This is the only image reader in the project: training, export calibration, the runtime and
the benchmarks all call `read_image`, so what a deployed model sees is what it was trained on.
The DICOM grey-level rules are documented in docs/images.md.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lesionloc_runtime.errors import ImageReadError, is_panic, printable

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
IMAGE_SUFFIXES = DICOM_SUFFIXES | RASTER_SUFFIXES
MIN_SIDE = 32
# Refused before decoding: a chest radiograph is at most about 4300x4300 (18 megapixels), and a
# small PNG or JPEG can declare 30000x30000 and cost gigabytes to decode.
MAX_PIXELS = 100_000_000

# SOP classes that are certainly not a projection radiograph.
_NON_IMAGE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.88.",)  # structured reports
_COLOUR_PHOTOMETRICS = {
    "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420",
    "YBR_ICT", "YBR_RCT", "PALETTE COLOR", "HSV", "ARGB", "CMYK",
}
_EOI = b"\xff\xd9"  # JPEG EOI, JPEG-LS EOI and JPEG 2000 EOC share this marker
# A raster counts as colour (a photo, a Doppler screenshot) when more than this share of its
# pixels has a chroma above 1/8 of full scale; JPEG noise and coloured annotations stay below.
_COLOUR_PIXEL_SHARE = 0.10


@dataclass(frozen=True)
class Radiograph:
    """A single greyscale radiograph ready for preprocessing.

    `pixels` is float32, shape (height, width), in [0, 1] with display orientation: 0 is black
    (air, lungs), 1 is white (bone). Every DICOM intensity transform (modality LUT, VOI LUT or
    window, MONOCHROME1 / INVERSE presentation) has already been applied. `notes` lists what
    the reader repaired or ignored in the file (an invalid window, an alpha channel...).
    """

    pixels: np.ndarray
    source: str
    format: str  # "dicom" | "png" | "jpeg" | "tiff" | "array"
    pixel_spacing_mm: tuple[float, float] | None = None
    dicom: Any = field(default=None, repr=False)  # pydicom Dataset without pixel data, or None
    notes: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @classmethod
    def from_array(cls, pixels: np.ndarray, source: str = "<array>") -> Radiograph:
        """Wrap an in-memory array (any numeric dtype, 2-D) as a radiograph, scaled to [0, 1].

        uint8 and uint16 are divided by their full scale; other dtypes are min-max scaled.
        """
        arr = np.asarray(pixels)
        if arr.ndim != 2:
            raise ImageReadError(f"{source}: expected a 2-D greyscale array, got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ImageReadError(f"{source}: expected a numeric array, got dtype {arr.dtype}")
        _check_size(arr.shape, source)
        if arr.dtype == np.uint8:
            out = arr.astype(np.float32) / np.float32(255.0)
        elif arr.dtype == np.uint16:
            out = arr.astype(np.float32) / np.float32(65535.0)
        else:
            out = arr.astype(np.float32)
            if not np.isfinite(out).all():
                raise ImageReadError(f"{source}: the array contains NaN or infinite values")
            out = _minmax(out)
        return cls(np.ascontiguousarray(out, dtype=np.float32), source, "array")


def import_dicom_stack() -> None:
    """Import pydicom and its pixel decoders now rather than at the first DICOM read (0.4 s in
    a fresh process, most of it the decoder plugins). `Localizer.load` calls it while ONNX
    Runtime builds its sessions, which release the GIL, so a cold start pays it in parallel."""
    import pydicom.pixels  # noqa: F401


def read_image(path: str | os.PathLike[str]) -> Radiograph:
    """Read a chest radiograph from a DICOM, PNG or JPEG file.

    Raises ImageReadError with a one-line reason for anything that is not a readable,
    single-frame greyscale radiograph (multi-frame, colour, no pixel data, SR, text...).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(f"{path}: a symbolic link loop, not an image file") from None
        raise ImageReadError(f"{path}: cannot be opened ({exc.strerror})") from None
    if not head:
        raise ImageReadError(f"{path}: the file is empty")
    kind = _sniff(head, path)
    with _quiet_libraries():
        image = _read_dicom(path) if kind == "dicom" else _read_raster(path, kind)
    _check_contrast(image.pixels, str(path))
    return image


class _Quiet:
    """The process-wide switch behind `_quiet_libraries`: the first reader in switches pydicom's
    logger and Python warnings off, the last one out restores them. Warning filters and a
    logger's `disabled` are global, so per-call saving and restoring is not safe across threads:
    two overlapping reads would restore each other's "off" state and leave it off for good."""

    lock = threading.Lock()
    depth = 0
    logger_was_disabled = False
    warnings_state: warnings.catch_warnings | None = None


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """pydicom warns and logs (file path, code line) about what the reader reports itself as
    one line or a note; nothing of that may reach the terminal before our message. Safe to
    use from several threads at once (see `_Quiet`)."""
    with _Quiet.lock:
        if _Quiet.depth == 0:
            logger = logging.getLogger("pydicom")
            _Quiet.logger_was_disabled = logger.disabled
            logger.disabled = True
            _Quiet.warnings_state = warnings.catch_warnings()
            _Quiet.warnings_state.__enter__()
            warnings.simplefilter("ignore")
        _Quiet.depth += 1
    try:
        yield
    finally:
        with _Quiet.lock:
            _Quiet.depth -= 1
            if _Quiet.depth == 0:
                logging.getLogger("pydicom").disabled = _Quiet.logger_was_disabled
                if _Quiet.warnings_state is not None:
                    _Quiet.warnings_state.__exit__(None, None, None)
                    _Quiet.warnings_state = None


def _check_contrast(pixels: np.ndarray, source: str) -> None:
    """A blank image (a failed export, a transform that maps everything to one value) would
    still produce heatmaps and boxes that look confident: refuse it. A strided sample with
    contrast and finite values settles it in 0.2 ms (the whole 2048x2048 film: 3.4 ms, a tenth
    of this pipeline's share outside the encoders); `preprocess` refuses non-finite values the
    sample missed (they reach its percentiles)."""
    sample = pixels[::8, ::8]
    lo, hi = float(sample.min()), float(sample.max())
    if np.isfinite(lo) and np.isfinite(hi) and hi - lo >= 1e-6:
        return
    lo, hi = float(pixels.min()), float(pixels.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageReadError(
            f"{source}: the image has non-finite values after its intensity transforms "
            "(an overflowing RescaleSlope?)"
        )
    if hi - lo < 1e-6:
        raise ImageReadError(
            f"{source}: image has no contrast: every pixel is {lo:.4g} on a 0-1 scale "
            "(a blank image, or a window that maps everything to one value)"
        )


def _sniff(head: bytes, path: Path) -> str:
    """The file's format from its first bytes; the name is only used to word the error."""
    # DICM first: a DICOM preamble may itself be a TIFF header (dual-format files).
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    # DICOM without preamble (ACR-NEMA style): the first tag is in group 0x0002 or 0x0008 with
    # a small element number, little endian (02 00 xx 00) or big endian (00 02 00 xx).
    if len(head) >= 8 and (
        (head[0] in (0x02, 0x08) and head[1] == 0 and head[3] == 0)
        or (head[0] == 0 and head[1] in (0x02, 0x08) and head[2] == 0)
    ):
        return "dicom"
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        raise ImageReadError(
            f"{path}: the file is named {suffix} but its content is not a {suffix[1:].upper()} "
            "image (wrong extension, or a text file?)"
        )
    raise ImageReadError(f"{path}: not a DICOM, PNG or JPEG file (unrecognised content)")


# --------------------------------------------------------------------------------------- DICOM


def _read_dicom(path: Path) -> Radiograph:
    notes: list[str] = []
    ds = _parse_dicom(path)
    _check_radiograph_object(ds, path, notes)
    raw = _decode_pixels(ds, path, notes)
    mapping = _DisplayMapping.from_header(ds, raw.dtype, path, notes)
    pixels = mapping.apply(raw)
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            del ds[keyword]  # the header travels with the radiograph; the pixels must not
    return Radiograph(pixels, str(path), "dicom", _pixel_spacing(ds), ds, tuple(notes))


def _parse_dicom(path: Path) -> Any:
    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:  # pydicom raises many types on malformed input
            raise ImageReadError(f"{path}: not a readable DICOM file ({_short(exc)})") from None
    if any("End of file reached" in str(w.message) for w in caught):
        # pydicom drops an encapsulated Pixel Data element whose end is missing.
        raise ImageReadError(f"{path}: the DICOM file is truncated (its pixel data is incomplete)")
    return ds


def _check_radiograph_object(ds: Any, path: Path, notes: list[str]) -> None:
    """Reject what is not one greyscale image; fill the defaults ACR-NEMA files leave out."""
    from pydicom.uid import UID

    sop = str(header_value(ds, "SOPClassUID") or "")
    is_report = "ContentSequence" in ds and "PixelData" not in ds
    if sop.startswith(_NON_IMAGE_SOP_PREFIXES) or is_report:
        raise ImageReadError(f"{path}: a DICOM Structured Report, not an image")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise ImageReadError(
            f"{path}: the DICOM file holds floating-point pixel data (a parametric map), "
            "not a radiograph"
        )
    if "PixelData" not in ds:
        if "Rows" in ds:
            raise ImageReadError(
                f"{path}: the DICOM file has an image header but no pixel data (truncated file?)"
            )
        kind = f" ({UID(sop).name})" if UID_TEXT.fullmatch(sop) else (
            f" (SOP Class UID {shown_value(sop)})" if sop else "")
        raise ImageReadError(f"{path}: the DICOM file has no pixel data; it is not an image{kind}")
    try:
        ds.PixelData  # noqa: B018 - pydicom converts lazily: a damaged element raises only here
    except Exception as exc:
        raise ImageReadError(f"{path}: the pixel data element is damaged ({_short(exc)})") from None
    frames = _int(ds, "NumberOfFrames", path, default=1)
    if frames > 1:
        raise ImageReadError(
            f"{path}: a multi-frame DICOM ({frames} frames); a chest radiograph has one frame"
        )
    photometric = str(header_value(ds, "PhotometricInterpretation") or "").strip().upper()
    samples = _int(ds, "SamplesPerPixel", path, default=1)
    if photometric in _COLOUR_PHOTOMETRICS or samples != 1:
        raise ImageReadError(
            f"{path}: a colour DICOM ({shown_value(photometric) or 'no photometric'}, {samples} "
            "samples per pixel); chest radiographs are greyscale (is this ultrasound or a "
            "screenshot?)"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        shown = shown_value(photometric) or _absent(ds, "PhotometricInterpretation")
        notes.append(f"PhotometricInterpretation {shown}: read as MONOCHROME2")
        _replace(ds, "PhotometricInterpretation", "MONOCHROME2")
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if _int(ds, keyword, path, default=0) <= 0:
            raise ImageReadError(f"{path}: the DICOM header lacks a valid {keyword}")
    _check_size((_int(ds, "Rows", path), _int(ds, "Columns", path)), str(path))
    allocated = _int(ds, "BitsAllocated", path)
    stored = _int(ds, "BitsStored", path, default=0)
    if not 1 <= stored <= allocated:
        notes.append(f"BitsStored {stored or _absent(ds, 'BitsStored')}: taken as BitsAllocated "
                     f"{allocated}")
        _replace(ds, "BitsStored", allocated)
        _replace(ds, "HighBit", allocated - 1)
    if "SamplesPerPixel" not in ds:
        _replace(ds, "SamplesPerPixel", 1)
    representation = _int(ds, "PixelRepresentation", path, default=-1)
    if representation not in (0, 1):
        if representation != -1:
            notes.append(f"PixelRepresentation {representation} unknown: read as unsigned")
        _replace(ds, "PixelRepresentation", 0)


def _decode_pixels(ds: Any, path: Path, notes: list[str]) -> np.ndarray:
    """The stored values as an integer (rows, columns) array, a read-only view if uncompressed."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.pixels import get_decoder
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    try:
        syntax = ds.file_meta.get("TransferSyntaxUID")
    except Exception:  # a damaged element (pydicom converts lazily)
        raise ImageReadError(f"{path}: the transfer syntax UID cannot be read") from None
    if syntax is not None and not (isinstance(syntax, str) and UID_TEXT.fullmatch(syntax)):
        raise ImageReadError(  # e.g. two values, or bytes that are not digits and dots
            f"{path}: the transfer syntax UID is malformed ({shown_value(syntax, UID_TEXT)})"
        )
    if syntax is None:
        # ACR-NEMA / no file meta: the decoder needs a syntax; use the encoding pydicom found.
        implicit, little = ds.original_encoding
        syntax = (
            ImplicitVRLittleEndian if implicit is not False
            else ExplicitVRLittleEndian if little is not False
            else ExplicitVRBigEndian
        )
        ds.file_meta.TransferSyntaxUID = syntax
    name = shown_value(getattr(syntax, "name", syntax), UID_NAME_TEXT)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        shown = shown_value(syntax, UID_TEXT)
        label = name if name == shown else f"{name} ({shown})"
        raise ImageReadError(
            f"{path}: pixel data in transfer syntax {label} cannot be decoded: no "
            "decoder exists for it; ask the PACS to send uncompressed or JPEG 2000"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise ImageReadError(f"{path}: no decoder installed for {name} ({missing})")

    if syntax.is_encapsulated:
        _check_codestream_end(ds, syntax, path)
        options: dict[str, Any] = {}
    else:
        _check_native_length(ds, path)
        # A view on the file's bytes: the display table masks unused bits, so no copy is needed.
        options = {"view_only": True}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _stderr_captured() as printed:
                raw, _ = decoder.as_array(ds, raw=True, correct_unused_bits=False, **options)
        except BaseException as exc:
            # Decoders raise many types, all meaning "cannot decode"; the Rust RLE decoder
            # panics. What they printed meanwhile (a panic's backtrace) is dropped.
            if not (isinstance(exc, Exception) or is_panic(exc)):
                raise
            raise ImageReadError(
                f"{path}: the pixel data cannot be decoded (transfer syntax {name}: "
                f"{_short(exc)})"
            ) from None
    notes.extend(f"decoder: {_short(w.message)}" for w in caught)
    notes.extend(f"decoder: {line}" for line in printed[:5])
    if raw.ndim == 3:  # frames beyond the header's NumberOfFrames, which pydicom returns too
        raise ImageReadError(
            f"{path}: the pixel data holds {raw.shape[0]} frames; a chest radiograph has one"
        )
    if raw.ndim != 2:
        raise ImageReadError(f"{path}: pixel data of shape {raw.shape} is not a single 2-D image")
    if raw.dtype.kind not in "iu":
        raise ImageReadError(f"{path}: pixel data of type {raw.dtype} is not a radiograph")
    return raw


def _check_native_length(ds: Any, path: Path) -> None:
    rows, columns = _int(ds, "Rows", path), _int(ds, "Columns", path)
    expected = (rows * columns * _int(ds, "BitsAllocated", path) + 7) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise ImageReadError(
            f"{path}: the pixel data is truncated ({actual} of {expected} bytes for "
            f"{columns}x{rows} pixels)"
        )


def _check_codestream_end(ds: Any, syntax: Any, path: Path) -> None:
    """JPEG, JPEG-LS and JPEG 2000 decoders silently return a partial image from a cut
    codestream; a complete one ends with the EOI/EOC marker (then at most a pad byte)."""
    from pydicom.encaps import generate_fragments
    from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

    if syntax not in (*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes):
        return  # RLE decoders check the segment lengths themselves
    try:
        items = list(generate_fragments(ds.PixelData))
        fragments = [f for f in items[1:] if f]  # the first item is the Basic Offset Table
    except Exception as exc:  # malformed item tags or lengths
        raise ImageReadError(
            f"{path}: the encapsulated pixel data is malformed ({_short(exc)})"
        ) from None
    if not fragments:
        raise ImageReadError(f"{path}: the encapsulated pixel data holds no compressed image")
    if _EOI not in fragments[-1][-16:]:
        raise ImageReadError(
            f"{path}: the compressed pixel data is truncated (no end-of-image marker)"
        )
    # The decoders allocate what the codestream declares, not what the DICOM header says: a
    # damaged size would cost gigabytes and a minute before failing (found by fuzzing).
    head = fragments[0][:4096]
    declared = (_j2k_size(head) if syntax in JPEG2000TransferSyntaxes
                else _jpeg_header(head).size)
    rows, columns = _int(ds, "Rows", path), _int(ds, "Columns", path)
    if declared is not None and declared[0] != 0 and declared != (rows, columns):
        # (a JPEG SOF may leave the height 0 for a DNL marker to give; the decoder checks that)
        raise ImageReadError(
            f"{path}: the compressed image declares {declared[1]}x{declared[0]} pixels but the "
            f"DICOM header says {columns}x{rows}; the file is damaged"
        )


def _j2k_size(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a JPEG 2000 codestream's SIZ segment (ISO/IEC 15444-1 A.5.1),
    which follows the SOC marker (after the boxes of a JP2 wrapper); None if not found."""
    at = data.find(b"\xff\x4f\xff\x51")
    if at < 0 or len(data) < at + 24:
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", data[at + 8 : at + 24])
    return ysiz - yosiz, xsiz - xosiz


@dataclass(frozen=True)
class _Lut:
    """A DICOM lookup table (modality or VOI): inputs below `first` take the first entry,
    inputs past the end the last (PS3.3 C.11.1.1, C.11.2.1.1)."""

    first: int
    data: np.ndarray  # int64 entries
    bits: int  # entries span 0 .. 2**bits - 1

    def __call__(self, values: np.ndarray) -> np.ndarray:
        index = np.clip(values - self.first, 0, len(self.data) - 1)
        return self.data[index]

    @classmethod
    def from_item(
        cls, item: Any, signed_input: bool, little_endian: bool, what: str, notes: list[str]
    ) -> _Lut | None:
        """Parse one LUT sequence item; None (with a note) when it is unusable."""
        try:
            entries, first, bits = (int(v) for v in item.LUTDescriptor)
            value = item.LUTData
            if value is None or len(np.atleast_1d(value)) == 0:
                raise ValueError("empty LUTData")
        except Exception:  # absent, empty, wrong VM or unparseable: the LUT cannot be used
            notes.append(f"{what} ignored: no valid LUTDescriptor/LUTData")
            return None
        entries = entries or 65536  # PS3.3 C.11.1.1: 0 means 2**16 entries
        if signed_input and first >= 32768:
            first -= 65536  # descriptor read as US although the input range is signed
        if isinstance(value, (bytes, bytearray)):
            # OW: 16-bit words, unless 8-bit entries were packed one per byte.
            width = 1 if bits <= 8 and len(value) < 2 * entries else 2
            dtype = np.dtype("u1") if width == 1 else np.dtype("<u2" if little_endian else ">u2")
            data = np.frombuffer(value, dtype=dtype, count=min(entries, len(value) // width))
        else:
            try:
                data = np.atleast_1d(np.asarray(value, dtype=np.int64))
            except (TypeError, ValueError, OverflowError):
                notes.append(f"{what} ignored: its LUTData are not integers")
                return None
        if len(data) < entries or not 1 <= bits <= 16:
            notes.append(f"{what} ignored: {len(data)} entries for a descriptor of {entries}, "
                         f"{bits} bits")
            return None
        data = data[:entries].astype(np.int64)
        peak = int(data.max())
        if peak >= 1 << bits:  # a descriptor that understates the entries' depth
            notes.append(f"{what}: entries exceed {bits} bits; using {peak.bit_length()}")
            bits = peak.bit_length()
        return cls(first, data, bits)


@dataclass(frozen=True)
class _DisplayMapping:
    """Stored pixel value -> display value in [0, 1] (PS3.3 C.11): modality LUT or rescale,
    then VOI LUT or window, else the whole representable range; then inversion."""

    bits: int
    signed: bool
    slope: float
    intercept: float
    modality_lut: _Lut | None
    voi_lut: _Lut | None
    window: tuple[float, float, str] | None  # centre, width, VOI LUT function
    invert: bool

    @classmethod
    def from_header(
        cls, ds: Any, dtype: np.dtype, path: Path, notes: list[str]
    ) -> _DisplayMapping:
        container_bits = dtype.itemsize * 8
        bits = _int(ds, "BitsStored", path)
        if bits > container_bits:
            notes.append(f"BitsStored {bits} exceeds the decoded {container_bits} bits")
            bits = container_bits
        signed = _int(ds, "PixelRepresentation", path, default=0) == 1
        little = ds.file_meta.TransferSyntaxUID.is_little_endian is not False
        modality_lut = voi_lut = None
        if header_value(ds, "ModalityLUTSequence"):
            modality_lut = _Lut.from_item(
                ds.ModalityLUTSequence[0], signed, little, "Modality LUT", notes
            )
        slope = _float(ds, "RescaleSlope", notes, default=1.0)
        if slope == 0.0:
            notes.append("RescaleSlope 0 ignored")
            slope = 1.0
        intercept = _float(ds, "RescaleIntercept", notes, default=0.0)
        if header_value(ds, "VOILUTSequence"):
            # LUT inputs may be negative only if the modality output can be.
            negative = modality_lut is None and (signed or intercept < 0 or slope < 0)
            voi_lut = _Lut.from_item(ds.VOILUTSequence[0], negative, little, "VOI LUT", notes)
        window = None if voi_lut is not None else _window_from_header(ds, notes)
        photometric = str(header_value(ds, "PhotometricInterpretation") or "").strip().upper()
        shape = str(header_value(ds, "PresentationLUTShape") or "").strip().upper()
        # PS3.3 C.11.6: for MONOCHROME1 an INVERSE shape states that same inversion; it is
        # not a second one, so either inverts once.
        invert = photometric == "MONOCHROME1" or shape == "INVERSE"
        return cls(bits, signed, slope, intercept, modality_lut, voi_lut, window, invert)

    def stored_values(self, patterns: np.ndarray) -> np.ndarray:
        """Bit patterns of the decoded container -> stored values: bits above BitsStored (an
        overlay, garbage) are dropped and signed values sign-extended from BitsStored."""
        values = patterns.astype(np.int64) & ((1 << self.bits) - 1)
        if self.signed:
            values -= (values >> (self.bits - 1)) << self.bits
        return values

    def modality(self, stored: np.ndarray) -> np.ndarray:
        if self.modality_lut is not None:
            return self.modality_lut(stored).astype(np.float64)
        return stored * self.slope + self.intercept

    def modality_range(self) -> tuple[float, float]:
        """The modality output over every value BitsStored can hold."""
        lo = -(1 << (self.bits - 1)) if self.signed else 0
        hi = (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1
        lut = self.modality_lut
        if lut is None:
            ends = self.modality(np.array([lo, hi], dtype=np.int64))
            return float(ends.min()), float(ends.max())
        start, stop = np.clip(np.array([lo, hi]) - lut.first, 0, len(lut.data) - 1)
        reachable = lut.data[start : stop + 1]
        return float(reachable.min()), float(reachable.max())

    def display(self, stored: np.ndarray) -> np.ndarray:
        """Stored values (int64) -> display values in [0, 1] (float64); NaN where a huge
        rescale overflows (read_image then refuses the image)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self._display(stored)

    def _display(self, stored: np.ndarray) -> np.ndarray:
        values = self.modality(stored)
        if self.voi_lut is not None:
            lut = self.voi_lut
            out = lut(np.rint(values).astype(np.int64)) / float((1 << lut.bits) - 1)
        elif self.window is not None:
            out = _apply_window(values, *self.window)
        else:
            lo, hi = self.modality_range()
            out = (values - lo) / max(hi - lo, 1e-12)
        out = np.clip(out, 0.0, 1.0)
        return 1.0 - out if self.invert else out

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Decoded integer array -> float32 display image, in one pass over the pixels."""
        unsigned = np.dtype(f"u{raw.dtype.itemsize}")
        if not raw.dtype.isnative:
            raw = raw.astype(raw.dtype.newbyteorder("="))
        patterns = raw.view(unsigned)
        if raw.dtype.itemsize <= 2:
            # Every possible bit pattern through the whole chain once (<= 65536 entries, in
            # float64), then one gather: masking, sign, LUTs and window cost no per-pixel work.
            table = self.display(self.stored_values(np.arange(1 << (8 * raw.dtype.itemsize))))
            return table.astype(np.float32)[patterns]
        return self.display(self.stored_values(patterns)).astype(np.float32)


def _window_from_header(ds: Any, notes: list[str]) -> tuple[float, float, str] | None:
    """The first window (centre, width, function), or None if absent or unusable."""
    if header_value(ds, "WindowCenter") is None or header_value(ds, "WindowWidth") is None:
        return None
    try:
        center = float(_first(ds.WindowCenter))
        width = float(_first(ds.WindowWidth))
    except (TypeError, ValueError):
        notes.append("window ignored: WindowCenter/WindowWidth are not numbers")
        return None
    function = str(header_value(ds, "VOILUTFunction") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        notes.append(f"VOILUTFunction {shown_value(function)} unknown: LINEAR used")
        function = "LINEAR"
    # PS3.3 C.11.2.1.2: width >= 1 for LINEAR, > 0 otherwise.
    smallest = 1.0 if function == "LINEAR" else 1e-12
    if not (np.isfinite(center) and np.isfinite(width) and width >= smallest):
        notes.append(f"window ignored: invalid width {width} for {function}")
        return None
    return center, width, function


def _apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 / C.11.2.1.3.1 with output range [0, 1] (before clipping)."""
    if function == "SIGMOID":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return (values - center) / width + 0.5
    if width == 1:  # LINEAR with w = 1 is a threshold at c - 0.5
        return (values > center - 0.5).astype(np.float64)
    return (values - (center - 0.5)) / (width - 1) + 0.5


def _pixel_spacing(ds: Any) -> tuple[float, float] | None:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = header_value(ds, key)
        if value is None:
            continue
        try:
            spacing = (float(value[0]), float(value[1]))
        except (TypeError, ValueError, IndexError):
            continue
        if spacing[0] > 0 and spacing[1] > 0 and len(value) == 2:
            return spacing
    return None


# What a header value must look like to be shown in a message (see `shown_value`).
UID_TEXT = re.compile(r"(?=.{1,64}$)[0-9]+(?:\.[0-9]+)*")
UID_NAME_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)*|[A-Za-z0-9 ()\[\]\-:,.]{1,120}")


def shown_value(value: Any, allowed: re.Pattern[str] | None = None, limit: int = 32) -> str:
    """A header value as a message may show it. A damaged length can run one value into the
    next elements, binary bytes and identifiers (an accession number, a name) included, so a
    value is shown only when it looks like what it should be: matching `allowed`, or else at
    most `limit` printable ASCII characters."""
    text = str(value).strip()
    if allowed is not None:
        ok = allowed.fullmatch(text) is not None
    else:
        ok = len(text) <= limit and text.isascii() and text.isprintable()
    return text if ok else f"<{len(text)} unreadable characters>"


def _absent(ds: Any, keyword: str) -> str:
    """Why `header_value` found nothing: the element is not there, or it cannot be read."""
    return "unreadable" if keyword in ds else "missing"


def _replace(ds: Any, keyword: str, value: Any) -> None:
    """Set an element, dropping the old one unread: pydicom converts the old value before it
    assigns, and a value it cannot convert (a damaged VR) would raise."""
    if keyword in ds:
        delattr(ds, keyword)
    setattr(ds, keyword, value)


def header_value(ds: Any, keyword: str) -> Any:
    """An element's value, or None when absent, empty or unparseable (pydicom converts
    values lazily, so a malformed one raises only when read). Every reading of a header
    attribute that a damaged file may carry goes through here (dicom_out too)."""
    try:
        value = ds.get(keyword)
    except Exception:  # any conversion failure means "this value is unusable"
        return None
    return None if value is None or value == "" else value


def _int(ds: Any, keyword: str, path: Path, default: int | None = None) -> int:
    value = header_value(ds, keyword)
    if value is None:
        if default is None:
            raise ImageReadError(f"{path}: the DICOM header lacks {keyword}")
        return default
    try:
        return int(_first(value))
    except (TypeError, ValueError):
        raise ImageReadError(f"{path}: the DICOM {keyword} {shown_value(value)} is not a number"
                             ) from None


def _float(ds: Any, keyword: str, notes: list[str], default: float) -> float:
    value = header_value(ds, keyword)
    if value is None:
        return default
    try:
        number = float(_first(value))
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        notes.append(f"{keyword} {shown_value(value)} ignored")
        return default
    return number


def _first(value: Any) -> Any:
    """The first of a multi-valued element (several windows: the first is the default)."""
    if isinstance(value, (str, bytes)):
        return value
    try:
        return value[0]
    except (TypeError, IndexError):
        return value


# -------------------------------------------------------------------------------------- raster


def read_raster_array(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """A PNG, JPEG or TIFF file's pixels as stored (any depth and channels, no EXIF
    orientation applied) and the decoder's notes, with the checks of `read_image`: declared
    size within MAX_PIXELS before decoding, truncation, damage, decoder output caught. For
    masks and other rasters that are not radiographs; ImageReadError when unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror})") from None
    if not data:
        raise ImageReadError(f"{path}: the file is empty")
    kind = _sniff(data[:132], path)
    if kind == "dicom":
        raise ImageReadError(f"{path}: a DICOM file, not a PNG, JPEG or TIFF image")
    arr, notes, _ = _decode_raster_file(data, kind, path)
    return arr, notes


def _decode_raster_file(
    data: bytes, kind: str, path: Path
) -> tuple[np.ndarray, list[str], _RasterHeader]:
    info = _raster_header(data, kind, path)
    if info.size is not None:  # before decoding: a huge declared size must cost nothing
        _check_size(info.size, str(path))
    arr, messages = _decode_raster(data)
    if arr is None:
        said = f" ({'; '.join(messages)})" if messages else ""
        raise ImageReadError(f"{path}: the {kind.upper()} file is corrupt or truncated{said}")
    damaged = [m for m in messages if _DAMAGED.search(m)]
    if damaged:  # libjpeg went on and filled what it could not decode with grey
        raise ImageReadError(f"{path}: the {kind.upper()} data is damaged ({damaged[0]})")
    return arr, [f"decoder: {m}" for m in messages], info


def _read_raster(path: Path, kind: str) -> Radiograph:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror})") from None
    arr, notes, info = _decode_raster_file(data, kind, path)
    arr = _to_grey(arr, path, notes)
    arr = _apply_orientation(arr, info.orientation, notes)
    _check_size(arr.shape, str(path))
    if arr.dtype == np.uint8:
        pixels = arr.astype(np.float32) / np.float32(255.0)
    elif arr.dtype == np.uint16:
        pixels = arr.astype(np.float32) / np.float32(65535.0)
    else:
        pixels = arr.astype(np.float32)
        if not np.isfinite(pixels).all():
            raise ImageReadError(f"{path}: the image contains NaN or infinite values")
        pixels = _minmax(pixels)
    return Radiograph(np.ascontiguousarray(pixels), str(path), kind, notes=tuple(notes))


# Decoder messages that mean part of the picture is missing: libjpeg then fills the rest
# with grey and returns an image. Others ("N extraneous bytes before marker", libpng's
# "known incorrect sRGB profile", libtiff's unknown tags) are common in intact files: notes.
_DAMAGED = re.compile(r"premature end|corrupt jpeg data: bad|huffman|unsupported marker|"
                      r"read error|decompression error", re.IGNORECASE)
_DECODER_LOCK = threading.Lock()
# OpenCV's own log lines (libtiff's warnings reach us through them):
# "[ WARN:0@0.067] global grfmt_tiff.cpp:123 TIFF_Warning TIFFReadDirectory: ..."
_OPENCV_LOG_PREFIX = re.compile(r"^\s*\[\s*[A-Z]+:\d+@[\d.]+\]\s+global\s+\S+:\d+\s+\w+\s+")


def _decode_raster(data: bytes) -> tuple[np.ndarray | None, list[str]]:
    """OpenCV's decode, and what libjpeg, libpng and libtiff printed meanwhile."""
    with _stderr_captured() as printed:
        arr = _imdecode(np.frombuffer(data, dtype=np.uint8))
    return arr, printed[:5]


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Catch what native decoders print while the block runs: the list holds those lines,
    one-spaced, once the block has ended (also when it raised).

    libjpeg, libpng, libtiff, OpenJPEG and Rust panics print on the process's standard error
    (file descriptor 2), before and apart from our one-line error, so fd 2 points at a
    temporary file during the block. That is process-wide: blocks take turns (a lock), and
    another thread's output to fd 2 in those milliseconds lands in the list. Without a usable
    fd 2 (a daemon without one) or a temporary file (no writable temporary directory), the
    block runs as it is and the list stays empty."""
    printed: list[str] = []
    with _DECODER_LOCK, ExitStack() as stack:
        try:
            sink = stack.enter_context(tempfile.TemporaryFile())
            saved = os.dup(2)
        except OSError:  # no writable temporary directory, or no fd 2: run without catching
            sink = None
        if sink is None:
            yield printed
            return
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            printed.extend(printable(_OPENCV_LOG_PREFIX.sub("", line))
                           for line in text.splitlines() if line.strip())


def _imdecode(buffer: np.ndarray) -> np.ndarray | None:
    try:
        return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None


@dataclass(frozen=True)
class _RasterHeader:
    size: tuple[int, int] | None  # (rows, columns) as declared, None if not found
    orientation: int  # EXIF orientation 1-8 (1: as stored)


def _raster_header(data: bytes, kind: str, path: Path) -> _RasterHeader:
    """The declared size and EXIF orientation, and a structural check that refuses a cut or
    corrupt file before the decoder sees it (a lenient decoder pads a cut file with grey;
    libpng prints its complaints on the terminal)."""
    if kind == "png":
        return _png_header(data, path)
    if kind == "jpeg":
        # In JPEG entropy-coded data 0xFF is always stuffed, so FFD9 after the last scan is EOI.
        if data.rfind(_EOI) < data.rfind(b"\xff\xda"):
            raise ImageReadError(f"{path}: the JPEG file is truncated (no end-of-image marker)")
        return _jpeg_header(data)
    return _tiff_header(data, path)


_PNG_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def _png_header(data: bytes, path: Path) -> _RasterHeader:
    pos, size, orientation = 8, None, 1
    while True:
        if pos + 12 > len(data):
            raise ImageReadError(f"{path}: the PNG file is truncated (no IEND chunk)")
        length, tag = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if pos + 12 + length > len(data):
            raise ImageReadError(f"{path}: the PNG file is truncated (no IEND chunk)")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        intact = zlib.crc32(tag + body) == crc
        if not intact and tag in _PNG_CRITICAL:
            name = tag.decode("latin-1")
            raise ImageReadError(f"{path}: the PNG file is corrupt (bad checksum in its {name} chunk)")
        if tag == b"IHDR" and length >= 8:
            width, height = struct.unpack(">II", body[:8])
            size = (height, width)
        elif tag == b"acTL" and intact and length >= 4:
            (frames,) = struct.unpack(">I", body[:4])
            if frames > 1:
                raise ImageReadError(
                    f"{path}: an animated PNG ({frames} frames); a chest radiograph has one frame"
                )
        elif tag == b"eXIf" and intact:
            orientation = _exif_orientation(body)
        elif tag == b"IEND":
            return _RasterHeader(size, orientation)  # anything after IEND is ignored
        pos += 12 + length


# Start-of-frame markers: every SOFn but DHT (C4), JPG (C8) and DAC (CC), and JPEG-LS's SOF55.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def _jpeg_header(data: bytes) -> _RasterHeader:
    """Walk the marker segments up to the first scan; a malformed one ends the walk and the
    decoder judges the file."""
    pos, size, orientation = 2, None, 1
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the headers are over
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if marker in _SOF and len(body) >= 5:
            height, width = struct.unpack(">HH", body[1:5])
            size = (height, width)
        elif marker == 0xE1 and body.startswith(b"Exif\x00\x00") and orientation == 1:
            orientation = _exif_orientation(body[6:])
        pos += 2 + length
    return _RasterHeader(size, orientation)


def _tiff_entries(data: bytes, offset: int, order: str) -> tuple[dict[int, int], int]:
    """One TIFF IFD: {tag: first value} for short/long values, and the next IFD's offset."""
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    entries: dict[int, int] = {}
    for i in range(count):
        at = offset + 2 + 12 * i
        tag, kind, _ = struct.unpack(order + "HHI", data[at : at + 8])
        if kind == 3:
            entries[tag] = struct.unpack(order + "H", data[at + 8 : at + 10])[0]
        elif kind == 4:
            entries[tag] = struct.unpack(order + "I", data[at + 8 : at + 12])[0]
    end = offset + 2 + 12 * count
    (following,) = struct.unpack(order + "I", data[end : end + 4])
    return entries, following


def _exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of an EXIF block (a small TIFF file); 1 if absent."""
    try:
        order = "<" if tiff[:2] == b"II" else ">"
        (first,) = struct.unpack(order + "I", tiff[4:8])
        entries, _ = _tiff_entries(tiff, first, order)
    except struct.error:
        return 1
    value = entries.get(0x0112, 1)
    return value if 1 <= value <= 8 else 1


def _tiff_header(data: bytes, path: Path) -> _RasterHeader:
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(order + "I", data[4:8])
        entries, following = _tiff_entries(data, offset, order)
    except struct.error:
        return _RasterHeader(None, 1)  # the decoder judges it
    if following:
        pages, seen = 1, {offset}
        while following and following not in seen and pages < 10_000:
            seen.add(following)
            pages += 1
            try:
                _, following = _tiff_entries(data, following, order)
            except struct.error:
                break
        raise ImageReadError(
            f"{path}: a multi-page TIFF ({pages} pages); a chest radiograph has one page"
        )
    size = (entries[257], entries[256]) if 256 in entries and 257 in entries else None
    orientation = entries.get(0x0112, 1)
    return _RasterHeader(size, orientation if 1 <= orientation <= 8 else 1)


# EXIF orientation -> the transform that shows the image as viewers do (PIL's exif_transpose).
_ORIENTATIONS = {
    2: ("mirrored left-right", np.fliplr),
    3: ("rotated 180 degrees", lambda a: np.rot90(a, 2)),
    4: ("mirrored top-bottom", np.flipud),
    5: ("transposed", lambda a: a.T),
    6: ("rotated 90 degrees clockwise", lambda a: np.rot90(a, -1)),
    7: ("transversed", lambda a: np.rot90(a, 2).T),
    8: ("rotated 90 degrees anticlockwise", lambda a: np.rot90(a, 1)),
}


def _apply_orientation(arr: np.ndarray, orientation: int, notes: list[str]) -> np.ndarray:
    if orientation not in _ORIENTATIONS:
        return arr
    how, transform = _ORIENTATIONS[orientation]
    notes.append(f"EXIF orientation {orientation} applied: {how} as viewers show it")
    return np.ascontiguousarray(transform(arr))


def _to_grey(arr: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """BGR(A) or grey+alpha (which OpenCV returns as BGRA) -> one grey channel."""
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageReadError(f"{path}: unsupported image layout {arr.shape}")
    if arr.shape[2] == 1:
        return arr[:, :, 0]
    if arr.shape[2] == 4:
        if not arr[:, :, 3].any():
            raise ImageReadError(f"{path}: the image is fully transparent (alpha 0 everywhere)")
        if (arr[:, :, 3] != arr[:, :, 3].max()).any():
            notes.append("alpha channel ignored")
        arr = arr[:, :, :3]  # alpha carries no attenuation
    b, g, r = arr[:, :, 0], arr[:, :, 1], arr[:, :, 2]
    if np.array_equal(b, g) and np.array_equal(g, r):
        return np.ascontiguousarray(b)
    full_scale = 255 if arr.dtype == np.uint8 else 65535
    chroma = arr.max(axis=2).astype(np.int32) - arr.min(axis=2)
    share = float(np.mean(chroma > full_scale // 8))
    if share > _COLOUR_PIXEL_SHARE:
        raise ImageReadError(
            f"{path}: a colour image ({share:.0%} of pixels coloured); chest radiographs are "
            "greyscale (is this a photograph or an ultrasound screenshot?)"
        )
    notes.append("RGB image converted to grey")
    return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2GRAY)


# ------------------------------------------------------------------------------------- helpers


def _check_size(shape: tuple[int, ...], source: str) -> None:
    if shape[0] * shape[1] > MAX_PIXELS:
        raise ImageReadError(
            f"{source}: image of {shape[1]}x{shape[0]} pixels is over the limit of "
            f"{MAX_PIXELS // 1_000_000} megapixels (a chest radiograph is at most about 4300x4300)"
        )
    if min(shape[:2]) < MIN_SIDE:
        raise ImageReadError(
            f"{source}: image of {shape[1]}x{shape[0]} pixels is too small to be a radiograph "
            f"(under {MIN_SIDE} pixels a side)"
        )


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))


def _short(exc: BaseException | Warning | str) -> str:
    """A one-line reason from an exception whose text may span lines (pydicom lists plugins)
    or quote bytes of the file (shown as '?' unless printable)."""
    return printable(str(exc), 240) or type(exc).__name__
