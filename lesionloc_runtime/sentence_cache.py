"""A bounded LRU of sentence embeddings keyed by the tokenized text, so the sentences that repeat
across a batch's reports ("No pneumothorax.", "Heart size is normal.") go through the text
encoder once per process; and a store shared by a batch's worker processes, so that with
`--workers N` they go through it about once per batch rather than once per worker."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from multiprocessing.managers import BaseManager, RemoteError
from typing import Any, Protocol

import numpy as np

from lesionloc_runtime.processes import die_with_parent

__all__ = [
    "CachedText",
    "DEFAULT_ENTRIES",
    "SentenceCache",
    "SharedSentences",
    "SharedStore",
    "start_shared_store",
]

_log = logging.getLogger(__name__)
# What a proxy raises when its manager process is gone (killed, or stopped by Ctrl-C).
_STORE_GONE = (OSError, EOFError, RemoteError)

# A sentence's two embeddings take 2 x D x 4 bytes (6 KB at D = 768): 4096 of them stay under
# 25 MB, and a few thousand distinct sentences cover the normal phrasing of a whole archive.
DEFAULT_ENTRIES = 4096


@dataclass(frozen=True)
class CachedText:
    """One text's embeddings as `Localizer.encode_texts` returns them (one row each)."""

    local: np.ndarray  # (D,) float32
    glob: np.ndarray  # (D,) float32


_Pair = tuple[np.ndarray, np.ndarray]


class SharedStore(Protocol):
    """What a SentenceCache asks of a store other processes share (`SharedSentences` behind a
    manager's proxy): one call per lookup of a study's missing sentences, one per store."""

    def get_many(self, keys: Sequence[Hashable]) -> list[_Pair | None]: ...

    def put_many(self, items: Sequence[tuple[Hashable, np.ndarray, np.ndarray]]) -> None: ...


class _LRU:
    """The least-recently-used mapping both caches keep."""

    def __init__(self, entries: int) -> None:
        if entries < 0:
            raise ValueError(f"a sentence cache holds 0 or more entries, not {entries}")
        self.entries = entries
        self.items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        item = self.items.get(key)
        if item is not None:
            self.items.move_to_end(key)
        return item

    def put(self, key: Hashable, item: Any) -> None:
        if not self.entries:
            return
        self.items[key] = item
        self.items.move_to_end(key)
        while len(self.items) > self.entries:
            self.items.popitem(last=False)


class SentenceCache:
    """Least-recently-used embeddings, at most `entries` of them (0: off). The key is the
    text's token ids, windows included: two spellings that tokenize alike share an entry, and
    the same text under another tokenizer (another bundle) never does. With a dynamically
    quantized text encoder an embedding depends slightly on which other sentences shared its
    run; a cached one is the one computed first (the same within int8's error).

    `shared`: a store of the batch's other worker processes (`start_shared_store`), asked for
    what this process misses and told what it encodes; this process keeps its own LRU in front
    of it, so a sentence crosses between processes once per process.

    Threads may share it (a Localizer shared by a service's threads): its own LRU is locked,
    since one thread's eviction between another's lookup and its move to the end raised
    KeyError (80 of 240,000 calls of six threads on a cache of three)."""

    def __init__(self, entries: int = DEFAULT_ENTRIES, shared: SharedStore | None = None) -> None:
        self._lru = _LRU(entries)
        self._lock = threading.Lock()
        self.entries = entries
        self.shared = shared if entries else None
        self.hits = 0
        self.misses = 0
        self.shared_hits = 0

    def __len__(self) -> int:
        return len(self._lru.items)

    def get(self, key: Hashable) -> CachedText | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[Hashable]) -> list[CachedText | None]:
        """Each key's entry or None; what this process lacks is asked of the shared store in
        one call, and what it has is kept here too. A hit in either counts as a hit."""
        with self._lock:
            found: list[CachedText | None] = [self._lru.get(key) for key in keys]
        lacking = [k for k, item in enumerate(found) if item is None]
        pairs: list[Any] = [None] * len(lacking)
        if lacking and self.shared is not None:  # asked outside the lock: another process
            try:
                pairs = self.shared.get_many([keys[k] for k in lacking])
            except _STORE_GONE as exc:
                pairs = self._lost(exc, len(lacking))
        with self._lock:
            for k, pair in zip(lacking, pairs, strict=True):
                if pair is not None:
                    found[k] = CachedText(*pair)
                    self._lru.put(keys[k], found[k])
                    self.shared_hits += 1
            hits = sum(item is not None for item in found)
            self.hits += hits
            self.misses += len(found) - hits
        return found

    def put(self, key: Hashable, local: np.ndarray, glob: np.ndarray) -> None:
        self.put_many([(key, local, glob)])

    def put_many(self, items: Sequence[tuple[Hashable, np.ndarray, np.ndarray]]) -> None:
        if not self.entries or not items:
            return
        # copies: a view would keep the whole batch's output array alive
        entries = [(key, CachedText(np.array(local, np.float32), np.array(glob, np.float32)))
                   for key, local, glob in items]
        with self._lock:
            for key, entry in entries:
                self._lru.put(key, entry)
        if self.shared is not None:
            try:
                self.shared.put_many([(key, e.local, e.glob) for key, e in entries])
            except _STORE_GONE as exc:
                self._lost(exc, 0)

    def _lost(self, exc: BaseException, count: int) -> list[None]:
        """The shared store stopped answering: this process goes on with its own cache."""
        _log.warning("the batch's shared sentence cache stopped answering (%s): this worker "
                     "keeps its own", type(exc).__name__)
        self.shared = None
        return [None] * count

    def clear(self) -> None:
        """Forget this process's entries and counts (not the shared store's)."""
        with self._lock:
            self._lru.items.clear()
            self.hits = self.misses = self.shared_hits = 0


class SharedSentences:
    """The embeddings a batch's worker processes share, an LRU of at most `entries`, served by
    a manager process (`start_shared_store`) whose threads answer the workers concurrently."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self._lru = _LRU(entries)
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[Hashable]) -> list[_Pair | None]:
        with self._lock:
            return [self._lru.get(key) for key in keys]

    def put_many(self, items: Sequence[tuple[Hashable, np.ndarray, np.ndarray]]) -> None:
        with self._lock:
            for key, local, glob in items:
                if self._lru.get(key) is None:  # the first computed stays, as in one process
                    self._lru.put(key, (local, glob))

    def size(self) -> int:
        with self._lock:
            return len(self._lru.items)


class _StoreManager(BaseManager):
    pass


_StoreManager.register("SharedSentences", SharedSentences)


def start_shared_store(entries: int, context: Any) -> tuple[BaseManager, SharedStore]:
    """A manager process (of the multiprocessing `context`) serving one SharedSentences, and
    the store's proxy, which pickles into worker processes of that context. The caller shuts
    the manager down after the batch."""
    manager = _StoreManager(ctx=context)
    manager.start(die_with_parent, (os.getpid(),))  # it ends with the batch's process
    return manager, manager.SharedSentences(entries)  # type: ignore[attr-defined]
