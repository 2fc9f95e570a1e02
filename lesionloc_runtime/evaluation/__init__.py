"""Localization benchmarks of the runtime (`lesionloc-evaluate`): readers of the public data
sets' official formats, the scoring loop and the report. Torch-free (numpy, OpenCV, pydicom)."""

from lesionloc_runtime.evaluation.datasets import BENCHMARKS, open_dataset
from lesionloc_runtime.evaluation.records import AnnotatedImage, DatasetStream, Grounding, ReadLog
from lesionloc_runtime.evaluation.report import EvaluationReport, build_report, write_report
from lesionloc_runtime.evaluation.runner import (
    DEFAULT_SCORE_SIZE,
    EvaluationRun,
    HeatmapProvider,
    SampleScore,
    evaluate,
)

__all__ = [
    "BENCHMARKS",
    "DEFAULT_SCORE_SIZE",
    "AnnotatedImage",
    "DatasetStream",
    "EvaluationReport",
    "EvaluationRun",
    "Grounding",
    "HeatmapProvider",
    "ReadLog",
    "SampleScore",
    "build_report",
    "evaluate",
    "open_dataset",
    "write_report",
]
