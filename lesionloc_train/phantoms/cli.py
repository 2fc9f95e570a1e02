"""Command-line entry points for phantoms: `synth` writes a data set, `synth_preview` draws a
montage of it. Both are registered into the `lesionloc-train` group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from lesionloc_runtime.cli_common import Command, guarded
from lesionloc_runtime.errors import ConfigError
from lesionloc_train.phantoms.dataset import generate_dataset
from lesionloc_train.phantoms.options import STYLES, PhantomOptions
from lesionloc_train.phantoms.preview import make_montage, write_montage


def parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--split-fractions must be three numbers like 0.8,0.1,0.1; got "
                          f"{text!r}") from None
    if len(parts) != 3:
        raise ConfigError(f"--split-fractions needs exactly three numbers (train,val,test); got "
                          f"{text!r}")
    return parts[0], parts[1], parts[2]


def resolve_size(size: int | None, width: int | None, height: int | None) -> tuple[int, int]:
    if size is not None and (width is not None or height is not None):
        raise ConfigError("give either --size or --width/--height, not both")
    if (width is None) != (height is None):
        raise ConfigError("--width and --height go together; give both (or --size)")
    if size is not None:
        return size, size
    if width is not None and height is not None:
        return width, height
    return 512, 512


@click.command("synth", cls=Command)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write the data set into (created if missing).")
@click.option("--n", "n", type=int, default=1000, show_default=True, help="Number of studies.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed gives byte-identical files.")
@click.option("--size", type=int, default=None,
              help="Square image side in pixels (default 512; 2048 for benchmark studies).")
@click.option("--width", type=int, default=None, help="Image width (with --height).")
@click.option("--height", type=int, default=None, help="Image height (with --width).")
@click.option("--split-fractions", default="0.8,0.1,0.1", show_default=True,
              help="Train,val,test fractions of the studies.")
@click.option("--workers", type=int, default=None,
              help="Worker processes (default: one per CPU core for large sets).")
@click.option("--png/--no-png", "write_png", default=True, show_default=True,
              help="Also write 16-bit PNG copies of the images.")
@click.option("--overwrite", is_flag=True, help="Replace phantoms already in --out.")
@click.option("--without", "without", default="", metavar="FEATURES",
              help="Comma-separated real-film features to leave out: "
                   + ", ".join(PhantomOptions.switches()) + ".")
@click.option("--style", type=click.Choice(STYLES), default="trained", show_default=True,
              help="Report phrasings and marker typefaces: the trained ones, or the held-out "
                   "ones no training set uses (to measure transfer).")
def synth(out_dir: Path, n: int, seed: int, size: int | None, width: int | None,
          height: int | None, split_fractions: str, workers: int | None, write_png: bool,
          overwrite: bool, without: str, style: str) -> None:
    """Generate synthetic chest radiograph phantoms with grounded reports."""
    with guarded():
        w, h = resolve_size(size, width, height)
        fractions = parse_fractions(split_fractions)
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        options = PhantomOptions(style=style).without(without.split(","))
        summary = generate_dataset(out_dir, n, seed, w, h, fractions, workers, write_png,
                                   overwrite, progress=True, options=options)
    splits = ", ".join(f"{k} {summary.splits.get(k, 0)}" for k in ("train", "val", "test"))
    click.echo(f"Wrote {summary.n} studies of {w}x{h} ({splits}; {summary.normal} normal) to "
               f"{summary.out_dir}")
    click.echo(f"Manifest: {summary.manifest}")


@click.command("synth-preview", cls=Command)
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Montage PNG to write (default DATA_DIR/preview.png).")
@click.option("--n", "n", type=int, default=12, show_default=True,
              help="Number of studies to show.")
@click.option("--cols", type=int, default=4, show_default=True)
@click.option("--tile", type=int, default=384, show_default=True, help="Tile size in pixels.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Only studies of this split.")
def synth_preview(data_dir: Path, out_path: Path | None, n: int, cols: int, tile: int,
                  split: str | None) -> None:
    """Draw a montage of phantom studies with their boxes and finding sentences."""
    with guarded():
        if n < 1 or cols < 1 or tile < 64:
            raise ConfigError("--n and --cols must be at least 1 and --tile at least 64")
        montage = make_montage(data_dir, n, tile, cols, split)
        target = out_path or Path(data_dir) / "preview.png"
        write_montage(montage, target)
    click.echo(f"Wrote {target}")


COMMANDS: tuple[Callable[..., None], ...] = (synth, synth_preview)
