"""Walking the structure of image containers and codestreams (PNG chunks, JPEG markers, TIFF
IFDs, a JPEG 2000 SIZ segment) before any decoder runs: the declared size, the EXIF
orientation, and a cut or corrupt file refused before a lenient decoder pads it with grey."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lesionloc_runtime.errors import ImageReadError

__all__ = ["EOI", "RasterHeader", "j2k_size", "jpeg_header", "jpeg_segments", "raster_header"]

EOI = b"\xff\xd9"  # JPEG EOI, JPEG-LS EOI and JPEG 2000 EOC share this marker


@dataclass(frozen=True)
class RasterHeader:
    size: tuple[int, int] | None  # (rows, columns) as declared, None if not found
    orientation: int  # EXIF orientation 1-8 (1: as stored)


def raster_header(data: bytes, kind: str, path: Path) -> RasterHeader:
    """The declared size and EXIF orientation, and a structural check that refuses a cut or
    corrupt file before the decoder sees it (a lenient decoder pads a cut file with grey;
    libpng prints its complaints on the terminal)."""
    if kind == "png":
        return _png_header(data, path)
    if kind == "jpeg":
        # In JPEG entropy-coded data 0xFF is always stuffed, so FFD9 after the last scan is EOI.
        if data.rfind(EOI) < data.rfind(b"\xff\xda"):
            raise ImageReadError(f"{path}: the JPEG file is truncated (no end-of-image marker)")
        return jpeg_header(data)
    return _tiff_header(data, path)


_PNG_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def _png_header(data: bytes, path: Path) -> RasterHeader:
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
            return RasterHeader(size, orientation)  # anything after IEND is ignored
        pos += 12 + length


# Start-of-frame markers: every SOFn but DHT (C4), JPG (C8) and DAC (CC), and JPEG-LS's SOF55.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, offset of its 0xFF, segment length) of each marker segment after SOI, up to
    and including the first start of scan (0xDA); fill bytes are skipped, and a malformed
    segment ends the walk."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        yield marker, pos, length
        if marker == 0xDA:  # start of scan: the headers are over
            return
        pos += 2 + length


def jpeg_header(data: bytes) -> RasterHeader:
    """The marker segments up to the first scan; a malformed one ends the walk and the decoder
    judges the file."""
    size, orientation = None, 1
    for marker, pos, length in jpeg_segments(data):
        if marker == 0xDA:
            break
        body = data[pos + 4 : pos + 2 + length]
        if marker in _SOF and len(body) >= 5:
            height, width = struct.unpack(">HH", body[1:5])
            size = (height, width)
        elif marker == 0xE1 and body.startswith(b"Exif\x00\x00") and orientation == 1:
            orientation = _exif_orientation(body[6:])
    return RasterHeader(size, orientation)


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


def _tiff_header(data: bytes, path: Path) -> RasterHeader:
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(order + "I", data[4:8])
        entries, following = _tiff_entries(data, offset, order)
    except struct.error:
        return RasterHeader(None, 1)  # the decoder judges it
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
    return RasterHeader(size, orientation if 1 <= orientation <= 8 else 1)


def j2k_size(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a JPEG 2000 codestream's SIZ segment (ISO/IEC 15444-1 A.5.1),
    which follows the SOC marker (after the boxes of a JP2 wrapper); None if not found."""
    at = data.find(b"\xff\x4f\xff\x51")
    if at < 0 or len(data) < at + 24:
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", data[at + 8 : at + 24])
    return ysiz - yosiz, xsiz - xosiz
