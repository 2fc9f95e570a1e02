"""Synthetic chest radiograph phantoms with grounded reports (specified in docs/phantoms.md): the
data set the demo model trains on, the tests run on and the localization benchmarks score."""

from lesionloc_train.phantoms.dataset import (
    MANIFEST,
    DatasetSummary,
    generate_dataset,
    load_manifest,
)
from lesionloc_train.phantoms.options import PhantomOptions
from lesionloc_train.phantoms.render import RenderedStudy, render_study

__all__ = ["MANIFEST", "DatasetSummary", "PhantomOptions", "RenderedStudy", "generate_dataset",
           "load_manifest", "render_study"]
