"""Reading chest radiographs (DICOM, PNG, JPEG, TIFF) into one display-oriented greyscale array.

This is the only image reader in the project: training, export calibration, the runtime and
the benchmarks all call `read_image`, so what a deployed model sees is what it was trained on.
The grey-level rules and the map of this package's modules are in docs/images.md.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.imageio.capture import quiet_libraries
from lesionloc_runtime.imageio.dicom import import_dicom_stack, read_dicom
from lesionloc_runtime.imageio.header import UID_TEXT, header_value
from lesionloc_runtime.imageio.radiograph import Radiograph, check_contrast
from lesionloc_runtime.imageio.raster import read_raster, read_raster_array
from lesionloc_runtime.imageio.sniff import HEAD_BYTES, IMAGE_SUFFIXES, has_dicom_preamble, sniff

__all__ = [
    "IMAGE_SUFFIXES",
    "has_dicom_preamble",
    "UID_TEXT",
    "Radiograph",
    "header_value",
    "import_dicom_stack",
    "read_image",
    "read_raster_array",
]


def read_image(path: str | os.PathLike[str], *, threads: int = 1,
               keep_stored: bool = False) -> Radiograph:
    """Read a chest radiograph from a DICOM, PNG, JPEG or TIFF file. `threads`: how many
    threads a JPEG 2000 DICOM may be decoded on (the runtime gives its share of the cores).
    `keep_stored`: keep the film's stored grey levels and the display value of each beside
    the display image (`Radiograph.stored`, None where the file's levels are not 8 or 16
    bits), which a model fed an 8-bit film converts faster than the display image.

    Raises ImageReadError with a one-line reason for anything that is not a readable,
    single-frame greyscale radiograph (multi-frame, colour, no pixel data, SR, text...).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(f"{path}: a symbolic link loop, not an image file") from None
        raise ImageReadError(f"{path}: cannot be opened ({exc.strerror})") from None
    if not head:
        raise ImageReadError(f"{path}: the file is empty")
    kind = sniff(head, path)
    with quiet_libraries():
        image = (read_dicom(path, threads, keep_stored) if kind == "dicom"
                 else read_raster(path, kind, keep_stored))
    check_contrast(image.pixels, str(path))
    return image
