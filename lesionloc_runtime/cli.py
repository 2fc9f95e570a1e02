"""`lesionloc-run`: ground a report's sentences (or free-text queries) on a chest radiograph,
one study or a whole directory/manifest. A thin layer over `Localizer` and `batch`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lesionloc_runtime.batch import RunSettings
from lesionloc_runtime.cli_common import HELP_OPTIONS, Command, run_guarded
from lesionloc_runtime.errors import EXIT_OK, EXIT_STUDIES_FAILED, ConfigError, OutputError
from lesionloc_runtime.imageio.capture import terminal_stderr
from lesionloc_runtime.sentence_cache import DEFAULT_ENTRIES

if TYPE_CHECKING:
    from lesionloc_runtime.batch import BatchSummary
    from lesionloc_runtime.results import SentenceResult

__all__ = ["main"]


@click.command(cls=Command, context_settings=HELP_OPTIONS)
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
@click.option("--overlays", is_flag=True,
              help="Also write burned-in overlay PNGs (sentence_NN.png) and summary.png.")
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
              help="Copy DICOM patient/study identifiers into the study JSON and page (off by default).")
@click.option("--providers", default="cpu", show_default=True,
              help="Execution providers, comma-separated: cpu, cuda; or openvino: the image encoder on "
                   "OpenVINO's runtime (faster on Intel CPUs with AMX), the text encoder on cpu; "
                   "compiled once a machine, kept in $LESIONLOC_OPENVINO_CACHE (default "
                   "~/.cache/lesionloc/openvino; off: not kept).")
@click.option("--threads", type=int, default=None,
              help="Threads per process (default: the CPUs this process can use).")
@click.option("--sentence-cache", type=int, default=DEFAULT_ENTRIES, show_default=True,
              metavar="N", help="Sentences whose embeddings each process keeps, so a sentence "
              "repeated across a batch is encoded once (0: none).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Batch mode: parallel worker processes (at most one per CPU this process "
              "can use: its affinity and a container's CPU limit count).")
@click.option("--shard", default=None, metavar="I/N", help="Batch mode: process only shard I of N (0-based).")
@click.option("--json", "as_json", is_flag=True, help="Print the study JSON (single study).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-sentence lines.")
def main(source: Path, report: Path | None, reports: Path | None, queries: tuple[str, ...],
         model: Path | None, out: Path, all_sentences: bool, overlays: bool, save_raw: bool,
         report_score: bool, dicom_out: bool,
         patient_id: str | None, patient_name: str | None, accession: str | None,
         study_id: str | None, include_identifiers: bool, providers: str, threads: int | None,
         sentence_cache: int, workers: int, shard: str | None, as_json: bool, quiet: bool) -> None:
    """Localize what a report says on a chest radiograph.

    SOURCE is an image (DICOM, PNG, JPEG) with --report and/or --query, or, for batch mode,
    a directory of images (reports matched by file stem) or a manifest.jsonl.
    """
    # through terminal_stderr: a warning printed while another thread decodes a film reaches
    # the terminal instead of that film's decoder notes
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s",
                        stream=terminal_stderr())
    provider_list = tuple(p.strip() for p in providers.split(",") if p.strip())

    def work() -> int:
        from lesionloc_runtime.outputs import OutputOptions, check_out_dir

        batch = source.is_dir() or source.suffix == ".jsonl"
        _check_options(source, batch, report=report, reports=reports, study_id=study_id,
                       as_json=as_json, shard=shard, workers=workers, threads=threads,
                       sentence_cache=sentence_cache)
        check_out_dir(out)
        output = OutputOptions(save_raw=save_raw, dicom_out=dicom_out, overlays=overlays,
                               include_identifiers=include_identifiers, index_link=batch,
                               synthetic_ids=_synthetic_ids(dicom_out, patient_id, patient_name,
                                                            accession, study_id))
        settings = RunSettings(str(model) if model else None, provider_list, threads, queries,
                               "all" if all_sentences else "findings", out, output, report_score,
                               sentence_cache)
        if batch:
            return _batch(source, reports, settings, workers, shard, quiet)
        if report is None and not queries:
            raise ConfigError("give --report REPORT.txt and/or --query TEXT for the image")
        return _single(source, report, settings, study_id, as_json, quiet)

    sys.exit(run_guarded(work, terminate=True))


_MAX_THREADS = 256


def _check_options(source: Path, batch: bool, *, report: Path | None, reports: Path | None,
                   study_id: str | None, as_json: bool, shard: str | None, workers: int,
                   threads: int | None, sentence_cache: int) -> None:
    """Refuse options that would be ignored in this mode, or that cannot work, before any work."""
    from lesionloc_runtime.outputs import study_id_problem

    if workers < 1:
        raise ConfigError(f"--workers {workers}: need at least 1")
    if threads is not None and not 1 <= threads <= _MAX_THREADS:
        raise ConfigError(f"--threads {threads}: need 1 to {_MAX_THREADS} "
                          "(default: the CPUs this process can use)")
    if sentence_cache < 0:
        raise ConfigError(f"--sentence-cache {sentence_cache}: need 0 (none) or more")
    if batch:
        if report is not None:
            where = ("each manifest row names its 'report'" if not source.is_dir() else
                     "reports are matched by file stem, beside the images or in --reports DIR")
            raise ConfigError(f"--report is for a single image; {source} is batch input, where "
                              f"{where}")
        if study_id is not None:
            raise ConfigError("--study-id is for a single image; in batch mode study ids come "
                              "from the file paths or the manifest's 'study_id'")
        if as_json:
            raise ConfigError("--json is for a single image; in batch mode each study's JSON is "
                              "OUT/<study id>/study.json")
        if reports is not None and not source.is_dir():
            raise ConfigError("--reports is for a directory of images; a manifest names each "
                              "study's 'report'")
        if reports is not None and not reports.is_dir():
            state = "does not exist" if not reports.exists() else "is not a directory"
            raise ConfigError(f"--reports {reports}: {state}")
        return
    for name, given in (("--reports", reports is not None), ("--shard", shard is not None),
                        ("--workers", workers > 1)):
        if given:
            raise ConfigError(f"{name} is for batch mode (SOURCE a directory of images or a "
                              f"manifest.jsonl); {source} is a single image")
    if study_id is not None and (problem := study_id_problem(study_id)):
        raise ConfigError(f"--study-id {study_id!r} {problem}: it names the folder OUT/<study id>/")


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
    from lesionloc_runtime.localizer import Localizer
    from lesionloc_runtime.outputs import derived_study_id, write_study

    study_id = study_id or derived_study_id(image.stem)
    localizer = Localizer.load(settings.model, providers=settings.providers,
                               threads=settings.threads, sentence_cache=settings.sentence_cache)
    radiograph = localizer.read_image(image)
    result = localizer.localize(radiograph, report, queries=settings.queries,
                                ground=settings.ground, study_id=study_id,
                                report_score=settings.report_score)
    written = write_study(result, radiograph, settings.out, settings.output)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    click.echo(str(result.model.get("notice", "")))
    if not quiet:
        for s in result.sentences:
            click.echo(_sentence_line(s))
    click.echo(f"open {written.parent / 'study.html'}  (results: {written})")
    return EXIT_OK


def _sentence_line(s: SentenceResult) -> str:
    """A sentence as the summary prints it; a hedged finding's kind reads "finding?"."""
    kind = f"{s.kind}?" if s.uncertain else s.kind
    where = ""
    if s.peak is not None:
        where = f" peak=({s.peak[0]:.0f},{s.peak[1]:.0f}) boxes={len(s.boxes)}"
    return f"[{s.index + 1:2d}] {kind:9s} score={s.score:+.3f}{where}  {s.text}"


def _batch(source: Path, reports: Path | None, settings: RunSettings, workers: int,
           shard: str | None, quiet: bool) -> int:
    from lesionloc_runtime.batch import parse_shard, run_batch
    from lesionloc_runtime.batch_discovery import discover
    from lesionloc_runtime.cpuinfo import usable_cpus

    index, count = parse_shard(shard)
    if workers > (cpus := usable_cpus()):  # three workers on two CPUs: 4% fewer studies a second
        logging.getLogger(__name__).warning(
            "--workers %d: this process can use %d CPU%s (its affinity and CPU limit); more "
            "workers than CPUs take time from each other", workers, cpus, "s" * (cpus > 1))
    tasks = discover(source, reports, skip=settings.out)[index::count]
    name = "batch_summary.json" if count == 1 else f"batch_summary.shard-{index}-of-{count}.json"
    summary = run_batch(tasks, settings, workers=workers, progress=not quiet, summary_name=name)
    click.echo(_format_summary(summary))
    if summary.failed:
        click.echo(_format_failures(summary), err=True)
    if summary.stopped:
        raise OutputError(summary.stopped)
    click.echo(f"open {settings.out / 'index.html'}  (summary: {settings.out / name})")
    return EXIT_STUDIES_FAILED if summary.failed else EXIT_OK


def _format_summary(summary: BatchSummary) -> str:
    """The counts, one line (stdout); `_format_failures` has the failures (stderr)."""
    rate = summary.done / summary.seconds if summary.seconds else 0.0
    skipped = f", {len(summary.skipped)} skipped (no image)" if summary.skipped else ""
    return (f"{summary.done} studies done, {summary.already_done} already done, "
            f"{len(summary.failed)} failed{skipped}, {summary.seconds:.1f} s ({rate:.2f} studies/s)")


def _format_failures(summary: BatchSummary) -> str:
    lines = [f"  failed: {f['study_id']}: {f['error']}" for f in summary.failed[:20]]
    if len(summary.failed) > 20:
        lines.append(f"  ... and {len(summary.failed) - 20} more (see the summary JSON)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
