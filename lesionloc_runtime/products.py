"""Float matrix products kept on the calling thread. numpy's OpenBLAS runs a product of more
than about 2**18 multiply-adds on its own pool of threads, and those threads, once woken, spin
for a while after the product on the cores that the encoders and the study's writing need next
(docs/latency.md). The runtime's products (the letterbox's area resize, the heatmaps' grids and
their refinement, the sentences' scores) are each split into bands of at most ONE_THREAD_WORK
multiply-adds, which OpenBLAS runs on the calling thread: the same sums, in the same order
within each output, as one product would give."""

from __future__ import annotations

import numpy as np

__all__ = ["ONE_THREAD_WORK", "column_bands", "matmul_in_bands"]

# Multiply-adds (rows x inner size x columns) of one product that OpenBLAS ran on the calling
# thread only (its CPU time equal to its wall time; the area resize's bands of 16 outputs of the
# 2048 px film, twice this, took two threads).
ONE_THREAD_WORK = 1 << 18


def column_bands(rows: int, inner: int, columns: int) -> list[slice]:
    """The column slices of a (rows, inner) x (inner, columns) product, each within
    ONE_THREAD_WORK (one column at least, whatever its work)."""
    width = max(1, ONE_THREAD_WORK // max(1, rows * inner))
    return [slice(start, min(start + width, columns)) for start in range(0, columns, width)]


def matmul_in_bands(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (m, k) @ b (k, n), as products of column bands of `b` (`column_bands`)."""
    (rows, inner), columns = a.shape, b.shape[1]
    if b.shape[0] != inner:
        raise ValueError(f"cannot multiply {a.shape} by {b.shape}")
    out = np.empty((rows, columns), np.result_type(a, b))
    for band in column_bands(rows, inner, columns):
        np.matmul(a, b[:, band], out=out[:, band])
    return out
