"""Fetch the public real chest radiographs that some tests read (tests/test_imageio_real.py and
the image fuzzer's seeds) into a cache folder, for anyone with internet access.

Three files are downloaded and checked by sha256; three more are re-encodings of the first
that no one publishes, so they are derived here with pydicom and checked by their decoded
pixels, which must equal the original's exactly. Nothing is left under a final name unless it
passed its check; files already there and good are kept. Then point the tests at the folder:

    python scripts/fetch_test_data.py [--dest DIR]
    export LESIONLOC_TEST_DATA=DIR

Without it, the tests look in ../shared/data/real-dicom and otherwise skip, saying why.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = "CR-MONO1-10-chest.dcm"


@dataclass(frozen=True)
class Download:
    name: str
    url: str
    sha256: str
    what: str
    source: str  # where it comes from, and its licence


@dataclass(frozen=True)
class Derived:
    name: str
    syntax: str  # transfer syntax keyword in pydicom.uid
    what: str


DOWNLOADS = (
    Download(ORIGINAL,
             "https://raw.githubusercontent.com/fo-dicom/fo-dicom/development/Tests/"
             "FO-DICOM.Tests/Test%20Data/CR-MONO1-10-chest",
             "ee3da313f01d2b5054d635da07a5295ceb2886b1e332dc2ff3c4c318a18c86c1",
             "CR chest PA (Fuji), 440x440, MONOCHROME1, 10 bits stored in 16, window 550/1024; "
             "no preamble and no file meta (implicit VR little endian, ACR-NEMA style)",
             "fo-dicom test data (Tests/FO-DICOM.Tests/Test Data/CR-MONO1-10-chest), MS-PL"),
    Download("RG1_J2KI.dcm",
             "https://raw.githubusercontent.com/pydicom/pylibjpeg-data/master/ljdata/ds/"
             "JPEG2000/RG1_J2KI.dcm",
             "744d01372fdda4e21b507bb7f97329065de961f4f263342079b369b430064d65",
             "CR chest PA (Philips), 1841x1955, MONOCHROME1, 15 bits stored, JPEG 2000 lossy, "
             "window 15000/30000",
             "pydicom/pylibjpeg-data (ljdata/ds/JPEG2000/RG1_J2KI.dcm), MIT; from the NEMA WG04 "
             "compression test set"),
    Download("SIIM_chest_jpeg_baseline.dcm",
             "https://raw.githubusercontent.com/mlmed/torchxrayvision/master/tests/"
             "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm",
             "13d378bfe1af0724e8cbe51adde36882cfdc6a69361c8a48ac30f688c3af7613",
             "chest PA, 1024x1024, MONOCHROME2, 8 bits, JPEG baseline, PixelSpacing 0.168",
             "torchxrayvision tests (a SIIM-ACR pneumothorax challenge image with NIH "
             "ChestX-ray14 pixels), research use"),
)
DERIVED = (
    Derived("CR-MONO1-10-chest_explicitLE.dcm", "ExplicitVRLittleEndian",
            "the same pixels, Explicit VR Little Endian with file meta"),
    Derived("CR-MONO1-10-chest_RLE.dcm", "RLELossless", "the same pixels, RLE Lossless"),
    Derived("CR-MONO1-10-chest_JPEGLosslessSV1.dcm", "JPEGLosslessSV1",
            "the same pixels, JPEG Lossless SV1 (1.2.840.10008.1.2.4.70)"),
)

Opener = Callable[[str], IO[bytes]]


class FetchError(Exception):
    """A file could not be fetched or did not pass its check; nothing was left behind."""


def default_dest() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lesionloc" / "test-data"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_url(url: str) -> IO[bytes]:
    return urllib.request.urlopen(url, timeout=60)


def _temporary(dest: Path) -> tuple[int, Path]:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    return fd, Path(name)


def download(item: Download, dest: Path, opener: Opener = _open_url) -> Path:
    """`item` into `dest` (a file path) through a temporary file in the same folder, renamed
    into place only when its sha256 matches; a broken or wrong download leaves nothing."""
    fd, part = _temporary(dest)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, opener(item.url) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != item.sha256:
            raise FetchError(f"{item.name}: sha256 {digest.hexdigest()} from {item.url}, "
                             f"expected {item.sha256}; not kept")
        os.replace(part, dest)
    except OSError as exc:
        raise FetchError(f"{item.name}: cannot download {item.url}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return dest


def _original_dataset(original: Path):  # -> pydicom Dataset, read as the standard file would be
    import pydicom
    from pydicom.dataset import FileMetaDataset

    ds = pydicom.dcmread(original, force=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian  # what the file is
    ds.file_meta = meta
    return ds


def encode(original: Path, syntax: str) -> bytes:
    """The original's dataset re-encoded in transfer syntax `syntax` (a pydicom.uid keyword)."""
    from pydicom import uid
    from pydicom.encaps import encapsulate

    ds = _original_dataset(original)
    target = getattr(uid, syntax)
    if syntax == "JPEGLosslessSV1":  # no Python package encodes it; the tests carry an encoder
        sys.path.insert(0, str(REPO / "tests"))
        from test_imageio_dicom import jpeg_lossless

        codestream = jpeg_lossless(ds.pixel_array, 16, 1)
        ds.file_meta.TransferSyntaxUID = target
        ds.PixelData = encapsulate([codestream])
        ds["PixelData"].VR = "OB"
    elif target.is_compressed:
        ds.compress(target, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = target
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def check_derived(data: bytes, original: Path, syntax: str, name: str) -> None:
    """FetchError unless `data` is a DICOM file in `syntax` whose decoded pixels equal the
    original's exactly."""
    import numpy as np
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = ds.pixel_array
        actual = str(ds.file_meta.TransferSyntaxUID)
    except Exception as exc:  # any decoder failure means the derivation is not usable
        raise FetchError(f"{name}: the derived file does not decode ({exc})") from None
    wanted = str(getattr(pydicom.uid, syntax))
    if actual != wanted:
        raise FetchError(f"{name}: transfer syntax {actual}, expected {wanted}")
    if not np.array_equal(pixels, _original_dataset(original).pixel_array):
        raise FetchError(f"{name}: decoded pixels differ from {original.name}'s; not kept")


def derive(item: Derived, original: Path, dest: Path,
           encoder: Callable[[Path, str], bytes] = encode) -> Path:
    """`item` made from `original` and checked, then renamed into `dest`."""
    data = encoder(original, item.syntax)
    check_derived(data, original, item.syntax, item.name)
    fd, part = _temporary(dest)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def fetch_all(dest: Path, opener: Opener = _open_url, log: Callable[[str], None] = print) -> None:
    """Every file into `dest`; good files already there are kept (downloads by sha256,
    derived files by their pixels)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in DOWNLOADS:
        target = dest / item.name
        if target.is_file() and sha256_of(target) == item.sha256:
            log(f"{item.name}: already there")
            continue
        download(item, target, opener)
        log(f"{item.name}: downloaded, sha256 checked")
    original = dest / ORIGINAL
    for derived in DERIVED:
        target = dest / derived.name
        if target.is_file():
            try:
                check_derived(target.read_bytes(), original, derived.syntax, derived.name)
                log(f"{derived.name}: already there")
                continue
            except FetchError:
                pass  # made again below
        derive(derived, original, target)
        log(f"{derived.name}: derived from {ORIGINAL}, pixels checked")


def _sources_text() -> str:
    lines = ["files:"]
    for item in DOWNLOADS:
        lines += [f"  {item.name}", f"      {item.what}", f"      source: {item.source}",
                  f"      url: {item.url}", f"      sha256: {item.sha256}"]
    for derived in DERIVED:
        lines += [f"  {derived.name}", f"      {derived.what}",
                  f"      derived from {ORIGINAL} here with pydicom (same licence); checked by "
                  "its decoded pixels"]
    return "\n".join(lines)


def main(argv: list[str] | None = None, opener: Opener = _open_url) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=_sources_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"folder to fill (default: {default_dest()})")
    args = parser.parse_args(argv)
    dest = (args.dest or default_dest()).expanduser().resolve()
    try:
        fetch_all(dest, opener)
    except (FetchError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"export LESIONLOC_TEST_DATA={dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
