"""Fuzzing `read_image`: deterministic mutations of seed files (the real DICOMs in
../shared/data/real-dicom when present, generated DICOMs of every transfer syntax we can
write, PNG, JPEG and TIFF). Every case must either read as a valid radiograph or raise a
one-line LesionlocError, print nothing on stderr, and finish in seconds.

test_reader_fuzz.py runs a few hundred cases in the test suite. The long campaign is a
command; each case runs in a child process, so a crash or a hang is caught and named:

    python tests/reader_fuzz.py --cases 49000 [--start 0] [--timeout 20]

It prints one line per problem and a count per outcome; case N is reproduced by
`python tests/reader_fuzz.py --show N`, which writes the mutated file and reads it.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REAL_DICOM = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dicom"
# Header values a damaged or hostile file may carry, by keyword.
_NUMBERS = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 65535]
_DECIMALS = ["0", "-1", "1e308", "-1e308", "nan", "inf", "abc", "", "1\\2", "1e-40", "40000"]
_HEADER_VALUES: dict[str, list[object]] = {
    "Rows": _NUMBERS, "Columns": _NUMBERS, "BitsAllocated": _NUMBERS, "BitsStored": _NUMBERS,
    "HighBit": _NUMBERS, "PixelRepresentation": [0, 1, 2], "SamplesPerPixel": [0, 1, 2, 3],
    "PhotometricInterpretation": ["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL", "", "X"],
    "WindowCenter": _DECIMALS, "WindowWidth": _DECIMALS, "RescaleSlope": _DECIMALS,
    "RescaleIntercept": _DECIMALS, "NumberOfFrames": ["0", "2", "-1", "abc"],
    "PixelSpacing": [*_DECIMALS, "0\\0", "-1\\2"], "PresentationLUTShape": ["INVERSE", "X"],
    "VOILUTFunction": ["SIGMOID", "LINEAR_EXACT", "X"], "Modality": ["SR", "US", ""],
}
_RAW = {"WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept", "PixelSpacing",
        "NumberOfFrames"}  # written as raw bytes: pydicom would not hold invalid values


def make_seeds(out: Path, real: bool = True) -> list[Path]:
    """Write the seed files into `out` (emptied first): the real DICOMs too if `real` and they
    are there. Sorted, so a case number always means the same file."""
    from pydicom import uid
    from pydicom.pixels import get_encoder
    from test_imageio_dicom import dataset, encapsulated, jpeg_lossless, save, synthetic

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if real and REAL_DICOM.is_dir():
        for path in REAL_DICOM.glob("*.dcm"):
            shutil.copy(path, out / f"real-{path.name}")
    pixels, pixels8 = synthetic(12), synthetic(8)
    save(dataset(pixels), out / "gen-explicit.dcm")
    save(dataset(pixels, syntax=uid.ImplicitVRLittleEndian), out / "gen-implicit.dcm")
    save(dataset(pixels), out / "gen-no-meta.dcm", file_format=False)
    save(dataset(pixels, WindowCenter=2000, WindowWidth=1500, RescaleSlope=1,
                 RescaleIntercept=-1024), out / "gen-window.dcm")
    save(dataset(pixels, photometric="MONOCHROME1"), out / "gen-mono1.dcm")
    for syntax in (uid.RLELossless, uid.JPEG2000Lossless, uid.JPEGLSLossless):
        if get_encoder(syntax).is_available:
            ds = dataset(pixels)
            ds.compress(syntax)
            save(ds, out / f"gen-{syntax.keyword}.dcm")
    ok, jpeg = cv2.imencode(".jpg", pixels8)
    encapsulated(out, uid.JPEGBaseline8Bit, jpeg.tobytes(), pixels8, 8, "gen-jpeg-baseline.dcm")
    encapsulated(out, uid.JPEGLosslessSV1, jpeg_lossless(pixels, 12, 1), pixels, 12,
                 "gen-jpeg-lossless.dcm")
    cv2.imwrite(str(out / "raster8.png"), pixels8)
    cv2.imwrite(str(out / "raster16.png"), pixels.astype(np.uint16) * 16)
    cv2.imwrite(str(out / "rgba.png"), np.dstack([pixels8] * 4))
    cv2.imwrite(str(out / "raster.jpg"), pixels8)
    cv2.imwrite(str(out / "raster.tif"), pixels.astype(np.uint16))
    return sorted(out.iterdir())


def _damaged_header(data: bytes, rng: random.Random) -> bytes | None:
    import pydicom
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:
        return None
    for _ in range(rng.randint(1, 3)):
        keyword = rng.choice(list(_HEADER_VALUES))
        value = rng.choice(_HEADER_VALUES[keyword])
        tag = tag_for_keyword(keyword)
        if keyword in _RAW:
            raw = str(value).encode() + (b" " if len(str(value)) % 2 else b"")
            ds[tag] = RawDataElement(Tag(tag), dictionary_VR(tag), len(raw), raw, 0, False, True)
        else:
            setattr(ds, keyword, value)
    if rng.random() < 0.25:  # a Modality or VOI LUT whose descriptor and data disagree
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        item = Dataset()
        item.LUTDescriptor = [rng.choice([0, 1, 4, 256, 4096]), rng.choice([0, 100, 40000]),
                              rng.choice([0, 8, 12, 16, 17])]
        entries = rng.choice([0, 1, 2, 256, 4096, 5000])
        item.LUTData = [rng.randrange(65536) for _ in range(entries)]
        setattr(ds, rng.choice(["VOILUTSequence", "ModalityLUTSequence"]), Sequence([item]))
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=False)
    except Exception:
        return None
    return buffer.getvalue()


def mutate(seed: Path, case: int) -> bytes:
    """Case `case` of `seed`: byte flips (biased to the header), a cut, inserted or zeroed
    bytes, a duplicated run, or for DICOM damaged header values (and a quarter of those a
    Modality or VOI LUT that does not fit)."""
    import warnings

    rng = random.Random(case)
    data = bytearray(seed.read_bytes())
    how = rng.choice(["flip", "flip", "cut", "insert", "zero", "repeat", "header", "header"])
    if how == "header" and seed.suffix == ".dcm":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the values we set
            damaged = _damaged_header(bytes(data), rng)
        if damaged is not None:
            return damaged
    n = len(data)
    if how == "cut":
        return bytes(data[: rng.randrange(n)])
    if how == "insert":
        at = rng.randrange(n)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 64])))
    elif how == "zero":
        at = rng.randrange(n)
        span = min(rng.choice([4, 64, 1024]), n - at)
        data[at:at + span] = bytes(span)
    elif how == "repeat":
        at = rng.randrange(n)
        end = rng.randrange(at, min(n, at + 4096) + 1)
        data[end:end] = data[at:end]
    else:
        for _ in range(rng.choice([1, 2, 5, 20, 100])):
            at = rng.randrange(min(n, 2048)) if rng.random() < 0.6 else rng.randrange(n)
            data[at] = rng.randrange(256)
    return bytes(data)


def outcome(path: Path) -> str:
    """'ok', 'refused <ErrorClass>', or a problem starting with 'PROBLEM'."""
    from lesionloc_runtime.errors import LesionlocError
    from lesionloc_runtime.imageio import read_image

    try:
        pixels = read_image(path).pixels
    except LesionlocError as exc:
        message = str(exc)
        if "\n" in message or not message.isprintable():
            return f"PROBLEM message not one printable line: {message[-160:]!r}"
        return f"refused {type(exc).__name__}"
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return f"PROBLEM {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    if (pixels.dtype != np.float32 or pixels.ndim != 2 or not np.isfinite(pixels).all()
            or pixels.min() < 0 or pixels.max() > 1):
        return "PROBLEM output is not a 2-D float32 image in [0, 1]"
    return "ok"


def _child(seeds_dir: Path, start: int, end: int) -> None:
    """Run cases [start, end), one 'S case' line before and one 'R case outcome' after each;
    fd 2 goes to a file per case, and anything printed there is a problem."""
    seeds = sorted(seeds_dir.iterdir())
    work = Path(tempfile.mkdtemp(prefix="reader-fuzz-"))
    saved = os.dup(2)
    for case in range(start, end):
        seed = seeds[case % len(seeds)]
        path = work / f"case{seed.suffix}"
        path.write_bytes(mutate(seed, case))
        print(f"S {case} {seed.name}", flush=True)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                result = outcome(path)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
            sink.seek(0)
            printed = sink.read().decode("utf-8", "replace").strip()
        if printed and not result.startswith("PROBLEM"):
            result = f"PROBLEM printed on stderr: {' | '.join(printed.splitlines()[:2])[:200]}"
        print(f"R {case} {result}", flush=True)
    shutil.rmtree(work, ignore_errors=True)


def campaign(seeds_dir: Path, start: int, end: int, timeout: float) -> Counter[str]:
    """Cases [start, end) in child processes; after a crash or a hang, a new child goes on
    with the next case."""
    counts: Counter[str] = Counter()
    following = start  # the first case not yet finished
    while following < end:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", str(seeds_dir), str(following), str(end)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert child.stdout is not None
        running = ""  # the case the child is on, as "N (seed)"
        while True:
            ready, _, _ = select.select([child.stdout], [], [], timeout)
            line = child.stdout.readline() if ready else ""
            if not line:
                if not ready:
                    child.kill()
                code = child.wait()
                if ready and code == 0 and not running:
                    following = end  # the child did every case
                    break
                what = "hang" if not ready else f"crash (exit {code})"
                print(f"case {running or following}: PROBLEM {what}", flush=True)
                counts[f"PROBLEM {what.split()[0]}"] += 1
                following += 1
                break
            kind, number, rest = line.rstrip("\n").split(" ", 2)
            if kind == "S":
                running = f"{number} ({rest})"
                continue
            running, following = "", int(number) + 1
            if rest.startswith("PROBLEM"):
                print(f"case {number}: {rest}", flush=True)
                rest = "PROBLEM"
            counts[rest] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds without progress")
    parser.add_argument("--show", type=int, default=None, help="write and read case N")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child[0]), int(args.child[1]), int(args.child[2]))
        return
    seeds_dir = Path(tempfile.mkdtemp(prefix="reader-fuzz-seeds-"))
    seeds = make_seeds(seeds_dir)
    if args.show is not None:
        seed = seeds[args.show % len(seeds)]
        path = Path(f"fuzz-case-{args.show}{seed.suffix}")
        path.write_bytes(mutate(seed, args.show))
        print(f"{path} (from {seed.name}): {outcome(path)}")
        return
    real = "with" if REAL_DICOM.is_dir() else "without"
    print(f"{len(seeds)} seeds ({real} the real DICOMs), cases {args.start} to "
          f"{args.start + args.cases - 1}", flush=True)
    began = time.perf_counter()
    counts = campaign(seeds_dir, args.start, args.start + args.cases, args.timeout)
    shutil.rmtree(seeds_dir, ignore_errors=True)
    print(", ".join(f"{n} {what}" for what, n in counts.most_common())
          + f" in {time.perf_counter() - began:.0f} s")
    sys.exit(1 if any(what.startswith("PROBLEM") for what in counts) else 0)


if __name__ == "__main__":
    main()
