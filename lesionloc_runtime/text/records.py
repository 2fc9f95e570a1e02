"""The records of report understanding: a parsed `Report` and its `Sentence`s, shared by
training and the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_REPORT_BYTES", "SENTENCE_KINDS", "Report", "Sentence", "SentenceKind"]

# "other": nothing on the image to localize (exam name, views, technique, comparison only,
# recommendation, communication).
SentenceKind = Literal["finding", "negated", "normal", "other"]
SENTENCE_KINDS: tuple[SentenceKind, ...] = ("finding", "negated", "normal", "other")
MAX_REPORT_BYTES = 1_000_000


@dataclass(frozen=True)
class Sentence:
    """One report sentence. `raw` is exactly report_text[start:end]; `text` is the same with
    white space folded (wrapped lines joined). `span` is the part of `text` that names the
    finding (the whole text for a plain finding, the positive part of "No pneumothorax, but a
    small effusion."; None when the sentence is no finding); `uncertain` marks a hedged finding
    ("Possible small effusion.")."""

    text: str
    raw: str
    section: str  # "findings", "impression", "report" (no headers) or "query"
    kind: SentenceKind
    start: int
    end: int
    uncertain: bool = False
    span: tuple[int, int] | None = None  # offsets into `text`

    @property
    def grounded_text(self) -> str:
        """What the text encoder sees for a heatmap: the span of a finding, else the text."""
        return self.text if self.span is None else self.text[self.span[0] : self.span[1]]


@dataclass(frozen=True)
class Report:
    """A parsed report: the decoded text and its FINDINGS and IMPRESSION sentences in order."""

    text: str
    sentences: tuple[Sentence, ...]
    repeated: int = 0  # sentences left out as repeats within their section (a pasted copy)

    @property
    def findings(self) -> tuple[Sentence, ...]:
        return tuple(s for s in self.sentences if s.kind == "finding")

    @property
    def body(self) -> str:
        """FINDINGS + IMPRESSION (or the whole report) as one line: the global text unit."""
        return " ".join(s.text for s in self.sentences)
