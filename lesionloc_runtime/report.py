"""Radiology report understanding: sections, sentence splitting and sentence kinds
(finding / negated / normal). The one implementation, used by training and the runtime.

Every sentence keeps exact character offsets into the report text it came from, so
`sentence.raw == report.text[sentence.start:sentence.end]` always holds; docs/reports.md
describes the rules for users.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
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


# ---------------------------------------------------------------------------------------------
# Sections

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
_AFTER_HEADER = re.compile(r"(?P<eol>[\r\n]|\Z)|(?P<caps>[A-Z]{2,}(?![a-z]))")


_BLANK_LINE = re.compile(r"(?:\r\n|\r(?!\n)|\n)[^\S\r\n]*(?:\r\n|\r(?!\n)|\n)")


@dataclass(frozen=True)
class _Section:
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


def _sections(text: str) -> list[_Section]:
    found: list[tuple[str, str | None, int, int]] = []
    for m in _HEADER.finditer(text):
        if _is_header(text, m):
            key = m.group("name").lower()
            if key not in _HEADERS:  # written with extra spaces: "WET  READ", "FINDINGS / ..."
                key = " ".join(key.replace("/", " / ").split()).replace(" / ", "/")
            found.append((key.upper(), _HEADERS[key], m.start("name"), m.end()))
    sections = [_Section("", "report", 0, found[0][2] if found else len(text))]
    for i, (label, use, _, body) in enumerate(found):
        end = found[i + 1][2] if i + 1 < len(found) else len(text)
        blank = _BLANK_LINE.search(text, body, end) if use is None else None
        if blank is None:
            sections.append(_Section(label, use, body, end))
        else:
            # "INDICATION: Cough.\n\nThe lungs are clear.": an administrative header covers
            # one paragraph; what follows is unlabelled text, like text before any header.
            sections.append(_Section(label, use, body, blank.start()))
            sections.append(_Section("", "report", blank.end(), end))
    return sections


# ---------------------------------------------------------------------------------------------
# Sentence splitting

_NL = r"(?:\r\n|\r(?!\n)|\n)"
_MARKER = r"(?:[-*\u2022\u00b7\u2013]|\(?\d{1,2}[.)])"  # bullet, "1." "1)" "(1)"
_LEAD = re.compile(r"[\s\ufeff]*(?P<mark>(?:[-*\u2022\u00b7\u2013]|\(?(?P<num>\d{1,2})[.)])"
                   r"\s+(?=\S))?")
_BREAK = re.compile(
    # A run of terminators, counted from its first character so a long run is scanned once.
    r"(?P<term>(?<![.!?])[.!?]+[\"')\]\u2019\u201d]*)(?=\s|$)"
    # Chinese and Japanese full stops end a sentence with no space after them.
    r"|(?P<cjk>[\u3002\uff01\uff1f\uff61]+[\"')\]\u2019\u201d\u300d\u300f\uff09]*)"
    # A line break before a blank line, a list item, a bullet or a "Label:" line.
    r"|(?P<nl>" + _NL + r")(?=[^\S\r\n]*(?:" + _NL + r"|$|" + _MARKER + r"\s"
    r"|[A-Z][A-Za-z/&-]*(?:[ \t][A-Za-z/&-]+){0,3}:\s))"
    # An inline list number; taken only when it is the next number of the current list.
    r"|(?P<item>\s\(?(?P<num>\d{1,2})[.)]\s+(?=\S))"
)
_LETTER = re.compile(r"[^\W\d_]")
# A period after these never ends a sentence ("Dr. ___", "approx. 2 cm", "pneumonia vs.
# atelectasis"); "No." only before a number ("No. 2"), so "No pneumothorax." stays a sentence.
_ALWAYS_ABBREV = frozenset(
    "dr mr mrs ms prof st vs e.g i.e eg ie approx apprx appx cf fig figs incl viz".split()
)
# These end a sentence unless a lower-case word follows ("10:30 a.m. on ___", "2 cm. in").
_SOMETIMES_ABBREV = frozenset(
    "a.m p.m etc cm mm ml cc kg mg min sec hr hrs yr yrs mo mos wk wks pt pts hx dx fx sx tx "
    "rt lt lat ant post bilat prox dist med sm lg al resp ca jr sr inc ref sq abd".split()
)


# Control and invisible formatting characters: form feed and vertical tab are line breaks;
# other C0/C1 controls, bidirectional overrides and zero-width characters are removed (they
# would reach terminals, JSON and the text encoder, and hide what a sentence says).
_INVISIBLE = (
    [*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0x85), *range(0x86, 0xA0),
     *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0x00AD, 0xFEFF]
)
_CLEAN = {**dict.fromkeys(_INVISIBLE), **dict.fromkeys((0x0B, 0x0C, 0x85, 0x2028, 0x2029), "\n")}


def clean_text(text: str) -> str:
    """`text` without control and invisible formatting characters (tabs and line ends kept;
    form feeds, vertical tabs and Unicode line separators become line ends)."""
    return text.translate(_CLEAN)


def _fold(raw: str) -> str:
    """A sentence as the text encoder sees it: clean, white space folded."""
    return " ".join(clean_text(raw).split())


_NEXT_CHAR = re.compile(r"\s*[(\[\"'\u2018\u201c]*(.)", re.S)


def _ends_sentence(text: str, m: re.Match[str], start: int, end: int) -> bool:
    term = m.group("term")
    if "?" in term or "!" in term:
        return True
    s = m.start()
    if s == start or text[s - 1].isspace():
        token = ""  # a detached period
    else:  # the word before the period (a bounded look back: abbreviations are short)
        token = text[max(start, s - 32) : s].split()[-1].lstrip("([\"'").lower()
    always = token in _ALWAYS_ABBREV
    sometimes = (
        token in _SOMETIMES_ABBREV
        or "." in token
        or (len(token) == 1 and token.isalpha())
        or len(term) > 1  # an ellipsis
    )
    if not (always or sometimes or token == "no"):
        return True  # the common case: a period after a plain word
    nxt = _NEXT_CHAR.match(text, m.end(), end)
    if nxt is None:
        return True  # nothing follows in this section
    c = nxt.group(1)
    if always:
        return False
    if token == "no":
        return not (c.isdigit() or c == "#")
    return not c.islower()


def _rstrip(text: str, start: int, end: int) -> int:
    return start + len(text[start:end].rstrip())


def _sentence_end(text: str, start: int, end: int, item: int | None) -> tuple[int, int]:
    """(end of the sentence starting at `start`, where to look for the next one)."""
    pos = start
    while True:
        m = _BREAK.search(text, pos, end)
        if m is None:
            return _rstrip(text, start, end), end
        kind = m.lastgroup
        if kind == "cjk":
            return m.end(), m.end()
        if kind == "term":
            if _ends_sentence(text, m, start, end):
                return m.end(), m.end()
            pos = m.end()
        elif kind == "nl":
            return _rstrip(text, start, m.start()), m.end()
        elif item is not None and int(m.group("num")) == item + 1:
            return _rstrip(text, start, m.start()), m.start()
        else:
            pos = m.start() + 1


def _split(text: str, start: int, end: int, section: str) -> list[Sentence]:
    sentences = []
    item: int | None = None  # number of the list item we are in, if any
    pos = start
    while True:
        while True:  # skip white space, bullets and list numbers ("1. ", "2) ")
            m = _LEAD.match(text, pos, end)
            pos = m.end()
            if m.group("mark") is None:
                break
            if m.group("num"):
                item = int(m.group("num"))
        if pos >= end:
            return sentences
        stop, pos_next = _sentence_end(text, pos, end, item)
        raw = text[pos:stop]
        # Blanks ("___"), rules ("-----") and lone numbers carry nothing to ground.
        if _LETTER.search(raw):
            folded = _fold(raw)
            sentences.append(Sentence(folded, raw, section, classify_sentence(folded), pos, stop))
        pos = pos_next


# ---------------------------------------------------------------------------------------------
# Sentence kinds (NegEx-style cues, applied per clause)

_CLAUSE = re.compile(
    r";|,\s*(?:with|otherwise)\b|\b(?:but|however|although|though|whereas|except|aside from"
    r"|apart from|other than|with the exception of|besides)\b",
    re.I,
)
# Uncertainty, change and borderline statements assert something is there: findings.
_UNCERTAIN = re.compile(
    r"\b(?:can ?not|can't|could not|couldn't|not)\s+(?:be\s+)?"
    r"(?:(?:entirely|completely|totally|definitely|fully)\s+)?(?:exclude[ds]?|rule[ds]?\s+out)\b"
    r"|\b(?:no|without)\s+(?:(?:significant|substantial|appreciable|definite|interval)\s+)*"
    r"change\b|\bnot\s+(?:significantly\s+)?changed\b"
    r"|\b(?:near(?:ly)?|partial(?:ly)?|incomplete(?:ly)?|almost|near-complete|near-total"
    r"|not\s+(?:yet\s+)?(?:completely|fully|entirely))\s+(?:(?:complete|total)\s+)?resol"
    r"|\b(?:top|high)[- ]normal\b|\bupper\s+(?:limits?|range)\s+of\s+normal\b|\bborderline\b",
    re.I,
)
# "No acute cardiopulmonary process." is this project's global normal statement.
_GLOBAL_NORMAL = re.compile(
    r"\b(?:no|without)\s+(?:[\w-]+\s+){0,3}?(?:acute|active)\s+(?:[\w-]+\s+){0,2}?"
    r"(?:process(?:es)?|abnormalit(?:y|ies)|disease|findings?|pathology)\b",
    re.I,
)
# Negation whose scope runs backwards: "Pleural effusions are not seen."
_POST_NEG = re.compile(
    r"\b(?:not|no\s+longer)\s+(?:(?:definitely|clearly|convincingly|currently|again|now|well)"
    r"\s+)?(?:seen|identified|visuali[sz]ed|demonstrated|evident|appreciated|present|detected"
    r"|noted|apparent|observed|visible|shown)\b|\bresolved\b|\bruled\s+out\b"
    r"|\b(?:is|are|was|were|been)\s+excluded\b|\babsent\b|\bnone\b|:\s*negative\b",
    re.I,
)
# Negation whose scope runs forwards: "There is no pleural effusion."
_PRE_NEG = re.compile(
    r"\b(?:no|not|without|w/o|negative\s+for|free\s+of|clear\s+of|absence\s+of|never|neither"
    r"|nor|(?:interval\s+)?resolution\s+of)\b",
    re.I,
)
_NORMAL = re.compile(
    r"\bnormal\b|\bunremarkable\b|\bwnl\b|\bintact\b|\bpreserved\b|\bsharp\b|\bmidline\b"
    r"|\b(?:are|is|remain|remains|appear|appears|otherwise|now|and|grossly|essentially|largely"
    r"|relatively|be|lungs?)\s+clear\b|:\s*clear\b"
    r"|\bclear\s+(?:lungs?|lung\s+fields|bilaterally|chest)\b"
    r"|\bwell[- ]?(?:expanded|aerated|inflated)\b"
    r"|\bnegative\s+(?:chest|study|exam(?:ination)?|radiograph|x-ray)\b",
    re.I,
)
# Words that make the text before a negation, or a "normal" clause, a positive statement:
# "Mild cardiomegaly without edema.", "The ET tube is in normal position."
_FINDING_TERM = re.compile(
    r"\b(?:opacit(?:y|ies)|opacifi\w*|consolidat\w*|effusions?|pneumothora(?:x|ces)"
    r"|hydropneumothorax|nodul\w*|mass(?:es)?|atelecta\w*|o?edema|congest\w*|cardiomegal\w*"
    r"|enlarge\w*|pneumonia|infiltrat\w*|fractur\w*|thicken\w*|scar\w*|fibro\w*|emphysema\w*"
    r"|hyperinfla\w*|hyperexpan\w*|collaps\w*|lesions?|densit(?:y|ies)|calcifi\w*|granulom\w*"
    r"|widen\w*|elevat\w*|blunt\w*|hernia\w*|deformit\w*|degenerat\w*|tortu\w*|aneurysm\w*"
    r"|tubes?|catheters?|lines?|pacemakers?|pacers?|wires?|clips?|stents?|ports?|picc|drains?"
    r"|devices?|leads?|air\s?space|bronchiectasis|cavit\w*|infection|aspiration|cysts?"
    r"|prominen\w*|engorge\w*|volume\s+loss|low\s+lung\s+volumes|pneumomediastinum"
    r"|pneumoperitoneum|free\s+air|abnormalit\w*)\b",
    re.I,
)


# Substrings without which a pattern cannot match: cheap tests that spare most regex scans.
_HINTS = {
    "clause": (";", ",", "but", "however", "though", "whereas", "except", "aside", "apart",
               "other than", "besides"),
    "uncertain": ("exclude", "rule", "change", "resol", "normal", "borderline"),
    "global": ("acute", "active"),
    "post": ("not", "no longer", "resolved", "ruled", "excluded", "absent", "none", "negative"),
    "pre": ("no", "without", "w/o", "negative", "free", "clear", "absence", "never", "neither",
            "resolution"),
    "normal": ("normal", "unremarkable", "wnl", "intact", "preserved", "sharp", "midline",
               "clear", "well", "negative"),
}


def _may(low: str, hints: str) -> bool:
    return any(h in low for h in _HINTS[hints])


def _clause_kind(clause: str) -> SentenceKind:
    low = clause.lower()
    if _may(low, "uncertain") and _UNCERTAIN.search(clause):
        return "finding"
    if _may(low, "global") and _GLOBAL_NORMAL.search(clause):
        return "normal"
    if _may(low, "post") and _POST_NEG.search(clause):
        return "negated"
    neg = _PRE_NEG.search(clause) if _may(low, "pre") else None
    if neg:
        before = clause[: neg.start()]
        if _FINDING_TERM.search(before):
            return "finding"
        return "normal" if _NORMAL.search(before) else "negated"
    if _may(low, "normal") and _NORMAL.search(clause) and not _FINDING_TERM.search(clause):
        return "normal"
    return "finding"


@lru_cache(maxsize=8192)
def _classify(text: str) -> SentenceKind:
    clauses = _CLAUSE.split(text) if _may(text.lower(), "clause") else [text]
    kinds = [_clause_kind(c) for c in clauses if _LETTER.search(c)]
    if not kinds or "finding" in kinds:
        return "finding"
    return kinds[0]


def classify_sentence(text: str) -> SentenceKind:
    """"negated" (absence of findings), "normal" (a statement of normality) or "finding".

    A sentence is cut into clauses at contrastive words ("but", "except", ";"); any clause
    that asserts a finding makes the sentence a finding, otherwise the first clause decides.
    """
    # Reports repeat the same sentences ("No pneumothorax."), so short ones are cached.
    return _classify(text) if len(text) <= 500 else _classify.__wrapped__(text)


# ---------------------------------------------------------------------------------------------
# Reports and queries


def _label_list(sections: Sequence[_Section]) -> str:
    return ", ".join(dict.fromkeys(s.label for s in sections if s.label))


def _without_identifiers(
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


def parse_report(text: str) -> Report:
    """Split a decoded report into the sentences of its FINDINGS and IMPRESSION sections (the
    whole text when it has no recognised headers). Offsets refer to `text` as given."""
    if len(text) > MAX_REPORT_BYTES:
        raise ReportError(
            f"report of {len(text)} characters exceeds the limit of {MAX_REPORT_BYTES} bytes"
        )
    if not text.strip():
        raise ReportError("the report is empty")
    sections = _sections(text)
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
    identifiers = [m.span() for m in _IDENTIFIER_LINE.finditer(text)]
    sentences: list[Sentence] = []
    for part in parts:
        for start, end in _without_identifiers(part.start, part.end, identifiers):
            sentences.extend(_split(text, start, end, part.use or "report"))
    if sentences:
        return Report(text, tuple(sentences))
    if identifiers and any(_split(text, p.start, p.end, "report") for p in parts):
        raise ReportError(
            "the report holds only identifier or signature lines (Patient:, MRN, Signed: ...), "
            "no findings"
        )
    if kept:
        labels = _label_list(kept).split(", ")
        raise ReportError(
            f"the {' and '.join(labels)} section{'s contain' if len(labels) > 1 else ' contains'}"
            " no sentence, only blanks or punctuation"
        )
    if len(sections) > 1:
        raise ReportError(
            f"the report has no FINDINGS or IMPRESSION section (headers found: "
            f"{_label_list(sections)}); add a 'FINDINGS:' header before the findings"
        )
    raise ReportError("the report contains no words, only blanks or punctuation")


def query_sentences(queries: Sequence[str]) -> tuple[Sentence, ...]:
    """Free-text queries (e.g. from the command line) as sentences: one each, section "query",
    kind "finding"; start/end are offsets into the query string itself."""
    if isinstance(queries, str):
        raise TypeError("query_sentences takes a sequence of queries, not one string")
    sentences = []
    for i, query in enumerate(queries, 1):
        if len(query) > MAX_REPORT_BYTES:
            raise ReportError(f"query {i} is {len(query)} characters, over {MAX_REPORT_BYTES}")
        if not _LETTER.search(query):
            raise ReportError(f"query {i} is empty: give the finding to localize as words")
        start = len(query) - len(query.lstrip())
        end = len(query.rstrip())
        raw = query[start:end]
        sentences.append(Sentence(_fold(raw), raw, "query", "finding", start, end))
    return tuple(sentences)


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
