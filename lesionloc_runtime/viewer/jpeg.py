"""The full-resolution film as one baseline JPEG, encoded as two bands on two threads.

libjpeg encodes on one thread, and the 2048 px film's JPEG is the longest job of a study's
writing. A baseline JPEG with a restart marker after every row of blocks can be cut at any
marker: each band is encoded alone with the same tables and the same restart interval, and the
lower band's entropy-coded data follow the upper band's behind the restart marker that would
have stood there. The file decodes to exactly the pixels of the film encoded whole (each 8x8
block is coded alone; a restart only resets the DC prediction), and it is about 0.05% larger.
"""

from __future__ import annotations

import cv2
import numpy as np

from lesionloc_runtime.imageio.containers import jpeg_segments

__all__ = ["encode_band", "encode_grey", "join_bands", "split_row"]

_SOI, _EOI, _SOS, _SOF0 = 0xD8, 0xD9, 0xDA, 0xC0
_RST0 = 0xD0
# A band's rows are a multiple of 8 blocks of 8 rows: restart markers count modulo 8, so the
# lower band's own markers (RST0 after its first row of blocks) continue the upper band's.
_BAND_ROWS = 64
# Below this the film is encoded whole: two threads would not pay for a small picture.
_MIN_SPLIT_ROWS = 512


def encode_grey(grey: np.ndarray, quality: int, restart_blocks: int = 0) -> bytes:
    """An 8-bit grey picture as a baseline JPEG (standard Huffman tables); with
    `restart_blocks`, a restart marker after every that many 8x8 blocks."""
    if grey.dtype != np.uint8 or grey.ndim != 2 or 0 in grey.shape:
        raise ValueError(f"JPEG encoding needs an 8-bit grey picture, got {grey.dtype} {grey.shape}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if restart_blocks:
        params += [cv2.IMWRITE_JPEG_RST_INTERVAL, restart_blocks]
    ok, data = cv2.imencode(".jpg", grey, params)
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {grey.shape} picture")
    return data.tobytes()


def split_row(height: int) -> int | None:
    """Where to cut a film of `height` rows into two bands (a multiple of 64 rows near the
    middle), or None to encode it whole."""
    if height < _MIN_SPLIT_ROWS:
        return None
    return (height // 2) // _BAND_ROWS * _BAND_ROWS


def encode_band(band: np.ndarray, quality: int) -> bytes:
    """One band of the film, with a restart marker after every row of blocks."""
    return encode_grey(band, quality, restart_blocks=-(-band.shape[1] // 8))


def _scan_start(data: bytes) -> tuple[int, int]:
    """(offset of the SOF0 height field, offset where the entropy-coded data begin)."""
    if data[:2] != bytes((0xFF, _SOI)):
        raise ValueError("not a JPEG stream")
    height_field = -1
    for marker, at, length in jpeg_segments(data):
        if marker == _SOF0:
            height_field = at + 5
        if marker == _SOS:
            if height_field < 0:
                raise ValueError("JPEG stream without a baseline frame header")
            return height_field, at + 2 + length
    raise ValueError("JPEG stream without a scan")


def join_bands(upper: bytes, lower: bytes, upper_rows: int, height: int) -> bytes:
    """The JPEG of the whole film from its two bands (`encode_band` of rows [0, upper_rows)
    and [upper_rows, height)). ValueError if the bands were not coded alike."""
    if upper_rows % _BAND_ROWS or not 0 < upper_rows < height:
        raise ValueError(f"the upper band's {upper_rows} rows must be a multiple of {_BAND_ROWS} "
                         f"below the film's {height}")
    upper_height, upper_scan = _scan_start(upper)
    lower_height, lower_scan = _scan_start(lower)
    header = bytearray(upper[:upper_scan])
    other = bytearray(lower[:lower_scan])
    if upper_height != lower_height or len(header) != len(other):
        raise ValueError("the two bands' JPEG headers differ")
    # the same tables, restart interval and scan; only the frame's height may differ
    other[lower_height:lower_height + 2] = header[upper_height:upper_height + 2]
    if header != other:
        raise ValueError("the two bands' JPEG headers differ")
    if not (upper.endswith(bytes((0xFF, _EOI))) and lower.endswith(bytes((0xFF, _EOI)))):
        raise ValueError("a band's JPEG stream is truncated")
    header[upper_height:upper_height + 2] = height.to_bytes(2, "big")
    marker = bytes((0xFF, _RST0 + (upper_rows // 8 - 1) % 8))
    return b"".join((bytes(header), upper[upper_scan:-2], marker, lower[lower_scan:]))
