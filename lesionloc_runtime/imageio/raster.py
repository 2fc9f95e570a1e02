"""PNG, JPEG and TIFF files through OpenCV: the structure checked first (containers.py), the
decoder's output caught, the EXIF orientation applied, colour refused or reduced to grey."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.imageio.capture import stderr_captured
from lesionloc_runtime.imageio.containers import RasterHeader, raster_header
from lesionloc_runtime.imageio.display import StoredPixels
from lesionloc_runtime.imageio.radiograph import Radiograph, check_size, unit_scaled
from lesionloc_runtime.imageio.sniff import HEAD_BYTES, sniff

__all__ = ["read_raster", "read_raster_array"]

# A raster counts as colour (a photo, a Doppler screenshot) when more than this share of its
# pixels has a chroma above 1/8 of full scale; JPEG noise and coloured annotations stay below.
_COLOUR_PIXEL_SHARE = 0.10
# Decoder messages that mean part of the picture is missing: libjpeg then fills the rest
# with grey and returns an image. Others ("N extraneous bytes before marker", libpng's
# "known incorrect sRGB profile", libtiff's unknown tags) are common in intact files: notes.
_DAMAGED = re.compile(r"premature end|corrupt jpeg data: bad|huffman|unsupported marker|"
                      r"read error|decompression error", re.IGNORECASE)


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
    kind = sniff(data[:HEAD_BYTES], path)
    if kind == "dicom":
        raise ImageReadError(f"{path}: a DICOM file, not a PNG, JPEG or TIFF image")
    arr, notes, _ = _decode_raster_file(data, kind, path)
    return arr, notes


def read_raster(path: Path, kind: str, keep_stored: bool = False) -> Radiograph:
    """A PNG, JPEG or TIFF radiograph (`kind` as `sniff` found it) as `read_image` returns it;
    with `keep_stored`, an 8- or 16-bit one keeps its grey levels and their display values
    (`Radiograph.stored`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror})") from None
    arr, notes, info = _decode_raster_file(data, kind, path)
    arr = _to_grey(arr, path, notes)
    arr = _apply_orientation(arr, info.orientation, notes)
    check_size(arr.shape, str(path))
    pixels = unit_scaled(arr, str(path), "image")
    stored = None
    if keep_stored and arr.dtype in (np.uint8, np.uint16):  # the same arithmetic, per level
        levels = np.arange(1 << (8 * arr.dtype.itemsize), dtype=arr.dtype)
        stored = StoredPixels(np.ascontiguousarray(arr), unit_scaled(levels, str(path), "image"))
    return Radiograph(np.ascontiguousarray(pixels), str(path), kind, notes=tuple(notes),
                      stored=stored)


def _decode_raster_file(
    data: bytes, kind: str, path: Path
) -> tuple[np.ndarray, list[str], RasterHeader]:
    info = raster_header(data, kind, path)
    if info.size is not None:  # before decoding: a huge declared size must cost nothing
        check_size(info.size, str(path))
    arr, messages = _decode_raster(data)
    if arr is None:
        said = f" ({'; '.join(messages)})" if messages else ""
        raise ImageReadError(f"{path}: the {kind.upper()} file is corrupt or truncated{said}")
    damaged = [m for m in messages if _DAMAGED.search(m)]
    if damaged:  # libjpeg went on and filled what it could not decode with grey
        raise ImageReadError(f"{path}: the {kind.upper()} data is damaged ({damaged[0]})")
    return arr, [f"decoder: {m}" for m in messages], info


def _decode_raster(data: bytes) -> tuple[np.ndarray | None, list[str]]:
    """OpenCV's decode, and what libjpeg, libpng and libtiff printed meanwhile."""
    with stderr_captured() as printed:
        arr = _imdecode(np.frombuffer(data, dtype=np.uint8))
    return arr, printed[:5]


def _imdecode(buffer: np.ndarray) -> np.ndarray | None:
    try:
        return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None


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
