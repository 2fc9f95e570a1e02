"""Image encoders compiled by OpenVINO, kept on disk, so that `--providers openvino` compiles a
bundle's graph once on a machine instead of in every process: reading, rewriting and compiling
the reference image encoder take about 0.55 s, importing what an earlier process compiled
about 0.1 s (docs/latency.md). A batch's workers and every later study gain it.

An entry is one file, `<key>.compiled`: a card (one line of JSON), then the compiled model's
bytes, written and renamed into place as one, so two processes compiling the same graph at
once (a machine's first batch: OpenVINO's bytes differ from one compile to the next) cannot
leave one's card beside the other's bytes. The key is a digest of everything the compiled
bytes depend on: the graph file's own sha256, OpenVINO's version, the compile options, the
batch size, and the CPU (model name and every instruction-set flag: a graph compiled for AMX
must not run on a CPU without it). The card holds the bytes' sha256, checked before OpenVINO
reads them, and the graph's inputs and outputs as read from the graph, so that a hit checks
them against the bundle card without reading the graph. Entries hold model weights only,
never a study's data.

Where: `$LESIONLOC_OPENVINO_CACHE` if set (`off` turns the cache off), else
`$XDG_CACHE_HOME/lesionloc/openvino`, else `~/.cache/lesionloc/openvino`. A cache that cannot
be written is a warning, never a failed study; an entry that cannot be read, or whose bytes
OpenVINO refuses, is compiled again and replaced. The folder keeps the `MAX_ENTRIES` entries
used last (a bundle takes one for a single study's threads and one for a batch worker's; old
bundles and OpenVINO versions leave theirs behind)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesionloc_runtime.cpuinfo import cpu_model_and_flags
from lesionloc_runtime.fileio import atomic_write_bytes, sha256_file

__all__ = ["CACHE_ENV", "MAX_ENTRIES", "CompiledCache", "cache_dir", "cpu_identity"]

CACHE_ENV = "LESIONLOC_OPENVINO_CACHE"
MAX_ENTRIES = 8  # about 30 MB each for a ResNet-50 image encoder
_FORMAT = 1  # what a card holds; a new layout gets new keys
_OFF = ("", "off", "0", "no", "none")
_log = logging.getLogger(__name__)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where compiled image encoders are kept, or None when the cache is off."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in _OFF else Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no home directory (a service account): no cache
            return None
    return Path(base) / "lesionloc" / "openvino"


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name and its full flag list; None where they cannot be read (then
    nothing is cached: a compiled graph is only as portable as the CPU it was compiled for)."""
    model, flags = cpu_model_and_flags(cpuinfo)
    return f"{model or '?'} | {' '.join(sorted(flags))}" if flags else None


@dataclass(frozen=True)
class _Hit:
    blob: bytes
    ports: dict[str, Any]  # {"inputs": {name: [type, shape]}, "outputs": {...}}


class CompiledCache:
    """One graph's compiled forms (one per batch size) under `root`."""

    def __init__(self, root: Path, graph: Path, options: Mapping[str, Any], version: str,
                 cpu: str) -> None:
        self.root = root
        self.identity = {"format": _FORMAT, "graph_sha256": sha256_file(graph),
                         "openvino": version, "options": dict(options), "cpu": cpu}

    @classmethod
    def open(cls, root: Path | None, graph: Path, options: Mapping[str, Any],
             version: str) -> CompiledCache | None:
        """The cache for `graph`, or None when it is off or the CPU cannot be identified."""
        cpu = cpu_identity()
        if root is None or cpu is None:
            return None
        try:
            return cls(root, graph, options, version, cpu)
        except OSError:  # a graph that cannot be read: OpenVINO's reader says so
            return None

    def path(self, batch: int) -> Path:
        identity = json.dumps({**self.identity, "batch": batch}, sort_keys=True, default=str)
        return self.root / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.compiled"

    def load(self, batch: int) -> _Hit | None:
        """The entry for `batch` if it is whole and its bytes are the ones its card names."""
        path = self.path(batch)
        try:
            with open(path, "rb") as entry:  # the bytes read once, not copied after the card
                head, blob = entry.readline(), entry.read()
        except OSError:
            return None
        try:
            card = json.loads(head)
        except ValueError:
            card = None
        if (not isinstance(card, dict) or card.get("blob_sha256") != hashlib.sha256(blob).hexdigest()
                or not isinstance(card.get("ports"), dict)):
            _log.warning("%s: not the bytes its card names; compiling again", path)
            return None
        try:
            os.utime(path)  # used now: the last to go when the folder is full
        except OSError:
            pass
        return _Hit(blob, card["ports"])

    def store(self, batch: int, blob: bytes, ports: dict[str, Any]) -> None:
        """Keep `blob` for `batch`, its card on the first line."""
        card = {**self.identity, "batch": batch, "blob_sha256": hashlib.sha256(blob).hexdigest(),
                "blob_bytes": len(blob), "ports": ports}
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write_bytes(self.path(batch), json.dumps(card).encode() + b"\n" + blob,
                               durable=False)
            self._prune()
        except OSError as exc:
            _log.warning("cannot keep the compiled image encoder in %s (%s); set %s=off to "
                         "stop trying", self.root, exc.strerror or exc, CACHE_ENV)

    def _prune(self) -> None:
        """Remove all but the MAX_ENTRIES entries used last (another process may be removing
        the same ones)."""
        def used(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except OSError:
                return float("inf")

        entries = sorted(self.root.glob("*.compiled"), key=used, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            old.unlink(missing_ok=True)
