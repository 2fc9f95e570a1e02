"""What the export pipeline needs of a model, whichever its origin: the two graph-shaped torch
modules, the text backbone's config, the tokenizer, and the card's description. `load_source`
builds it from a lesionloc checkpoint or from a published model's files (`--from`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from lesionloc_runtime.architectures import GridSpec, TextConfig
from lesionloc_runtime.errors import ConfigError
from lesionloc_runtime.fileio import sha256_file
from lesionloc_runtime.heatmap import HeatmapConfig
from lesionloc_runtime.preprocess import PreprocessConfig

SOURCES = ("lesionloc", "afloc", "biovil", "biovil-t")


@dataclass
class SourceModel:
    """A model ready for export. `image_graph`: pixel_values (B, 1, S, S) in [0, 1] ->
    image_embeds (B, D), patch_embeds (B, h, w, D); `text_graph`: input_ids, attention_mask
    -> sentence_embeds, global_embeds (N, D): the runtime's contract."""

    architecture: str
    image_graph: nn.Module
    text_graph: nn.Module
    text_backbone: nn.Module  # the transformers model inside text_graph (export, fusions)
    tokenizer: Path  # tokenizer.json
    max_length: int
    embed_dim: int
    preprocessing: PreprocessConfig
    grid: GridSpec
    text: TextConfig
    heatmap: HeatmapConfig
    default_name: str
    trained_on: str
    provenance: dict[str, Any]
    describe: Callable[[str], list[str]]  # model card sections, given what it was trained on
    keep: list[Any] = field(default_factory=list, repr=False)  # temporary dirs to keep alive

    def card(self) -> dict[str, Any]:
        """The description part of the bundle card (export adds encoders, parity, files)."""
        return {"architecture": self.architecture, "embed_dim": self.embed_dim,
                "preprocessing": self.preprocessing.to_dict(), "grid": self.grid.to_dict(),
                "text": self.text.to_dict(), "heatmap": self.heatmap.to_dict()}


@dataclass
class SourceFiles:
    """What the user gave: SOURCE and the optional second paths some models need."""

    source: Path
    image_weights: Path | None = None  # BioViL(-T): the image .pt, if not inside the snapshot
    text_model: Path | None = None  # AFLoc: the Bio_ClinicalBERT snapshot (vocab, config)


def file_digest(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def load_source(kind: str, files: SourceFiles, heatmap: dict[str, Any],
                work: Path) -> SourceModel:
    """Build the exportable model of `kind` from the user's files (no network)."""
    if kind not in SOURCES:
        raise ConfigError(f"--from must be one of {', '.join(SOURCES)}, not {kind!r}")
    if kind == "lesionloc":
        from lesionloc_export.sources.ours import lesionloc_source

        model = lesionloc_source(files.source)
    elif kind == "afloc":
        from lesionloc_export.sources.afloc import afloc_source

        model = afloc_source(files.source, files.text_model, work)
    else:
        from lesionloc_export.sources.hi_ml import hi_ml_source

        model = hi_ml_source(kind, files.source, files.image_weights, work)
    if heatmap:
        model.heatmap = HeatmapConfig.from_dict({**model.heatmap.to_dict(), **heatmap})
    return model

