"""The evaluation loop: stream a benchmark's annotated images, read each image once, get the
heatmaps of all its prompts in one call, and score each against its ground truth with
`lesionloc_runtime.metrics.score_heatmap`. Problems with one image are logged, never fatal."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import cv2
import numpy as np
from tqdm import tqdm

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.evaluation.records import (
    AnnotatedImage,
    Box,
    DatasetStream,
    Grounding,
    ReadLog,
    relative,
)
from lesionloc_runtime.evaluation.rle import decode_rle
from lesionloc_runtime.imageio import Radiograph, read_image
from lesionloc_runtime.metrics import (
    DEFAULT_THRESHOLD,
    LocalizationScores,
    boxes_to_mask,
    score_heatmap,
    unseen_as_lowest,
)

# AUROC sorts every pixel: about 0.75 s per heatmap at 1024x1024 and 3 s at 2048x2048. Scoring
# on a grid whose long side is at most this many pixels keeps a full benchmark to minutes;
# 0 or None scores at the original resolution.
DEFAULT_SCORE_SIZE = 1024


class HeatmapProvider(Protocol):
    """Anything that grounds texts on an image: `Localizer` in production, fakes in tests."""

    def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), image.height, image.width) heatmaps on the image's pixel grid."""
        ...


@dataclass(frozen=True)
class SampleScore:
    """The metrics of one grounding (one prompt on one image)."""

    image_id: str
    category: str
    prompt: str
    scores: LocalizationScores


@dataclass
class EvaluationRun:
    """Everything scored in one pass over a benchmark, plus what was skipped and why."""

    samples: list[SampleScore] = field(default_factory=list)
    n_images: int = 0
    n_images_read: int = 0
    n_downscaled: int = 0
    threshold: float = DEFAULT_THRESHOLD
    score_size: int | None = DEFAULT_SCORE_SIZE
    seconds: float = 0.0
    log: ReadLog = field(default_factory=ReadLog)


def evaluate(
    data: DatasetStream,
    provider: HeatmapProvider,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    score_size: int | None = DEFAULT_SCORE_SIZE,
    limit: int | None = None,
    progress: bool = True,
) -> EvaluationRun:
    """Score every grounding of (at most `limit` images of) `data` with `provider`'s heatmaps.

    Thresholded metrics (IoU, Dice, precision, recall) use `threshold` on the min-max
    normalized heatmap. Heatmap and mask are scored on a grid whose long side is at most
    `score_size` pixels (None or 0: the original grid).
    """
    run = EvaluationRun(threshold=threshold, score_size=score_size or None, log=data.log)
    total = data.total if limit is None or data.total is None else min(data.total, limit)
    start = time.perf_counter()
    stream = islice(data.images, limit) if limit else data.images
    bar = tqdm(stream, total=total, desc=data.name, unit="image", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    for item in bar:
        _score_image(item, data, provider, run)
    run.seconds = time.perf_counter() - start
    return run


def _score_image(
    item: AnnotatedImage, data: DatasetStream, provider: HeatmapProvider, run: EvaluationRun
) -> None:
    log, where = run.log, relative(item.path, data.root)
    try:
        image = read_image(item.path)
    except ImageReadError as exc:
        log.unreadable_images += 1
        log.warn("unreadable", where, str(exc).removeprefix(f"{item.path}: "))
        return
    run.n_images_read += 1
    texts = list(dict.fromkeys(g.prompt for g in item.groundings))
    maps = np.asarray(provider.heatmaps(image, texts), dtype=np.float32)
    expected = (len(texts), image.height, image.width)
    if maps.shape != expected:
        log.skipped_samples += len(item.groundings)
        log.warn("skipped", where, f"the heatmaps have shape {maps.shape}, expected {expected}")
        return
    shape = scoring_shape(image.height, image.width, run.score_size)
    resized: dict[str, np.ndarray] = {}
    annotated_size: tuple[int, int] | None = None
    scored = False
    for grounding in item.groundings:
        try:
            mask, rescaled_from = ground_truth(grounding, image.height, image.width)
        except ValueError as exc:
            log.skipped_samples += 1
            log.warn("skipped", where, f"{grounding.category}: {exc}")
            continue
        annotated_size = annotated_size or rescaled_from
        heat = unseen_as_lowest(maps[texts.index(grounding.prompt)])
        if not np.isfinite(heat).all():
            log.skipped_samples += 1
            log.warn("skipped", where, f"the heatmap of {grounding.prompt!r} has NaN or inf")
            continue
        if grounding.prompt not in resized:
            resized[grounding.prompt] = resize_heatmap(heat, shape)
        small_mask = resize_mask(mask, shape)
        if not small_mask.any():
            log.skipped_samples += 1
            log.warn("skipped", where, f"{grounding.category}: the ground truth lies outside "
                     "the image")
            continue
        outside = boxes_outside(grounding, image.height, image.width)
        if outside:  # some of its boxes lie inside, or it would have been skipped above
            log.warn("outside", where, f"{grounding.category}: {outside} of "
                     f"{len(grounding.boxes)} boxes lie outside the image and were not scored")
        scores = score_heatmap(resized[grounding.prompt], small_mask, run.threshold)
        run.samples.append(SampleScore(item.image_id, grounding.category, grounding.prompt,
                                       scores))
        scored = True
    if annotated_size is not None:
        log.warn("rescaled", where, f"the image is {image.width}x{image.height} but was "
                 f"annotated at {annotated_size[0]}x{annotated_size[1]}; the ground truth "
                 "was rescaled")
    if scored:
        run.n_images += 1
        run.n_downscaled += shape != (image.height, image.width)


def ground_truth(
    grounding: Grounding, height: int, width: int
) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The grounding's boolean mask on a (height, width) image, and the (width, height) it
    was annotated at when that differs (it was rescaled), else None. ValueError when it
    cannot be drawn."""
    if grounding.rle:
        mask = np.zeros((height, width), dtype=bool)
        for encoded in grounding.rle:
            mask |= decode_rle(encoded, height, width)
        return mask, None
    if grounding.mask is not None:
        mask = np.asarray(grounding.mask, dtype=bool)
        if mask.shape == (height, width):
            return mask, None
        resized = cv2.resize(mask.astype(np.uint8), (width, height),
                             interpolation=cv2.INTER_NEAREST) > 0
        return resized, (int(mask.shape[1]), int(mask.shape[0]))
    if not grounding.boxes:
        raise ValueError("no boxes and no mask")
    reference = grounding.reference_size
    rescaled = None if reference is None or reference == (width, height) else reference
    return boxes_to_mask(_image_boxes(grounding, height, width), height, width), rescaled


def _image_boxes(grounding: Grounding, height: int, width: int) -> list[Box]:
    """The grounding's boxes in the (height, width) image's pixels (rescaled from the size it
    was annotated at, if that differs)."""
    reference = grounding.reference_size
    if reference is None or reference == (width, height):
        return list(grounding.boxes)
    sx, sy = width / reference[0], height / reference[1]
    return [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in grounding.boxes]


def boxes_outside(grounding: Grounding, height: int, width: int) -> int:
    """How many of the grounding's boxes lie wholly outside the (height, width) image."""
    return sum(x >= width or y >= height or x + w <= 0 or y + h <= 0
               for x, y, w, h in _image_boxes(grounding, height, width))


def scoring_shape(height: int, width: int, score_size: int | None) -> tuple[int, int]:
    """(height, width) of the scoring grid: the long side at most `score_size`."""
    if not score_size or max(height, width) <= score_size:
        return (height, width)
    scale = score_size / max(height, width)
    return (max(1, round(height * scale)), max(1, round(width * scale)))


def resize_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-average a heatmap onto the scoring grid (identity when the shape already fits)."""
    if heatmap.shape == shape:
        return heatmap
    return cv2.resize(heatmap.astype(np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A scoring-grid pixel is lesion when at least half of it was; a lesion smaller than
    half a pixel keeps its most covered pixels, so no ground truth vanishes by resizing."""
    if mask.shape == shape:
        return mask
    cover = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]),
                       interpolation=cv2.INTER_AREA)
    small = cover >= 0.5
    if not small.any() and cover.max() > 0:
        small = cover == cover.max()
    return small
