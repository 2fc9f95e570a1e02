"""Typed results of localizing one study, and their versioned JSON form (the study document).
Schema `lesionloc-study` version 1 is documented in docs/output.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lesionloc_runtime.geometry import CentreCrop, Geometry
from lesionloc_runtime.heatmap import Box, Heatmap

STUDY_SCHEMA = "lesionloc-study"
# 2: model.card_sha256 (was manifest_sha256), input.model_region, input.crop for crop models
STUDY_SCHEMA_VERSION = 2


@dataclass
class SentenceResult:
    """One report sentence (or free-text query) grounded on the image."""

    index: int
    text: str
    section: str
    kind: str
    score: float  # local alignment score r = cos(s, attention-pooled patches)
    heatmap: Heatmap | None = field(default=None, repr=False)
    peak: tuple[float, float, float] | None = None  # (x, y, value) in original pixels
    boxes: list[Box] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def grounded(self) -> bool:
        return self.heatmap is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "text": self.text,
            "section": self.section,
            "kind": self.kind,
            "grounded": self.grounded,
            "score": round(self.score, 4),
        }
        if self.peak is not None:
            x, y, value = self.peak
            out["peak"] = {"x": round(x, 1), "y": round(y, 1), "value": round(value, 4)}
        out["boxes"] = [{"box": b.as_list(), "score": round(b.score, 4)} for b in self.boxes]
        out["files"] = dict(self.files)
        return out


@dataclass
class StudyResult:
    """Everything `Localizer.localize` knows about one study."""

    study_id: str
    source: str
    image_format: str
    width: int
    height: int
    pixel_spacing_mm: tuple[float, float] | None
    letterbox: Geometry  # the letterbox, or the centre crop of a resize-crop bundle
    model: dict[str, Any]
    sentences: list[SentenceResult]
    image_score: float | None = None  # global report-image cosine, when a report was given
    report_source: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    display: Any = field(default=None, repr=False)  # the radiograph's pixels, for rendering
    display_window: tuple[float, float] = (0.0, 1.0)  # the intensity window preprocessing used
    identifiers: dict[str, str] = field(default_factory=dict)  # only when asked for
    # what the image reader repaired or ignored (Radiograph.notes): the CLI shows them too
    notes: list[str] = field(default_factory=list)

    @property
    def grounded(self) -> list[SentenceResult]:
        return [s for s in self.sentences if s.grounded]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": STUDY_SCHEMA,
            "schema_version": STUDY_SCHEMA_VERSION,
            "notice": self.model.get("notice", ""),
            "study_id": self.study_id,
            "input": {
                "image": self.source,
                "report": self.report_source,
                "format": self.image_format,
                "width": self.width,
                "height": self.height,
                "pixel_spacing_mm": list(self.pixel_spacing_mm) if self.pixel_spacing_mm else None,
                "crop" if isinstance(self.letterbox, CentreCrop) else "letterbox":
                    self.letterbox.to_dict(),
                "model_region": dict(zip(("x", "y", "width", "height"),
                                         self.letterbox.seen_region(), strict=True)),
                "notes": list(self.notes),
            },
            "model": self.model,
            "report_image_score": None if self.image_score is None else round(self.image_score, 4),
            "sentences": [s.to_dict() for s in self.sentences],
            "files": dict(self.files),
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.identifiers:
            doc["identifiers"] = dict(self.identifiers)
        return doc
