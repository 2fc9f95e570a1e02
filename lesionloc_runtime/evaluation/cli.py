"""`lesionloc-evaluate`: zero-shot localization of a model bundle on a benchmark (phantoms,
MS-CXR, RSNA Pneumonia, SIIM-ACR Pneumothorax, COVID Rural), as a table and JSON/Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lesionloc_runtime.cli_common import HELP_OPTIONS, Command, run_guarded
from lesionloc_runtime.errors import ConfigError, DataError
from lesionloc_runtime.evaluation.datasets import BENCHMARKS, open_dataset
from lesionloc_runtime.evaluation.prompts import load_prompts
from lesionloc_runtime.evaluation.runner import DEFAULT_SCORE_SIZE, HeatmapProvider, evaluate
from lesionloc_runtime.evaluation.summary import summarize, write_summary
from lesionloc_runtime.metrics import DEFAULT_THRESHOLD

__all__ = ["command", "main", "make_provider"]


def make_provider(
    model: str | None, providers: tuple[str, ...], threads: int | None
) -> tuple[HeatmapProvider, dict[str, Any]]:
    """The heatmap provider and its provenance. Tests replace this function with a fake."""
    from lesionloc_runtime.localizer import Localizer  # ONNX Runtime loads only when needed

    localizer = Localizer.load(model, providers=providers, threads=threads)
    return localizer, localizer.bundle.provenance(localizer.providers)  # as a study records it


class _Command(Command):
    """Runs the command under the shared guard: a user error (LesionlocError) becomes
    `error: <one line>` on stderr and its exit code, never a traceback; bugs still raise."""

    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(lambda: super(_Command, self).invoke(ctx), terminate=True)


@click.command(cls=_Command, context_settings=HELP_OPTIONS)
@click.option("--dataset", required=True, type=click.Choice(list(BENCHMARKS)),
              help="Benchmark to score.")
@click.option("--root", required=True, type=click.Path(path_type=Path),
              help="Folder holding the data set in its official layout (docs/evaluation.md).")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model bundle directory (default: the embedded demo model).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write <dataset>.json, <dataset>.md and <dataset>-samples.csv here.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Score at most N images (the first N found on disk).")
@click.option("--prompts", "prompts_file", type=click.Path(path_type=Path), default=None,
              help='JSON {"category": "prompt"} overriding the default prompts.')
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, min_open=True),
              default=DEFAULT_THRESHOLD, show_default=True,
              help="Threshold of the min-max normalized heatmap for IoU, Dice, precision, recall.")
@click.option("--split", default=None,
              help="all, a split name (phantoms: test by default), or a file of image ids.")
@click.option("--images", type=click.Path(path_type=Path), default=None,
              help="Image folder when not in the documented place under --root.")
@click.option("--score-size", type=click.IntRange(min=0), default=DEFAULT_SCORE_SIZE,
              show_default=True,
              help="Score on a grid whose long side is at most this (0: full resolution).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime intra-op threads.")
@click.option("--providers", default="cpu", show_default=True,
              help="Execution providers, comma-separated (cpu, cuda), or openvino: the image "
                   "encoder on OpenVINO's runtime.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def command(
    dataset: str, root: Path, model: Path | None, out: Path | None, limit: int | None,
    prompts_file: Path | None, threshold: float, split: str | None, images: Path | None,
    score_size: int, threads: int | None, providers: str, progress: bool,
) -> None:
    """Score a model's heatmaps against a benchmark's boxes or masks."""
    user_prompts = load_prompts(prompts_file)
    data = open_dataset(dataset, root, split=split, prompts=user_prompts, images=images)
    provider, provenance = make_provider(
        None if model is None else str(model),
        tuple(p.strip() for p in providers.split(",") if p.strip()),
        threads,
    )
    run = evaluate(data, provider, threshold=threshold, score_size=score_size, limit=limit,
                   progress=progress)
    summary = summarize(run, data, provenance, user_prompts)
    click.echo(summary.to_text())
    if out is not None:
        try:
            written = write_summary(summary, run.samples, out)
        except OSError as exc:
            raise ConfigError(f"{out}: cannot write the results ({exc.strerror})") from None
        for path in written:
            click.echo(f"wrote {path}", err=True)
    if not run.samples:
        raise DataError(
            f"nothing was scored: {len(run.log.missing_images)} images missing, "
            f"{run.log.unreadable_images} unreadable, {run.log.malformed_rows} malformed rows "
            f"under {root}"
        )


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    command.main(args=argv, prog_name="lesionloc-evaluate")


if __name__ == "__main__":
    main()
