"""`lesionloc-run`: ground a report's sentences (or free-text queries) on a chest radiograph,
one study or a whole directory/manifest. A thin layer over `Localizer` and `batch`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from lesionloc_runtime.batch import RunSettings
from lesionloc_runtime.cli_common import run_guarded
from lesionloc_runtime.errors import ConfigError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Report text file of a single study.")
@click.option("--reports", type=click.Path(path_type=Path), default=None,
              help="Batch mode: directory of <image stem>.txt reports (default: beside the images).")
@click.option("--query", "queries", multiple=True, metavar="TEXT",
              help="Free text to ground, instead of or as well as the report (repeatable).")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model bundle directory (default: the embedded phantom-trained demo model).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("lesionloc-out"),
              show_default=True, help="Output directory; each study writes OUT/<study id>/.")
@click.option("--all-sentences", is_flag=True,
              help="Also make heatmaps for negated and normal sentences.")
@click.option("--save-raw", is_flag=True, help="Also write each heatmap as float32 .npy.")
@click.option("--report-score", is_flag=True,
              help="Also score the whole report against the image (one more text pass).")
@click.option("--dicom-out", is_flag=True,
              help="Also write a DICOM SR (TID 1500) and a secondary-capture overlay.")
@click.option("--patient-id", default=None, help="Synthetic patient ID for --dicom-out from PNG/JPEG.")
@click.option("--patient-name", default=None, help="Synthetic patient name for --dicom-out from PNG/JPEG.")
@click.option("--accession", default=None, help="Synthetic accession number for --dicom-out from PNG/JPEG.")
@click.option("--study-id", default=None, help="Study id for a single study (default: image file stem).")
@click.option("--include-identifiers", is_flag=True,
              help="Copy DICOM patient/study identifiers into the study JSON (off by default).")
@click.option("--providers", default="cpu", show_default=True,
              help="Execution providers, comma-separated: cpu, cuda.")
@click.option("--threads", type=int, default=None, help="Threads per process (default: all cores).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Batch mode: parallel worker processes.")
@click.option("--shard", default=None, metavar="I/N", help="Batch mode: process only shard I of N (0-based).")
@click.option("--json", "as_json", is_flag=True, help="Print the study JSON (single study).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-sentence lines.")
def main(source: Path, report: Path | None, reports: Path | None, queries: tuple[str, ...],
         model: Path | None, out: Path, all_sentences: bool, save_raw: bool, report_score: bool,
         dicom_out: bool,
         patient_id: str | None, patient_name: str | None, accession: str | None,
         study_id: str | None, include_identifiers: bool, providers: str, threads: int | None,
         workers: int, shard: str | None, as_json: bool, quiet: bool) -> None:
    """Localize what a report says on a chest radiograph.

    SOURCE is an image (DICOM, PNG, JPEG) with --report and/or --query, or, for batch mode,
    a directory of images (reports matched by file stem) or a manifest.jsonl.
    """
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    provider_list = tuple(p.strip() for p in providers.split(",") if p.strip())

    def work() -> int:
        from lesionloc_runtime.outputs import OutputOptions

        output = OutputOptions(save_raw=save_raw, dicom_out=dicom_out,
                               include_identifiers=include_identifiers,
                               synthetic_ids=_synthetic_ids(dicom_out, patient_id, patient_name,
                                                            accession, study_id))
        settings = RunSettings(str(model) if model else None, provider_list, threads, queries,
                               "all" if all_sentences else "findings", out, output, report_score)
        if source.is_dir() or source.suffix == ".jsonl":
            return _batch(source, reports, settings, workers, shard, quiet)
        if report is None and not queries:
            raise ConfigError("give --report REPORT.txt and/or --query TEXT for the image")
        return _single(source, report, settings, study_id, as_json, quiet)

    sys.exit(run_guarded(work))


def _synthetic_ids(dicom_out: bool, patient_id: str | None, patient_name: str | None,
                   accession: str | None, study_id: str | None) -> object | None:
    if not dicom_out:
        return None
    from lesionloc_runtime.dicom_out import SyntheticIds

    kwargs = {k: v for k, v in (("patient_id", patient_id), ("patient_name", patient_name),
                                ("accession_number", accession), ("study_id", study_id)) if v}
    return SyntheticIds(**kwargs)


def _single(image: Path, report: Path | None, settings: RunSettings, study_id: str | None,
            as_json: bool, quiet: bool) -> int:
    from lesionloc_runtime.imageio import read_image
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_runtime.outputs import write_study

    localizer = Localizer.load(settings.model, providers=settings.providers,
                               threads=settings.threads)
    radiograph = read_image(image)
    result = localizer.localize(radiograph, report, queries=settings.queries,
                                ground=settings.ground, study_id=study_id,
                                report_score=settings.report_score)
    written = write_study(result, radiograph, settings.out, settings.output)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return 0
    click.echo(str(result.model.get("notice", "")))
    if not quiet:
        for s in result.sentences:
            where = ""
            if s.peak is not None:
                where = f" peak=({s.peak[0]:.0f},{s.peak[1]:.0f}) boxes={len(s.boxes)}"
            click.echo(f"[{s.index + 1:2d}] {s.kind:8s} score={s.score:+.3f}{where}  {s.text}")
    folder = written.parent
    click.echo(f"overlays: {len(result.grounded)} sentence overlay(s) and summary.png in {folder}/; "
               f"results: {written}")
    return 0


def _batch(source: Path, reports: Path | None, settings: RunSettings, workers: int,
           shard: str | None, quiet: bool) -> int:
    from lesionloc_runtime.batch import discover, format_summary, parse_shard, run_batch

    index, count = parse_shard(shard)
    tasks = discover(source, reports)[index::count]
    name = "batch_summary.json" if count == 1 else f"batch_summary.shard-{index}-of-{count}.json"
    summary = run_batch(tasks, settings, workers=max(1, workers), progress=not quiet,
                        summary_name=name)
    click.echo(format_summary(summary))
    click.echo(f"results in {settings.out}/ (summary: {settings.out / name})")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    main()
