"""Pictures of results: per-sentence overlays (heatmap over the image, boxes, the sentence as
caption), a combined overlay of all findings at the image's aspect ratio, and a summary
figure. OpenCV only; every picture carries the model's notice."""

from __future__ import annotations

import functools
import struct
import textwrap

import cv2
import numpy as np

from lesionloc_runtime.results import SentenceResult, StudyResult

__all__ = [
    "base_grey",
    "combined_overlay",
    "display_size",
    "encode_png",
    "sentence_overlay",
    "summary_figure",
    "summary_tile",
    "window_to_uint8",
]

# Long side of rendered pictures in pixels (full-resolution heatmaps: --save-raw). PNG encoding
# dominates writing; 640 px costs 30% less than 768 and still shows a 5 mm nodule's box.
_DISPLAY_SIZE = 640
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PALETTE = [(255, 99, 71), (60, 179, 113), (65, 105, 225), (238, 130, 238), (255, 215, 0),
           (0, 206, 209), (255, 140, 0), (154, 205, 50)]  # RGB, one per sentence


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only; keep accents readable as their base letter."""
    import unicodedata

    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return folded


def display_size(width: int, height: int, limit: int = _DISPLAY_SIZE) -> tuple[int, int]:
    scale = min(1.0, limit / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def base_grey(result: StudyResult, limit: int = _DISPLAY_SIZE) -> np.ndarray:
    """The windowed radiograph as grey uint8 at display size (computed once per size; do not
    modify it)."""
    cache = result.__dict__.setdefault("_base_images", {})
    if limit not in cache:
        w, h = display_size(result.width, result.height, limit)
        grey = result.display
        # Halve by exact area averaging while it stays above the target (OpenCV's fast path,
        # and the result differs from one area resize by a fraction of a grey level).
        while grey.shape[0] % 2 == 0 and grey.shape[1] % 2 == 0 and \
                grey.shape[1] // 2 >= w and grey.shape[0] // 2 >= h:
            grey = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2),
                              interpolation=cv2.INTER_AREA)
        if grey.shape != (h, w):
            grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
        cache[limit] = window_to_uint8(grey, result.display_window)  # what the encoder saw
    return cache[limit]


def window_to_uint8(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """`apply_window` scaled to 0..255 and rounded to uint8, in one saturating OpenCV pass
    instead of three numpy passes and a conversion."""
    lo, hi = window
    gain = 255.0 / (hi - lo)
    pixels = np.asarray(pixels, dtype=np.float32)
    return cv2.addWeighted(pixels, gain, pixels, 0.0, -lo * gain, dtype=cv2.CV_8U)


def _base_image(result: StudyResult, limit: int = _DISPLAY_SIZE) -> np.ndarray:
    """The windowed radiograph as RGB uint8 at display size (a new array)."""
    return cv2.cvtColor(base_grey(result, limit), cv2.COLOR_GRAY2RGB)


# OpenCV's jet colour map as RGB, one row per 8-bit level.
_JET_RGB = np.ascontiguousarray(
    cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET)[:, :, ::-1])


@functools.cache
def _blend_table(alpha: float) -> np.ndarray:
    """(256 heat levels, 256 grey levels, RGB) uint8: grey * (1 - w) + jet(level) * w with
    w = alpha * level^1.5 (low heat stays clear), rounded. A picture is then one table lookup
    per pixel."""
    level = np.arange(256, dtype=np.float64) / 255.0
    weight = (alpha * level**1.5)[:, None, None]
    grey = np.arange(256, dtype=np.float64)[None, :, None]
    jet = _JET_RGB.reshape(256, 1, 3).astype(np.float64)
    return np.rint(grey * (1.0 - weight) + jet * weight).clip(0, 255).astype(np.uint8)


def _blend_heatmap(grey: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """RGB uint8: the grey picture with the heatmap (min-max scaled to 256 levels) blended over
    it through `_blend_table`. The lookup is OpenCV's nearest-neighbour remap with the grey
    value as column and the heat level as row: one pass instead of colour map, weights and
    blendLinear, and equal to them within one grey level."""
    seen = np.isfinite(heat)
    if seen.all():
        lo, hi = float(heat.min()), float(heat.max())
        level = (cv2.normalize(heat, None, 0.0, 255.0, cv2.NORM_MINMAX) if hi > lo
                 else np.zeros(heat.shape, np.float32))
    else:  # NaN where the model saw nothing (outside a crop): no heat drawn there
        level = np.zeros(heat.shape, np.float32)
        lo, hi = (float(heat[seen].min()), float(heat[seen].max())) if seen.any() else (0.0, 0.0)
        if hi > lo:
            level[seen] = (heat[seen] - lo) * np.float32(255.0 / (hi - lo))
    return cv2.remap(_blend_table(alpha), grey.astype(np.float32), level, cv2.INTER_NEAREST)


def _draw_seen_region(rgb: np.ndarray, result: StudyResult) -> None:
    """Outline the region the model saw when it is not the whole image (a centre crop)."""
    x, y, w, h = result.letterbox.seen_region()
    if (x, y, w, h) == (0, 0, result.width, result.height):
        return
    scale = rgb.shape[1] / result.width
    cv2.rectangle(rgb, (round(x * scale), round(y * scale)),
                  (round((x + w) * scale) - 1, round((y + h) * scale) - 1), (160, 160, 160), 1)


def _draw_boxes(rgb: np.ndarray, sentence: SentenceResult, scale: float,
                colour: tuple[int, int, int], label: str | None = None) -> None:
    thickness = max(2, rgb.shape[1] // 300)
    for k, box in enumerate(sentence.boxes):
        x0, y0 = round(box.x * scale), round(box.y * scale)
        x1, y1 = round((box.x + box.width) * scale), round((box.y + box.height) * scale)
        cv2.rectangle(rgb, (x0, y0), (x1, y1), colour, thickness)
        text = label if label is not None else f"{box.score:.2f}"
        if text and (label is None or k == 0):
            cv2.putText(rgb, text, (x0 + 3, max(14, y0 - 5)), _FONT, 0.5, colour, 1, cv2.LINE_AA)
    if sentence.peak is not None:
        px, py = round(sentence.peak[0] * scale), round(sentence.peak[1] * scale)
        cv2.drawMarker(rgb, (px, py), colour, cv2.MARKER_CROSS, 4 * thickness, thickness)


def _caption(width: int, lines: list[str], notice: str) -> np.ndarray:
    wrapped: list[str] = []
    chars = max(20, width // 11)
    for line in lines:
        wrapped.extend(textwrap.wrap(_ascii(line), chars) or [""])
    notice_lines = textwrap.wrap(_ascii(notice), chars)
    height = 12 + 24 * len(wrapped) + 20 * len(notice_lines) + 8
    panel = np.full((height, width, 3), 24, dtype=np.uint8)
    y = 28
    for line in wrapped:
        cv2.putText(panel, line, (10, y), _FONT, 0.6, (240, 240, 240), 1, cv2.LINE_AA)
        y += 24
    for line in notice_lines:
        cv2.putText(panel, line, (10, y), _FONT, 0.5, (255, 180, 60), 1, cv2.LINE_AA)
        y += 20
    return panel


def sentence_overlay(result: StudyResult, sentence: SentenceResult,
                     limit: int = _DISPLAY_SIZE) -> np.ndarray:
    """RGB uint8: heatmap over the image, boxes and peak, and the sentence as caption."""
    grey = base_grey(result, limit)
    h, w = grey.shape[:2]
    if sentence.heatmap is not None:
        rgb = _blend_heatmap(grey, sentence.heatmap.render(w, h))
    else:
        rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    _draw_seen_region(rgb, result)
    _draw_boxes(rgb, sentence, w / result.width, (255, 255, 255))
    caption = [f'"{sentence.text}"',
               f"{sentence.kind} ({sentence.section}), score {sentence.score:.3f}, "
               f"{len(sentence.boxes)} box(es)"]
    return np.vstack([rgb, _caption(w, caption, str(result.model.get("notice", "")))])


def combined_overlay(result: StudyResult, limit: int = _DISPLAY_SIZE) -> np.ndarray:
    """RGB uint8 at the image's aspect ratio (no caption panel): every grounded sentence's
    boxes in its own colour, numbered as in the study JSON. Used for DICOM secondary capture."""
    rgb = _base_image(result, limit)
    scale = rgb.shape[1] / result.width
    for n, sentence in enumerate(result.grounded):
        colour = _PALETTE[n % len(_PALETTE)]
        _draw_boxes(rgb, sentence, scale, colour, label=str(sentence.index + 1))
    return rgb


def summary_figure(result: StudyResult, tile: int = _DISPLAY_SIZE // 2,
                   overlays: list[np.ndarray] | None = None) -> np.ndarray:
    """All grounded sentences side by side (at most 4 per row, the rows as even as they can be:
    5 tiles are 3 + 2, not 4 + 1), with a legend and the notice.
    `overlays` (the per-sentence pictures or their `summary_tile`s, if already rendered) are
    downscaled, not redrawn.
    The default tile is half the overlays' size: OpenCV's area resize by exactly 2 takes its
    fast path (a non-integer factor does not), and captions stay legible."""
    grounded = result.grounded
    if overlays is not None:
        tiles = [summary_tile(o, tile) for o in overlays]
    else:
        tiles = [sentence_overlay(result, s, tile) for s in grounded]
    tiles = tiles or [
        np.vstack([_base_image(result, tile),
                   _caption(display_size(result.width, result.height, tile)[0],
                            ["No finding sentence to ground."], "")])]
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    # even rows: fewer empty cells, so a narrower figure (5 overlays: 960 px wide instead of
    # 1280, a quarter less to encode)
    per_row = -(-len(tiles) // -(-len(tiles) // 4))
    header = _caption(per_row * width, [f"lesionloc: {result.study_id}, {len(grounded)} "
                                        f"grounded sentence(s), model {result.model.get('name', '')}"],
                      str(result.model.get("notice", "")))
    top = header.shape[0]
    # one canvas, each tile copied into its cell (padding, rows and stacking by numpy copied
    # every pixel several times)
    rows = -(-len(tiles) // per_row)
    canvas = np.full((top + rows * height, per_row * width, 3), 24, dtype=np.uint8)
    canvas[:top] = header
    for k, picture in enumerate(tiles):
        y, x = top + (k // per_row) * height, (k % per_row) * width
        canvas[y : y + picture.shape[0], x : x + picture.shape[1]] = picture
    return canvas


def summary_tile(picture: np.ndarray, width: int = _DISPLAY_SIZE // 2) -> np.ndarray:
    """An overlay shrunk to a summary tile (no-op on one already that narrow)."""
    if picture.shape[1] <= width:
        return picture
    height = round(picture.shape[0] * width / picture.shape[1])
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)


def encode_png(picture: np.ndarray) -> bytes:
    """8-bit RGB (h, w, 3) or grey (h, w) as PNG: the "up" filter in numpy and deflate by
    ISA-L (python-isal) when installed. Encoding dominated writing, and ISA-L deflates several
    times faster than libpng at zlib level 1 (OpenCV) for the same file size. Without
    isal, the standard library's zlib at level 1 does the deflate: valid PNGs, only slower."""
    if picture.dtype != np.uint8 or picture.ndim not in (2, 3) or (
            picture.ndim == 3 and picture.shape[2] != 3) or 0 in picture.shape:
        raise ValueError(f"encode_png: expected 8-bit grey or RGB, got {picture.dtype} "
                         f"{picture.shape}")
    height, width = picture.shape[:2]
    rows = np.ascontiguousarray(picture).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # filter type "up": each byte minus the one above it
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    colour_type = 2 if picture.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header),
                     _chunk(b"IDAT", _deflate(filtered.tobytes(), _DEFLATE_LEVEL)),
                     _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", _crc32(data, _crc32(kind)) & 0xFFFFFFFF)


try:  # ISA-L deflate and CRC-32: several times faster than zlib's at the same ratio
    from isal.isal_zlib import compress as _deflate
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; a platform without its wheel
    from zlib import compress as _deflate
    from zlib import crc32 as _crc32
# ISA-L level 1: faster than level 2 on the demo's overlays, for files under 1% larger
_DEFLATE_LEVEL = 1
