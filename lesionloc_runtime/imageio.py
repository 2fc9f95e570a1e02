"""Reading chest radiographs (DICOM, PNG, JPEG) into one display-oriented greyscale array.

This is the only image reader in the project: training, export calibration, the runtime and
the benchmarks all call `read_image`, so what a deployed model sees is what it was trained on.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lesionloc_runtime.errors import ImageReadError

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
IMAGE_SUFFIXES = DICOM_SUFFIXES | RASTER_SUFFIXES
MIN_SIDE = 32

# SOP classes that are certainly not a projection radiograph.
_NON_IMAGE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.88.",)  # structured reports
_COLOUR_PHOTOMETRICS = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}


@dataclass(frozen=True)
class Radiograph:
    """A single greyscale radiograph ready for preprocessing.

    `pixels` is float32, shape (height, width), in [0, 1] with display orientation: 0 is black
    (air, lungs), 1 is white (bone). Every DICOM intensity transform (modality LUT, VOI LUT or
    window, MONOCHROME1 / INVERSE presentation) has already been applied.
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
        """Wrap an in-memory array (any numeric dtype, 2-D) as a radiograph, scaled to [0, 1]."""
        arr = np.asarray(pixels)
        if arr.ndim != 2:
            raise ImageReadError(f"{source}: expected a 2-D greyscale array, got shape {arr.shape}")
        _check_size(arr.shape, source)
        if arr.dtype == np.uint8:
            out = arr.astype(np.float32) / 255.0
        elif arr.dtype == np.uint16:
            out = arr.astype(np.float32) / 65535.0
        else:
            out = _minmax(arr.astype(np.float32))
        return cls(np.ascontiguousarray(out, dtype=np.float32), source, "array")


def read_image(path: str | os.PathLike[str]) -> Radiograph:
    """Read a chest radiograph from a DICOM, PNG or JPEG file.

    Raises ImageReadError with a one-line reason for anything that is not a readable,
    single-frame greyscale radiograph (multi-frame, colour, no pixel data, SR, text...).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be opened ({exc.strerror})") from None
    if not head:
        raise ImageReadError(f"{path}: the file is empty")
    kind = _sniff(head, path)
    if kind == "dicom":
        return _read_dicom(path)
    return _read_raster(path, kind)


def _sniff(head: bytes, path: Path) -> str:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    suffix = path.suffix.lower()
    if suffix in RASTER_SUFFIXES:
        raise ImageReadError(
            f"{path}: the file is named {suffix} but its content is not a {suffix[1:].upper()} "
            "image (wrong extension, or a text file?)"
        )
    # DICOM without preamble (ACR-NEMA style): starts with a group 0x0008 (or 0x0002) tag.
    if len(head) >= 4 and head[1] == 0 and head[0] in (0x02, 0x08) and head[3] == 0:
        return "dicom"
    raise ImageReadError(
        f"{path}: not a DICOM, PNG or JPEG file (unrecognised content)"
    )


def _read_dicom(path: Path) -> Radiograph:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ImageReadError(f"{path}: not a readable DICOM file ({_short(exc)})") from None
    sop = str(ds.get("SOPClassUID", ""))
    if sop.startswith(_NON_IMAGE_SOP_PREFIXES) or "ContentSequence" in ds and "PixelData" not in ds:
        raise ImageReadError(f"{path}: a DICOM Structured Report, not an image")
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(f"{path}: the DICOM file has no pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(
            f"{path}: a multi-frame DICOM ({frames} frames); a chest radiograph has one frame"
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if photometric in _COLOUR_PHOTOMETRICS or samples != 1:
        raise ImageReadError(
            f"{path}: a colour DICOM ({photometric}, {samples} samples per pixel); chest "
            "radiographs are greyscale (is this ultrasound or a screenshot?)"
        )
    if "TransferSyntaxUID" not in ds.file_meta:
        # ACR-NEMA / no file meta: pydicom guesses the encoding; raw pixels need a syntax.
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR else pydicom.uid.ExplicitVRLittleEndian
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = ds.pixel_array
    except Exception as exc:  # decoders raise many types; all mean "cannot decode"
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise ImageReadError(
            f"{path}: the pixel data cannot be decoded (transfer syntax {name}: {_short(exc)})"
        ) from None
    if raw.ndim != 2:
        raise ImageReadError(f"{path}: pixel data of shape {raw.shape} is not a single 2-D image")
    _check_size(raw.shape, str(path))
    pixels = _dicom_to_display(raw, ds)
    spacing = _pixel_spacing(ds)
    header = ds.copy()
    for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if tag in header:
            delattr(header, tag)
    return Radiograph(pixels, str(path), "dicom", spacing, header)


def _dicom_to_display(raw: np.ndarray, ds: Any) -> np.ndarray:
    """Modality LUT, then VOI LUT or window, then MONOCHROME1/INVERSE, as a [0, 1] array."""
    from pydicom.pixels import apply_modality_lut, apply_voi

    bits = int(ds.get("BitsStored", raw.dtype.itemsize * 8) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if bits < raw.dtype.itemsize * 8 and not signed:
        raw = raw & np.array((1 << bits) - 1, dtype=raw.dtype)  # ignore overlay bits above BitsStored
    lo_raw = -(2 ** (bits - 1)) if signed else 0
    hi_raw = 2 ** (bits - 1) - 1 if signed else 2**bits - 1

    if "ModalityLUTSequence" in ds:
        values = apply_modality_lut(raw, ds).astype(np.float32)
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        lo, hi = 0.0, float(2**depth - 1)
    else:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        values = raw.astype(np.float32)
        if slope != 1.0 or intercept != 0.0:
            values = values * np.float32(slope) + np.float32(intercept)
        lo, hi = sorted((lo_raw * slope + intercept, hi_raw * slope + intercept))

    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        item = ds.VOILUTSequence[0]
        out_bits = int(item.LUTDescriptor[2])
        lut_in = values if "ModalityLUTSequence" in ds or values.dtype.kind in "iu" else values
        display = apply_voi(np.round(lut_in).astype(np.int64), ds).astype(np.float32)
        display /= np.float32(2**out_bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        center = float(_first(ds.WindowCenter))
        width = float(_first(ds.WindowWidth))
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        display = _window(values, center, width, function)
    else:
        # No VOI: show the whole representable range (the stored bits through the modality LUT).
        display = (values - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    display = np.clip(display, 0.0, 1.0, out=display)

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    inverse = photometric == "MONOCHROME1"
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if shape == "INVERSE":
        # PS3.3 C.11.6: INVERSE inverts the output of the VOI stage; for MONOCHROME1 the
        # presentation shape is the inversion itself, so it is not applied twice.
        inverse = not inverse if photometric == "MONOCHROME2" else True
    if inverse:
        display = np.float32(1.0) - display
    return np.ascontiguousarray(display, dtype=np.float32)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    if function == "SIGMOID":
        if width <= 0:
            raise ImageReadError(f"invalid DICOM window width {width} for SIGMOID")
        return (1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))).astype(np.float32)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ImageReadError(f"invalid DICOM window width {width}")
        return ((values - (center - width / 2.0)) / np.float32(width)).astype(np.float32)
    if width < 1:
        raise ImageReadError(f"invalid DICOM window width {width} (must be >= 1 for LINEAR)")
    # PS3.3 C.11.2.1.2.1: LINEAR uses c - 0.5 and w - 1.
    c, w = center - 0.5, max(width - 1.0, 1e-6)
    return (((values - c) / np.float32(w)) + np.float32(0.5)).astype(np.float32)


def _read_raster(path: Path, kind: str) -> Radiograph:
    data = np.fromfile(path, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(f"{path}: the {kind.upper()} file is corrupt or truncated")
    if arr.ndim == 3:
        channels = arr.shape[2]
        if channels == 4:
            arr = arr[:, :, :3]  # alpha carries no attenuation; drop it
        if arr.shape[2] == 3:
            b, g, r = arr[:, :, 0], arr[:, :, 1], arr[:, :, 2]
            if not (np.array_equal(b, g) and np.array_equal(g, r)):
                grey = cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
            else:
                grey = np.ascontiguousarray(b)
            arr = grey
        elif arr.shape[2] == 1:
            arr = arr[:, :, 0]
        else:
            raise ImageReadError(f"{path}: {channels}-channel image is not supported")
    if arr.ndim != 2:
        raise ImageReadError(f"{path}: unsupported image layout {arr.shape}")
    _check_size(arr.shape, str(path))
    if arr.dtype == np.uint8:
        pixels = arr.astype(np.float32) / np.float32(255.0)
    elif arr.dtype == np.uint16:
        pixels = arr.astype(np.float32) / np.float32(65535.0)
    else:
        pixels = _minmax(arr.astype(np.float32))
    fmt = {"png": "png", "jpeg": "jpeg", "tiff": "tiff"}[kind]
    return Radiograph(np.ascontiguousarray(pixels), str(path), fmt)


def _check_size(shape: tuple[int, ...], source: str) -> None:
    if min(shape[:2]) < MIN_SIDE:
        raise ImageReadError(
            f"{source}: image of {shape[1]}x{shape[0]} pixels is too small to be a radiograph"
        )


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / max(hi - lo, 1e-6)


def _first(value: Any) -> Any:
    try:
        return value[0]
    except (TypeError, IndexError):
        return value


def _pixel_spacing(ds: Any) -> tuple[float, float] | None:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(key)
        if value is not None and len(value) == 2:
            try:
                spacing = (float(value[0]), float(value[1]))
            except (TypeError, ValueError):
                continue
            if spacing[0] > 0 and spacing[1] > 0:
                return spacing
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
