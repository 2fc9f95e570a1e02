"""Typed results of localizing one study, and their versioned JSON form (the study document).
Schema `lesionloc-study` version 2 is documented in docs/output.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lesionloc_runtime.boxes import Box
from lesionloc_runtime.geometry import CentreCrop, Geometry
from lesionloc_runtime.heatmap import Heatmap

__all__ = [
    "STUDY_SCHEMA",
    "STUDY_SCHEMA_VERSION",
    "HeatmapLayer",
    "ImageFile",
    "SentenceResult",
    "StudyResult",
]

STUDY_SCHEMA = "lesionloc-study"
# 2: the study page (radiograph_images, sentence layers), model.card_sha256 (was
# manifest_sha256), input.model_region, and input.crop for crop models
STUDY_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class ImageFile:
    """A picture written beside the study document, with its size in pixels."""

    file: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class HeatmapLayer:
    """A sentence's heatmap as a small 8-bit grey PNG spanning the whole original image: level 0
    is "no value" (outside the region the model saw), level k in 1..255 stands for
    minimum + (k - 1) / 254 * (maximum - minimum), a cosine similarity."""

    file: str
    width: int
    height: int
    minimum: float
    maximum: float

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "width": self.width, "height": self.height,
                "min": round(self.minimum, 4), "max": round(self.maximum, 4)}


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
    uncertain: bool = False  # a hedged finding ("Possible small effusion.")
    grounded_span: tuple[int, int] | None = None  # offsets into `text` of what names the finding
    layer: HeatmapLayer | None = None  # written with the study page

    @property
    def grounded(self) -> bool:
        return self.heatmap is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "text": self.text,
            "section": self.section,
            "kind": self.kind,
            "uncertain": self.uncertain,
            "grounded_span": None if self.grounded_span is None else {
                "start": self.grounded_span[0], "end": self.grounded_span[1],
                "text": self.text[self.grounded_span[0] : self.grounded_span[1]]},
            "grounded": self.grounded,
            "score": round(self.score, 4),
        }
        if self.peak is not None:
            x, y, value = self.peak
            out["peak"] = {"x": round(x, 1), "y": round(y, 1), "value": round(value, 4)}
        out["boxes"] = [{"box": b.as_list(), "score": _rounded(b.score)} for b in self.boxes]
        if self.layer is not None:
            out["layer"] = self.layer.to_dict()
        out["files"] = dict(self.files)
        return out


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)


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
    # the radiograph as the study page shows it: "screen" and "full" resolution
    radiograph_images: dict[str, ImageFile] = field(default_factory=dict)

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
            "radiograph_images": {k: v.to_dict() for k, v in self.radiograph_images.items()},
            "files": dict(self.files),
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.identifiers:
            doc["identifiers"] = dict(self.identifiers)
        return doc
