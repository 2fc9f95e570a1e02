"""Model -> bundle, end to end, for our checkpoints and for published models alike: export both
graphs, optimize, reduce precision, check parity against PyTorch, write tokenizer, model card
and the checksummed card `lesionloc.json`, verify by loading it like the runtime does, and
only then move it into place."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import lesionloc_runtime
from lesionloc_export.graphs import (
    export_image_encoder,
    export_text_encoder,
    optimize_image_encoder,
    optimize_text_encoder,
)
from lesionloc_export.packing import pack_text_graph
from lesionloc_export.parity import ParityReport, measure_parity
from lesionloc_export.quantize import (
    INT8_IMAGE_SCHEMES,
    convert_fp16,
    quantize_image_int8,
    quantize_text_int8,
)
from lesionloc_export.source import SourceFiles, SourceModel, load_source
from lesionloc_runtime.batch_manifest import read_manifest
from lesionloc_runtime.bundle import (
    CARD_NAME,
    IMAGE_ENCODER_FILE,
    TEXT_ENCODER_FILE,
    TOKENIZER_FILE,
    ModelBundle,
    write_card,
)
from lesionloc_runtime.contract import EncoderSpec
from lesionloc_runtime.errors import ConfigError, ExportError, OutputError
from lesionloc_runtime.fileio import CANNOT_WRITE, make_dir_public
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.preprocess import PreprocessConfig, preprocess
from lesionloc_runtime.text import read_report
from lesionloc_runtime.tokens import PACKED_POOLING, SentenceTokenizer, prepare_text

log = logging.getLogger(__name__)
PRECISIONS = ("none", "fp16", "int8")
TEXT_LAYOUTS = ("packed", "padded")


@dataclass
class ExportOptions:
    quantize: str = "int8"
    calibration: Path | None = None  # a manifest; default: freshly generated phantoms
    calibration_images: int = 64
    parity_images: int = 8
    allow_degraded: bool = False
    overwrite: bool = False
    name: str | None = None
    demo: bool = False
    trained_on: str | None = None
    heatmap: dict[str, Any] = field(default_factory=dict)
    seed: int = 1234
    source: str = "lesionloc"  # --from
    image_weights: Path | None = None  # --image-weights (BioViL, BioViL-T)
    text_model: Path | None = None  # --text-model (AFLoc)
    # --text-layout: "packed" (a report's sentences in one row, where the graph allows it:
    # lesionloc_export.packing) or "padded" (one row per sentence; what runtimes before
    # packed graphs read)
    text_layout: str = "packed"

    def __post_init__(self) -> None:
        if self.quantize not in PRECISIONS:
            raise ConfigError(f"--quantize must be one of {', '.join(PRECISIONS)}")
        if self.text_layout not in TEXT_LAYOUTS:
            raise ConfigError(f"--text-layout must be one of {', '.join(TEXT_LAYOUTS)}")
        if self.calibration_images < 1 or self.parity_images < 1:
            raise ConfigError("calibration and parity need at least one image each")


@dataclass
class ExportResult:
    bundle: Path
    parity: ParityReport
    seconds: dict[str, float]
    sizes: dict[str, int]


def export_bundle(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: ExportOptions,
    say: Callable[[str], None] = log.info,
) -> ExportResult:
    """Write a verified bundle at `out` from `checkpoint` (our checkpoint, or the published
    files of `options.source`). Nothing is written at `out` unless every step, including the
    parity check, succeeded; an existing bundle is replaced only then."""
    return export_bundles(checkpoint, {options.quantize: Path(out)}, options, say)[0]


def export_bundles(
    checkpoint: str | os.PathLike[str],
    outs: dict[str, Path],
    options: ExportOptions,
    say: Callable[[str], None] = log.info,
) -> list[ExportResult]:
    """`export_bundle` for several precisions ({"none": dir, "int8": dir2}) of one model: it
    is loaded, exported to ONNX and optimized once. `options.quantize` is ignored. A folder
    that cannot be written (full, read-only, not ours) is an OutputError naming it."""
    for out in outs.values():
        if out.exists() and not options.overwrite:
            raise ConfigError(f"{out} exists; pass --overwrite to replace it")
        if out.exists() and not (out / CARD_NAME).is_file() and any(out.iterdir()):
            raise ConfigError(f"{out} exists and is not a model bundle; refusing to replace it")
    try:
        return _export_all(checkpoint, outs, options, say)
    except OSError as exc:
        if exc.errno not in CANNOT_WRITE:  # its work folder (TMPDIR's), the bundle's place
            raise
        work = tempfile.gettempdir()  # TMPDIR's
        where = str(exc.filename or "")
        if not where:  # a write into an open file: either place
            where = (f"the export's work files in {work} or the bundle beside "
                     f"{', '.join(sorted({str(out) for out in outs.values()}))}")
        if not where.startswith(str(Path(next(iter(outs.values()))).parent)):
            where += " (the work folder is TMPDIR's: set TMPDIR to one with room)"
        raise OutputError(f"cannot write {where}: {exc.strerror or exc}", exc.errno) from None


def _export_all(checkpoint: str | os.PathLike[str], outs: dict[str, Path],
                options: ExportOptions, say: Callable[[str], None]) -> list[ExportResult]:
    from dataclasses import replace

    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lesionloc-export-") as work_dir:
        work = Path(work_dir)
        files = SourceFiles(Path(checkpoint), options.image_weights, options.text_model)
        model = load_source(options.source, files, options.heatmap, work)
        loaded = time.perf_counter() - t0
        for precision, out in outs.items():
            times = {"load": loaded}
            t1 = time.perf_counter()
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
            make_dir_public(staging)
            try:
                parity = _build(model, work, staging, replace(options, quantize=precision), say,
                                times)
                Localizer.load(ModelBundle.load(staging), threads=1)  # loads as the runtime will
                times["total"] = time.perf_counter() - t1 + loaded
                install(staging, out)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
            results.append(ExportResult(out, parity, times, sizes))
    return results


def _build(model: SourceModel, work: Path, staging: Path, options: ExportOptions,
           say: Callable[[str], None], times: dict[str, float]) -> ParityReport:
    """Graphs, tokenizer, parity and card into `staging`; raises when parity fails."""
    preprocessing = model.preprocessing
    calibration_paths, held = held_out_images(options, preprocessing, work)
    # preprocessed once, and only when int8 needs them
    calibration = [preprocess(read_image(p), preprocessing).tensor
                   for p in calibration_paths] if options.quantize == "int8" else []
    say("exporting ONNX graphs")
    fusions, packed = build_graphs(model, work, staging, options, calibration, say, times)
    shutil.copyfile(model.tokenizer, staging / TOKENIZER_FILE)
    say("checking parity against PyTorch")
    t = time.perf_counter()
    scheme = INT8_IMAGE_SCHEMES[0] if options.quantize == "int8" else None
    parity = check_parity(model, staging, options, held, packed)
    for fallback in INT8_IMAGE_SCHEMES[1:] if scheme else ():
        if parity.passed:
            break
        say(f"int8 {scheme} below parity; trying {fallback}")
        scheme = fallback
        quantize_image_int8(work / "image_raw.onnx", staging / IMAGE_ENCODER_FILE,
                            calibration, scheme)
        parity = check_parity(model, staging, options, held, packed)
    times["parity"] = time.perf_counter() - t
    if not parity.passed:
        message = "; ".join(parity.failures)
        if not options.allow_degraded:
            raise ExportError(f"parity below the {options.quantize} thresholds: {message} "
                              "(pass --allow-degraded to keep it anyway)")
        say(f"warning: parity degraded ({message}); kept because of --allow-degraded")
    (staging / "MODEL_CARD.md").write_text(model_card(model, options, parity), encoding="utf-8")
    write_card(staging, bundle_card(model, options, parity, fusions, scheme, packed))
    return parity


def install(staging: Path, out: Path) -> None:
    """Swap the finished bundle into place; an old bundle is removed only after the swap."""
    if out.exists():
        backup = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, backup)
        os.replace(staging, out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, out)


def build_graphs(model: SourceModel, work: Path, staging: Path, options: ExportOptions,
                 calibration: list[np.ndarray], say: Callable[[str], None],
                 times: dict[str, float]) -> tuple[dict[str, int], str | None]:
    """The two graphs into `staging`: the fused operators' counts, and how the text graph
    pools packed windows (None: it takes padded rows)."""
    t = time.perf_counter()
    size = model.preprocessing.image_size
    image_raw, text_raw = work / "image_raw.onnx", work / "text_raw.onnx"
    config = model.text_backbone.config
    fusions_file = work / "fusions.json"
    if not fusions_file.is_file():  # a second precision of the same model reuses them
        export_image_encoder(model.image_graph, size, image_raw)
        export_text_encoder(model.text_graph, model.text_backbone, text_raw)
        times["onnx_export"] = time.perf_counter() - t
        t = time.perf_counter()
        fusions = optimize_text_encoder(config, text_raw, work / "text_opt.onnx")
        fusions_file.write_text(json.dumps(fusions))
        times["optimize"] = time.perf_counter() - t
    fusions = json.loads(fusions_file.read_text())
    t = time.perf_counter()
    image_out, text_out = staging / IMAGE_ENCODER_FILE, staging / TEXT_ENCODER_FILE
    if options.quantize == "none":
        optimize_image_encoder(image_raw, image_out)
        shutil.copyfile(work / "text_opt.onnx", text_out)
    elif options.quantize == "fp16":
        convert_fp16(image_raw, image_out)
        optimize_text_encoder(config, text_raw, text_out, fp16=True)
    else:
        say(f"calibrating int8 on {len(calibration)} images")
        quantize_image_int8(image_raw, image_out, calibration, INT8_IMAGE_SCHEMES[0])
        quantize_text_int8(work / "text_opt.onnx", text_out)
    times["quantize"] = time.perf_counter() - t
    packed = None
    pooling = PACKED_POOLING.get(model.text.pooling)
    # fp16 is for GPUs, where padding costs little; AFLoc's pooling is not packed
    if options.text_layout == "packed" and options.quantize != "fp16" and pooling:
        if pack_text_graph(text_out, text_out, pooling):
            packed = pooling
        else:
            say("the text graph could not be packed; it takes one padded row per sentence")
    return fusions, packed


def held_out_images(options: ExportOptions, preprocessing: PreprocessConfig,
                    work: Path) -> tuple[list[Path], list[Path]]:
    """(calibration image paths, held-out paths): disjoint sets of real or phantom studies. The
    held-out paths are the parity images and their reports (for parity texts)."""
    total = options.calibration_images + options.parity_images
    manifest = options.calibration
    if manifest is None:
        manifest = work / "phantoms" / "manifest.jsonl"
        if not manifest.is_file():
            from lesionloc_train.phantoms import generate_dataset

            size = max(256, preprocessing.image_size)
            generate_dataset(manifest.parent, n=total, seed=options.seed, width=size, height=size,
                             workers=1, progress=False)
    records, _ = read_manifest(manifest, max_rows=total)
    if len(records) < 2:
        raise ConfigError(f"{manifest}: calibration needs at least 2 usable studies")
    split = max(1, min(options.calibration_images, len(records) - 1))
    held = records[split:]
    return [r.image for r in records[:split]], [r.report for r in held] + [r.image for r in held]


def check_parity(model: SourceModel, staging: Path, options: ExportOptions,
                 held: list[Path], packed: str | None = None) -> ParityReport:
    from lesionloc_runtime.sessions import OnnxEncoder
    from lesionloc_train.torch_backend import TorchEncoder

    images_paths = [p for p in held if p.suffix != ".txt"][: options.parity_images]
    reports = [p for p in held if p.suffix == ".txt"]
    images = [preprocess(read_image(p), model.preprocessing).tensor for p in images_paths]
    texts: list[str] = []
    for report in reports:
        texts.extend(prepare_text(s.text, model.text.preparation)
                     for s in read_report(report).sentences)
    texts = (texts or ["There is a right upper lobe opacity."])[:64]
    tokenizer = SentenceTokenizer(staging / TOKENIZER_FILE, model.max_length)
    ref = (TorchEncoder(model.image_graph, "image"), TorchEncoder(model.text_graph, "text"))
    spec_image, spec_text = graph_specs(model, bool(packed))
    cand = (OnnxEncoder(staging / IMAGE_ENCODER_FILE, spec_image, threads=None),
            OnnxEncoder(staging / TEXT_ENCODER_FILE, spec_text, threads=None))
    return measure_parity(options.quantize, ref, cand, images, tokenizer.encode(texts),
                          packed=(None, packed))


def graph_specs(model: SourceModel, packed: bool = False) -> tuple[EncoderSpec, EncoderSpec]:
    size = model.preprocessing.image_size
    return (EncoderSpec.image(IMAGE_ENCODER_FILE, size, model.grid.shape, model.embed_dim),
            EncoderSpec.text(TEXT_ENCODER_FILE, model.embed_dim, packed))


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {"lesionloc": lesionloc_runtime.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def _trained_on(model: SourceModel, options: ExportOptions) -> str:
    return options.trained_on or ("synthetic phantoms" if options.demo else model.trained_on)


def bundle_card(model: SourceModel, options: ExportOptions, parity: ParityReport,
                fusions: dict[str, int], int8_scheme: str | None = None,
                packed: str | None = None) -> dict[str, Any]:
    spec_image, spec_text = graph_specs(model, bool(packed))
    return {
        "name": options.name or f"{model.default_name}-{options.quantize}",
        "demo": options.demo,
        "trained_on": _trained_on(model, options),
        "quantization": options.quantize,
        **model.card(),
        "image_encoder": {**spec_image.to_dict(),
                          "precision": {"none": "fp32", "fp16": "fp16",
                                        "int8": f"int8 static QDQ per-channel ({int8_scheme})"}
                          [options.quantize]},
        "text_encoder": {**spec_text.to_dict(),
                         "precision": {"none": "fp32", "fp16": "fp16",
                                       "int8": "int8 dynamic"}[options.quantize],
                         "fusions": fusions},
        "tokenizer": {"file": TOKENIZER_FILE, "max_length": model.max_length},
        "parity": parity.to_dict(),
        "provenance": {**model.provenance, "versions": _versions()},
    }


def model_card(model: SourceModel, options: ExportOptions, parity: ParityReport) -> str:
    warning = (
        "**DEMO MODEL trained only on synthetic phantom radiographs. Its output has no clinical "
        "meaning. Not for clinical use.**" if options.demo else
        "**Research model. Not a medical device; not validated for clinical use.**"
    )
    cos = parity.to_dict()["cosine"]
    lines = [f"# Model card: {options.name or model.default_name}", "", warning, "",
             *model.describe(_trained_on(model, options)), "",
             "## Export", f"- precision: {options.quantize}",
             "- parity (cosine to PyTorch on held-out inputs): "
             + ", ".join(f"{k} mean {v['mean']:.5f} worst {v['min']:.5f}" for k, v in cos.items()),
             ""]
    return "\n".join(lines)


def describe(result: ExportResult) -> str:
    """The export's summary (stdout): the bundle, its text graph's layout, parity, times."""
    bundle = ModelBundle.load(result.bundle, verify=False)
    layout = (f"packed ({bundle.packed_pooling})" if bundle.packed_pooling else "padded")
    return json.dumps({"bundle": str(result.bundle), "text_layout": layout,
                       "parity": result.parity.to_dict(),
                       "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                       "bytes": result.sizes}, indent=2)
