"""Fuzzing `read_image`: deterministic mutations of seed files (the public real DICOMs when
present, see tests/conftest.py; generated DICOMs of every transfer syntax we can write, PNG,
JPEG and TIFF). Every case must either read as a valid radiograph or raise a one-line
LesionlocError, print nothing on stderr, and finish in seconds.

    python tests/fuzz/images.py --cases 49000 [--start 0] [--timeout 20]

It prints one line per problem and a count per outcome; case N is reproduced by
`python tests/fuzz/images.py --show N`, which writes the mutated file and reads it.
"""

from __future__ import annotations

import io
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

if not __package__:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import harness

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


def make_seeds(out: Path, real: bool = True) -> None:
    """Write the seed files into `out` (emptied first): the public real DICOMs too if `real`
    and they are there. Sorted, so a case number always means the same file."""
    from pydicom import uid
    from pydicom.pixels import get_encoder
    from test_imageio_dicom import dataset, encapsulated, jpeg_lossless, save, synthetic

    from conftest import real_data_dirs

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for folder in real_data_dirs() if real else []:
        for path in folder.glob("*.dcm"):
            if not (out / f"real-{path.name}").exists():  # the first folder that has it
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
    try:  # HTJ2K, which pydicom cannot write: imagecodecs' encoder, when it has one
        import imagecodecs

        if imagecodecs.HTJ2K.available:
            encapsulated(out, uid.HTJ2KLossless, imagecodecs.htj2k_encode(pixels), pixels, 12,
                         "gen-htj2k-lossless.dcm")
            encapsulated(out, uid.HTJ2K, imagecodecs.htj2k_encode(pixels, reversible=False),
                         pixels, 12, "gen-htj2k-lossy.dcm")
    except ImportError:
        pass
    ok, jpeg = cv2.imencode(".jpg", pixels8)
    encapsulated(out, uid.JPEGBaseline8Bit, jpeg.tobytes(), pixels8, 8, "gen-jpeg-baseline.dcm")
    encapsulated(out, uid.JPEGLosslessSV1, jpeg_lossless(pixels, 12, 1), pixels, 12,
                 "gen-jpeg-lossless.dcm")
    cv2.imwrite(str(out / "raster8.png"), pixels8)
    cv2.imwrite(str(out / "raster16.png"), pixels.astype(np.uint16) * 16)
    cv2.imwrite(str(out / "rgba.png"), np.dstack([pixels8] * 4))
    cv2.imwrite(str(out / "raster.jpg"), pixels8)
    cv2.imwrite(str(out / "raster.tif"), pixels.astype(np.uint16))


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
    data = seed.read_bytes()
    how = rng.choice(["flip", "flip", "cut", "insert", "zero", "repeat", "header", "header"])
    if how == "header" and seed.suffix == ".dcm":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the values we set
            damaged = _damaged_header(data, rng)
        if damaged is not None:
            return damaged
    return harness.damage(data, rng, "flip" if how == "header" else how)


def outcome(path: Path) -> str:
    """'ok', 'refused <ErrorClass>', or a problem starting with 'PROBLEM'."""
    return harness.guard(lambda: _read(path))


def _read(path: Path) -> str:
    """Read three times: every file whole (pydicom's way), then with large elements left in
    the file (uncompressed pixels then read from there by the display gather; at this size,
    the test films being small, nearly every DICOM seed takes that way), then that way with the
    stored levels kept (`keep_stored`). All must agree, and the 8-bit film made from the kept
    levels must be the one made from the pixels."""
    from lesionloc_runtime.errors import LesionlocError
    from lesionloc_runtime.imageio import Radiograph, dicom
    from lesionloc_runtime.preprocess import _eight_bit

    outcomes: list[Radiograph | LesionlocError] = []
    for left_in_file, keep in ((None, False), (2048, False), (2048, True)):
        dicom._LEFT_IN_FILE_BYTES = left_in_file
        try:
            outcomes.append(_radiograph(path, keep))
        except LesionlocError as exc:
            outcomes.append(exc)
    whole = outcomes[0]
    for other, way in zip(outcomes[1:], ("pixels left in the file", "stored levels kept"),
                          strict=True):
        if type(whole) is not type(other) or (
                isinstance(whole, Radiograph) and not np.array_equal(whole.pixels, other.pixels)):
            return f"PROBLEM read whole: {_shown(whole)}; {way}: {_shown(other)}"
    if isinstance(whole, LesionlocError):
        raise whole
    pixels = whole.pixels
    if (pixels.dtype != np.float32 or pixels.ndim != 2 or not np.isfinite(pixels).all()
            or pixels.min() < 0 or pixels.max() > 1):
        return "PROBLEM output is not a 2-D float32 image in [0, 1]"
    for intensity in ("uint8", "minmax-uint8"):
        if not np.array_equal(_eight_bit(outcomes[2], intensity, 2), _eight_bit(whole, intensity, 2)):
            return f"PROBLEM the {intensity} film from the kept levels differs"
    return "ok"


def _radiograph(path: Path, keep_stored: bool) -> Any:
    from lesionloc_runtime.imageio import read_image

    # two threads: a JPEG 2000 codestream goes through the decoder's thread pool, as the
    # runtime reads it on a machine with cores to spare (imageio/decoders.py)
    return read_image(path, threads=2, keep_stored=keep_stored)


def _shown(outcome: Any) -> str:
    if not isinstance(outcome, Exception):
        return f"{outcome.pixels.shape} pixels"
    return f"{type(outcome).__name__} {str(outcome)[:120]}"


def run_case(seeds_dir: Path, case: int, work: Path) -> str:
    seeds = sorted(seeds_dir.iterdir())
    seed = seeds[case % len(seeds)]
    path = work / f"case{seed.suffix}"
    path.write_bytes(mutate(seed, case))
    result = outcome(path)
    return f"{result} (seed {seed.name})" if result.startswith("PROBLEM") else result


TARGET = harness.Target("images", __file__, make_seeds, run_case, __doc__)

if __name__ == "__main__":
    sys.exit(harness.main(TARGET))
