"""Tokenization for the text encoder with `tokenizers` alone (no transformers). A text longer
than the encoder's window is split into several windows, never silently truncated; the
caller averages their embeddings. Windows of very different lengths run in separate
batches (`TokenBatch.by_length`), so that short sentences are not padded to the longest; a
packed text graph takes a report's windows one after the other in one row instead
(`TokenBatch.packed`), with no padding between them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lesionloc_runtime.contract import TEXT_OUTPUTS, names
from lesionloc_runtime.errors import BundleError

if TYPE_CHECKING:
    from lesionloc_runtime.localizer import Encoder

__all__ = ["PACKED_POOLING", "PackedBatch", "SentenceTokenizer", "TextKey", "TokenBatch",
           "encode_windows", "length_groups", "pool_windows", "prepare_text"]

# A text's token ids, one tuple per window: what keys the sentence cache.
TextKey = tuple[tuple[int, ...], ...]

# What one more encoder run costs, in padded tokens: every run streams the weights once more,
# which on the full-size int8 text encoder cost about as much as a dozen padded tokens, so
# splitting a batch pays only when it saves more padding than that (the latency benchmark
# measures the text encoder by sentences and tokens).
_RUN_COST_TOKENS = 12
# At most this many windows per run: bounds the activations a very long report can allocate.
_MAX_ROWS_PER_RUN = 64
# A packed text graph takes all of a call's windows in one row when they hold at most this
# many tokens together (a report's sentences), and otherwise the runs of `by_length`, one
# window a row: attention in a row costs its length squared, and ONNX Runtime's attention
# is slow enough that longer rows lose more than the runs they save. Measured with the int8
# BERT-base on a 2-core Xeon with AMX, the sentences of generated reports: 6 sentences of 67
# tokens in one row 17.1 ms against 17.0 in runs, 10 of 157 tokens 38.4 against 47.2, 12 of
# 225 59.8 against 60.5, 16 of 290 85.0 against 70.2 (two threads; on one, 225 tokens already
# lost, 110 against 96 ms).
_PACKED_ROW_TOKENS = 160
# A packed run's window mask holds rows x width x width entries: runs of long windows take
# fewer rows so that it stays within this many (16 MB of int32; 64 windows of 512 tokens would
# be 67 MB).
_MAX_MASK_ENTRIES = 1 << 22
# How a packed text graph pools each window, by the card's `text.pooling`: the mean of its
# tokens, its first token ([CLS]), or the sum of its tokens (AFLoc's, which the graph then
# divides by its fixed word slots).
PACKED_POOLING = {"mean": "mean", "cls": "first", "cls-projection": "first",
                  "afloc-last4-sum": "sum"}


@dataclass(frozen=True)
class PackedBatch:
    """Token windows packed into rows for a packed text graph (contract.PACKED_TEXT_INPUTS):
    each window's positions restart at 0, `window_mask` keeps attention within a window (a
    padding token sees only itself), and row w of `window_pooling` holds window w's pooling
    weights over the run's tokens, rows flattened (1/length on each of its tokens for "mean",
    1 on each for "sum", 1 on its first for "first"). `owner[w]` is the text window w belongs to;
    the graph's outputs have one row per window, in this order."""

    input_ids: np.ndarray  # (rows, length) int64
    position_ids: np.ndarray  # (rows, length) int64
    window_mask: np.ndarray  # (rows, length, length) int32
    window_pooling: np.ndarray  # (windows, rows * length) float32
    owner: np.ndarray  # (windows,) int64

    def feeds(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "position_ids": self.position_ids,
                "window_mask": self.window_mask, "window_pooling": self.window_pooling}


@dataclass(frozen=True)
class TokenBatch:
    """Padded token windows; `owner[k]` is the index of the text that window k belongs to."""

    input_ids: np.ndarray  # (n_windows, length) int64
    attention_mask: np.ndarray  # (n_windows, length) int64
    owner: np.ndarray  # (n_windows,) int64

    def feeds(self) -> dict[str, np.ndarray]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": np.zeros_like(self.input_ids),
        }

    def by_length(self, run_cost: int = _RUN_COST_TOKENS,
                  max_rows: int = _MAX_ROWS_PER_RUN) -> list[TokenBatch]:
        """The windows regrouped into batches of similar length, each trimmed to its longest
        window: the grouping that minimizes padded tokens plus `run_cost` per batch (then
        batches over `max_rows` split). Rows keep their owners; right padding is masked, so
        every window's embedding is the same in any grouping."""
        lengths = self.attention_mask.sum(axis=1)
        batches = []
        for rows in self._length_runs(lengths, run_cost, max_rows):
            width = int(lengths[rows].max())
            batches.append(TokenBatch(self.input_ids[rows, :width],
                                      self.attention_mask[rows, :width], self.owner[rows]))
        return batches

    def _length_runs(self, lengths: np.ndarray, run_cost: int, max_rows: int) -> list[np.ndarray]:
        order = np.argsort(lengths, kind="stable")
        return [order[start:min(hi, start + max_rows)]
                for lo, hi in length_groups(lengths[order].tolist(), run_cost)
                for start in range(lo, hi, max_rows)]

    def packed(self, pooling: str = "mean", row_tokens: int = _PACKED_ROW_TOKENS,
               run_cost: int = _RUN_COST_TOKENS, max_rows: int = _MAX_ROWS_PER_RUN
               ) -> list[PackedBatch]:
        """For a packed text graph pooling by `pooling` ("mean", "sum" or "first"): every window
        one after the other in one row when they hold at most `row_tokens` tokens together,
        else the runs of `by_length` with one window a row. Every window's embedding is the
        one it has alone."""
        if pooling not in ("mean", "sum", "first"):
            raise ValueError(f"packed windows pool by mean, sum or first, not {pooling!r}")
        lengths = self.attention_mask.sum(axis=1)
        if int(lengths.sum()) <= row_tokens:
            return [self._pack([list(range(len(lengths)))], lengths, pooling)]
        runs = []
        for rows in self._length_runs(lengths, run_cost, max_rows):
            step = max(1, _MAX_MASK_ENTRIES // int(lengths[rows].max()) ** 2)
            runs += [self._pack([[w] for w in rows[k:k + step].tolist()], lengths, pooling)
                     for k in range(0, len(rows), step)]
        return runs

    def _pack(self, rows: list[list[int]], lengths: np.ndarray, pooling: str) -> PackedBatch:
        width = max(int(lengths[row].sum()) for row in rows)
        windows = [w for row in rows for w in row]
        ids = np.zeros((len(rows), width), dtype=np.int64)
        positions = np.zeros((len(rows), width), dtype=np.int64)
        # each token's window; a padding token gets an id of its own (it sees only itself)
        segment = -1 - np.arange(len(rows) * width, dtype=np.int64).reshape(len(rows), width)
        weights = np.zeros((len(windows), len(rows) * width), dtype=np.float32)
        k = 0
        for r, row in enumerate(rows):
            start = 0
            for w in row:
                length = int(lengths[w])
                ids[r, start:start + length] = self.input_ids[w, :length]
                positions[r, start:start + length] = np.arange(length)
                segment[r, start:start + length] = k
                first = r * width + start
                if pooling == "first":
                    weights[k, first] = 1.0
                else:
                    weights[k, first:first + length] = 1.0 / length if pooling == "mean" else 1.0
                start += length
                k += 1
        mask = (segment[:, :, None] == segment[:, None, :]).astype(np.int32)
        return PackedBatch(ids, positions, mask, weights, self.owner[windows])


def length_groups(lengths: Sequence[int], run_cost: int) -> list[tuple[int, int]]:
    """Split ascending `lengths` into contiguous groups [lo, hi) minimizing the sum over groups
    of (rows x longest) + run_cost. Group edges only ever fall where the length changes, so
    the dynamic programme runs over the distinct lengths (at most the encoder's window)."""
    if any(b < a for a, b in pairwise(lengths)):
        raise ValueError("lengths must be ascending")
    n = len(lengths)
    ends = [i + 1 for i in range(n) if i + 1 == n or lengths[i + 1] != lengths[i]]
    best = [0.0] + [float("inf")] * len(ends)  # best[k]: cost of the rows before ends[k - 1]
    cut = [0] * (len(ends) + 1)
    for k in range(1, len(ends) + 1):
        hi = ends[k - 1]
        for j in range(k):
            lo = ends[j - 1] if j else 0
            cost = best[j] + (hi - lo) * lengths[hi - 1] + run_cost
            if cost < best[k]:
                best[k], cut[k] = cost, j
    groups, k = [], len(ends)
    while k:
        j = cut[k]
        groups.append((ends[j - 1] if j else 0, ends[k - 1]))
        k = j
    return groups[::-1]


class SentenceTokenizer:
    """Wraps a `tokenizer.json` with the bundle's maximum length."""

    def __init__(self, path: str | Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise BundleError(f"{path}: not a valid tokenizer.json ({exc})") from None
        if max_length < 8:
            raise BundleError(f"{path}: max_length {max_length} is too small")
        self.max_length = max_length
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, stride=0)
        pad = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else int(pad)

    def windows(self, texts: Sequence[str]) -> list[TextKey]:
        """Each text's token ids, one tuple per window (a text longer than the window has
        several): hashable, so they key the sentence cache."""
        return [tuple(tuple(part.ids) for part in (encoding, *encoding.overflowing))
                for encoding in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> TokenBatch:
        return self.batch(self.windows(texts))

    def batch(self, texts: Sequence[Sequence[Sequence[int]]]) -> TokenBatch:
        """The windows of tokenized texts (`windows`) padded into one batch, padded to the
        longest window only."""
        windows: list[Sequence[int]] = []
        owners: list[int] = []
        for index, parts in enumerate(texts):
            windows += parts
            owners += [index] * len(parts)
        length = max(len(w) for w in windows)
        ids = np.full((len(windows), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(windows), length), dtype=np.int64)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = window
            mask[row, : len(window)] = 1
        return TokenBatch(ids, mask, np.asarray(owners, dtype=np.int64))


def pool_windows(embeddings: np.ndarray, owner: np.ndarray, count: int,
                 normalize: bool = True) -> np.ndarray:
    """Average the window embeddings of each text and re-normalize (count, D) float32; without
    `normalize`, the plain mean (a model whose similarity is a dot product of raw embeddings)."""
    out = np.zeros((count, embeddings.shape[1]), dtype=np.float32)
    np.add.at(out, owner, embeddings)
    if not normalize:
        windows = np.bincount(owner, minlength=count).astype(np.float32)
        return out / np.maximum(windows, 1.0)[:, None]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def encode_windows(encoder: Encoder, batch: TokenBatch, texts: int, packed: str | None = None
                   ) -> dict[str, np.ndarray]:
    """Each text output of `encoder` for the `texts` texts of `batch`: one row per text, the
    plain mean of its windows' rows. A packed graph (contract.PACKED_TEXT_INPUTS; `packed`
    its pooling, a PACKED_POOLING value) takes the windows packed into rows, any other
    runs of similar length."""
    runs: Sequence[TokenBatch | PackedBatch] = (batch.packed(packed) if packed else
                                                batch.by_length())
    outs = [encoder.run(run.feeds()) for run in runs]
    owner = np.concatenate([run.owner for run in runs])
    return {name: pool_windows(np.concatenate([out[name].astype(np.float32) for out in outs]),
                               owner, texts, normalize=False)
            for name in names(TEXT_OUTPUTS)}


_AFLOC_POINTS = re.compile(r"[0-9]+\.")
_WORDS = re.compile(r"\w+")


def prepare_text(text: str, preparation: str) -> str:
    """A sentence as the source model's own code prepared it before tokenizing (the bundle's
    `text.preparation`): "none"; "hi-ml" strips trailing "!?." (hi-ml's TextInput); "afloc"
    is AFLoc's process_text: newlines to spaces, split at numbered points and full stops,
    lower-cased \\w+ words, ASCII only, parts of one word or none dropped. Where AFLoc would
    leave nothing (a one-word query), the words are kept rather than encoding an empty text."""
    if preparation == "hi-ml":
        return text.rstrip("!?.")
    if preparation != "afloc":
        return text
    kept: list[str] = []
    words_at_all: list[str] = []
    for point in _AFLOC_POINTS.split(text.replace("\n", " ")):
        for part in point.split("."):
            tokens = _WORDS.findall(part.replace("\ufffd\ufffd", " ").lower())
            ascii_tokens = [t for t in (w.encode("ascii", "ignore").decode("ascii") for w in tokens) if t]
            words_at_all += ascii_tokens
            if len(tokens) > 1:
                kept.append(" ".join(ascii_tokens))
    return " ".join(kept) if kept else " ".join(words_at_all)
