"""What a sentence starts by naming, which the second opinion (text/veto.py) may not take away
whatever wording follows: a device or foreign body, the operation that left one, a change for
the worse, a specific finding, a diagnosis offered, a form's field answered yes, an ILO grade.
The rules already call these findings; a word model trained on whole sentences scored some
of them as other ("Free air is seen under the diaphragm.")."""

from __future__ import annotations

import re

from lesionloc_runtime.text import lexicon as lx
from lesionloc_runtime.text.sections import NARRATIVE_HEADER_NAMES

__all__ = ["DEVICE_LEAD", "FINDING_LEAD", "SECTION_LEAD", "named"]

# A report section's name before its first sentence and a list's number ("IMPRESSION: 1. ..."):
# no part of what the sentence says, nor of a finding's span.
_SECTION_NAME = r"(?:" + NARRATIVE_HEADER_NAMES + r"|summary|comments?|interpretation)"
SECTION_LEAD = re.compile(r"\s*(?:" + _SECTION_NAME + r"\s*(?::|\s-\s)\s*)?(?:\d{1,2}\s*[.)]\s+)?")
# A device or foreign body as what a sentence starts with ("ECG electrodes are seen over the
# chest."): a finding the second opinion leaves alone, whatever wording follows.
DEVICE_LEAD = re.compile(
    r"\A\W*(?:[\w-]+\s+){0,2}?(?:electrodes?|leads?|wires?|pacemaker|pacer|defibrillator|icd|aicd"
    r"|picc|catheters?|tubes?|lines?|clips?|stents?|drains?|ports?|ett|ngt|ogt|cvc|uvc|uac|markers?"
    # or a foreign body ("Swallowed coin on the frontal view.")
    r"|coins?|batter(?:y|ies)|pins?|needles?|bullets?|pellets?|shrapnel|foreign\s+bod(?:y|ies))\b"
    # or the operation that left it ("The patient is status post TAVR.")
    r"|\A\W*(?:the\s+)?(?:patient\s+(?:is\s+)?)?(?:status\s+post|s/p)\s+(?:[\w-]+\s+){0,2}?(?:tav[ri]|[am]vr"
    r"|cabg|sternotomy|valve|pacemaker|lobectomy|pneumonectomy|mastectomy|thoracotomy)\b"
    r"|\A[^;]*?\b(?:the\s+)?(?:patient\s+)?(?:is|has\s+been|was|remains)\s+(?:now\s+)?(?:re-?)?intubated\b"
    # or a change for the worse ("Appearances have progressed since the radiograph of 2021.")
    r"|\A\W*(?:the\s+)?(?:appearances?|changes?|findings?)\s+(?:have|has)\s+(?:progressed|worsened"
    r"|deteriorated)\b"
)
# The same for a sentence that starts with a specific finding ("Free air is seen under the
# diaphragm.", which the second opinion scored as other): a word model must not take it away.
FINDING_LEAD = re.compile(
    r"\A\W*(?:\d+[a-z]?[.)]\s+)?(?:[\w-]+\s+){0,2}?(?:free\s+(?:[\w-]+\s+){0,2}?(?:air|gas)|ptx|pneumo(?:thorax|peritoneum|mediastinum"
    r"|pericardium)|mass(?:es)?|nodules?|consolidation|effusions?|fractures?|opacit(?:y|ies)"
    r"|collapse|atelectasis|cardiomegaly|o?edema|widening|nipple\s+shadows?|surfactant\s+deficiency)\b"
    # a diagnosis offered ("Consider TB in view of the history.") or a form's field answered
    # yes ("Evidence of previous TB: Yes.")
    r"|\A\W*(?:would\s+)?consider\s+(?:[\w-]+\s+){0,2}?(?:tb|tuberculosis|pcp|pneumonia|malignancy)\b"
    r"|\A[^:;]{3,60}:\s*(?:yes|present)\b"
    # a reader's query of a diagnosis after a comment's label: "Comment: ?Aspiration."
    r"|\A\W*" + _SECTION_NAME + r"\s*:\s*\?\s*[a-z]"
    r"|\A[^.;]{0,30}?" + lx.ILO_GRADE
)


def named(low: str) -> bool:
    """Whether the prepared sentence `low` starts by naming a device, a foreign body or a
    specific finding."""
    return bool(DEVICE_LEAD.match(low) or FINDING_LEAD.match(low))
