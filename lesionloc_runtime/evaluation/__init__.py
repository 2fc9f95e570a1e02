"""Localization benchmarks of the runtime (`lesionloc-evaluate`): readers of the public data
sets' official formats, the scoring loop and the summary (tables, JSON, Markdown). Torch-free
(numpy, OpenCV, pydicom)."""

from lesionloc_runtime.evaluation.datasets import BENCHMARKS, open_dataset
from lesionloc_runtime.evaluation.records import AnnotatedImage, DatasetStream, Grounding, ReadLog
from lesionloc_runtime.evaluation.runner import (
    DEFAULT_SCORE_SIZE,
    EvaluationRun,
    HeatmapProvider,
    SampleScore,
    evaluate,
)
from lesionloc_runtime.evaluation.summary import EvaluationSummary, summarize, write_summary

__all__ = [
    "BENCHMARKS",
    "DEFAULT_SCORE_SIZE",
    "AnnotatedImage",
    "DatasetStream",
    "EvaluationSummary",
    "EvaluationRun",
    "Grounding",
    "HeatmapProvider",
    "ReadLog",
    "SampleScore",
    "summarize",
    "evaluate",
    "open_dataset",
    "write_summary",
]
