"""Time one study again and again in one process, as a service that keeps its model loaded
would run it: read the film, localize the report's sentences (the sentence cache emptied each
time: every study's sentences new), write the study page. For comparing settings or
surroundings a benchmark does not cover, such as a CPU limit:

    systemd-run --scope -p CPUQuota=50% python scripts/study_times.py BUNDLE IMAGE REPORT

(or the process put in a cgroup with a CFS quota by hand). Prints the threads the localizer
took, the median and the slowest of the timed studies, and each one."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.outputs import write_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("image")
    parser.add_argument("report")
    parser.add_argument("--threads", type=int, default=None, help="default: the runtime's")
    parser.add_argument("--providers", default="cpu")
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    localizer = Localizer.load(args.bundle, providers=tuple(args.providers.split(",")),
                               threads=args.threads)
    folder = tempfile.TemporaryDirectory(prefix="study-times-")  # removed at the end
    out = Path(folder.name)
    times = []
    for k in range(args.warmup + args.studies):
        if localizer.sentence_cache is not None:
            localizer.sentence_cache.clear()
        start = time.perf_counter()
        radiograph = read_image(args.image)
        write_study(localizer.localize(radiograph, args.report, study_id=f"s{k}"), radiograph, out)
        times.append((time.perf_counter() - start) * 1e3)
    timed = times[args.warmup:]
    print(f"threads {localizer.threads}, {args.providers}: median {statistics.median(timed):.0f} ms, "
          f"slowest {max(timed):.0f}, each {[round(t) for t in timed]}")


if __name__ == "__main__":
    main()
