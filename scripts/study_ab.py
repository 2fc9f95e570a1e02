"""Compare two checkouts of lesionloc on the same study, step by step: processes of each in
turn (A, B, B, A, A, B, ...), each loading the model and timing studies as a service would (read the
film, localize the report with the sentence cache emptied, write the study page), so that both
see the same phases of a shared machine's speed. Prints the medians of every study of each
checkout: reading, localizing, writing and the whole study, wall time and CPU time, and the
wall time of the steps inside localizing (preprocessing, each encoder, the heatmaps).

    git worktree add /tmp/before HEAD~1
    python scripts/study_ab.py /tmp/before . BUNDLE IMAGE REPORT --rounds 6

A checkout is a folder holding lesionloc_runtime (put first on the child's sys.path)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_STEPS = ("read", "localize", "write", "study")
# Steps inside `localize` (its timings_ms), wall time only.
_INNER = ("preprocess", "image_encoder", "text_encoder", "heatmaps")

_CHILD = r"""
import json, os, sys, tempfile, time
import lesionloc_runtime
assert lesionloc_runtime.__file__.startswith(os.getcwd()), lesionloc_runtime.__file__
from pathlib import Path
from lesionloc_runtime.imageio import read_image
from lesionloc_runtime.localizer import Localizer
from lesionloc_runtime.outputs import write_study
bundle, image, report, studies, warmup = sys.argv[1:6]
INNER = sys.argv[6].split(",")
localizer = Localizer.load(bundle)
folder = tempfile.TemporaryDirectory(prefix="study-ab-")  # removed when the child ends
out = Path(folder.name)
times = []
for k in range(int(warmup) + int(studies)):
    if localizer.sentence_cache is not None:
        localizer.sentence_cache.clear()
    marks = [(time.perf_counter(), time.process_time())]
    radiograph = read_image(image, threads=localizer.threads)
    marks.append((time.perf_counter(), time.process_time()))
    result = localizer.localize(radiograph, report, study_id=f"s{k}")
    marks.append((time.perf_counter(), time.process_time()))
    write_study(result, radiograph, out)
    marks.append((time.perf_counter(), time.process_time()))
    if k >= int(warmup):
        steps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])]
        steps.append((marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]))
        inner = result.timings_ms
        steps += [(inner.get(name, 0.0) / 1e3, 0.0) for name in INNER]
        times.append(steps)
print(json.dumps(times))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="first checkout")
    parser.add_argument("b", type=Path, help="second checkout")
    parser.add_argument("bundle")
    parser.add_argument("image")
    parser.add_argument("report")
    parser.add_argument("--rounds", type=int, default=6, help="processes of each checkout")
    parser.add_argument("--studies", type=int, default=8, help="timed studies per process")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[list[tuple[float, float]]]] = {"a": [], "b": []}
    for round_ in range(args.rounds):
        for name in ("a", "b") if round_ % 2 == 0 else ("b", "a"):  # neither always first
            tree = getattr(args, name).resolve()
            # run in the checkout: `python -c` puts the working folder first on sys.path
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, *(str(Path(p).resolve()) for p in (
                    args.bundle, args.image, args.report)), str(args.studies), str(args.warmup),
                 ",".join(_INNER)],
                cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True,
                text=True, check=True)
            results[name] += json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("a", "b"):
        studies = results[name]
        cells = []
        for i, step in enumerate(_STEPS):
            wall = statistics.median(s[i][0] for s in studies) * 1e3
            cpu = statistics.median(s[i][1] for s in studies) * 1e3
            cells.append(f"{step} {wall:.1f} ms (CPU {cpu:.1f})")
        for i, step in enumerate(_INNER, len(_STEPS)):
            cells.append(f"{step} {statistics.median(s[i][0] for s in studies) * 1e3:.1f}")
        print(f"{name} {getattr(args, name)}: " + ", ".join(cells) + f"; {len(studies)} studies")


if __name__ == "__main__":
    main()
