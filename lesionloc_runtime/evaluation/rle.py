"""The run-length encoding of the SIIM-ACR Pneumothorax challenge (its `mask_functions.py`):
pairs of (offset, run length) where each offset counts from the END of the previous run, over
the pixels in column-major order (down each column, then the next column to the right)."""

from __future__ import annotations

import numpy as np

__all__ = ["NO_MASK", "decode_rle", "encode_rle", "parse_rle"]

NO_MASK = "-1"  # train-rle.csv writes " -1" for an image without pneumothorax


def parse_rle(encoded: str) -> list[int]:
    """The integers of an RLE string; ValueError names what is wrong with it."""
    text = encoded.strip()
    if text == NO_MASK:
        return []
    try:
        values = [int(v) for v in text.split()]
    except ValueError:
        raise ValueError("EncodedPixels is not a list of integers") from None
    if not values:
        raise ValueError("EncodedPixels is empty (write -1 for no pneumothorax)")
    if len(values) % 2:
        raise ValueError(f"EncodedPixels has {len(values)} numbers, expected (offset, length) pairs")
    if any(v < 0 for v in values[0::2]) or any(v <= 0 for v in values[1::2]):
        raise ValueError("EncodedPixels has a negative offset or a run length below 1")
    return values


def decode_rle(encoded: str, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of a SIIM RLE string; ValueError if it overruns the image."""
    values = parse_rle(encoded)
    flat = np.zeros(height * width, dtype=bool)
    position = 0
    for offset, length in zip(values[0::2], values[1::2], strict=True):
        position += offset
        if position + length > flat.size:
            raise ValueError(
                f"EncodedPixels runs past the end of a {width}x{height} image "
                f"(pixel {position + length} of {flat.size})"
            )
        flat[position:position + length] = True
        position += length
    # The competition decodes with reshape(width, height).T: flat index = x * height + y.
    return flat.reshape((height, width), order="F")


def encode_rle(mask: np.ndarray) -> str:
    """The SIIM RLE string of a boolean (height, width) mask ("-1" when it is empty)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    padded = np.concatenate(([False], flat, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    if starts.size == 0:
        return NO_MASK
    previous_ends = np.concatenate(([0], ends[:-1]))
    pairs = np.stack([starts - previous_ends, ends - starts], axis=1).ravel()
    return " ".join(str(int(v)) for v in pairs)
