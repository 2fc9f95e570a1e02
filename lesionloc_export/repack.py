"""An exported bundle's padded text graph packed after the fact (`scripts/pack_bundle.py`):
for a bundle exported before packed text graphs, without the checkpoint it came from. The
packed graph is checked against the bundle's own padded one, not against PyTorch."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from lesionloc_export.bundle_writer import install
from lesionloc_export.packing import pack_text_graph
from lesionloc_export.parity import THRESHOLDS, cosines
from lesionloc_runtime.bundle import ModelBundle, write_card
from lesionloc_runtime.contract import CARD_NAME, EncoderSpec
from lesionloc_runtime.errors import ExportError
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.sessions import OnnxEncoder
from lesionloc_runtime.tokens import (
    PACKED_POOLING,
    SentenceTokenizer,
    encode_windows,
    prepare_text,
)

__all__ = ["pack_bundle"]

# What the packed graph is checked on: report sentences of every kind, and one text longer
# than any window (several windows averaged).
CHECK_TEXTS = (
    "Patchy opacity at the left base, likely atelectasis.",
    "Small bilateral pleural effusions.",
    "A 12 mm nodule in the right mid zone.",
    "No focal consolidation, effusion or pneumothorax.",
    "Heart size is normal.",
    "Endotracheal tube tip 4 cm above the carina.",
    "Mild interstitial prominence, which may reflect edema.",
    "Right apical pneumothorax measuring 2 cm.",
    "Degenerative changes of the thoracic spine.",
    "Lungs are clear.",
    " ".join(["Patchy airspace opacity in the right lower zone, which may represent infection "
              "or aspiration in the appropriate clinical setting."] * 6),
)


def pack_bundle(source: Path, out: Path) -> dict[str, Any]:
    """Rewrite the bundle at `source` with its text graph packed, built in a staging copy,
    checked against the bundle's own padded graph on CHECK_TEXTS within the parity
    thresholds of its precision, recorded in the cards (`parity.packed_from_padded`), then
    swapped into `out` (which may be `source`). On any failure nothing at `source` or `out`
    changes. Returns the record."""
    bundle = ModelBundle.load(source)  # checksums verified first
    if bundle.card.get("format_version") != 2:
        raise ExportError(f"{source}: a version-1 card; rewrite it first with "
                          "scripts/upgrade_bundle_card.py")
    pooling = PACKED_POOLING.get(bundle.text.pooling)
    if bundle.text_encoder.packed:
        raise ExportError(f"{source}: the text graph is packed already")
    if pooling is None or bundle.quantization not in ("none", "int8"):
        raise ExportError(f"{source}: a {bundle.quantization} text graph pooled by "
                          f"{bundle.text.pooling!r} is not packed (fp32 and int8 graphs are)")
    staging = out.parent / f".{out.name}.packing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    try:
        graph = staging / bundle.text_encoder.file
        if not pack_text_graph(graph, graph, pooling):
            raise ExportError(f"{source}: the text graph is not one the exporter wrote (no "
                              "fused BERT pooled as its card says); it stays padded")
        spec = EncoderSpec.text(bundle.text_encoder.file, bundle.embed_dim, packed=True)
        record = _against_padded(bundle, OnnxEncoder(graph, spec), pooling)
        if not record["passed"]:
            raise ExportError(f"{source}: the packed text graph moved its embeddings below the "
                              f"{bundle.quantization} thresholds: {record['cosine']}")
        _record(staging, spec, record)
        Localizer.load(staging)  # the packed bundle loads as any other
        install(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def _against_padded(bundle: ModelBundle, packed: OnnxEncoder, pooling: str) -> dict[str, Any]:
    padded = OnnxEncoder(bundle.file(bundle.text_encoder.file), bundle.text_encoder)
    tokenizer = SentenceTokenizer(bundle.file(bundle.tokenizer_file), bundle.max_length)
    texts = [prepare_text(t, bundle.text.preparation) for t in CHECK_TEXTS]
    batch = tokenizer.encode(texts)
    want = encode_windows(padded, batch, len(texts))
    got = encode_windows(packed, batch, len(texts), pooling)
    cos = {name: cosines(want[name], got[name]) for name in want}
    mean_min, worst_min = THRESHOLDS[bundle.quantization]
    return {"texts": len(texts),
            "passed": all(c.mean() >= mean_min and c.min() >= worst_min for c in cos.values()),
            "cosine": {k: {"mean": round(float(c.mean()), 6), "min": round(float(c.min()), 6)}
                       for k, c in cos.items()}}


def _record(staging: Path, spec: EncoderSpec, record: dict[str, Any]) -> None:
    """The packed inputs and the check into lesionloc.json, a line into MODEL_CARD.md."""
    card = json.loads((staging / CARD_NAME).read_text(encoding="utf-8"))
    card["text_encoder"] = {**card["text_encoder"], **spec.to_dict()}
    card["parity"] = {**card.get("parity", {}), "packed_from_padded": record}
    model_card = staging / "MODEL_CARD.md"
    if model_card.is_file():
        worst = min(c["min"] for c in record["cosine"].values())
        model_card.write_text(model_card.read_text(encoding="utf-8").rstrip("\n") + (
            "\n\n## Text graph packed after export\n\nThe text graph was rewritten to take "
            "a report's sentences packed in one row (scripts/pack_bundle.py). Against the "
            f"exported padded graph on {record['texts']} texts: worst cosine {worst:.6f}.\n"),
            encoding="utf-8")
    write_card(staging, {k: v for k, v in card.items() if k != "files"})
