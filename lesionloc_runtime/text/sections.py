"""Report sections (FINDINGS, IMPRESSION, administrative headers) and the identifier and
signature lines that never become sentences."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["NARRATIVE_HEADER_NAMES", "Section", "find_sections", "identifier_spans", "label_list",
           "without_identifiers"]

# Header name (lower case, single spaces) -> what its text becomes. "report" marks titles
# whose text is used only when the report has neither FINDINGS nor IMPRESSION; None drops it.
_HEADERS: dict[str, str | None] = {
    "findings": "findings",
    "finding": "findings",
    "findings and impression": "findings",
    "findings/impression": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "opinion": "impression",
    "final report": "report",
    "preliminary report": "report",
    "report": "report",
    **dict.fromkeys(
        (
            "examination", "exam", "study", "procedure", "type of examination",
            "indication", "indications", "clinical indication", "clinical history",
            "clinical information", "clinical details", "history", "reason for examination",
            "reason for exam", "reason for study", "technique", "comparison", "comparisons",
            "wet read", "wet read version", "notification", "communication",
            "recommendation", "recommendations", "recommendation(s)", "addendum",
            "dictated by", "signed by", "electronically signed by",
        ),
        None,
    ),
}


# Identifier, signature and administrative label lines: dropped wherever they occur (only the
# line: the next line may be a finding). The first group needs no colon ("MRN 12345678",
# "Electronically signed by Dr. ___"); the second only counts with one ("Patient: ...",
# while "Patient is a ..." is text).
_ID_LABELS_ANY = (
    "mrn", "medical record number", "medical record no", "medical record #", "dob", "d.o.b.",
    "date of birth", "accession", "accession number", "accession no", "acc #", "acc no",
    "patient name", "patient id", "patient identifier", "nhs number", "ssn",
    "signed by", "electronically signed", "electronically signed by", "dictated by",
    "transcribed by", "reviewed by", "verified by", "reported by", "read by",
    "referring physician", "referring doctor", "ordering physician", "attending physician",
)
_ID_LABELS_COLON = (
    "patient", "name", "signed", "signature", "physician", "provider", "attending",
    "referring", "radiologist", "resident", "technologist", "date", "time", "date/time",
    "date of exam", "time of exam", "date of examination", "exam date", "study date",
    "date of service", "date of study", "date/time of exam", "date/time of examination",
    "date/time of study", "date and time of exam", "date of procedure", "dictated",
    "transcribed", "age", "sex", "gender", "location", "hospital number", "id",
)


def _name_pattern(name: str) -> str:
    words = "[ \t]+".join(re.escape(w) for w in name.split(" "))
    return words.replace("/", "[ \t]*/[ \t]*")


def _names_pattern(names: Sequence[str]) -> str:
    """An alternation of `_name_pattern`s, longest first."""
    return "|".join(_name_pattern(n) for n in sorted(names, key=len, reverse=True))


# The names of the sections whose text is read (FINDINGS, IMPRESSION, a report's title), as an
# alternation for patterns elsewhere: a sentence may still start with one ("IMPRESSION: ...").
NARRATIVE_HEADER_NAMES = _names_pattern([name for name, role in _HEADERS.items() if role is not None])

_IDENTIFIER_LINE = re.compile(
    r"(?:\A|(?<=[\r\n]))[ \t]*(?:(?:" + _names_pattern(_ID_LABELS_ANY) + r")(?![A-Za-z])"
    r"|(?:" + _names_pattern(_ID_LABELS_COLON) + r")[ \t]*[:#])[^\r\n]*",
    re.I,
)


_HEADER = re.compile(
    r"(?:(?P<bol>(?:\A|(?<=[\r\n]))[ \t\ufeff]*)|(?<=[ \t]))"
    # Fails at once where no header name can start, which keeps long runs of spaces cheap.
    r"(?=[" + "".join(sorted({n[0] + n[0].upper() for n in _HEADERS})) + r"])"
    r"(?P<name>" + _names_pattern(_HEADERS)
    + r")(?![A-Za-z])[ \t]*(?P<colon>:)?[ \t]*",
    re.I,
)
# What follows a header without a colon: end of line, or an ALL-CAPS word ("FINDINGS ARE ...",
# which is a shouted sentence, not a header).
# Where a header name can begin: the scan tries _HEADER only there, not at every character.
_NAME = re.compile(_names_pattern(_HEADERS))  # on lower-case text: re.I would scan slowly
_LINE_END = re.compile(r"\r\n?|\n")
_AFTER_HEADER = re.compile(r"(?P<eol>[\r\n]|\Z)|(?P<caps>[A-Z]{2,}(?![a-z]))")


_BLANK_LINE = re.compile(r"(?:\r\n|\r(?!\n)|\n)[^\S\r\n]*(?:\r\n|\r(?!\n)|\n)")


@dataclass(frozen=True)
class Section:
    label: str  # the header as canonical upper case, "" for the text before any header
    use: str | None  # "findings", "impression", "report" (title or preamble) or None (dropped)
    start: int
    end: int


def _after_sentence(text: str, k: int) -> bool:
    """Whether position k follows the start of the text, a blank line or a sentence end."""
    j = k
    while j > 0 and text[j - 1].isspace():
        j -= 1
    gap = text[j:k]
    line_ends = gap.count("\n") + gap.count("\r") - gap.count("\r\n")
    return j == 0 or text[j - 1] in ".!?:\u3002\uff01\uff1f" or line_ends > 1


def _is_header(text: str, m: re.Match[str]) -> bool:
    name = m.group("name")
    if m.group("bol") is not None:
        # A wrapped line that happens to begin "study: ..." in lower case is not a header.
        if name.islower() and not _after_sentence(text, m.start()):
            return False
        if m.group("colon"):
            return True
        after = _AFTER_HEADER.match(text, m.end())
        if after and after.group("eol") is not None:
            return True  # alone on its line
        # Inline without a colon only in capitals, and not before a capitalised word.
        return name.isupper() and not (after and after.group("caps"))
    if not m.group("colon"):
        return False
    # Mid-line ("... None. FINDINGS: The lungs"): capitals, or right after a sentence end.
    k = m.start("name")
    while k > 0 and text[k - 1] in " \t":
        k -= 1
    return name.isupper() or (k > 0 and text[k - 1] in ".!?")


def identifier_spans(text: str) -> list[tuple[int, int]]:
    """The identifier and signature lines of `text` (they start at line starts only)."""
    starts = [0, *(m.end() for m in _LINE_END.finditer(text))]
    return [m.span() for m in map(_IDENTIFIER_LINE.match, itertools.repeat(text), starts) if m]


def _header_matches(text: str) -> Iterator[re.Match[str]]:
    """The matches of `_HEADER.finditer(text)`, tried only where a header name begins."""
    low = text.lower()
    if len(low) != len(text):  # a few characters lower-case to two ("İ")
        yield from _HEADER.finditer(text)
        return
    pos = 0
    while (name := _NAME.search(low, pos)) is not None:
        p = line = name.start()
        before = text[p - 1] if p else "\n"
        if before not in " \t\ufeff\r\n":  # inside a word: no header starts here
            pos = p + 1
            continue
        while line > 0 and text[line - 1] in " \t\ufeff":  # only blanks: linear overall
            line -= 1
        m = _HEADER.match(text, line) if line == 0 or text[line - 1] in "\r\n" else None
        if (m is None or m.start("name") != p) and before in " \t":
            m = _HEADER.match(text, p)
        if m is not None and m.start("name") == p:
            yield m
            pos = m.end()
        else:
            pos = p + 1


def find_sections(text: str) -> list[Section]:
    found: list[tuple[str, str | None, int, int]] = []
    for m in _header_matches(text):
        if _is_header(text, m):
            key = m.group("name").lower()
            if key not in _HEADERS:  # written with extra spaces: "WET  READ", "FINDINGS / ..."
                key = " ".join(key.replace("/", " / ").split()).replace(" / ", "/")
            found.append((key.upper(), _HEADERS[key], m.start("name"), m.end()))
    sections = [Section("", "report", 0, found[0][2] if found else len(text))]
    for i, (label, use, _, body) in enumerate(found):
        end = found[i + 1][2] if i + 1 < len(found) else len(text)
        blank = _BLANK_LINE.search(text, body, end) if use is None else None
        if blank is None:
            sections.append(Section(label, use, body, end))
        else:
            # "INDICATION: Cough.\n\nThe lungs are clear.": an administrative header covers
            # one paragraph; what follows is unlabelled text, like text before any header.
            sections.append(Section(label, use, body, blank.start()))
            sections.append(Section("", "report", blank.end(), end))
    return sections


def label_list(sections: Sequence[Section]) -> str:
    return ", ".join(dict.fromkeys(s.label for s in sections if s.label))


def without_identifiers(
    start: int, end: int, identifiers: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """[start, end) less the identifier lines that begin inside it."""
    ranges, pos = [], start
    for line_start, line_end in identifiers:
        if start <= line_start < end:
            if line_start > pos:
                ranges.append((pos, line_start))
            pos = max(pos, min(line_end, end))
    if pos < end:
        ranges.append((pos, end))
    return ranges
