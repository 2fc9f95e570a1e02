"""Radiology report understanding: sections, sentence splitting and sentence kinds
(finding / negated / normal). The one implementation, used by training and the runtime."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lesionloc_runtime.errors import ReportError

SentenceKind = Literal["finding", "negated", "normal"]
MAX_REPORT_BYTES = 1_000_000


@dataclass(frozen=True)
class Sentence:
    """One report sentence. `raw` is exactly report_text[start:end]; `text` is the same with
    white space folded (wrapped lines joined): what the text encoder sees."""

    text: str
    raw: str
    section: str  # "findings", "impression", "report" (no headers) or "query"
    kind: SentenceKind
    start: int
    end: int


@dataclass(frozen=True)
class Report:
    text: str
    sentences: tuple[Sentence, ...]

    @property
    def findings(self) -> tuple[Sentence, ...]:
        return tuple(s for s in self.sentences if s.kind == "finding")

    @property
    def body(self) -> str:
        """FINDINGS + IMPRESSION (or the whole report) as one line: the global text unit."""
        return " ".join(s.text for s in self.sentences)


_SPLIT = re.compile(r"(?<=[.!?])\s+")
_NEG = re.compile(r"\b(no|without|negative for|free of|resolved)\b", re.I)
_NORMAL = re.compile(r"\b(normal|clear|unremarkable|stable|within normal limits)\b", re.I)


def classify_sentence(text: str) -> SentenceKind:
    if _NEG.search(text):
        return "negated"
    if _NORMAL.search(text):
        return "normal"
    return "finding"


def parse_report(text: str) -> Report:
    """Placeholder splitter; replaced by the full parser (sections, lists, abbreviations)."""
    sentences = []
    pos = 0
    for piece in _SPLIT.split(text):
        start = text.index(piece, pos)
        end = start + len(piece)
        pos = end
        folded = " ".join(piece.split())
        if folded:
            sentences.append(
                Sentence(folded, piece, "report", classify_sentence(folded), start, end)
            )
    if not sentences:
        raise ReportError("the report contains no sentence")
    return Report(text, tuple(sentences))


def decode_report(data: bytes, source: str = "<report>") -> str:
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"{source}: report of {len(data)} bytes exceeds {MAX_REPORT_BYTES}")
    if b"\x00" in data:
        raise ReportError(f"{source}: binary data, not a text report")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_report(path: str | Path) -> Report:
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no such report file")
    text = decode_report(path.read_bytes(), str(path))
    if not text.strip():
        raise ReportError(f"{path}: the report is empty")
    return parse_report(text)
