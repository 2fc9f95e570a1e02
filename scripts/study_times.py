"""Time one study again and again in one process, as a service that keeps its model loaded
would run it: read the film, localize the report's sentences (the sentence cache emptied each
time: every study's sentences new), write the study page. For comparing settings or
surroundings a benchmark does not cover, such as a CPU limit:

    systemd-run --scope -p CPUQuota=50% python scripts/study_times.py BUNDLE IMAGE REPORT

(or the process put in a cgroup with a CFS quota by hand). Prints the threads the localizer
took, the median and the slowest of the timed studies, and each one; with --json, every timed
study's steps (wall and CPU time of reading, localizing, writing and the whole study, and the
wall time of the steps inside localizing), which scripts/study_ab.py reads."""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.outputs import write_study

STEPS = ("read", "localize", "write", "study")
# Steps inside `localize` (its timings_ms), wall time only.
INNER = ("preprocess", "image_encoder", "text_encoder", "heatmaps")


def timed_studies(localizer: Localizer, image: str, report: str, studies: int,
                  warmup: int) -> list[dict[str, float]]:
    """Each timed study's steps in ms: STEPS (wall) and STEP_cpu, and INNER (wall)."""
    times = []
    # as lesionloc-run reads; a checkout from before Localizer.read_image (study_ab.py) reads
    # with read_image on the localizer's threads
    read = getattr(localizer, "read_image", None) or (
        lambda path: read_image(path, threads=localizer.threads))
    with tempfile.TemporaryDirectory(prefix="study-times-") as folder:
        for k in range(warmup + studies):
            if localizer.sentence_cache is not None:
                localizer.sentence_cache.clear()
            marks = [(time.perf_counter(), time.process_time())]
            radiograph = read(image)
            marks.append((time.perf_counter(), time.process_time()))
            result = localizer.localize(radiograph, report, study_id=f"s{k}")
            marks.append((time.perf_counter(), time.process_time()))
            write_study(result, radiograph, Path(folder))
            marks.append((time.perf_counter(), time.process_time()))
            if k < warmup:
                continue
            spans = [*zip(marks, marks[1:], strict=False), (marks[0], marks[-1])]
            steps = {}
            for name, (a, b) in zip(STEPS, spans, strict=True):
                steps[name], steps[f"{name}_cpu"] = (b[0] - a[0]) * 1e3, (b[1] - a[1]) * 1e3
            steps |= {name: result.timings_ms.get(name, 0.0) for name in INNER}
            times.append(steps)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("image")
    parser.add_argument("report")
    parser.add_argument("--threads", type=int, default=None, help="default: the runtime's")
    parser.add_argument("--providers", default="cpu")
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="every study's steps, as JSON")
    args = parser.parse_args()
    localizer = Localizer.load(args.bundle, providers=tuple(args.providers.split(",")),
                               threads=args.threads)
    times = timed_studies(localizer, args.image, args.report, args.studies, args.warmup)
    if args.json:
        package = importlib.util.find_spec("lesionloc_runtime").origin  # which checkout ran
        print(json.dumps({"package": package, "studies": times}))
        return
    timed = [study["study"] for study in times]
    print(f"threads {localizer.threads}, {args.providers}: median {statistics.median(timed):.0f} ms, "
          f"slowest {max(timed):.0f}, each {[round(t) for t in timed]}")


if __name__ == "__main__":
    main()
