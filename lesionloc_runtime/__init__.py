"""lesionloc runtime: torch-free lesion localization in chest radiographs from report sentences
(ONNX Runtime, numpy, OpenCV, pydicom, tokenizers).

The names below are the public API (docs/design.md, "What is public"). Each loads its module
on first use, so `import lesionloc_runtime` (which every CLI and submodule import runs first)
pulls in no numpy, OpenCV or ONNX Runtime.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# ONNX Runtime collects usage data for Microsoft from the moment it is imported unless this is
# set first: here, before any lesionloc module imports it, and unless the user chose
# (`ORT_DISABLE_TELEMETRY=0` keeps it on). Why and what else: lesionloc_runtime/privacy.py.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # privacy.ORT_SWITCH

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads them
    from lesionloc_runtime.boxes import Box
    from lesionloc_runtime.bundle import ModelBundle
    from lesionloc_runtime.errors import (
        BundleError,
        CheckpointError,
        ConfigError,
        DataError,
        DicomOutputError,
        ExportError,
        ImageReadError,
        LesionlocError,
        OutputError,
        ReportError,
        TrainingDiverged,
    )
    from lesionloc_runtime.heatmap import Heatmap, HeatmapConfig
    from lesionloc_runtime.imageio import Radiograph, read_image
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_runtime.outputs import OutputOptions, write_study
    from lesionloc_runtime.results import SentenceResult, StudyResult
    from lesionloc_runtime.text import Report, Sentence, parse_report, read_report

__version__ = "0.1.0"

_HOMES = {
    "lesionloc_runtime.localizer": ("Localizer",),
    "lesionloc_runtime.bundle": ("ModelBundle",),
    "lesionloc_runtime.imageio": ("Radiograph", "read_image"),
    "lesionloc_runtime.text": ("Report", "Sentence", "parse_report", "read_report"),
    "lesionloc_runtime.results": ("SentenceResult", "StudyResult"),
    "lesionloc_runtime.heatmap": ("Heatmap", "HeatmapConfig"),
    "lesionloc_runtime.boxes": ("Box",),
    "lesionloc_runtime.outputs": ("OutputOptions", "write_study"),
    "lesionloc_runtime.errors": (
        "LesionlocError", "BundleError", "CheckpointError", "ConfigError", "DataError",
        "DicomOutputError", "ExportError", "ImageReadError", "OutputError", "ReportError",
        "TrainingDiverged",
    ),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "__version__",
    # running a model
    "Localizer",
    "ModelBundle",
    # inputs
    "Radiograph",
    "read_image",
    "Report",
    "Sentence",
    "parse_report",
    "read_report",
    # results and writing them
    "StudyResult",
    "SentenceResult",
    "Heatmap",
    "HeatmapConfig",
    "Box",
    "OutputOptions",
    "write_study",
    # errors a user can cause (each has its exit code: README, "Errors and exit codes")
    "LesionlocError",
    "BundleError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DicomOutputError",
    "ExportError",
    "ImageReadError",
    "OutputError",
    "ReportError",
    "TrainingDiverged",
]


def __getattr__(name: str) -> Any:
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
