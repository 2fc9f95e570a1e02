"""parse_report, read_report and query_sentences: sections, then sentences, then kinds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lesionloc_runtime.errors import ReportError
from lesionloc_runtime.text.decoding import decode_report
from lesionloc_runtime.text.records import MAX_REPORT_BYTES, Report, Sentence
from lesionloc_runtime.text.sections import (
    find_sections,
    identifier_spans,
    label_list,
    without_identifiers,
)
from lesionloc_runtime.text.sentences import LETTER, fold, split_sentences

__all__ = ["parse_report", "query_sentences", "read_report"]


def parse_report(text: str) -> Report:
    """Split a decoded report into the sentences of its FINDINGS and IMPRESSION sections (the
    whole text when it has no recognised headers). Offsets refer to `text` as given."""
    if len(text) > MAX_REPORT_BYTES:
        raise ReportError(
            f"report of {len(text)} characters exceeds the limit of {MAX_REPORT_BYTES} bytes"
        )
    if not text.strip():
        raise ReportError("the report is empty")
    sections = find_sections(text)
    kept = [s for s in sections if s.use in ("findings", "impression")]
    if kept:
        parts = kept
    elif len(sections) == 1:
        parts = sections  # no headers at all: the whole text is the report
    else:
        # Headers, but neither FINDINGS nor IMPRESSION: use the text outside administrative
        # sections (before the first header, under FINAL REPORT, or after the paragraph of an
        # administrative header).
        parts = [s for s in sections if s.use == "report"]
    identifiers = identifier_spans(text)
    sentences: list[Sentence] = []
    for part in parts:
        for start, end in without_identifiers(part.start, part.end, identifiers):
            sentences.extend(split_sentences(text, start, end, part.use or "report"))
    if sentences:
        kept_once = _once_per_section(sentences)
        return Report(text, tuple(kept_once), len(sentences) - len(kept_once))
    if identifiers and any(split_sentences(text, p.start, p.end, "report") for p in parts):
        raise ReportError(
            "the report holds only identifier or signature lines (Patient:, MRN, Signed: ...), "
            "no findings"
        )
    if kept:
        labels = label_list(kept).split(", ")
        raise ReportError(
            f"the {' and '.join(labels)} section{'s contain' if len(labels) > 1 else ' contains'}"
            " no sentence, only blanks or punctuation"
        )
    if len(sections) > 1:
        raise ReportError(
            f"the report has no FINDINGS or IMPRESSION section (headers found: "
            f"{label_list(sections)}); add a 'FINDINGS:' header before the findings"
        )
    raise ReportError("the report contains no words, only blanks or punctuation")


def _once_per_section(sentences: list[Sentence]) -> list[Sentence]:
    """The sentences less the repeats of an earlier sentence of the same section: a report
    pasted twice into FINDINGS says each thing once. IMPRESSION may restate FINDINGS."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for s in sentences:
        key = (s.section, " ".join(s.text.lower().split()))
        if key not in seen:
            seen.add(key)
            kept.append(s)
    return kept


def query_sentences(queries: Sequence[str]) -> tuple[Sentence, ...]:
    """Free-text queries (e.g. from the command line) as sentences: one each, section "query",
    kind "finding", grounded whole; start/end are offsets into the query string itself."""
    if isinstance(queries, str):
        raise TypeError("query_sentences takes a sequence of queries, not one string")
    sentences = []
    for i, query in enumerate(queries, 1):
        if len(query) > MAX_REPORT_BYTES:
            raise ReportError(f"query {i} is {len(query)} characters, over {MAX_REPORT_BYTES}")
        if not LETTER.search(query):
            raise ReportError(f"query {i} is empty: give the finding to localize as words")
        start = len(query) - len(query.lstrip())
        end = len(query.rstrip())
        raw = query[start:end]
        text = fold(raw)
        sentences.append(Sentence(text, raw, "query", "finding", start, end, span=(0, len(text))))
    return tuple(sentences)


def read_report(path: str | Path) -> Report:
    """Read, decode and parse a report file; every problem is a one-line ReportError."""
    if isinstance(path, str) and "\n" in path:  # report text where a path goes
        raise ReportError("report: a path was expected, got text with line breaks; for report "
                          "text use parse_report(text)")
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ReportError(f"{path}: is a directory, not a report file")
        if size > MAX_REPORT_BYTES:
            raise ReportError(
                f"{path}: report of {size} bytes exceeds the limit of {MAX_REPORT_BYTES}"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report file") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the report ({exc.strerror})") from None
    text = decode_report(data, str(path))
    try:
        return parse_report(text)
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from None
