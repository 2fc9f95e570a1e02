"""Report files to text: encodings (UTF-8, Windows-1252, UTF-16), control and invisible
characters, and the documents that are not plain text."""

from __future__ import annotations

import codecs
import re

from lesionloc_runtime.errors import ReportError
from lesionloc_runtime.text.records import MAX_REPORT_BYTES

__all__ = ["clean_text", "decode_report"]

# Control and invisible formatting characters: form feed and vertical tab are line breaks;
# other C0/C1 controls, bidirectional overrides and zero-width characters are removed (they
# would reach terminals, JSON and the text encoder, and hide what a sentence says).
_INVISIBLE = (
    [*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0x85), *range(0x86, 0xA0),
     *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0x00AD, 0xFEFF]
)
_CLEAN = {**dict.fromkeys(_INVISIBLE), **dict.fromkeys((0x0B, 0x0C, 0x85, 0x2028, 0x2029), "\n")}


# translate() with a dict looks up every character: cleaning only text that needs it is faster
_DIRTY = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_CLEAN)) + "]")


def clean_text(text: str) -> str:
    """`text` without control and invisible formatting characters (tabs and line ends kept;
    form feeds, vertical tabs and Unicode line separators become line ends)."""
    return text.translate(_CLEAN) if _DIRTY.search(text) else text


_TEXT_CONTROLS = b"\t\n\v\f\r"  # control bytes that plain text may carry
_CONTROL_BYTES = bytes(b for b in range(32) if b not in _TEXT_CONTROLS) + b"\x7f"
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_ASCII = bytes(range(128))


def _cp1252_bytes(exc: UnicodeError) -> tuple[str, int]:
    """Decoding error handler: bytes that are not UTF-8 are read as Windows-1252 (the five
    bytes cp1252 leaves undefined as Latin-1), so a UTF-8 report with one stray 1252 byte
    keeps its UTF-8 characters."""
    assert isinstance(exc, UnicodeDecodeError)
    bad = exc.object[exc.start : exc.end]
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in bad), exc.end


codecs.register_error("lesionloc-cp1252", _cp1252_bytes)


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le"/"-be" when the NUL bytes of mostly-ASCII text sit in alternating positions."""
    if len(data) < 4 or len(data) % 2:
        return None
    odd, even = data[1::2].count(0), data[0::2].count(0)
    half = len(data) // 2
    if odd > 0.5 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.5 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


_MARKUP = re.compile(
    r"\A\s*<(?:!doctype\s+html|html|head|body|\?xml|div|p|br|table|span|font|pre)\b", re.I
)


def decode_report(data: bytes, source: str = "<report>") -> str:
    """Bytes of a report file to text: UTF-8 (BOM stripped; bytes that are not UTF-8 read as
    Windows-1252), UTF-16 with or without a BOM. Line ends become "\\n" and control and
    invisible formatting characters are removed; offsets refer to the returned text."""
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(
            f"{source}: report of {len(data)} bytes exceeds the limit of {MAX_REPORT_BYTES}"
        )
    utf16 = _utf16_without_bom(data)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16:  # Windows "Unicode" text
        try:
            text = data.decode(utf16 or "utf-16")
        except UnicodeDecodeError:
            raise ReportError(f"{source}: binary data, not a text report") from None
        # 16-bit binary data (raw pixels below 256) has its NULs where UTF-16 text has them
        controls = sum((ord(c) < 32 and c not in "\t\n\r\f\v") or 0x7F <= ord(c) < 0xA0
                       for c in text)
        if controls > 0.1 * len(text):
            raise ReportError(f"{source}: binary data, not a text report")
    else:
        # Control bytes other than tabs and line ends do not occur in dictated text.
        controls = len(data.translate(None, _NOT_CONTROL))
        if b"\x00" in data or controls > 0.1 * len(data):
            raise ReportError(f"{source}: binary data, not a text report")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Windows-1252 text (the fallback) is mostly ASCII, with an accent here and there;
            # bytes of another encoding read as Windows-1252 are garbage (UTF-16 Chinese text
            # without a byte order mark has no NUL to betray it, and half its bytes are high).
            if len(data.translate(None, _ASCII)) > 0.3 * len(data):  # bytes 0x80-0xFF
                raise ReportError(
                    f"{source}: neither UTF-8 nor Windows-1252 text (UTF-16 without a byte "
                    "order mark, or another encoding?); save the report as UTF-8"
                ) from None
            text = data.decode("utf-8-sig", errors="lesionloc-cp1252")
    text = clean_text(text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n"))
    if text.lstrip().startswith("{\\rtf"):
        raise ReportError(
            f"{source}: an RTF document, not plain text; save the report as plain text (.txt)"
        )
    if _MARKUP.match(text):
        raise ReportError(
            f"{source}: an HTML/XML document, not plain text; save the report as plain text "
            "(.txt)"
        )
    return text
