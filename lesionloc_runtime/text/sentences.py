"""Sentence splitting with exact offsets: terminators, abbreviations, list numbers, bullets and
wrapped lines."""

from __future__ import annotations

import re

from lesionloc_runtime.text.assertion import assess
from lesionloc_runtime.text.decoding import clean_text
from lesionloc_runtime.text.records import Sentence

__all__ = ["LETTER", "fold", "split_sentences"]

_NL = r"(?:\r\n|\r(?!\n)|\n)"
_MARKER = r"(?:[-*\u2022\u00b7\u2013]|\(?\d{1,2}[.)])"  # bullet, "1." "1)" "(1)"
_LEAD = re.compile(r"[\s\ufeff]*(?P<mark>(?:[-*\u2022\u00b7\u2013]|\(?(?P<num>\d{1,2})[.)])"
                   r"\s+(?=\S))?")
_BREAK = re.compile(
    # Positions where no break can start are skipped by this one test: faster scans.
    r"(?=[.!?\u3002\uff01\uff1f\uff61\r\n(0-9])(?:"
    # A run of terminators, counted from its first character so a long run is scanned once.
    r"(?P<term>(?<![.!?])[.!?]+[\"')\]\u2019\u201d]*)(?=\s|$)"
    # Chinese and Japanese full stops end a sentence with no space after them.
    r"|(?P<cjk>[\u3002\uff01\uff1f\uff61]+[\"')\]\u2019\u201d\u300d\u300f\uff09]*)"
    # A line break before a blank line, a list item, a bullet or a "Label:" line.
    r"|(?P<nl>" + _NL + r")(?=[^\S\r\n]*(?:" + _NL + r"|$|" + _MARKER + r"\s"
    r"|[A-Z][A-Za-z/&-]*(?:[ \t][A-Za-z/&-]+){0,3}:\s))"
    # An inline list number; taken only when it is the next number of the current list.
    r"|(?P<item>(?<=\s)\(?(?P<num>\d{1,2})[.)]\s+(?=\S)))"
)
LETTER = re.compile(r"[^\W\d_]")
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


def fold(raw: str) -> str:
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


def split_sentences(text: str, start: int, end: int, section: str) -> list[Sentence]:
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
        if LETTER.search(raw):
            folded = fold(raw)
            said = assess(folded)
            sentences.append(Sentence(folded, raw, section, said.kind, pos, stop, said.uncertain,
                                      said.span))
        pos = pos_next
