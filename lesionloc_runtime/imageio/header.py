"""Reading DICOM header values that a damaged file may carry: each read may fail (pydicom
converts lazily) and each value quoted in a message must not leak bytes or identifiers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from lesionloc_runtime.errors import ImageReadError
from lesionloc_runtime.imageio.capture import quiet_libraries

__all__ = [
    "UID_NAME_TEXT",
    "UID_TEXT",
    "absent",
    "first",
    "float_value",
    "header_value",
    "int_value",
    "replace",
    "shown_value",
]

# What a header value must look like to be shown in a message (see `shown_value`).
UID_TEXT = re.compile(r"(?=.{1,64}$)[0-9]+(?:\.[0-9]+)*")
UID_NAME_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)*|[A-Za-z0-9 ()\[\]\-:,.]{1,120}")


def shown_value(value: Any, allowed: re.Pattern[str] | None = None, limit: int = 32) -> str:
    """A header value as a message may show it. A damaged length can run one value into the
    next elements, binary bytes and identifiers (an accession number, a name) included, so a
    value is shown only when it looks like what it should be: matching `allowed`, or else at
    most `limit` printable ASCII characters."""
    text = str(value).strip()
    if allowed is not None:
        ok = allowed.fullmatch(text) is not None
    else:
        ok = len(text) <= limit and text.isascii() and text.isprintable()
    return text if ok else f"<{len(text)} unreadable characters>"


def absent(ds: Any, keyword: str) -> str:
    """Why `header_value` found nothing: the element is not there, or it cannot be read."""
    return "unreadable" if keyword in ds else "missing"


def replace(ds: Any, keyword: str, value: Any) -> None:
    """Set an element, dropping the old one unread: pydicom converts the old value before it
    assigns, and a value it cannot convert (a damaged VR) would raise."""
    if keyword in ds:
        delattr(ds, keyword)
    setattr(ds, keyword, value)


def header_value(ds: Any, keyword: str) -> Any:
    """An element's value, or None when absent, empty or unparseable (pydicom converts
    values lazily, so a malformed one raises only when read). Every reading of a header
    attribute that a damaged file may carry goes through here (dicom_out too), quietly:
    pydicom warns and logs about a malformed value as it converts it, and outside the reader
    (--dicom-out) that reached the terminal twice before our own message."""
    try:
        with quiet_libraries():
            value = ds.get(keyword)
    except Exception:  # any conversion failure means "this value is unusable"
        return None
    return None if value is None or value == "" else value


def int_value(ds: Any, keyword: str, path: Path, default: int | None = None) -> int:
    value = header_value(ds, keyword)
    if value is None:
        if default is None:
            raise ImageReadError(f"{path}: the DICOM header lacks {keyword}")
        return default
    try:
        return int(first(value))
    except (TypeError, ValueError):
        raise ImageReadError(f"{path}: the DICOM {keyword} {shown_value(value)} is not a number"
                             ) from None


def float_value(ds: Any, keyword: str, notes: list[str], default: float) -> float:
    value = header_value(ds, keyword)
    if value is None:
        return default
    try:
        number = float(first(value))
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        notes.append(f"{keyword} {shown_value(value)} ignored")
        return default
    return number


def first(value: Any) -> Any:
    """The first of a multi-valued element (several windows: the first is the default)."""
    if isinstance(value, (str, bytes)):
        return value
    try:
        return value[0]
    except (TypeError, IndexError):
        return value
