"""The evaluation summary: metrics per category, macro (mean of the category means, the MS-CXR
protocol) and micro (mean over all samples), CNR and mIoU once per published convention, with
counts, prompts, threshold, scoring grid, model provenance and every skipped row or image; as
a console table, JSON and Markdown."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime import __version__
from lesionloc_runtime.evaluation.conventions import (
    CONVENTIONS,
    ConventionMeans,
    mean_over_groups,
    mean_over_samples,
)
from lesionloc_runtime.evaluation.records import DatasetStream, Issue
from lesionloc_runtime.evaluation.runner import EvaluationRun, SampleScore
from lesionloc_runtime.fileio import atomic_write_json, atomic_write_text
from lesionloc_runtime.metrics import METRIC_NAMES, mean_scores

__all__ = ["EvaluationSummary", "GroupResult", "summarize", "write_summary"]

_SCHEMA = "lesionloc-evaluation/2"
# The runtime's metrics that no paper defines differently; CNR and mIoU are given once per
# convention, as "cnr[<convention>]" and "miou[<convention>]".
_BASE_METRICS: tuple[str, ...] = tuple(m for m in METRIC_NAMES if m not in ("cnr", "miou"))
_CONVENTION_METRICS: tuple[str, ...] = (*(f"cnr[{c.name}]" for c in CONVENTIONS),
                                       *(f"miou[{c.name}]" for c in CONVENTIONS))
# Columns in the order the localization papers print them; thresholded ones say their threshold.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pointing_game", "PG"),
    ("peak_distance", "Peak dist"),
    ("recall", "Recall@t"),
    ("precision", "Prec@t"),
    ("iou", "IoU@t"),
    ("dice", "Dice@t"),
    *((f"cnr[{c.name}]", f"CNR[{c.name}]") for c in CONVENTIONS),
    *((f"miou[{c.name}]", f"mIoU[{c.name}]") for c in CONVENTIONS),
    ("auroc", "AUROC"),
)
_MAX_LISTED = 50  # issues and missing images shown in Markdown; the JSON keeps them all


@dataclass(frozen=True)
class GroupResult:
    """Mean metrics of a group of samples (one category, or all of them)."""

    name: str
    n_images: int
    n_samples: int
    metrics: dict[str, float]
    conventions: dict[str, ConventionMeans] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "images": self.n_images, "samples": self.n_samples,
                "metrics": {k: _finite(v) for k, v in self.metrics.items()},
                "conventions": {k: v.to_dict() for k, v in self.conventions.items()}}


@dataclass
class EvaluationSummary:
    """What `lesionloc-evaluate` prints and writes."""

    dataset: str
    root: str
    annotation_file: str
    split: str
    threshold: float
    score_size: int | None
    model: dict[str, Any]
    prompts: dict[str, list[str]]
    categories: list[GroupResult]
    macro: GroupResult
    micro: GroupResult
    counts: dict[str, int]
    missing_images: list[str]
    issues: list[Issue]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": _SCHEMA,
            "lesionloc_version": __version__,
            "created": self.created,
            "dataset": self.dataset,
            "root": self.root,
            "annotation_file": self.annotation_file,
            "split": self.split,
            "threshold": self.threshold,
            "conventions": [c.to_dict() for c in CONVENTIONS],
            "scoring": {"max_side": self.score_size, "description": self.scoring_note},
            "model": self.model,
            "counts": self.counts,
            "prompts": self.prompts,
            "macro": self.macro.to_dict(),
            "micro": self.micro.to_dict(),
            "categories": [c.to_dict() for c in self.categories],
            "notes": self.notes,
            "missing_images": self.missing_images,
            "issues": [i.to_dict() for i in self.issues],
            "seconds": round(self.seconds, 3),
        }

    @property
    def scoring_note(self) -> str:
        own = "[afloc] scores on its 224 px letterbox and [hi-ml] on the image's pixels"
        if not self.score_size:
            return f"scored at the original image resolution; {own}"
        return (f"heatmap and ground truth resized so the long side is at most {self.score_size}"
                " px before scoring (heatmap: area average; mask: pixels at least half covered)"
                f"; {self.counts.get('images_downscaled', 0)} of {self.counts['images']} images "
                f"were downscaled; {own}")

    def model_line(self) -> str:
        m = self.model
        if not m:
            return "unknown model"
        sha = str(m.get("card_sha256") or "")[:12]
        parts = [str(m.get("name", "?"))]
        if sha:
            parts.append(f"sha256 {sha}")
        if m.get("quantization"):
            parts.append(f"quantization {m['quantization']}")
        if m.get("demo"):
            parts.append("DEMO model (synthetic training data)")
        return ", ".join(parts)

    def rows(self) -> list[GroupResult]:
        extra = [self.macro, self.micro] if len(self.categories) > 1 else [self.micro]
        return [*self.categories, *extra]

    def to_text(self) -> str:
        """The console table."""
        header = ["category", "images", "samples", *(label for _, label in _COLUMNS)]
        body = [[r.name, str(r.n_images), str(r.n_samples),
                 *(_fmt(r.metrics[key]) for key, _ in _COLUMNS)] for r in self.rows()]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        lines = [
            f"{self.dataset}: {self.counts['images']} images, {self.counts['samples']} samples "
            f"(split {self.split}); model: {self.model_line()}",
            "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                      for i, (h, w) in enumerate(zip(header, widths, strict=True))),
        ]
        for row in body:
            lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                                   for i, (v, w) in enumerate(zip(row, widths, strict=True))))
        lines.append(f"t = {self.threshold:g} on the min-max normalized heatmap; CNR and mIoU "
                     "under each paper's convention: [lesionloc] ours, [afloc] AFLoc's code, "
                     "[hi-ml] BioViL's as a public reproduction computes it "
                     f"(docs/evaluation.md); {self.scoring_note}")
        lines += self._undefined()
        skipped = self._skipped()
        if skipped:
            lines.append(f"skipped: {', '.join(skipped)} (listed in the files of --out)")
        return "\n".join(lines)

    def _conventions_markdown(self) -> list[str]:
        lines = ["- CNR[c] and mIoU[c] follow convention c (docs/evaluation.md):"]
        for c in CONVENTIONS:
            lines.append(f"  - `{c.name}`: {c.definition} ({c.source})")
        return lines

    def _undefined(self) -> list[str]:
        """A line per convention that left values of the scored samples undefined."""
        return [f"[{name}] undefined and left out of the means: {m.undefined_cnr} CNR and "
                f"{m.undefined_ious} IoU values (e.g. a box outside its scored region)"
                for name, m in self.micro.conventions.items()
                if m.undefined_cnr or m.undefined_ious]

    def _skipped(self) -> list[str]:
        c = self.counts
        return [f"{c[k]} {label}" for k, label in (
            ("missing_images", "missing images"), ("unreadable_images", "unreadable images"),
            ("malformed_rows", "malformed annotation rows"),
            ("skipped_samples", "skipped samples"),
            ("negative_images", "negative images (not scored by design)")) if c.get(k)]

    def to_markdown(self) -> str:
        """The Markdown summary: settings, the table, prompts, and what was skipped."""
        header = ["Category", "Images", "Samples",
                  *(label.replace("@t", f"@{self.threshold:g}") for _, label in _COLUMNS)]
        out = [
            f"# Localization: {self.dataset}",
            "",
            f"- Model: {self.model_line()}",
            f"- Data: `{self.root}` ({self.annotation_file}), split `{self.split}`",
            f"- Scored: {self.counts['images']} images, {self.counts['samples']} samples",
            f"- Threshold t = {self.threshold:g} on the min-max normalized heatmap (IoU, Dice, "
            "precision, recall)",
            f"- Resolution: {self.scoring_note}",
            "- PG: pointing game (ties at the peak scored as the fraction inside the truth); "
            "CNR: contrast-to-noise ratio and mIoU under each convention below; AUROC: "
            "pixel-level",
            *self._conventions_markdown(),
        ]
        if len(self.categories) > 1:
            out.append("- Overall: *macro* is the mean of the category means (the MS-CXR "
                       "protocol), *micro* the mean over all samples")
        if self.model.get("demo"):
            out.append(f"- Note: {self.model.get('notice', 'demo model')}")
        out += ["", "| " + " | ".join(header) + " |",
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        for r in self.rows():
            name = f"**{r.name}**" if r in (self.macro, self.micro) else r.name
            out.append("| " + " | ".join([name, str(r.n_images), str(r.n_samples),
                                          *(_fmt(r.metrics[k]) for k, _ in _COLUMNS)]) + " |")
        out += [f"- {line}" for line in self._undefined()]
        out += ["", "## Prompts", ""]
        for category, prompts in self.prompts.items():
            if len(prompts) <= 3:
                out.append(f"- {category}: " + "; ".join(f"\"{p}\"" for p in prompts))
            else:
                out.append(f"- {category}: {len(prompts)} annotated phrases (listed in the JSON)")
        out += ["", "## Skipped", ""]
        out += [f"- {line}" for line in self._skipped()] or ["- nothing"]
        for title, items in (("Notes", self.notes),
                             ("Missing images", self.missing_images),
                             ("Issues", [str(i) for i in self.issues])):
            if items:
                out += ["", f"## {title}", ""]
                out += [f"- {item}" for item in items[:_MAX_LISTED]]
                if len(items) > _MAX_LISTED:
                    out.append(f"- ... and {len(items) - _MAX_LISTED} more (see the JSON)")
        return "\n".join(out) + "\n"


def summarize(
    run: EvaluationRun,
    data: DatasetStream,
    model: Mapping[str, Any] | None = None,
    user_prompts: Mapping[str, str] | None = None,
) -> EvaluationSummary:
    """Aggregate a run: per category, macro over categories, micro over samples."""
    by_category: dict[str, list[SampleScore]] = {}
    for sample in run.samples:
        by_category.setdefault(sample.category, []).append(sample)
    categories = [_group(name, samples) for name, samples in sorted(by_category.items())]
    micro = _group("micro (all samples)", run.samples)
    macro = _macro(categories, micro)
    prompts = {name: sorted({s.prompt for s in samples})
               for name, samples in sorted(by_category.items())}
    log = run.log
    counts = {
        "images": run.n_images,
        "samples": len(run.samples),
        "images_listed": data.total if data.total is not None else -1,
        "images_read": run.n_images_read,
        "images_downscaled": run.n_downscaled,
        "missing_images": len(log.missing_images),
        "unreadable_images": log.unreadable_images,
        "malformed_rows": log.malformed_rows,
        "skipped_samples": log.skipped_samples,
        "negative_images": log.negative_images,
    }
    notes = list(data.notes)
    seen = {c.lower() for c in by_category}
    unused = sorted(k for k in (user_prompts or {}) if k.lower() not in seen)
    if unused and run.samples:
        notes.append(f"prompts given for categories that were not scored: {', '.join(unused)}")
    return EvaluationSummary(
        dataset=data.name,
        root=str(data.root),
        annotation_file=data.annotation_file.name,
        split=data.split,
        threshold=run.threshold,
        score_size=run.score_size,
        model=dict(model or {}),
        prompts=prompts,
        categories=categories,
        macro=macro,
        micro=micro,
        counts=counts,
        missing_images=list(log.missing_images),
        issues=list(log.issues),
        notes=notes,
        seconds=run.seconds,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def write_summary(
    summary: EvaluationSummary, samples: Sequence[SampleScore], out_dir: str | Path
) -> list[Path]:
    """Write `<dataset>.json`, `<dataset>.md` and `<dataset>-samples.csv`, each atomically."""
    out = Path(out_dir)
    paths = [out / f"{summary.dataset}.json", out / f"{summary.dataset}.md",
             out / f"{summary.dataset}-samples.csv"]
    atomic_write_json(paths[0], summary.to_dict())
    atomic_write_text(paths[1], summary.to_markdown())
    atomic_write_text(paths[2], _samples_csv(samples))
    return paths


def _samples_csv(samples: Sequence[SampleScore]) -> str:
    """One row per scored sample, for error analysis."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_id", "category", "prompt", *_BASE_METRICS, *_CONVENTION_METRICS])
    for s in samples:
        values = [getattr(s.scores, name) for name in _BASE_METRICS]
        values += [s.conventions[c.name].cnr for c in CONVENTIONS]
        values += [s.conventions[c.name].miou for c in CONVENTIONS]
        writer.writerow([s.image_id, s.category, s.prompt, *(f"{v:.6g}" for v in values)])
    return buffer.getvalue()


def _metrics(base: Mapping[str, float], means: Mapping[str, ConventionMeans]
             ) -> dict[str, float]:
    """The runtime's metrics without CNR and mIoU, then those two per convention."""
    out = {name: base[name] for name in _BASE_METRICS}
    out.update({f"cnr[{name}]": m.cnr for name, m in means.items()})
    out.update({f"miou[{name}]": m.miou for name, m in means.items()})
    return out


def _group(name: str, samples: Sequence[SampleScore]) -> GroupResult:
    means = {c.name: mean_over_samples([s.conventions[c.name] for s in samples], c)
             for c in CONVENTIONS}
    return GroupResult(name, len({s.image_id for s in samples}), len(samples),
                       _metrics(mean_scores([s.scores for s in samples]), means), means)


def _macro(categories: Sequence[GroupResult], micro: GroupResult) -> GroupResult:
    """The mean of the category means, per metric; per threshold for each convention's IoU."""
    base = {name: float(np.mean([c.metrics[name] for c in categories])) if categories
            else float("nan") for name in _BASE_METRICS}
    means = {c.name: mean_over_groups([g.conventions[c.name] for g in categories], c)
             for c in CONVENTIONS}
    return GroupResult("macro (mean of categories)", micro.n_images, micro.n_samples,
                       _metrics(base, means), means)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(float(value), 6)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"
