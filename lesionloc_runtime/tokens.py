"""Tokenization for the text encoder with `tokenizers` alone (no transformers). A text longer
than the encoder's window is split into several windows, never silently truncated; the
caller averages their embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionloc_runtime.errors import BundleError


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

    def encode(self, texts: Sequence[str]) -> TokenBatch:
        windows: list[list[int]] = []
        owners: list[int] = []
        for index, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            for part in (encoding, *encoding.overflowing):
                windows.append(part.ids)
                owners.append(index)
        length = max(len(w) for w in windows)
        ids = np.full((len(windows), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(windows), length), dtype=np.int64)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = window
            mask[row, : len(window)] = 1
        return TokenBatch(ids, mask, np.asarray(owners, dtype=np.int64))


def pool_windows(embeddings: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Average the window embeddings of each text and re-normalize: (count, D) float32."""
    out = np.zeros((count, embeddings.shape[1]), dtype=np.float32)
    np.add.at(out, owner, embeddings)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
