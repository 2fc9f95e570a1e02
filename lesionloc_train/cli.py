"""`lesionloc-train`: pretrain, make phantoms (synth, synth-preview), prepare MIMIC-CXR
manifests and build the preprocessing cache. Each subcommand is a thin layer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from lesionloc_runtime.cli_common import HELP_OPTIONS, Group, run_guarded
from lesionloc_runtime.cpuinfo import usable_cpus


@click.group(cls=Group, context_settings=HELP_OPTIONS)
@click.option("-v", "--verbose", is_flag=True)
def main(verbose: bool) -> None:
    """Train lesionloc models and make their data."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@main.command()
@click.option("--preset", "presets", multiple=True, default=("full",), show_default=True,
              help="Preset name (tiny, demo, full, global_only, local_only) or JSON file; "
                   "repeat to merge, e.g. --preset demo --preset global_only.")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="Training manifest.jsonl (rows of split 'train', or all rows without a split).")
@click.option("--val-manifest", type=click.Path(path_type=Path), default=None,
              help="Validation manifest (default: the 'val' split of --manifest).")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Preprocessed image cache built by `lesionloc-train cache`.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory.")
@click.option("--resume", default=None, help="'latest' (this run's newest checkpoint) or a path.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. --set optim.lr=3e-4 (JSON values).")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--no-progress", is_flag=True)
def pretrain(presets: tuple[str, ...], manifest: Path | None, val_manifest: Path | None,
             cache: Path | None, out: Path, resume: str | None, overrides: tuple[str, ...],
             max_steps: int | None, device: str | None, no_progress: bool) -> None:
    """Pretrain the image-report model (global + local sentence losses). Under torchrun,
    trains with DDP across all processes."""
    def work() -> None:
        from lesionloc_train.config import load_config
        from lesionloc_train.train import pretrain as run

        items = list(overrides)
        if manifest:
            items.append(f"data.train_manifest={manifest}")
        if val_manifest:
            items.append(f"data.val_manifest={val_manifest}")
        if cache:
            items.append(f"data.cache={cache}")
        if max_steps:
            items.append(f"optim.max_steps={max_steps}")
        cfg = load_config(list(presets), items)
        result = run(cfg, out, resume=resume, device=device, progress=not no_progress)
        if int(os.environ.get("RANK", "0")) == 0:
            loss = result.last.get("loss")
            loss_text = f", last loss {loss:.4f}" if loss is not None else ""
            click.echo(f"trained {result.state.step} steps{loss_text}; checkpoint: {result.checkpoint}")

    run_guarded(work)


@main.command()
@click.option("--manifest", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Cache directory.")
@click.option("--preset", "presets", multiple=True, default=("full",), show_default=True,
              help="The preset whose preprocessing (image size) the cache is for.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--dtype", type=click.Choice(["uint16", "uint8"]), default="uint16", show_default=True)
@click.option("--workers", type=int, default=usable_cpus(), show_default=True,
              help="Processes (default: the CPUs this process can use).")
def cache(manifest: Path, out: Path, presets: tuple[str, ...], overrides: tuple[str, ...],
          dtype: str, workers: int) -> None:
    """Decode and preprocess every image of a manifest once, into a memory-mapped cache."""
    def work() -> None:
        from lesionloc_runtime.batch_manifest import read_manifest
        from lesionloc_train.cache import ImageCache
        from lesionloc_train.config import load_config

        cfg = load_config(list(presets), list(overrides))
        records, stats = read_manifest(manifest)
        built = ImageCache.build(records, cfg.preprocess_config(), out, dtype=dtype, workers=workers)
        click.echo(f"cached {len(records) - len(built.errors)} images at "
                   f"{cfg.preprocess_config().image_size} px in {out} "
                   f"({len(built.errors)} unreadable, {sum(stats.skipped.values())} rows skipped)")

    run_guarded(work)


def _register_optional() -> None:
    """Subcommands that live in their own modules."""
    from lesionloc_train.mimic import prepare_mimic
    from lesionloc_train.phantoms.cli import synth, synth_preview

    main.add_command(synth, "synth")
    main.add_command(synth_preview, "synth-preview")
    main.add_command(prepare_mimic, "prepare-mimic")


_register_optional()


if __name__ == "__main__":
    main()
