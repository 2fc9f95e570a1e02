"""Image preprocessing shared by training, export calibration and the runtime, as the bundle
describes it: our letterbox with a percentile stretch, AFLoc's 8-bit letterbox, or BioViL's
8-bit min-max, resize and centre crop; each recorded so heatmaps land on original pixels."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from lesionloc_runtime.errors import ConfigError, ImageReadError
from lesionloc_runtime.geometry import CentreCrop, Geometry, Letterbox
from lesionloc_runtime.imageio import Radiograph
from lesionloc_runtime.parts import in_parts
from lesionloc_runtime.resampling import area_resize, pillow_bilinear

__all__ = [
    "EIGHT_BIT",
    "INTENSITIES",
    "METHODS",
    "CentreCrop",
    "Letterbox",
    "PreprocessConfig",
    "PreprocessedImage",
    "apply_window",
    "intensity_window",
    "percentiles",
    "preprocess",
    "to_uint8",
    "value_range",
]

_INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
# Pillow's antialiased bilinear resize of an 8-bit image: what torchvision's Resize does to the
# PIL image hi-ml hands it (BioViL). Only the resize-crop method uses it.
_PIL_BILINEAR = "pil-bilinear"
METHODS = ("letterbox", "resize-crop")
# "percentile": robust stretch of the resized image (ours); "none": display values as read;
# "uint8": display values quantized to 8 bits before resizing (AFLoc reads 8-bit JPEGs);
# "minmax-uint8": min-max stretch of the whole image to 8 bits, truncated (hi-ml's
# remap_to_uint8, which BioViL's loader applies before its transform).
INTENSITIES = ("percentile", "none", "uint8", "minmax-uint8")
# The intensities whose model is fed an 8-bit film (`to_uint8`).
EIGHT_BIT = ("uint8", "minmax-uint8")


@dataclass(frozen=True)
class PreprocessConfig:
    """What every consumer of an image does before the encoder. Carried in the model bundle.

    The model input is one channel in [0, 1], `image_size` square; the encoder graph itself
    holds what the backbone does next (channel replication, mean/std, any resampling), so
    nothing here depends on which backbone was trained.
    """

    image_size: int = 448
    intensity: str = "percentile"
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    pad_value: float = 0.0
    interpolation: str = "area"
    method: str = "letterbox"
    size_rounding: str = "round"  # letterbox: how the scaled short side is rounded
    resize: int = 0  # resize-crop: the shorter side before the crop (0 for a letterbox)

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(f"image_size must be a multiple of 32 and >= 32, got {self.image_size}")
        if self.intensity not in INTENSITIES:
            raise ConfigError(f"unknown intensity normalization {self.intensity!r}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ConfigError("percentiles must satisfy 0 <= low < high <= 100")
        if not 0.0 <= self.pad_value <= 1.0:
            raise ConfigError(f"pad_value must be in [0, 1], got {self.pad_value}")
        if self.method not in METHODS:
            raise ConfigError(f"unknown preprocessing method {self.method!r} (letterbox or resize-crop)")
        if self.size_rounding not in ("round", "floor"):
            raise ConfigError(f"size_rounding must be round or floor, not {self.size_rounding!r}")
        if self.method == "resize-crop":
            if self.interpolation != _PIL_BILINEAR or self.intensity != "minmax-uint8":
                raise ConfigError("resize-crop preprocessing is BioViL's: interpolation "
                                  f"{_PIL_BILINEAR!r} on a minmax-uint8 image")
            if not self.image_size <= self.resize <= 4096:
                raise ConfigError(f"resize {self.resize} must be at least the crop "
                                  f"{self.image_size} (and at most 4096)")
        elif self.interpolation not in _INTERPOLATIONS or self.resize:
            raise ConfigError(f"a letterbox takes interpolation {sorted(_INTERPOLATIONS)} and no "
                              f"resize, got {self.interpolation!r} and resize {self.resize}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(f"unknown preprocessing parameters: {sorted(unknown)}")
        for name, value in data.items():
            expected = type(getattr(cls(), name))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ConfigError(f"preprocessing parameter {name}={value!r} is not a {expected.__name__}")
        return cls(**data)

    def geometry(self, width: int, height: int) -> Geometry:
        """Where an image of this size lands in the model input."""
        if self.method == "resize-crop":
            return CentreCrop.fit(width, height, self.resize, self.image_size)
        return Letterbox.fit(width, height, self.image_size, self.size_rounding)


def intensity_window(pixels: np.ndarray, config: PreprocessConfig) -> tuple[float, float]:
    """The (low, high) display values that the intensity normalization maps to 0 and 1."""
    if config.intensity in ("none", "uint8"):
        return 0.0, 1.0
    if config.intensity == "minmax-uint8":
        return float(pixels.min()), float(pixels.max())
    lo, hi = percentiles(pixels, (config.low_percentile, config.high_percentile))
    if hi - lo < 1e-6:  # a flat image: keep it flat instead of amplifying noise
        return float(lo), float(lo) + 1.0
    return float(lo), float(hi)


# Bins of `percentiles`' first pass: about 50 values each in a 448 px image.
_PERCENTILE_BINS = 4096


def percentiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """np.percentile(values, qs) (its default "linear" method), the same floats, faster:
    numpy partitions the whole array around each order statistic it needs; here one pass
    counts the values into bins between the minimum and the maximum (a monotone map, so a
    bin's values all lie between its neighbours'), and only the few bins that hold a needed
    rank are partitioned (the reference film's 448 px image: 0.73 ms against 1.07; uniform
    noise: 0.8 against 2.8). Anything non-finite goes to numpy itself."""
    flat = np.ascontiguousarray(values).reshape(-1)
    q = np.asarray(qs, np.float64) / 100
    if flat.size == 0 or flat.dtype.kind != "f":
        return np.percentile(flat, qs)
    low, high = flat.min(), flat.max()
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        span = high - low
        scale = flat.dtype.type(_PERCENTILE_BINS) / span
    if not (np.isfinite(span) and span > 0 and np.isfinite(scale)):
        return np.percentile(flat, qs)  # NaN, infinity, one value, a range the bins cannot split
    n = flat.size
    virtual = (n - 1) * q  # numpy's virtual index and neighbours for the linear method
    below = np.floor(virtual).astype(np.intp)
    above = below + 1
    below[virtual >= n - 1] = above[virtual >= n - 1] = n - 1
    stats = _order_statistics(flat, low, scale, np.unique(np.concatenate((below, above))))
    a = np.array([stats[rank] for rank in below.tolist()], flat.dtype)
    b = np.array([stats[rank] for rank in above.tolist()], flat.dtype)
    gamma = virtual - below
    diff = b - a  # numpy's _lerp, which computes from the nearer end
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def _order_statistics(flat: np.ndarray, low: Any, scale: Any, ranks: np.ndarray) -> dict[int, Any]:
    """{rank: the rank-th smallest value} of a finite array, its minimum `low` and `scale` the
    bins' count over its range (finite, and low is not the maximum)."""
    scaled = np.subtract(flat, low)
    scaled *= scale
    np.minimum(scaled, _PERCENTILE_BINS - 1, out=scaled)
    bins = scaled.astype(np.intp)  # truncation after monotone arithmetic: monotone in the value
    ends = np.cumsum(np.bincount(bins, minlength=_PERCENTILE_BINS))
    by_bin: dict[int, list[int]] = {}
    for rank in ranks.tolist():
        by_bin.setdefault(int(np.searchsorted(ends, rank, side="right")), []).append(rank)
    out: dict[int, Any] = {}
    for which, wanted in by_bin.items():
        start = int(ends[which - 1]) if which else 0
        inside = np.partition(flat[bins == which], [rank - start for rank in wanted])
        out.update({rank: inside[rank - start] for rank in wanted})
    return out


def apply_window(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    out = (pixels - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


@dataclass(frozen=True)
class PreprocessedImage:
    """The encoder input (1, size, size) float32, and how to go back to the original.
    `letterbox` is the geometry: a Letterbox, or a CentreCrop for a resize-crop bundle."""

    tensor: np.ndarray
    letterbox: Geometry
    window: tuple[float, float]


# Pixels per block of `to_uint8`: a block's float64 copy (256 KB) stays in the L2 cache.
_UINT8_BLOCK = 1 << 15


def value_range(pixels: np.ndarray, threads: int = 1) -> tuple[float, float]:
    """(minimum, maximum) of an image, a large one's parts on up to `threads` threads
    (`parts.in_parts`). NaN when the image holds a NaN (numpy's minimum and maximum keep it), so
    both are finite only when every pixel is."""
    flat = np.ascontiguousarray(pixels).reshape(-1)
    if not flat.size:
        return 0.0, 0.0
    ends = in_parts(lambda start, stop: (flat[start:stop].min(), flat[start:stop].max()),
                    flat.size, threads, _UINT8_BLOCK)
    return float(np.min([lo for lo, _ in ends])), float(np.max([hi for _, hi in ends]))


def to_uint8(pixels: np.ndarray, intensity: str, threads: int = 1,
             extremes: tuple[float, float] | None = None) -> np.ndarray:
    """Display values in [0, 1] as the 8-bit image the source model was fed: "minmax-uint8" is
    hi-ml's remap_to_uint8 (in float64: subtract the minimum, divide by the new maximum, times
    255, truncated), "uint8" rounds value x 255 in float64. Each operation is done element by
    element on one block of pixels at a time, so the result is the same, bit for bit, as on the
    whole image at once, in a third of the time on a 2048 px film: five passes over a 32 MB
    float64 copy of it ran from memory, and a block's run from the cache. A large image's
    blocks are shared between up to `threads` threads (`parts.in_parts`; numpy releases the
    interpreter lock): 5.9 ms against 9.1 on two for the 2048 px film. `extremes`: the image's
    `value_range`, when the caller has it already (min-max only)."""
    flat = np.ascontiguousarray(pixels).reshape(-1)
    out = np.empty(flat.shape, np.uint8)
    low = top = 0.0
    if intensity == "minmax-uint8" and flat.size:
        low, high = extremes if extremes is not None else value_range(flat, threads)
        top = float(np.float64(high) - low)  # the maximum of (x - min): a rounding is monotone

    def convert(start: int, stop: int) -> None:
        for first in range(start, stop, _UINT8_BLOCK):
            block = flat[first:min(first + _UINT8_BLOCK, stop)].astype(np.float64)
            if intensity == "minmax-uint8":
                block -= low
                if top > 0:
                    block /= top
                block *= 255
            else:
                block *= 255.0
                np.rint(block, out=block)
                np.clip(block, 0, 255, out=block)
            out[first:first + block.size] = block  # float64 -> uint8 truncates, as astype does

    in_parts(convert, flat.size, threads, _UINT8_BLOCK)
    return out.reshape(pixels.shape)


def _finite_table(image: Radiograph) -> bool:
    """Whether the radiograph kept its stored levels and every one shows as a finite value."""
    return image.stored is not None and bool(np.isfinite(image.stored.table).all())


def _eight_bit(image: Radiograph, intensity: str, threads: int,
               extremes: tuple[float, float] | None = None) -> np.ndarray:
    """`to_uint8` of a finite radiograph's pixels. When it kept its stored levels
    (`read_image(..., keep_stored=True)`), `to_uint8` of the table of their display values,
    gathered by the levels: the same bytes, since `to_uint8` works value by value (the
    reference film: about half the time, docs/latency.md). Levels the film does not hold may
    show outside its range, or as NaN: they are clamped into it first, which leaves every
    level it holds as it is."""
    if image.stored is None:
        return to_uint8(image.pixels, intensity, threads, extremes)
    if intensity == "minmax-uint8" and extremes is None:
        extremes = value_range(image.pixels, threads)  # the film's, not the table's
    low, high = extremes if intensity == "minmax-uint8" else (0.0, 1.0)

    def convert(table: np.ndarray) -> np.ndarray:
        values = np.clip(table, np.float32(low), np.float32(high))
        values[np.isnan(values)] = low
        return to_uint8(values, intensity, 1, extremes)

    return image.stored.through(convert, threads)


def _all_finite(pixels: np.ndarray, threads: int) -> bool:
    flat = np.ascontiguousarray(pixels).reshape(-1)
    return all(in_parts(lambda start, stop: bool(np.isfinite(flat[start:stop]).all()),
                        flat.size, threads, _UINT8_BLOCK))


def preprocess(image: Radiograph | np.ndarray, config: PreprocessConfig,
               threads: int = 1) -> PreprocessedImage:
    """Resize (letterbox or resize-crop) and intensity-normalize one radiograph into the
    encoder's input, recording the geometry. `threads`: how many threads a large film's passes
    (range, 8-bit conversion, resize) may share (the same result on any number)."""
    if not isinstance(image, Radiograph):
        image = Radiograph.from_array(np.asarray(image))
    pixels = image.pixels
    height, width = pixels.shape
    # A NaN or an infinity is refused, never turned into a grey level. A min-max film's range
    # is finite only when every pixel is, and it is needed anyway (the conversion, the window);
    # the area resize reads every pixel, so its output tells (checked below); other resizes
    # skip pixels, so the film is checked first.
    extremes = None
    if config.intensity == "minmax-uint8":
        extremes = value_range(pixels, threads)
        finite = math.isfinite(extremes[0]) and math.isfinite(extremes[1])
    elif config.intensity == "uint8" and _finite_table(image):
        finite = True  # every pixel is one of the table's values
    elif config.intensity == "uint8" or config.interpolation != "area":
        finite = _all_finite(pixels, threads)
    else:
        finite = True
    if not finite:
        raise ImageReadError(f"{image.source}: the image has non-finite values (NaN or infinity)")
    if config.method == "resize-crop":  # always min-max (PreprocessConfig): extremes are set
        return _resize_crop(image, config, threads, extremes)  # type: ignore[arg-type]
    box = Letterbox.fit(width, height, config.image_size, config.size_rounding)
    canvas = np.full((config.image_size, config.image_size), config.pad_value, dtype=np.float32)
    inside = canvas[box.pad_y : box.pad_y + box.new_height, box.pad_x : box.pad_x + box.new_width]
    interpolation = _INTERPOLATIONS[config.interpolation]
    if config.intensity == "uint8":  # AFLoc resizes the 8-bit image itself
        small = cv2.resize(_eight_bit(image, "uint8", threads), (box.new_width, box.new_height),
                           interpolation=interpolation)
        inside[...] = small.astype(np.float32) / np.float32(255.0)
        return PreprocessedImage(canvas[None], box, (0.0, 1.0))
    if config.interpolation == "area":
        resized = area_resize(pixels, box.new_width, box.new_height, threads)
    else:
        resized = cv2.resize(pixels, (box.new_width, box.new_height), interpolation=interpolation)
    if not np.isfinite(resized).all():
        raise ImageReadError(f"{image.source}: the image has non-finite values (NaN or infinity)")
    # The percentiles are computed on the resized image (what the encoder sees), which is both
    # cheaper on 2048-pixel films and independent of the original resolution.
    window = intensity_window(resized, config)
    inside[...] = apply_window(resized, window)
    return PreprocessedImage(canvas[None], box, window)


def _resize_crop(image: Radiograph, config: PreprocessConfig, threads: int,
                 extremes: tuple[float, float]) -> PreprocessedImage:
    """BioViL: 8-bit min-max image, Pillow bilinear resize of the shorter side, centre crop.
    `extremes`: the film's `value_range`, also its display window (as `intensity_window`)."""
    height, width = image.pixels.shape
    crop = CentreCrop.fit(width, height, config.resize, config.image_size)
    picture = _eight_bit(image, config.intensity, threads, extremes)
    if (crop.resized_width, crop.resized_height) != (width, height):
        picture = pillow_bilinear(picture, crop.resized_width, crop.resized_height, threads)
    array = picture[crop.crop_y : crop.crop_y + config.image_size,
                    crop.crop_x : crop.crop_x + config.image_size]
    tensor = array.astype(np.float32) / np.float32(255.0)
    return PreprocessedImage(tensor[None], crop, extremes)
