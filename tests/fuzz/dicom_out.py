"""Fuzzing `--dicom-out`: the image target's mutated DICOMs that the reader accepts are run
through `lesionloc-run IMAGE --report R --dicom-out` with the demo model (sometimes with
--include-identifiers or synthetic ids), so damaged identifying and UID elements reach the
SR and secondary-capture writers. Each case must exit 0 with an SR and an SC that pydicom
reads back with valid UIDs, or refuse with one `error:` line; cases the reader refuses are
counted as such and not run.

    python tests/fuzz/dicom_out.py --cases 3000 [--start 0] [--timeout 30]
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness, images

REPORT = "FINDINGS: Right basal consolidation. No effusion.\nIMPRESSION: Pneumonia.\n"
OPTIONS = [["--include-identifiers"], ["--patient-id", "ANON1"], ["--accession", "A1"],
           ["--study-id", "s1"], ["--all-sentences"]]


def make_seeds(out: Path) -> None:
    """The image target's DICOM seeds, and a report."""
    images.make_seeds(out)
    for path in out.iterdir():
        if path.suffix != ".dcm":
            path.unlink()
    (out / "report.txt.seed").write_text(REPORT)


def _check_outputs(folder: Path) -> str:
    import pydicom
    from pydicom.uid import UID

    written = sorted(folder.glob("*/*.dcm"))
    if len(written) != 2:
        return f"PROBLEM exit 0 with {len(written)} DICOM files"
    for path in written:
        ds = pydicom.dcmread(path)
        for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            value = ds.get(keyword)
            if not (isinstance(value, str) and UID(value).is_valid):
                return f"PROBLEM {path.name}: {keyword} {value!r} is not a valid UID"
    return "exit 0"


def run_case(seeds: Path, case: int, work: Path) -> str:
    from lesionloc_runtime.cli import main
    from lesionloc_runtime.errors import ImageReadError
    from lesionloc_runtime.imageio import read_image

    harness.reuse_models()
    dicoms = sorted(p for p in seeds.iterdir() if p.suffix == ".dcm")
    seed = dicoms[case % len(dicoms)]
    image = work / "case.dcm"
    image.write_bytes(images.mutate(seed, case))
    try:
        read_image(image)
    except ImageReadError:
        return "reader refused"
    shutil.copy(seeds / "report.txt.seed", work / "report.txt")
    rng = random.Random(case)
    args = [str(image), "--report", str(work / "report.txt"), "--dicom-out", "--out",
            str(work / "out"), "-q", "--threads", "1"]
    for option in rng.sample(OPTIONS, rng.choice([0, 1, 2])):
        args += option
    outcome = harness.run_cli(main, args, {0, 3, 4})
    return _check_outputs(work / "out") if outcome == "exit 0" else outcome


TARGET = harness.Target("dicom_out", __file__, make_seeds, run_case, __doc__, timeout=30.0)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
