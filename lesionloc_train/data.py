"""Training data: the JSON Lines manifest of docs/phantoms.md (image + report, sentence boxes
optional), a deterministic resumable sampler, augmentation seeded per (seed, epoch, item),
and collation of images, report sentences and whole reports into one batch."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lesionloc_runtime.batch_manifest import StudyRecord, read_manifest  # noqa: F401  (re-exported)
from lesionloc_runtime.errors import LesionlocError
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.preprocess import PreprocessConfig, preprocess
from lesionloc_runtime.text import Report, read_report
from lesionloc_train.cache import ImageCache
from lesionloc_train.model import TextTokenizer

log = logging.getLogger(__name__)


class ResumableSampler(Sampler[int]):
    """A permutation per epoch from (seed, epoch), split across processes, that can start in
    the middle of an epoch: exactly the order an uninterrupted run would have seen."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0
        self.per_rank = math.ceil(size / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Begin `epoch` at this rank's `start`-th index (items already consumed are skipped)."""
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            perm = torch.randperm(self.size, generator=gen).tolist()
        else:
            perm = list(range(self.size))
        perm += perm[: self.per_rank * self.world - self.size]  # pad so every rank has as many
        return perm[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small geometric and photometric jitter of a letterboxed (S, S) image in [0, 1]. No
    horizontal flips: laterality is part of what a sentence says ("right" must stay right)."""
    size = image.shape[0]
    angle = rng.uniform(-5, 5)
    scale = rng.uniform(0.92, 1.08)
    tx, ty = rng.uniform(-0.04, 0.04, size=2) * size
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += (tx, ty)
    out = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    gamma = float(np.exp(rng.uniform(-0.25, 0.25)))
    contrast = rng.uniform(0.85, 1.15)
    brightness = rng.uniform(-0.05, 0.05)
    out = np.clip(out, 0.0, 1.0) ** gamma
    out = np.clip((out - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0)
    return out.astype(np.float32)


@dataclass
class Example:
    index: int
    pixels: np.ndarray | None  # (1, S, S) float32, None when unusable
    report: Report | None
    error: str | None = None


class StudyDataset(Dataset[Example]):
    """Manifest rows -> preprocessed images (through the runtime's one preprocessing, or the
    cache it filled) and parsed reports. Unreadable rows come back as `error` examples,
    counted by the loop, never a crash."""

    def __init__(self, records: list[StudyRecord], preprocessing: PreprocessConfig, seed: int,
                 augment: bool, cache: ImageCache | None = None) -> None:
        self.records = records
        self.preprocessing = preprocessing
        self.seed = seed
        self.augment = augment
        self.cache = cache
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def image(self, index: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache.get(self.records[index].study_id)
        return preprocess(read_image(self.records[index].image), self.preprocessing).tensor[0]

    def __getitem__(self, index: int) -> Example:
        record = self.records[index]
        try:
            report = read_report(record.report)
            pixels = self.image(index)
        except LesionlocError as exc:
            return Example(index, None, None, str(exc))
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            pixels = augment(pixels, rng)
        return Example(index, np.ascontiguousarray(pixels[None], dtype=np.float32), report)


@dataclass
class Batch:
    pixel_values: torch.Tensor  # (B, 1, S, S)
    report_ids: torch.Tensor  # (B, Lr)
    report_mask: torch.Tensor
    sentence_ids: torch.Tensor  # (N, Ls), every selected sentence of every report
    sentence_attention: torch.Tensor
    sentence_slots: torch.Tensor  # (N,) flat index b * max_sentences + j
    sentence_valid: torch.Tensor  # (B, max_sentences) bool
    indices: list[int]
    skipped: list[str]
    # (B, max_sentences): the finding sentences among the valid ones, and an id per distinct
    # sentence text (-1 for empty slots) so equal sentences in two reports can be told
    sentence_finding: torch.Tensor | None = None
    sentence_group: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        moved = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                 for k, v in self.__dict__.items()}
        return Batch(**moved)

    @property
    def size(self) -> int:
        return int(self.pixel_values.shape[0])


class Collator:
    """Tokenizes in the worker: each selected sentence on its own, and the whole report body."""

    def __init__(self, tokenizer: TextTokenizer, kinds: tuple[str, ...], max_sentences: int,
                 max_length: int, report_max_length: int) -> None:
        self.tokenizer = tokenizer
        self.kinds = set(kinds)
        self.max_sentences = max_sentences
        self.max_length = max_length
        self.report_max_length = report_max_length

    def __call__(self, examples: list[Example]) -> Batch:
        good = [e for e in examples if e.error is None]
        skipped = [e.error or "" for e in examples if e.error is not None]
        texts: list[str] = []
        slots: list[int] = []
        valid = torch.zeros((len(good), self.max_sentences), dtype=torch.bool)
        finding = torch.zeros((len(good), self.max_sentences), dtype=torch.bool)
        group = torch.full((len(good), self.max_sentences), -1, dtype=torch.long)
        ids: dict[str, int] = {}
        for b, example in enumerate(good):
            sentences = example.report.sentences if example.report is not None else ()
            chosen = [s for s in sentences if s.kind in self.kinds]
            for j, sentence in enumerate(chosen[: self.max_sentences]):
                texts.append(sentence.grounded_text)  # as the runtime encodes it
                slots.append(b * self.max_sentences + j)
                valid[b, j] = True
                finding[b, j] = sentence.kind == "finding"
                key = " ".join(sentence.grounded_text.lower().split())
                group[b, j] = ids.setdefault(key, len(ids))
        bodies = [e.report.body for e in good if e.report is not None]
        if good:
            pixels = torch.from_numpy(np.stack([e.pixels for e in good]))
            report_ids, report_mask = self.tokenizer(bodies, self.report_max_length)
        else:
            pixels = torch.zeros((0, 1, 1, 1))
            report_ids = report_mask = torch.zeros((0, 1), dtype=torch.long)
        if texts:
            sentence_ids, sentence_attention = self.tokenizer(texts, self.max_length)
        else:
            sentence_ids = sentence_attention = torch.zeros((0, 1), dtype=torch.long)
        return Batch(pixels, report_ids, report_mask, sentence_ids, sentence_attention,
                     torch.tensor(slots, dtype=torch.long), valid,
                     [e.index for e in good], skipped, finding, group)
