"""Stored pixel values to display grey levels (DICOM PS3.3 C.11): modality LUT or rescale, VOI
LUT or window, inversion; computed once per possible bit pattern and applied as one gather."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.imageio.header import (
    first,
    float_value,
    header_value,
    int_value,
    shown_value,
)
from lesionloc_runtime.parts import in_parts

__all__ = ["DisplayMapping", "PixelFile", "StoredPixels", "gather"]


@dataclass(frozen=True)
class PixelFile:
    """Uncompressed little-endian pixel data left in their open file: the display gather reads
    them a block at a time into a small buffer, instead of the film being read whole into
    memory first (pydicom's way) and then gathered. On the reference 2048 px film that copy
    cost as much as the gather (docs/latency.md). Reads with pread, so that the gather's
    threads share the file."""

    fd: int
    offset: int  # of the first pixel in the file
    dtype: np.dtype  # the stored container as unsigned bit patterns, little-endian ("<u1", "<u2")
    shape: tuple[int, int]
    source: str  # the file, for messages

    def read(self, start: int, buffer: np.ndarray) -> np.ndarray:
        """Pixels `start` on (flat order) into `buffer` (bytes), as bit patterns: all of it."""
        got = os.preadv(self.fd, [buffer], self.offset + start * self.dtype.itemsize)
        if got < buffer.size:
            raise ImageReadError(f"{self.source}: the pixel data is truncated (the file ended "
                                 "while it was read)")
        return buffer.view(self.dtype)

    def load(self) -> np.ndarray:
        """The whole stored array, as pydicom's decoder gives it."""
        buffer = np.empty(self.shape[0] * self.shape[1] * self.dtype.itemsize, np.uint8)
        return self.read(0, buffer).reshape(self.shape)


@dataclass(frozen=True)
class StoredPixels:
    """A film's bit patterns and the table of display values they were gathered through (one
    float32 per bit pattern), kept beside the display image when asked (`read_image`'s
    `keep_stored`). Any element-by-element function of the display values is that function of
    the table, gathered again: `through` makes the imported models' 8-bit film from 65,536
    table entries and one gather, where converting the display image costs a pass of float64
    arithmetic over every pixel (docs/latency.md)."""

    patterns: np.ndarray  # unsigned integers, (rows, columns)
    table: np.ndarray  # float32, an entry for every value `patterns` can hold

    def through(self, convert: Callable[[np.ndarray], np.ndarray], threads: int = 1) -> np.ndarray:
        """`convert(display values)` of the film (its shape), as `convert` of the table gathered
        by the film's bit patterns. `convert` must work element by element."""
        return gather(convert(self.table), self.patterns, threads)


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
class DisplayMapping:
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
    ) -> DisplayMapping:
        container_bits = dtype.itemsize * 8
        bits = int_value(ds, "BitsStored", path)
        if bits > container_bits:
            notes.append(f"BitsStored {bits} exceeds the decoded {container_bits} bits")
            bits = container_bits
        signed = int_value(ds, "PixelRepresentation", path, default=0) == 1
        little = ds.file_meta.TransferSyntaxUID.is_little_endian is not False
        modality_lut = voi_lut = None
        if header_value(ds, "ModalityLUTSequence"):
            modality_lut = _Lut.from_item(
                ds.ModalityLUTSequence[0], signed, little, "Modality LUT", notes
            )
        slope = float_value(ds, "RescaleSlope", notes, default=1.0)
        if slope == 0.0:
            notes.append("RescaleSlope 0 ignored")
            slope = 1.0
        intercept = float_value(ds, "RescaleIntercept", notes, default=0.0)
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

    def apply(self, raw: np.ndarray | PixelFile, threads: int = 1) -> np.ndarray:
        """Decoded integer array (or pixels still in their file) -> float32 display image, in
        one pass over the pixels (the gather of a large image split between up to `threads`
        threads)."""
        return self.apply_keeping(raw, threads, keep=False)[0]

    def apply_keeping(self, raw: np.ndarray | PixelFile, threads: int = 1,
                      keep: bool = True) -> tuple[np.ndarray, StoredPixels | None]:
        """`apply`, and with `keep` the bit patterns and table it gathered with (pixels still in
        their file read into memory by the gather); None for containers over 16 bits, which
        are not gathered."""
        patterns = raw if isinstance(raw, PixelFile) else _bit_patterns(raw)
        if patterns.dtype.itemsize <= 2:
            # Every possible bit pattern through the whole chain once (<= 65536 entries, in
            # float64), then one gather: masking, sign, LUTs and window cost no per-pixel work.
            table = self._table(patterns.dtype.itemsize)
            if not keep:
                return gather(table, patterns, threads), None
            if isinstance(patterns, PixelFile):  # read into memory as the gather reads them
                kept = np.empty(patterns.shape, patterns.dtype)
                pixels = gather(table, patterns, threads, kept)
                return pixels, StoredPixels(_bit_patterns(kept), table)
            return gather(table, patterns, threads), StoredPixels(patterns, table)
        return self.display(self.stored_values(patterns)).astype(np.float32), None

    def _table(self, itemsize: int) -> np.ndarray:
        """The display value (float32) of every bit pattern of an `itemsize`-byte container.
        Kept for the last few mappings: the films of a batch usually share one (the same
        modality and window), and a 16-bit table took 1.1 ms to make (AMX Xeon)."""
        key = (itemsize, self.bits, self.signed, self.slope, self.intercept, self.window,
               self.invert, _lut_key(self.modality_lut), _lut_key(self.voi_lut))
        with _TABLES_LOCK:
            table = _TABLES.get(key)
            if table is not None:
                _TABLES.move_to_end(key)
                return table
        table = self.display(self.stored_values(np.arange(1 << (8 * itemsize)))).astype(np.float32)
        table.flags.writeable = False
        with _TABLES_LOCK:
            _TABLES[key] = table
            while len(_TABLES) > _TABLES_KEPT:
                _TABLES.popitem(last=False)
        return table

    def over_own_range(self, raw: np.ndarray, notes: list[str]) -> DisplayMapping:
        """This mapping with its VOI (window or VOI LUT) replaced by a window over the values
        the image holds, for a VOI that puts every pixel at one grey level. Real films do
        this (a 16-bit JPEG 2000 DX film: window 2725/5310 over stored values 32744-65535)
        and viewers show them; refusing them as blank would be wrong. Unchanged when those
        values are all equal: the image is blank and `read_image` refuses it."""
        patterns = _bit_patterns(raw)
        if patterns.dtype.itemsize <= 2:  # each value present once, not each pixel
            patterns = np.flatnonzero(np.bincount(patterns.ravel()))
        with np.errstate(over="ignore", invalid="ignore"):
            values = self.modality(self.stored_values(patterns))
            lo, hi = float(values.min()), float(values.max())
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            return self
        if self.window is not None:
            centre, width, _ = self.window
            what = f"window {centre:g}/{width:g}"
        else:
            what = "VOI LUT"
        notes.append(f"{what} puts every pixel at one grey level (values {lo:g} to {hi:g}): "
                     "a window over the image's own values used instead")
        # LINEAR_EXACT maps lo to 0 and hi to 1 exactly.
        return replace(self, voi_lut=None, window=((lo + hi) / 2, hi - lo, "LINEAR_EXACT"))


# Display tables kept (DisplayMapping._table), 256 KB each for 16-bit containers.
_TABLES_KEPT = 8
_TABLES: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_TABLES_LOCK = threading.Lock()


def _lut_key(lut: _Lut | None) -> tuple[Any, ...] | None:
    return None if lut is None else (lut.first, lut.bits, lut.data.tobytes())


# Pixels per block of `gather`: their indices (8 bytes each) stay in the L2 cache.
_GATHER_BLOCK = 1 << 16


def gather(table: np.ndarray, patterns: np.ndarray | PixelFile, threads: int = 1,
           kept: np.ndarray | None = None) -> np.ndarray:
    """table[patterns] for an unsigned integer image (an array, or pixels in their file).
    numpy indexes with intp: given 16-bit indices it first widens the whole image into a new
    array as large as four copies of the picture; widened block by block into one small
    buffer, the gather takes half the time. numpy's take releases the interpreter lock, so a
    large image's rows are shared between up to `threads` threads (`parts.in_parts`; a 2048 px
    film: 1.8 ms on two against 2.9 on one). `kept`: for pixels in their file, an array of
    their shape and bytes that each block is read into, instead of a small buffer, so that
    they stay in memory without a read of their own."""
    out = np.empty(patterns.shape, table.dtype)
    source = patterns if isinstance(patterns, PixelFile) else patterns.reshape(-1)
    target = out.reshape(-1)
    into = None if kept is None else kept.reshape(-1).view(np.uint8)
    in_parts(lambda start, stop: _gather_into(table, source, target, start, stop, into),
             target.size, threads, _GATHER_BLOCK)
    return out


def _gather_into(table: np.ndarray, source: np.ndarray | PixelFile, target: np.ndarray,
                 start: int, stop: int, into: np.ndarray | None = None) -> None:
    """target[start:stop] = table[source[start:stop]], a block at a time; pixels in their
    file read through a small buffer, or into `into` (the bytes of all of them) where given."""
    index = np.empty(min(_GATHER_BLOCK, stop - start), np.intp)
    in_file = isinstance(source, PixelFile)
    raw = np.empty(index.size * source.dtype.itemsize, np.uint8) if in_file else None
    for first_pixel in range(start, stop, _GATHER_BLOCK):
        end = min(first_pixel + _GATHER_BLOCK, stop)
        block = index[: end - first_pixel]
        if in_file:
            size = source.dtype.itemsize
            buffer = (raw[: block.size * size] if into is None
                      else into[first_pixel * size:end * size])
            block[...] = source.read(first_pixel, buffer)
        else:
            block[...] = source[first_pixel:end]
        # a bit pattern indexes a table of every pattern: always in range, where "wrap" is the
        # identity and costs less than "clip"'s clamp (34.6 against 47.1 us a block)
        np.take(table, block, out=target[first_pixel:end], mode="wrap")


def _bit_patterns(raw: np.ndarray) -> np.ndarray:
    """The decoded array as unsigned bit patterns of its container size, in native order."""
    if not raw.dtype.isnative:
        raw = raw.astype(raw.dtype.newbyteorder("="))
    return raw.view(np.dtype(f"u{raw.dtype.itemsize}"))


def _window_from_header(ds: Any, notes: list[str]) -> tuple[float, float, str] | None:
    """The first window (centre, width, function), or None if absent or unusable."""
    if header_value(ds, "WindowCenter") is None or header_value(ds, "WindowWidth") is None:
        return None
    try:
        center = float(first(ds.WindowCenter))
        width = float(first(ds.WindowWidth))
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
