"""Preprocessing cache: every image decoded, letterboxed and normalized ONCE (through the
runtime's preprocessing) into one memory-mapped array, so DataLoader workers on a GPU machine
read a slice instead of decoding 3000-pixel DICOMs every epoch."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lesionloc_runtime.errors import DataError, ImageReadError, LesionlocError
from lesionloc_runtime.fileio import atomic_write_json, make_dir_public, write_errors
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.preprocess import PreprocessConfig, preprocess
from lesionloc_runtime.processes import in_processes
from lesionloc_runtime.progress import progress as progress_bar

if TYPE_CHECKING:
    from lesionloc_train.data import StudyRecord

CACHE_VERSION = 1
_DTYPES = {"uint8": (np.uint8, 255.0), "uint16": (np.uint16, 65535.0)}


def _encode(task: tuple[int, str, dict[str, Any], str, str, int]) -> tuple[int, str | None]:
    index, image_path, prep, data_path, dtype, count = task
    config = PreprocessConfig.from_dict(prep)
    np_type, scale = _DTYPES[dtype]
    try:
        tensor = preprocess(read_image(image_path), config).tensor[0]
    except LesionlocError as exc:
        return index, str(exc)
    size = config.image_size
    arr = np.memmap(data_path, dtype=np_type, mode="r+", shape=(count, size, size))
    arr[index] = np.round(tensor * scale).astype(np_type)
    arr.flush()
    del arr
    return index, None


def _built_with(recorded: Any) -> PreprocessConfig | None:
    """The preprocessing a cache records, as a config: parameters added since it was built
    take their defaults, which is what the code that built it did. None if unreadable."""
    try:
        return PreprocessConfig.from_dict(recorded) if isinstance(recorded, dict) else None
    except (LesionlocError, TypeError, ValueError):
        return None


class ImageCache:
    """A built cache directory: `cache.json` (parameters, ids, errors) + `images.bin`."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.meta = meta
        self.size = int(meta["preprocessing"]["image_size"])
        self.dtype = str(meta["dtype"])
        self.index = {sid: i for i, sid in enumerate(meta["ids"])}
        self.errors: dict[str, str] = dict(meta.get("errors", {}))
        self._array: np.memmap | None = None

    @classmethod
    def open(cls, root: str | os.PathLike[str], preprocessing: PreprocessConfig) -> ImageCache:
        root = Path(root)
        meta_path = root / "cache.json"
        if not meta_path.is_file():
            raise DataError(f"{root}: not an image cache (cache.json missing); build it with "
                            "`lesionloc-train cache`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise DataError(f"{meta_path}: cannot be read as JSON ({exc}); build the cache "
                            "again with `lesionloc-train cache`") from None
        if meta.get("version") != CACHE_VERSION:
            raise DataError(f"{root}: cache version {meta.get('version')} is not {CACHE_VERSION}")
        if _built_with(meta.get("preprocessing")) != preprocessing:
            raise DataError(
                f"{root}: cache was built with preprocessing {meta.get('preprocessing')}, the "
                f"model needs {preprocessing.to_dict()}; rebuild the cache"
            )
        return cls(root, meta)

    def _data(self) -> np.memmap:
        if self._array is None:  # opened lazily: after the DataLoader worker has forked
            np_type, _ = _DTYPES[self.dtype]
            self._array = np.memmap(self.root / "images.bin", dtype=np_type, mode="r",
                                    shape=(len(self.index), self.size, self.size))
        return self._array

    def __contains__(self, study_id: str) -> bool:
        return study_id in self.index

    def get(self, study_id: str) -> np.ndarray:
        if study_id in self.errors:
            raise ImageReadError(self.errors[study_id])
        if study_id not in self.index:
            raise ImageReadError(f"study {study_id} is not in the cache {self.root}")
        _, scale = _DTYPES[self.dtype]
        return self._data()[self.index[study_id]].astype(np.float32) / np.float32(scale)

    @classmethod
    def build(
        cls,
        records: Sequence[StudyRecord],
        preprocessing: PreprocessConfig,
        out: str | os.PathLike[str],
        dtype: str = "uint16",
        workers: int = 1,
        progress: bool = True,
    ) -> ImageCache:
        """Decode and preprocess every record's image into a new cache directory at `out`
        (built in a temporary directory and renamed, so a killed build leaves nothing)."""
        if dtype not in _DTYPES:
            raise DataError(f"cache dtype must be one of {sorted(_DTYPES)}")
        out = Path(out)
        if out.exists():
            raise DataError(f"{out} exists; remove it or choose another cache directory")
        with write_errors(out):  # full or read-only: OutputError, exit code 10
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
            make_dir_public(tmp)
            try:
                size = preprocessing.image_size
                np_type, _ = _DTYPES[dtype]
                count = len(records)
                data_path = tmp / "images.bin"
                _allocate(data_path, count * size * size * np.dtype(np_type).itemsize, out)
                tasks = [(i, str(r.image), preprocessing.to_dict(), str(data_path), dtype, count)
                         for i, r in enumerate(records)]
                errors: dict[str, str] = {}
                bar = progress_bar(count, "cache", "image", progress)
                if workers > 1:
                    for index, error in in_processes(_encode, tasks, workers, chunksize=8):
                        if error:
                            errors[records[index].study_id] = error
                        bar.update()
                else:
                    for task in tasks:
                        index, error = _encode(task)
                        if error:
                            errors[records[index].study_id] = error
                        bar.update()
                bar.close()
                meta = {"version": CACHE_VERSION, "dtype": dtype,
                        "preprocessing": preprocessing.to_dict(),
                        "ids": [r.study_id for r in records], "errors": errors}
                atomic_write_json(tmp / "cache.json", meta)
                os.replace(tmp, out)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return cls(out, meta)


def _allocate(path: Path, size: int, shown: Path) -> None:
    """The cache file at its full size, its blocks reserved now: a memory map of a sparse file
    on a disk that fills up ends the process with SIGBUS at the first page it cannot store,
    hours into a large cache; reserved, a disk too small is ENOSPC at once. A file system that
    cannot reserve (NFS v3, ZFS) gets the sparse file, as before."""
    with open(path, "wb") as handle:
        if size == 0:
            return
        try:
            _reserve(handle.fileno(), size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise OSError(exc.errno, f"{exc.strerror} (the cache takes {size / 2**20:,.0f} "
                              "MiB)", str(shown)) from None
            handle.truncate(size)


def _reserve(fd: int, size: int) -> None:
    """Linux's fallocate(2), which says EOPNOTSUPP where the file system cannot reserve;
    os.posix_fallocate would instead have glibc write a byte into every 4 KiB block (for a
    100 GB cache on NFS, 25 million writes)."""
    import ctypes

    call = getattr(ctypes.CDLL(None, use_errno=True), "fallocate64", None)
    if call is None:  # not Linux
        raise OSError(errno.ENOSYS, "fallocate is not available")
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if call(fd, 0, 0, size) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
