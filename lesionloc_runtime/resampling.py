"""The resizes of preprocessing, each a library's result made faster on a large film: OpenCV's
area resize (up to float rounding) as products in one-thread bands, and Pillow's bilinear
resize of an 8-bit image (byte for byte) with its first pass in row bands; both share a film's
work between the study's threads (`parts`)."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from lesionloc_runtime.parts import even_bounds, part_bounds, run_parts
from lesionloc_runtime.products import ONE_THREAD_WORK

__all__ = ["area_resize", "pillow_bilinear"]


def area_resize(pixels: np.ndarray, width: int, height: int, threads: int = 1) -> np.ndarray:
    """cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA) of a float32 image made
    smaller, as two products with the area weights (each output the mean of the input area it
    covers, partial pixels weighted by their part): down the columns, then along the rows,
    a band of a few outputs and the inputs they cover at a time. OpenCV's general path for a
    factor that is not an integer (2048 to 448 px: 4.57) takes 10 ms of CPU on the reference
    film; this takes 2.5. The values differ from OpenCV's by float rounding only (at most
    2e-7 on [0, 1] display values). An image made larger, of another type, or with a value
    that is not finite (0 x NaN would spread it to a band's zero weights) goes to OpenCV.
    Each pass's bands are shared between as many threads as `parts.part_bounds` gives the
    image (at most `threads`, a `parts.MIN_PART` of pixels each; `parts.run_parts`; each band
    is a product OpenBLAS runs on the thread that calls it): the same bytes, 2.0 ms against
    3.4 for the reference film on two."""
    rows, cols = pixels.shape
    if pixels.dtype != np.float32 or not (0 < height <= rows and 0 < width <= cols):
        return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    if (height, width) == (rows, cols):
        return pixels.copy()
    middle = np.empty((height, cols), np.float32)
    out = np.empty((height, width), np.float32)
    down, across = _area_bands(rows, height, cols), _area_bands(cols, width, height)
    threads = len(part_bounds(pixels.size, threads, 1)) - 1  # parts' one rule: MIN_PART each

    # 0 x infinity: found below, left to OpenCV (np.errstate holds on its own thread only)
    def pass_down(first_band: int, end_band: int) -> None:
        with np.errstate(invalid="ignore"):
            for first, end, start, stop, weights in down[first_band:end_band]:
                np.matmul(weights, pixels[start:stop], out=middle[first:end])

    def pass_across(first_band: int, end_band: int) -> None:
        with np.errstate(invalid="ignore"):
            for first, end, start, stop, weights in across[first_band:end_band]:
                np.matmul(middle[:, start:stop], weights.T, out=out[:, first:end])

    run_parts(pass_down, even_bounds(len(down), threads))
    run_parts(pass_across, even_bounds(len(across), threads))
    if not np.isfinite(out).all():
        return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    return out


@functools.lru_cache(maxsize=32)
def _area_bands(size: int, new_size: int, other: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The area weights of `size` samples made `new_size` (no larger), in bands: (first output,
    end, first input, end, float32 weights outputs x inputs). A band's outputs are as many as
    keep its product with `other` samples of the other axis within ONE_THREAD_WORK
    (products.py: OpenBLAS runs it on the calling thread)."""
    scale = size / new_size

    def work(outputs: int) -> int:  # a band of `outputs` covers at most this many inputs
        return outputs * (math.ceil(outputs * scale) + 1) * other

    per_band = 1
    while per_band < new_size and work(per_band + 1) <= ONE_THREAD_WORK:
        per_band += 1
    bands = []
    for first in range(0, new_size, per_band):
        end = min(first + per_band, new_size)
        low = np.arange(first, end)[:, None] * scale  # each output's interval in input pixels
        high = np.minimum(low + scale, size)
        start, stop = math.floor(low[0, 0]), min(math.ceil(high[-1, 0]), size)
        inputs = np.arange(start, stop)[None, :]
        cover = np.minimum(inputs + 1, high) - np.maximum(inputs, low)
        weights = (np.clip(cover, 0, None) / scale).astype(np.float32)
        weights.flags.writeable = False  # kept (lru_cache) and shared by every caller
        bands.append((first, end, start, stop, weights))
    return tuple(bands)


def pillow_bilinear(picture: np.ndarray, width: int, height: int, threads: int = 1) -> np.ndarray:
    """np.asarray(Image.fromarray(picture).resize((width, height), Image.BILINEAR)) of an 8-bit
    image, the same bytes, with its pass across the rows shared between up to `threads`
    threads. Pillow resizes in two passes through an 8-bit image; a band of whole rows resized
    across has the weights of the whole image, so when Pillow makes that pass first (see
    `_across_first`) it can be made apart, in row bands (`parts.part_bounds`; Pillow releases the
    interpreter lock), and the pass down the columns after it: the same bytes. That first pass
    is most of the work when a film shrinks to a quarter a side (2048 px to 512: 5.9 ms of 7.5
    on one thread); on two threads, 5.1 ms against 7.2 for the whole resize (median of 40
    alternated). Bands of output rows (Pillow's `box`) would not be exact: a band's scale
    differs from the whole image's in the last bit for some sizes."""
    from PIL import Image

    rows, columns = picture.shape
    bands = part_bounds(picture.size, threads, columns)
    # One call where there is one band (the passes made apart on one thread cost 1.7 ms more
    # on the 2048 px film: the copies between them), one pass, or the pass down first.
    if len(bands) <= 2 or width == columns or not _across_first(rows, columns, width, height):
        return np.asarray(Image.fromarray(picture).resize((width, height), Image.BILINEAR))
    across = np.empty((rows, width), np.uint8)

    def band(start: int, stop: int) -> None:
        first, end = start // columns, stop // columns  # whole rows: blocks of `columns`
        across[first:end] = np.asarray(Image.fromarray(picture[first:end]).resize(
            (width, end - first), Image.BILINEAR))

    run_parts(band, bands)
    if height == rows:
        return across
    return np.asarray(Image.fromarray(across).resize((width, height), Image.BILINEAR))


def _across_first(rows: int, columns: int, width: int, height: int) -> bool:
    """Whether Pillow's two-pass resize of a rows x columns image to width x height makes the
    pass across the rows first. Pillow 9.1 to 12.3 always do; Pillow 13 makes the pass down the
    columns first when it removes more than twice as many rows as the pass across removes
    columns (rows - height > 2 (columns - width), which includes every film widened while its
    rows shrink). Found by comparing Pillow 13.0's output with the two passes made apart in
    either order on 1,000 sizes from 8 to 3,600 px and on both sides of that boundary; Pillow
    9.1, 11.3, 12.0 and 12.3 made the pass across first on 400 sizes each. Where the versions
    differ, the resize is left whole. The tests compare with the installed Pillow."""
    return height >= rows or rows - height <= 2 * (columns - width)
