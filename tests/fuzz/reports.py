"""Fuzzing report text end to end: mutated report files (hostile characters, separators and
headers inserted, spans deleted or repeated, other encodings, damaged bytes) are decoded,
parsed and localized with the demo model on a fixed image, sometimes with a mutated sentence
as a query too. Each case must give a valid study (sentences of one line each, finite
scores, peaks and boxes inside the image, a strict-JSON study document) or a one-line
LesionlocError, and print nothing on stderr.

    python tests/fuzz/reports.py --cases 3000 [--start 0] [--timeout 60]

Its time limit is longer than the others': a repeated span can make a report of a thousand
sentences, each grounded, which is slow but no hang.
"""

from __future__ import annotations

import functools
import math
import random
import re
import shutil
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness

# the report reader's public names; the one line to change when they move
from lesionloc_runtime.text import decode_report, parse_report

EXAMPLES = Path(__file__).resolve().parents[2] / "lesionloc_runtime" / "demo" / "examples"
REPORTS = {
    "sections.txt": (
        "EXAMINATION: CHEST (PA AND LAT)\nINDICATION: ___ with cough.\nCOMPARISON: None.\n\n"
        "FINDINGS:\nThere is a 2.5 cm opacity in the right upper lobe, e.g. a mass. No\n"
        "pneumothorax. The heart size is normal. Mild blunting of the left costophrenic\n"
        "angle (approx. 1 cm) may represent a small effusion vs. atelectasis.\n\n"
        "IMPRESSION:\n1. Right upper lobe mass.\n2. Possible small left pleural effusion.\n"
        "Signed: Dr. ___\n"),
    "no-headers.txt": "Right basal consolidation. No effusion. Lungs otherwise clear.",
    "one-line.txt": "Small apical pneumothorax on the left",
    "identifiers.txt": (
        "Patient: DOE^JOHN  MRN 12345678\nAccession: A1\n\nFINDINGS: Bibasilar atelectasis. "
        "Cardiomegaly.\nIMPRESSION: No acute cardiopulmonary process.\n"),
    "list.txt": (
        "FINDINGS:\n- Nodule, 7 mm, RUL.\n- Effusion: none.\n* Lines and tubes: ETT 4.5 cm "
        "above the carina.\n\nIMPRESSION:\n  1) Nodule.  2) No effusion.\n"),
}


def make_seeds(out: Path) -> None:
    """The report texts above and the demo's example reports, and one small radiograph-like
    PNG that every case is localized on."""
    import cv2

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name, text in REPORTS.items():
        (out / name).write_text(text, encoding="utf-8")
    for example in sorted(EXAMPLES.glob("*.txt")):
        shutil.copy(example, out / f"demo-{example.name}")
    y, x = np.mgrid[0:256, 0:224].astype(np.float32)
    image = 0.3 + 0.4 * np.exp(-((x - 112) / 20) ** 2) + 0.2 * np.sin(y / 17) ** 2
    cv2.imwrite(str(out / "image.png"), np.clip(image * 255, 0, 255).astype(np.uint8))


@functools.cache
def _localizer_and_image(seeds: Path):
    from lesionloc_runtime.imageio import read_image
    from lesionloc_runtime.localizer import Localizer

    return Localizer.load(threads=1), read_image(seeds / "image.png")


def mutate(text: str, rng: random.Random) -> bytes:
    """Mutated text, encoded as a file might hold it; a tenth of the cases damaged as bytes."""
    data = harness.encode_text(harness.mutate_text(text, rng), rng)
    return harness.damage(data, rng) if rng.random() < 0.1 else data


# what a folded sentence must not hold: line breaks and control characters (unassigned or
# private-use characters are text like any other)
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_study(result, width: int, height: int) -> str:
    """'ok N sentences', or what is wrong with a localized study."""
    for s in result.sentences:
        if not s.text or _BREAKS.search(s.text) or not math.isfinite(s.score):
            return f"PROBLEM sentence {s.text[:80]!r} score {s.score}"
        if s.peak is not None and not (0 <= s.peak[0] <= width and 0 <= s.peak[1] <= height):
            return f"PROBLEM peak {s.peak} outside {width}x{height}"
        for box in s.boxes:
            if (box.x < 0 or box.y < 0 or box.x + box.width > width + 1e-3
                    or box.y + box.height > height + 1e-3 or not math.isfinite(box.score)):
                return f"PROBLEM box {box} outside {width}x{height}"
    problem = harness.json_problem(result.to_dict())
    return f"PROBLEM study document {problem}" if problem else f"ok {len(result.sentences)}"


def run_case(seeds: Path, case: int, work: Path) -> str:
    rng = random.Random(case)
    texts = sorted(p for p in seeds.iterdir() if p.suffix == ".txt")
    data = mutate(rng.choice(texts).read_text(encoding="utf-8"), rng)
    (work / "report.txt").write_bytes(data)  # for --show
    report = parse_report(decode_report(data, "report.txt"))
    queries = []
    if report.sentences and rng.random() < 0.2:
        queries.append(harness.mutate_text(rng.choice(report.sentences).text, rng))
    localizer, image = _localizer_and_image(seeds)
    result = localizer.localize(image, report, queries=queries,
                                ground=rng.choice(["findings", "all"]))
    outcome = check_study(result, image.width, image.height)
    return "ok" if outcome.startswith("ok") else outcome


TARGET = harness.Target("reports", __file__, make_seeds, run_case, __doc__, timeout=60.0)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
