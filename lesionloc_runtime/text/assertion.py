"""Sentence kinds: finding, negated or normal (NegEx-style cues, applied per clause)."""

from __future__ import annotations

import re
from functools import lru_cache

from lesionloc_runtime.text.records import SentenceKind

_LETTER = re.compile(r"[^\W\d_]")

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
