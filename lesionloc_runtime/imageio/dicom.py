"""DICOM files through pydicom and its decoder plugins: what is not one greyscale radiograph is
refused, what ACR-NEMA files leave out is filled in, and the pixels go through display.py."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime.errors import ImageReadError, NotAnImage, is_panic
from lesionloc_runtime.imageio.capture import quiet_libraries, short, stderr_captured
from lesionloc_runtime.imageio.containers import EOI, j2k_size, jpeg_header
from lesionloc_runtime.imageio.decoders import decode_options
from lesionloc_runtime.imageio.display import DisplayMapping, PixelFile
from lesionloc_runtime.imageio.header import (
    UID_NAME_TEXT,
    UID_TEXT,
    absent,
    first,
    header_value,
    int_value,
    replace,
    shown_value,
)
from lesionloc_runtime.imageio.radiograph import MIN_CONTRAST, Radiograph, check_size, grey_range
from lesionloc_runtime.imageio.views import lateral_view_notes

__all__ = ["import_dicom_stack", "read_dicom"]

# SOP classes that are certainly not a projection radiograph.
_NON_IMAGE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.88.",)  # structured reports
_PIXEL_DATA = 0x7FE00010
# Elements longer than this are left in the file while the header is parsed (pydicom's
# defer_size): for uncompressed pixel data in a little-endian file, the display gather reads
# them from there (display.PixelFile); any other file is parsed again as a whole.
_LEFT_IN_FILE_BYTES = 1 << 20
_COLOUR_PHOTOMETRICS = {
    "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420",
    "YBR_ICT", "YBR_RCT", "PALETTE COLOR", "HSV", "ARGB", "CMYK",
}


def import_dicom_stack() -> None:
    """Import pydicom and its pixel decoders now rather than at the first DICOM read (most of
    the cost is the decoder plugins). `Localizer.load` calls it while ONNX Runtime builds its
    sessions, which release the GIL, so a cold start pays it in parallel."""
    import pydicom.pixels  # noqa: F401
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000

    decode_options(get_decoder(JPEG2000), JPEG2000, 1)  # adds the JPEG 2000 plugin, imports imagecodecs


def read_dicom(path: Path, threads: int = 1, keep_stored: bool = False) -> Radiograph:
    """A DICOM radiograph as `read_image` returns it, its header without the pixel data.
    `threads`: how many threads a JPEG 2000 codestream may be decoded on, and the display
    mapping's gather share. `keep_stored`: the radiograph keeps its bit patterns and display
    table (`Radiograph.stored`)."""
    notes: list[str] = []
    with open(path, "rb") as handle:  # kept open: uncompressed pixels are read from it
        ds, in_file = _parse_dicom(handle, path)
        _check_radiograph_object(ds, path, notes, in_file)
        raw = _decode_pixels(ds, path, notes, threads, handle if in_file else None)
        mapping = DisplayMapping.from_header(ds, raw.dtype, path, notes)
        pixels, stored = mapping.apply_keeping(raw, threads, keep_stored)
        if mapping.window is not None or mapping.voi_lut is not None:
            lo, hi = grey_range(pixels)
            if hi - lo < MIN_CONTRAST:  # False for NaN: read_image refuses non-finite values
                if isinstance(raw, PixelFile):  # kept already, or read now
                    raw = stored.patterns if stored is not None else raw.load()
                pixels, stored = mapping.over_own_range(raw, notes).apply_keeping(
                    raw, threads, keep_stored)
    notes.extend(lateral_view_notes(ds))
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            del ds[keyword]  # the header travels with the radiograph; the pixels must not
    return Radiograph(pixels, str(path), "dicom", _pixel_spacing(ds), ds, tuple(notes), stored)


def _parse_dicom(handle: Any, path: Path) -> tuple[Any, bool]:
    """The dataset, and whether its pixel data were left in the file (`_pixels_stay_in_file`);
    any other file is parsed again whole, as pydicom reads it."""
    from pydicom.dataelem import RawDataElement

    ds = _dcmread(handle, path, _LEFT_IN_FILE_BYTES)
    left = [tag for tag in ds.keys()
            if isinstance(raw := ds.get_item(tag, keep_deferred=True), RawDataElement)
            and raw.value is None]
    if not left:
        return ds, False
    if left == [_PIXEL_DATA] and _pixels_stay_in_file(ds, handle):
        return ds, True
    handle.seek(0)
    return _dcmread(handle, path, None), False


def _dcmread(handle: Any, path: Path, defer_size: int | None) -> Any:
    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(handle, force=True, defer_size=defer_size)
        except Exception as exc:  # pydicom raises many types on malformed input
            raise ImageReadError(f"{path}: not a readable DICOM file ({short(exc)})") from None
    if any("End of file reached" in str(w.message) for w in caught):
        # pydicom drops an encapsulated Pixel Data element whose end is missing.
        raise ImageReadError(f"{path}: the DICOM file is truncated (its pixel data is incomplete)")
    return ds


def _pixels_stay_in_file(ds: Any, handle: Any) -> bool:
    """Whether the pixel data pydicom left in the file (unread) can stay there for the display
    gather to read: uncompressed in a little-endian file, one frame of 8 or 16 bits allocated,
    exactly its bytes or one pad byte more, all in the file, and a header whose pixel
    description pydicom's decoder would take (it refuses the file otherwise, and a file left
    to it here does too)."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    raw = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if raw.VR not in (None, "OB", "OW") or not hasattr(os, "preadv"):
        return False
    try:
        with quiet_libraries():
            if ds.file_meta.get("TransferSyntaxUID") not in (ExplicitVRLittleEndian,
                                                             ImplicitVRLittleEndian):
                return False
            values = {keyword: ds[keyword].value for keyword in _DECODER_READS if keyword in ds}
            allocated = int(values["BitsAllocated"])
            expected = int(values["Rows"]) * int(values["Columns"]) * allocated // 8
            frames = int(first(values.get("NumberOfFrames", 1)))
    except Exception:  # damaged or missing elements: the whole file is read, and checked
        return False
    # a file that ends before the frame does is read whole, and refused as truncated there
    in_file = os.fstat(handle.fileno()).st_size - raw.value_tell
    return (allocated in (8, 16) and frames == 1 and 0 < expected <= raw.length <= expected + 1
            and expected <= in_file)


def _check_radiograph_object(ds: Any, path: Path, notes: list[str], in_file: bool) -> None:
    """Reject what is not one greyscale image; fill the defaults ACR-NEMA files leave out.
    `in_file`: the pixel data are still in the file (`_parse_dicom`)."""
    _check_has_pixels(ds, path, in_file)
    frames = int_value(ds, "NumberOfFrames", path, default=1)
    if frames > 1:
        raise ImageReadError(
            f"{path}: a multi-frame DICOM ({frames} frames); a chest radiograph has one frame"
        )
    photometric = str(header_value(ds, "PhotometricInterpretation") or "").strip().upper()
    samples = int_value(ds, "SamplesPerPixel", path, default=1)
    if photometric in _COLOUR_PHOTOMETRICS or samples != 1:
        raise ImageReadError(
            f"{path}: a colour DICOM ({shown_value(photometric) or 'no photometric'}, {samples} "
            "samples per pixel); chest radiographs are greyscale (is this ultrasound or a "
            "screenshot?)"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        shown = shown_value(photometric) or absent(ds, "PhotometricInterpretation")
        notes.append(f"PhotometricInterpretation {shown}: read as MONOCHROME2")
        replace(ds, "PhotometricInterpretation", "MONOCHROME2")
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if int_value(ds, keyword, path, default=0) <= 0:
            raise ImageReadError(f"{path}: the DICOM header lacks a valid {keyword}")
    check_size((int_value(ds, "Rows", path), int_value(ds, "Columns", path)), str(path))
    allocated = int_value(ds, "BitsAllocated", path)
    stored = int_value(ds, "BitsStored", path, default=0)
    if not 1 <= stored <= allocated:
        notes.append(f"BitsStored {stored or absent(ds, 'BitsStored')}: taken as BitsAllocated "
                     f"{allocated}")
        replace(ds, "BitsStored", allocated)
        replace(ds, "HighBit", allocated - 1)
    if "SamplesPerPixel" not in ds:
        replace(ds, "SamplesPerPixel", 1)
    representation = int_value(ds, "PixelRepresentation", path, default=-1)
    if representation not in (0, 1):
        if representation != -1:
            notes.append(f"PixelRepresentation {representation} unknown: read as unsigned")
        replace(ds, "PixelRepresentation", 0)


def _check_has_pixels(ds: Any, path: Path, in_file: bool) -> None:
    """Refuse a report, a parametric map or any object without (readable) integer pixels."""
    from pydicom.uid import UID

    sop = str(header_value(ds, "SOPClassUID") or "")
    is_report = "ContentSequence" in ds and "PixelData" not in ds
    if sop.startswith(_NON_IMAGE_SOP_PREFIXES) or is_report:
        raise NotAnImage(f"{path}: a DICOM Structured Report, not an image")
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
        raise NotAnImage(f"{path}: the DICOM file has no pixel data; it is not an image{kind}")
    if in_file:
        return  # bytes in the file (of a VR that holds bytes): nothing to convert
    try:
        ds.PixelData  # noqa: B018 - pydicom converts lazily: a damaged element raises only here
    except Exception as exc:
        raise ImageReadError(f"{path}: the pixel data element is damaged ({short(exc)})") from None


def _transfer_syntax(ds: Any, path: Path) -> Any:
    """The file's transfer syntax as a pydicom UID; for ACR-NEMA files without file meta, the
    encoding pydicom found (the decoder needs one)."""
    from pydicom.dataset import FileMetaDataset
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
        implicit, little = ds.original_encoding
        syntax = (
            ImplicitVRLittleEndian if implicit is not False
            else ExplicitVRLittleEndian if little is not False
            else ExplicitVRBigEndian
        )
        ds.file_meta.TransferSyntaxUID = syntax
    return syntax


def _decoder(syntax: Any, name: str, path: Path) -> Any:
    """pydicom's decoder for the syntax, refused when none exists or none is installed."""
    from pydicom.pixels import get_decoder

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
    return decoder


def _decode_pixels(ds: Any, path: Path, notes: list[str], threads: int = 1,
                   handle: Any = None) -> np.ndarray | PixelFile:
    """The stored values as an integer (rows, columns) array, a read-only view if uncompressed;
    or, given the file whose pixels `_parse_dicom` left in it, where they are."""
    syntax = _transfer_syntax(ds, path)
    if handle is not None:
        return _pixel_file(ds, path, handle)
    name = shown_value(getattr(syntax, "name", syntax), UID_NAME_TEXT)
    decoder = _decoder(syntax, name, path)
    if syntax.is_encapsulated:
        _check_codestream_end(ds, syntax, path)
        options: dict[str, Any] = decode_options(decoder, syntax, threads)  # decoders.py
    else:
        _check_native_length(ds, path)
        # A view on the file's bytes: the display table masks unused bits, so no copy is needed.
        options = {"view_only": True}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with stderr_captured() as printed:
                raw, _ = decoder.as_array(ds, raw=True, correct_unused_bits=False, **options)
        except BaseException as exc:
            # Decoders raise many types, all meaning "cannot decode"; the Rust RLE decoder
            # panics. What they printed meanwhile (a panic's backtrace) is dropped.
            if not (isinstance(exc, Exception) or is_panic(exc)):
                raise
            raise ImageReadError(
                f"{path}: the pixel data cannot be decoded (transfer syntax {name}: "
                f"{short(exc)})"
            ) from None
    notes.extend(f"decoder: {short(w.message)}" for w in caught)
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


def _pixel_file(ds: Any, path: Path, handle: Any) -> PixelFile:
    """The pixel data left in the file (`_pixels_stay_in_file`) as a PixelFile."""
    raw = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    rows, columns = int_value(ds, "Rows", path), int_value(ds, "Columns", path)
    allocated = int_value(ds, "BitsAllocated", path)
    return PixelFile(handle.fileno(), raw.value_tell, np.dtype(f"<u{allocated // 8}"),
                     (rows, columns), str(path))


# What pydicom's decoder reads from the header of uncompressed pixel data.
_DECODER_READS = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored",
                  "PixelRepresentation", "PhotometricInterpretation", "NumberOfFrames",
                  "PlanarConfiguration")


def _check_native_length(ds: Any, path: Path) -> None:
    rows, columns = int_value(ds, "Rows", path), int_value(ds, "Columns", path)
    expected = (rows * columns * int_value(ds, "BitsAllocated", path) + 7) // 8
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
            f"{path}: the encapsulated pixel data is malformed ({short(exc)})"
        ) from None
    if not fragments:
        raise ImageReadError(f"{path}: the encapsulated pixel data holds no compressed image")
    if EOI not in fragments[-1][-16:]:
        raise ImageReadError(
            f"{path}: the compressed pixel data is truncated (no end-of-image marker)"
        )
    # The decoders allocate what the codestream declares, not what the DICOM header says: a
    # damaged size would cost gigabytes and a minute before failing (found by fuzzing).
    head = fragments[0][:4096]
    declared = (j2k_size(head) if syntax in JPEG2000TransferSyntaxes
                else jpeg_header(head).size)
    rows, columns = int_value(ds, "Rows", path), int_value(ds, "Columns", path)
    if declared is not None and declared[0] != 0 and declared != (rows, columns):
        # (a JPEG SOF may leave the height 0 for a DNL marker to give; the decoder checks that)
        raise ImageReadError(
            f"{path}: the compressed image declares {declared[1]}x{declared[0]} pixels but the "
            f"DICOM header says {columns}x{rows}; the file is damaged"
        )


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
