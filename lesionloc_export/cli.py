"""`lesionloc-export SOURCE --from lesionloc|afloc|biovil|biovil-t --out BUNDLE --quantize
{none,fp16,int8}`: a thin CLI over `export_bundle`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from lesionloc_runtime.cli_common import HELP_OPTIONS, Command, run_guarded
from lesionloc_runtime.errors import ConfigError


@click.command(cls=Command, context_settings=HELP_OPTIONS)
@click.argument("checkpoint", metavar="SOURCE", type=click.Path(path_type=Path))
@click.option("--from", "source", type=click.Choice(["lesionloc", "afloc", "biovil", "biovil-t"]),
              default="lesionloc", show_default=True,
              help="What SOURCE is: a lesionloc checkpoint, AFLoc's .ckpt, or the Hugging Face "
                   "snapshot of BioViL (microsoft/BiomedVLP-CXR-BERT-specialized) or BioViL-T.")
@click.option("--image-weights", type=click.Path(path_type=Path), default=None,
              help="BioViL/BioViL-T: the image weights .pt, when not inside the snapshot.")
@click.option("--text-model", type=click.Path(path_type=Path), default=None,
              help="AFLoc: the Bio_ClinicalBERT snapshot its checkpoint was trained from "
                   "(vocab.txt, config.json).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Bundle directory to write.")
@click.option("--quantize", type=click.Choice(["none", "fp16", "int8"]), default="int8",
              show_default=True, help="none = fp32 (CPU), fp16 (GPU), int8 (CPU, fastest).")
@click.option("--text-layout", type=click.Choice(["packed", "padded"]), default="packed",
              show_default=True,
              help="packed: a report's sentences run as one sequence of tokens (faster on "
                   "CPUs; fp32 and int8); padded: one row per "
                   "sentence, which runtimes older than packed text graphs read.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Manifest of images for int8 calibration and parity (default: generated phantoms).")
@click.option("--calibration-images", type=int, default=64, show_default=True)
@click.option("--parity-images", type=int, default=8, show_default=True)
@click.option("--allow-degraded", is_flag=True, help="Keep a bundle whose parity is below thresholds.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle (only once the new one is good).")
@click.option("--name", default=None, help="Bundle name recorded in lesionloc.json.")
@click.option("--demo", is_flag=True, help="Mark as a phantom-trained demo model (every output says so).")
@click.option("--trained-on", default=None, help="What the model was trained on (model card).")
@click.option("--heatmap", "heatmap", multiple=True, metavar="KEY=VALUE",
              help="Override a heatmap default, e.g. --heatmap smoothing_sigma=1.0")
@click.option("-v", "--verbose", is_flag=True)
def main(checkpoint: Path, source: str, image_weights: Path | None, text_model: Path | None,
         out: Path, quantize: str, text_layout: str, calibration: Path | None,
         calibration_images: int, parity_images: int, allow_degraded: bool, overwrite: bool,
         name: str | None, demo: bool, trained_on: str | None, heatmap: tuple[str, ...],
         verbose: bool) -> None:
    """Export SOURCE as a verified ONNX model bundle: a lesionloc training checkpoint
    (directory, model.safetensors, or run directory), or a published model's files (--from)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")

    def work() -> None:
        from lesionloc_export.bundle_writer import ExportOptions, describe, export_bundle

        overrides = {}
        for item in heatmap:
            key, _, value = item.partition("=")
            try:
                overrides[key] = json.loads(value)
            except (ValueError, RecursionError):  # also a number of 5,000 digits
                raise ConfigError(f"--heatmap {item[:80]!r}: expected KEY=NUMBER") from None
        options = ExportOptions(
            quantize=quantize, calibration=calibration, calibration_images=calibration_images,
            parity_images=parity_images, allow_degraded=allow_degraded, overwrite=overwrite,
            name=name, demo=demo, trained_on=trained_on, heatmap=overrides, source=source,
            image_weights=image_weights, text_model=text_model, text_layout=text_layout)
        result = export_bundle(checkpoint, out, options,
                               say=lambda m: click.echo(m, err=True))
        click.echo(describe(result))

    run_guarded(work, terminate=True)


if __name__ == "__main__":
    sys.exit(main())
