"""The full-size model for latency and export benchmarks: ResNet-50 at 448 px and a text encoder
with Bio_ClinicalBERT's configuration (BERT-base, cased vocabulary size), random weights,
saved as a real checkpoint. `python benchmarks/full_model.py --out DIR` also exports it in
all three precisions and records export times and file sizes as JSON:

    python benchmarks/full_model.py --out .benchmarks/cache/full-model \
        --record benchmarks/results/export-full-model.json

`python benchmarks/full_model.py --reference DIR` writes only the latency benchmarks' reference
study (its film and report), for scripts/study_ab.py and study_times.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# Bio_ClinicalBERT's config.json (emilyalsentzer/Bio_ClinicalBERT = bert-base-cased shape)
BIO_CLINICALBERT = {
    "vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
    "type_vocab_size": 2, "layer_norm_eps": 1e-12,
}
# transformers' ResNetConfig() defaults are ResNet-50 (bottleneck, depths 3-4-6-3)
RESNET50 = {"embedding_size": 64, "hidden_sizes": [256, 512, 1024, 2048], "depths": [3, 4, 6, 3],
            "layer_type": "bottleneck", "num_channels": 3}
REPORT_SENTENCES = [
    "There is a large right upper lobe consolidation.",
    "A 7 mm nodule projects over the left lower lobe.",
    "Moderate left pleural effusion with blunting of the costophrenic angle.",
    "There is a small right apical pneumothorax.",
    "The heart is enlarged.",
    "No pulmonary edema.",
    "The mediastinal contours are unremarkable.",
    "There is no focal consolidation on the left.",
]


def report_corpus(work: Path) -> list[str]:
    """Phantom reports, so the vocabulary holds their words whole and sentences tokenize to
    realistic lengths (a vocabulary of a few sentences spells unknown words letter by letter,
    which would triple the text encoder's work)."""
    from lesionloc_train.phantoms import generate_dataset

    train = Path(__file__).resolve().parents[1] / "data" / "phantoms-train-512" / "reports"
    if not train.is_dir():
        generate_dataset(work / "corpus", n=300, seed=3, width=256, height=256, workers=1,
                         write_png=False)
        train = work / "corpus" / "reports"
    return REPORT_SENTENCES + [p.read_text(encoding="utf-8") for p in sorted(train.glob("*.txt"))]


def make_full_checkpoint(out: Path, image_size: int = 448, seed: int = 0) -> Path:
    """A `full`-architecture checkpoint with random weights (no download needed)."""
    import torch

    from lesionloc_train.checkpoint import TrainingState, save_checkpoint
    from lesionloc_train.config import load_config
    from lesionloc_train.model import LesionLocModel
    from lesionloc_train.vocab import build_wordpiece_tokenizer, save_tokenizer

    cfg = load_config("full", [
        "model.image.backbone=null", f"model.image.resnet={json.dumps(RESNET50)}",
        f"model.image.image_size={image_size}",
        "model.text.model=null", f"model.text.bert={json.dumps(BIO_CLINICALBERT)}",
        "name=full-random",
    ])
    torch.manual_seed(seed)
    model = LesionLocModel(cfg.model).eval()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = save_tokenizer(build_wordpiece_tokenizer(report_corpus(out),
                                                         BIO_CLINICALBERT["vocab_size"]),
                               out / "tokenizer.json")
    return save_checkpoint(out, model, cfg, tokenizer, TrainingState(step=0), keep=1)


REFERENCE_REPORT = """EXAMINATION: Chest PA.
INDICATION: ___-year-old with cough and fever.
COMPARISON: None.
FINDINGS: {findings} No pulmonary edema. The mediastinal contours are unremarkable.
There is no pneumothorax.
"""


def write_reference_study(out: Path, size: int = 2048) -> tuple[Path, Path]:
    """The runtime issue's reference study in `out`: a 12-bit DICOM phantom `size` px square
    (the phantom set's film with the most findings) and a report of 8 sentences, 5 of them
    findings. Returns (image, report)."""
    from lesionloc_train.phantoms import generate_dataset

    generate_dataset(out, n=12, seed=5, width=size, height=size, workers=1, write_png=False)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    row = max(rows, key=lambda r: sum(s["kind"] == "finding" for s in r["sentences"]))
    findings = [s["text"] for s in row["sentences"] if s["kind"] == "finding"]
    fillers = ["There is a right upper lobe opacity.", "A small left pleural effusion is present.",
               "The heart is enlarged.", "There is a 6 mm nodule in the left mid lung.",
               "Right basal atelectasis."]
    findings = (findings + fillers)[:5]
    report = out / "reference_report.txt"
    report.write_text(REFERENCE_REPORT.format(findings=" ".join(" ".join(f.split()) for f in findings)))
    return out / row["image"], report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reference", type=Path, default=None,
                        help="only write the reference study (film and report) here and print "
                             "their paths (for scripts/study_ab.py and study_times.py)")
    parser.add_argument("--calibration", type=Path, default=None)
    parser.add_argument("--precisions", default="none,fp16,int8")
    parser.add_argument("--record", type=Path, default=None,
                        help="where to write the JSON record (default: OUT/export_record.json)")
    args = parser.parse_args()
    if args.reference is not None:
        from lesionloc_runtime.errors import ConfigError
        try:
            print(*write_reference_study(args.reference))
        except ConfigError:  # the phantom generator's refusal of a folder with files in it
            parser.exit(2, f"full_model.py: error: {args.reference} is not empty; give a new "
                           "or empty folder to --reference\n")
        return
    if args.out is None:
        parser.error("--out is required (or --reference)")
    from lesionloc_export.bundle_writer import ExportOptions, export_bundle

    t0 = time.perf_counter()
    ckpt = make_full_checkpoint(args.out / "checkpoint")
    record = {"machine": f"{platform.processor() or platform.machine()}, "
                         f"{len(os.sched_getaffinity(0))} CPUs", "checkpoint_seconds":
              time.perf_counter() - t0, "exports": {}}
    for precision in args.precisions.split(","):
        t = time.perf_counter()
        result = export_bundle(ckpt, args.out / f"bundle-{precision}", ExportOptions(
            quantize=precision, calibration=args.calibration, overwrite=True,
            calibration_images=32, parity_images=4))
        record["exports"][precision] = {
            "seconds": time.perf_counter() - t, "steps": result.seconds, "bytes": result.sizes,
            "parity": result.parity.to_dict()}
        print(precision, json.dumps(record["exports"][precision]["parity"]["cosine"]), flush=True)
    target = args.record or args.out / "export_record.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
