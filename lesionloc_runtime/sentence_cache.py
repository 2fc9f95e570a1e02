"""A bounded LRU of sentence embeddings keyed by the tokenized text, so the sentences that repeat
across a batch's reports ("No pneumothorax.", "Heart size is normal.") go through the text
encoder once per process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CachedText",
    "DEFAULT_ENTRIES",
    "SentenceCache",
]

# A sentence's two embeddings take 2 x D x 4 bytes (6 KB at D = 768): 4096 of them stay under
# 25 MB, and a few thousand distinct sentences cover the normal phrasing of a whole archive.
DEFAULT_ENTRIES = 4096


@dataclass(frozen=True)
class CachedText:
    """One text's embeddings as `Localizer.encode_texts` returns them (one row each)."""

    local: np.ndarray  # (D,) float32
    glob: np.ndarray  # (D,) float32


class SentenceCache:
    """Least-recently-used embeddings, at most `entries` of them (0: off). The key is the
    text's token ids, windows included: two spellings that tokenize alike share an entry, and
    the same text under another tokenizer (another bundle) never does. With a dynamically
    quantized text encoder an embedding depends slightly on which other sentences shared its
    run; a cached one is the one computed first (the same within int8's error)."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        if entries < 0:
            raise ValueError(f"a sentence cache holds 0 or more entries, not {entries}")
        self.entries = entries
        self._items: OrderedDict[Hashable, CachedText] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> CachedText | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: Hashable, local: np.ndarray, glob: np.ndarray) -> None:
        if not self.entries:
            return
        # copies: a view would keep the whole batch's output array alive
        self._items[key] = CachedText(np.array(local, np.float32), np.array(glob, np.float32))
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
        self.hits = self.misses = 0
