"""Radiology report understanding: sections, sentence splitting and sentence kinds
(finding / negated / normal). The one implementation, used by training and the runtime.

Every sentence keeps exact character offsets into the report text it came from, so
`sentence.raw == report.text[sentence.start:sentence.end]` always holds; docs/reports.md
describes the rules for users.
"""

from __future__ import annotations

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


def _name_pattern(name: str) -> str:
    words = "[ \t]+".join(re.escape(w) for w in name.split(" "))
    return words.replace("/", "[ \t]*/[ \t]*")


_HEADER = re.compile(
    r"(?:(?P<bol>(?:\A|(?<=[\r\n]))[ \t\ufeff]*)|(?<=[ \t]))"
    # Fails at once where no header name can start, which keeps long runs of spaces cheap.
    r"(?=[" + "".join(sorted({n[0] + n[0].upper() for n in _HEADERS})) + r"])"
    r"(?P<name>" + "|".join(_name_pattern(n) for n in sorted(_HEADERS, key=len, reverse=True))
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
    return j == 0 or text[j - 1] in ".!?:" or line_ends > 1


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
            folded = " ".join(raw.split())
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
    sentences: list[Sentence] = []
    for part in parts:
        sentences.extend(_split(text, part.start, part.end, part.use or "report"))
    if sentences:
        return Report(text, tuple(sentences))
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
        sentences.append(Sentence(" ".join(raw.split()), raw, "query", "finding", start, end))
    return tuple(sentences)


_TEXT_CONTROLS = b"\t\n\v\f\r"  # control bytes that plain text may carry
_CONTROL_BYTES = bytes(b for b in range(32) if b not in _TEXT_CONTROLS) + b"\x7f"
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)


def decode_report(data: bytes, source: str = "<report>") -> str:
    """Bytes of a report file to text: UTF-8 (BOM stripped), else Windows-1252 / Latin-1;
    UTF-16 with a BOM too. Line ends become "\\n"; offsets refer to the returned text."""
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(
            f"{source}: report of {len(data)} bytes exceeds the limit of {MAX_REPORT_BYTES}"
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 (Windows "Unicode" text)
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise ReportError(f"{source}: binary data, not a text report") from None
    else:
        # Control bytes other than tabs and line ends do not occur in dictated text.
        controls = len(data.translate(None, _NOT_CONTROL))
        if b"\x00" in data or controls > 0.1 * len(data):
            raise ReportError(f"{source}: binary data, not a text report")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # cp1252 is Latin-1 plus printable characters where Latin-1 has C1 controls;
            # the five bytes cp1252 leaves undefined still decode as Latin-1.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


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
