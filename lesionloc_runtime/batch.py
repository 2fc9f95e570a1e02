"""Batch mode: many studies from a directory or a manifest, with progress, per-study errors
reported and skipped, resume (finished studies are skipped), `--shard i/n` for clusters and
`--workers N` processes (each with its own sessions, created once)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from lesionloc_runtime.errors import ConfigError, DataError, LesionlocError
from lesionloc_runtime.fileio import atomic_write_json
from lesionloc_runtime.imageio import IMAGE_SUFFIXES
from lesionloc_runtime.manifest import iter_manifest_rows
from lesionloc_runtime.outputs import OutputOptions, is_done

REPORT_SUFFIXES = (".txt", ".TXT")


@dataclass(frozen=True)
class StudyTask:
    study_id: str
    image: Path
    report: Path | None


@dataclass(frozen=True)
class RunSettings:
    """Everything a worker needs to localize and write a study (picklable)."""

    model: str | None
    providers: tuple[str, ...]
    threads: int | None
    queries: tuple[str, ...]
    ground: str
    out: Path
    output: OutputOptions
    report_score: bool = False


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    already_done: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"studies_per_second": self.done / self.seconds if self.seconds else 0}


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' with 0 <= i < n (0-based, so `--shard $SLURM_ARRAY_TASK_ID/$N` works as is)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def discover(source: Path, reports: Path | None) -> list[StudyTask]:
    """Studies in a manifest (.jsonl: image + report per row) or a directory of images, with
    reports matched by file stem in `reports` (default: the image's own directory)."""
    if source.is_file() and source.suffix == ".jsonl":
        return _from_manifest(source)
    if not source.is_dir():
        raise DataError(f"{source}: not a directory or a .jsonl manifest")
    tasks: list[StudyTask] = []
    seen: set[str] = set()
    for image in sorted(p for p in source.rglob("*") if p.is_file()):
        if image.suffix.lower() not in IMAGE_SUFFIXES or image.name.startswith("."):
            continue
        if image.suffix == "" and not _looks_like_dicom(image):
            continue  # PACS exports often drop extensions: take those that say they are DICOM
        study_id = image.relative_to(source).with_suffix("").as_posix().replace("/", "__")
        if study_id in seen:
            study_id = f"{study_id}__{image.suffix.lstrip('.').lower()}"
        seen.add(study_id)
        folder = reports or image.parent
        report = next((folder / f"{image.stem}{s}" for s in REPORT_SUFFIXES
                       if (folder / f"{image.stem}{s}").is_file()), None)
        tasks.append(StudyTask(study_id, image, report))
    if not tasks:
        raise DataError(f"{source}: no image files (.dcm, .png, .jpg) found")
    return tasks


def _looks_like_dicom(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _from_manifest(path: Path) -> list[StudyTask]:
    tasks = []
    for line_no, row in iter_manifest_rows(path):
        if row is None or "image" not in row:
            raise DataError(f"{path}:{line_no}: malformed row (needs at least 'image')")
        image = path.parent / row["image"]
        report = path.parent / row["report"] if row.get("report") else None
        tasks.append(StudyTask(str(row.get("study_id", image.stem)), image, report))
    if not tasks:
        raise DataError(f"{path}: the manifest has no rows")
    return tasks


_WORKER: dict[str, Any] = {}


def _init_worker(settings: RunSettings) -> None:
    from lesionloc_runtime.localizer import Localizer

    _WORKER["localizer"] = Localizer.load(settings.model, providers=settings.providers,
                                          threads=settings.threads)
    _WORKER["settings"] = settings


def process_study(task: StudyTask) -> dict[str, Any]:
    """Localize and write one study in this process; errors come back as data."""
    from lesionloc_runtime.imageio import read_image
    from lesionloc_runtime.outputs import write_study

    settings: RunSettings = _WORKER["settings"]
    start = time.perf_counter()
    try:
        if task.report is None and not settings.queries:
            raise DataError(f"{task.image.name}: no report found (expected {task.image.stem}.txt)")
        radiograph = read_image(task.image)
        result = _WORKER["localizer"].localize(radiograph, task.report, queries=settings.queries,
                                               ground=settings.ground, study_id=task.study_id,
                                               report_score=settings.report_score)
        write_study(result, radiograph, settings.out, settings.output)
    except LesionlocError as exc:
        return {"study_id": task.study_id, "ok": False, "error": " ".join(str(exc).split())}
    except Exception as exc:  # a bug on one study must not stop the other studies of a batch
        import traceback

        traceback.print_exc()
        return {"study_id": task.study_id, "ok": False,
                "error": f"internal error ({type(exc).__name__}: {exc}); please report it"}
    return {"study_id": task.study_id, "ok": True,
            "seconds": time.perf_counter() - start}


def run_batch(tasks: Sequence[StudyTask], settings: RunSettings, workers: int = 1,
              progress: bool = True, summary_name: str = "batch_summary.json") -> BatchSummary:
    from tqdm import tqdm

    summary = BatchSummary(total=len(tasks))
    todo = [t for t in tasks if not is_done(settings.out, t.study_id)]
    summary.already_done = len(tasks) - len(todo)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="study", disable=not progress, desc="lesionloc")
    kill_after = int(os.environ.get("LESIONLOC_FAULT_KILL_AFTER_STUDIES", "0"))
    for count, outcome in enumerate(_dispatch(todo, settings, workers), 1):
        if kill_after and count > kill_after:  # fault injection for the resume tests
            os.kill(os.getpid(), signal.SIGKILL)
        if outcome["ok"]:
            summary.done += 1
        else:
            summary.failed.append({"study_id": outcome["study_id"], "error": outcome["error"]})
            bar.write(f"error: {outcome['study_id']}: {outcome['error']}")
        bar.update()
    bar.close()
    summary.seconds = time.perf_counter() - start
    settings.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(settings.out / summary_name, summary.to_dict())
    return summary


def _dispatch(todo: Sequence[StudyTask], settings: RunSettings,
              workers: int) -> Iterator[dict[str, Any]]:
    """Results in input order; one process with its own sessions per worker."""
    if not todo:
        return
    if workers <= 1:
        _init_worker(settings)
        for task in todo:
            yield process_study(task)
        return
    per_worker = RunSettings(**{**settings.__dict__,
                                "threads": settings.threads or max(1, (os.cpu_count() or 1) // workers)})
    # spawn, not fork: ONNX Runtime's thread pools do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(per_worker,)) as pool:
        yield from pool.map(process_study, todo, chunksize=1)


def format_summary(summary: BatchSummary) -> str:
    rate = summary.done / summary.seconds if summary.seconds else 0.0
    lines = [f"{summary.done} studies done, {summary.already_done} already done, "
             f"{len(summary.failed)} failed, {summary.seconds:.1f} s ({rate:.2f} studies/s)"]
    lines += [f"  failed: {f['study_id']}: {f['error']}" for f in summary.failed[:20]]
    if len(summary.failed) > 20:
        lines.append(f"  ... and {len(summary.failed) - 20} more (see the summary JSON)")
    return "\n".join(lines)


def dumps(summary: BatchSummary) -> str:
    return json.dumps(summary.to_dict(), indent=2)
