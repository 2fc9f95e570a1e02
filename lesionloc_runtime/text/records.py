"""The records of report understanding: a parsed `Report` and its `Sentence`s, shared by
training and the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    """A parsed report: the decoded text and its FINDINGS and IMPRESSION sentences in order."""

    text: str
    sentences: tuple[Sentence, ...]

    @property
    def findings(self) -> tuple[Sentence, ...]:
        return tuple(s for s in self.sentences if s.kind == "finding")

    @property
    def body(self) -> str:
        """FINDINGS + IMPRESSION (or the whole report) as one line: the global text unit."""
        return " ".join(s.text for s in self.sentences)
