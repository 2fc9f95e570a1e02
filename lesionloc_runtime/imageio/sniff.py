"""Which format a file holds, judged by its first bytes: the name only words the error, so a
PNG called `x.dcm` reads as a PNG."""

from __future__ import annotations

from pathlib import Path

from lesionloc_runtime.errors import ImageReadError

__all__ = ["HEAD_BYTES", "IMAGE_SUFFIXES", "has_dicom_preamble", "sniff"]

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
_RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
IMAGE_SUFFIXES = _DICOM_SUFFIXES | _RASTER_SUFFIXES
# How many bytes `sniff` needs: a DICOM preamble (128 bytes) and its "DICM" prefix.
HEAD_BYTES = 132


def sniff(head: bytes, path: Path) -> str:
    """The file's format from its first bytes; the name is only used to word the error."""
    # DICM first: a DICOM preamble may itself be a TIFF header (dual-format files).
    if _preamble(head):
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    # DICOM without preamble (ACR-NEMA style): the first tag is in group 0x0002 or 0x0008 with
    # a small element number, little endian (02 00 xx 00) or big endian (00 02 00 xx).
    if len(head) >= 8 and (
        (head[0] in (0x02, 0x08) and head[1] == 0 and head[3] == 0)
        or (head[0] == 0 and head[1] in (0x02, 0x08) and head[2] == 0)
    ):
        return "dicom"
    suffix = path.suffix.lower()
    if suffix in _RASTER_SUFFIXES:
        raise ImageReadError(
            f"{path}: the file is named {suffix} but its content is not a {suffix[1:].upper()} "
            "image (wrong extension, or a text file?)"
        )
    raise ImageReadError(f"{path}: not a DICOM, PNG or JPEG file (unrecognised content)")


def has_dicom_preamble(path: Path) -> bool:
    """Whether the file starts as a DICOM file does (PS3.10: 128 bytes, then "DICM"): how a
    batch tells the films of a PACS export, which have no file name extension, from the rest."""
    with open(path, "rb") as handle:
        return _preamble(handle.read(HEAD_BYTES))


def _preamble(head: bytes) -> bool:
    return len(head) >= HEAD_BYTES and head[128:HEAD_BYTES] == b"DICM"
