"""The benchmark registry: `--dataset NAME` to its reader, its default split and prompts."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lesionloc_runtime.errors import ConfigError, DataError
from lesionloc_runtime.evaluation.covid_rural import read_covid_rural
from lesionloc_runtime.evaluation.mscxr import read_ms_cxr
from lesionloc_runtime.evaluation.phantoms import read_phantoms
from lesionloc_runtime.evaluation.prompts import class_prompts
from lesionloc_runtime.evaluation.records import DatasetStream, parse_split
from lesionloc_runtime.evaluation.rsna import read_rsna
from lesionloc_runtime.evaluation.siim import read_siim

__all__ = ["BENCHMARKS", "Benchmark", "Reader", "open_dataset"]

Reader = Callable[..., DatasetStream]


@dataclass(frozen=True)
class Benchmark:
    """One data set the evaluation command knows."""

    name: str
    title: str
    reader: Reader
    default_split: str = "all"


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("phantoms", "Phantom chest radiographs (docs/phantoms.md)", read_phantoms,
                  "test"),
        Benchmark("ms-cxr", "MS-CXR phrase grounding", read_ms_cxr),
        Benchmark("rsna-pneumonia", "RSNA Pneumonia Detection", read_rsna),
        Benchmark("siim-pneumothorax", "SIIM-ACR Pneumothorax Segmentation", read_siim),
        Benchmark("covid-rural", "COVID Rural opacity segmentation", read_covid_rural),
    )
}


def open_dataset(
    name: str,
    root: str | os.PathLike[str],
    *,
    split: str | None = None,
    prompts: Mapping[str, str] | None = None,
    images: str | os.PathLike[str] | None = None,
) -> DatasetStream:
    """Open benchmark `name` at `root`; DataError names what is missing from it.

    `split`: None for the data set's default, "all", a split name, or a file of image ids.
    `prompts`: class prompts overriding the defaults. `images`: where the images are when not
    in the documented place under `root`.
    """
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(BENCHMARKS)}")
    benchmark = BENCHMARKS[name]
    root_path = Path(root)
    if not root_path.exists():
        raise DataError(f"{root_path}: no such directory (--root)")
    if name != "phantoms" and not root_path.is_dir():
        raise DataError(f"{root_path}: not a directory (--root)")
    image_path = None
    if images is not None:
        if name == "phantoms":
            raise ConfigError("--images is not used with phantoms (the manifest gives the paths)")
        image_path = Path(images)
        if not image_path.is_dir():
            raise DataError(f"{image_path}: no such directory (--images)")
    return benchmark.reader(
        root_path,
        split=parse_split(split, benchmark.default_split),
        prompts=class_prompts(name, prompts),
        images=image_path,
    )
