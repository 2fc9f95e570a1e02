"""The evaluation loop: stream a benchmark's annotated images, read each image once, get the
heatmaps of all its prompts in one call, and score each against its ground truth with
`lesionloc_runtime.metrics.score_heatmap` and under every CNR/mIoU convention
(evaluation/conventions.py). The next image is read and its heatmaps made on a second thread
while this one is scored. Problems with one image are logged, in the images' order, never
fatal."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import cv2
import numpy as np

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.evaluation.conventions import (
    AflocGrid,
    ConventionScores,
    SampleTruth,
    score_conventions,
)
from lesionloc_runtime.evaluation.records import (
    AnnotatedImage,
    DatasetStream,
    Grounding,
    ReadLog,
    relative,
)
from lesionloc_runtime.evaluation.resample import resize_heatmap, resize_mask, scoring_shape
from lesionloc_runtime.evaluation.rle import decode_rle
from lesionloc_runtime.imageio import Radiograph, read_image
from lesionloc_runtime.imageio.capture import terminal_stderr
from lesionloc_runtime.metrics import (
    DEFAULT_THRESHOLD,
    LocalizationScores,
    boxes_to_mask,
    score_heatmap,
    unseen_as_lowest,
)
from lesionloc_runtime.progress import progress as progress_bar

__all__ = [
    "DEFAULT_SCORE_SIZE",
    "EvaluationRun",
    "HeatmapProvider",
    "SampleScore",
    "evaluate",
    "ground_truth",
]

# AUROC sorts every pixel, so its cost grows faster than the pixel count. Scoring on a grid
# whose long side is at most this many pixels keeps a full benchmark to minutes;
# 0 or None scores at the original resolution.
DEFAULT_SCORE_SIZE = 1024


class HeatmapProvider(Protocol):
    """Anything that grounds texts on an image: `Localizer` in production, fakes in tests.
    Used when present: `read_image(path)`, how the provider wants its images read (a
    Localizer's keeps the stored levels for a model fed an 8-bit film), else `read_image` on
    the provider's `threads` (default 1)."""

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
    conventions: dict[str, ConventionScores] = field(default_factory=dict)  # CNR, mIoU each


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
    # terminal_stderr: the bar draws while the reading thread decodes the next image
    with progress_bar(total, data.name, "image", progress, terminal_stderr(),
                      dynamic_ncols=True) as bar, \
            ThreadPoolExecutor(1, thread_name_prefix="lesionloc-eval-read") as reader:
        for item, loaded in _loaded_ahead(stream, provider, reader):
            _score_image(item, data, run, loaded)
            bar.update()
    run.seconds = time.perf_counter() - start
    return run


def _loaded_ahead(items: Iterator[AnnotatedImage], provider: HeatmapProvider,
                  reader: ThreadPoolExecutor) -> Iterator[tuple[AnnotatedImage, Future[_Loaded]]]:
    """Each item with its image and heatmaps being loaded on `reader`: the next item's start
    before this one is scored, so that the encoders run while the metrics do."""
    ahead = None
    for item in items:
        loading = (item, reader.submit(_load, item, provider))
        if ahead is not None:
            yield ahead
        ahead = loading
    if ahead is not None:
        yield ahead


# An image, or why it could not be read; and the heatmaps of its distinct prompts, in order.
_Loaded = tuple[Radiograph | ImageReadError, np.ndarray | None, list[str]]


def _load(item: AnnotatedImage, provider: HeatmapProvider) -> _Loaded:
    texts = list(dict.fromkeys(g.prompt for g in item.groundings))
    try:
        # a Localizer reads as lesionloc-run does: a JPEG 2000 film decoded on its share of
        # the cores, the stored levels kept for a model fed an 8-bit film
        read = getattr(provider, "read_image", None)
        image = (read(item.path) if callable(read)
                 else read_image(item.path, threads=getattr(provider, "threads", 1)))
    except ImageReadError as exc:
        return exc, None, texts
    return image, np.asarray(provider.heatmaps(image, texts), dtype=np.float32), texts


class _Skip(Exception):
    """A sample that cannot be scored; the message says why and goes to the log."""


class _PromptMaps:
    """The heatmaps of one image's prompts on each grid that is scored, each computed once per
    prompt. NaN marks pixels a (cropping) model did not see (each convention's rule in
    docs/evaluation.md). An infinite value, or no finite one, is a fault of the provider:
    skipped."""

    def __init__(self, maps: np.ndarray, texts: list[str], score_shape: tuple[int, int]
                 ) -> None:
        self.maps, self.texts, self.score_shape = maps, texts, score_shape
        self.height, self.width = maps.shape[1:]
        self._scoring: dict[str, np.ndarray] = {}
        self._afloc: dict[str, np.ndarray] = {}

    def image(self, prompt: str) -> np.ndarray:
        """The prompt's heatmap on the image's own pixels (`hi-ml` scores it there)."""
        heat = self.maps[self.texts.index(prompt)]
        if np.isinf(heat).any():
            raise _Skip(f"the heatmap of {prompt!r} has infinite values")
        if np.isnan(heat).all():
            raise _Skip(f"the heatmap of {prompt!r} has no finite value")
        return heat

    def scoring(self, prompt: str) -> np.ndarray:
        if prompt not in self._scoring:
            self._scoring[prompt] = resize_heatmap(self.image(prompt), self.score_shape)
        return self._scoring[prompt]

    def afloc(self, prompt: str) -> np.ndarray:
        if prompt not in self._afloc:
            grid = AflocGrid.for_image(self.height, self.width)
            self._afloc[prompt] = grid.heatmap(self.image(prompt))
        return self._afloc[prompt]


def _read(item: AnnotatedImage, where: str, loaded: Future[_Loaded], run: EvaluationRun
          ) -> _PromptMaps | None:
    """The image's heatmaps for all its prompts (one provider call, made on the reading
    thread); None (logged) when the image cannot be read or the heatmaps have the wrong
    shape. Logged here, in the images' order."""
    log = run.log
    image, maps, texts = loaded.result()  # the provider's own failure is raised here
    if isinstance(image, ImageReadError):
        log.unreadable_images += 1
        log.warn("unreadable", where, str(image).removeprefix(f"{item.path}: "))
        return None
    run.n_images_read += 1
    expected = (len(texts), image.height, image.width)
    if maps.shape != expected:
        log.skipped_samples += len(item.groundings)
        log.warn("skipped", where, f"the heatmaps have shape {maps.shape}, expected {expected}")
        return None
    return _PromptMaps(maps, texts, scoring_shape(image.height, image.width, run.score_size))


def _score_image(item: AnnotatedImage, data: DatasetStream, run: EvaluationRun,
                 loaded: Future[_Loaded]) -> None:
    log, where = run.log, relative(item.path, data.root)
    maps = _read(item, where, loaded, run)
    if maps is None:
        return
    annotated_size: tuple[int, int] | None = None
    scored = False
    for grounding in item.groundings:
        try:
            mask, rescaled_from = ground_truth(grounding, maps.height, maps.width)
            annotated_size = annotated_size or rescaled_from
            scores, conventions = _score_sample(grounding, mask, maps, run.threshold)
        except ValueError as exc:
            log.skipped_samples += 1
            log.warn("skipped", where, f"{grounding.category}: {exc}")
            continue
        except _Skip as exc:
            log.skipped_samples += 1
            log.warn("skipped", where, str(exc))
            continue
        outside = _boxes_outside(grounding, maps.height, maps.width)
        if outside:  # some of its boxes lie inside, or it would have been skipped
            log.warn("outside", where, f"{grounding.category}: {outside} of "
                     f"{len(grounding.boxes)} boxes lie outside the image and were not scored")
        run.samples.append(SampleScore(item.image_id, grounding.category, grounding.prompt,
                                       scores, conventions))
        scored = True
    if annotated_size is not None:
        log.warn("rescaled", where, f"the image is {maps.width}x{maps.height} but was "
                 f"annotated at {annotated_size[0]}x{annotated_size[1]}; the ground truth "
                 "was rescaled")
    if scored:
        run.n_images += 1
        run.n_downscaled += maps.score_shape != (maps.height, maps.width)


def _score_sample(
    grounding: Grounding, mask: np.ndarray, maps: _PromptMaps, threshold: float
) -> tuple[LocalizationScores, dict[str, ConventionScores]]:
    """The runtime's metrics on the scoring grid, then CNR and mIoU under every convention
    (each on its own grid: `afloc` AFLoc's 224 px letterbox, `hi-ml` the image's pixels)."""
    heat = maps.scoring(grounding.prompt)
    small_mask = resize_mask(mask, maps.score_shape)
    if not small_mask.any():
        raise _Skip(f"{grounding.category}: the ground truth lies outside the image")
    # `lesionloc`: what the model did not see (NaN outside a centre crop) it did not find, as
    # the study page draws it: those pixels take the map's lowest value, so truth there is
    # missed, never skipped. `afloc` and `hi-ml` treat NaN as their own code does.
    scores = score_heatmap(unseen_as_lowest(heat), small_mask, threshold)
    if grounding.rle or grounding.mask is not None:
        truth = SampleTruth(maps.height, maps.width, mask=mask)
    else:
        truth = SampleTruth(maps.height, maps.width,
                            boxes=tuple(_image_boxes(grounding, maps.height, maps.width)))
    return scores, score_conventions(scores, maps.afloc(grounding.prompt),
                                     maps.image(grounding.prompt), truth)


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
    return [box.scaled(sx, sy) for box in grounding.boxes]


def _boxes_outside(grounding: Grounding, height: int, width: int) -> int:
    """How many of the grounding's boxes lie wholly outside the (height, width) image."""
    return sum(box.lies_outside(width, height) for box in _image_boxes(grounding, height, width))
