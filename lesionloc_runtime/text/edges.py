"""Where the parts of a sentence begin and end: what a part cannot end with, where a subject
is cut into pieces, what may stand before a cue, a placeholder at a span's end. Lower-case text
with placeholders blanked, as for the lexicon."""

from __future__ import annotations

import re

from lesionloc_runtime.text import lexicon as lx

__all__ = ["AND", "COORDINATORS", "FILLER_TAIL", "PIECE", "PLACEHOLDER_TAIL", "TRAILING", "VERB",
           "VERB_WORD", "WITH_THE"]

# what a part cannot end with: punctuation, or a word that joins it to the next part ("... in
# the right atrium and | could be withdrawn")
TRAILING = re.compile(r"(?:[\s,;:.\-]|\b(?:and|or|but|with|which|would|could|should)\b)+\Z")
PIECE = re.compile(r",|\bwith\b")
FILLER_TAIL = re.compile(
    r"(?:\bthere\s+(?:is|are|was|were|has\s+been|have\s+been|remains?)|\b(?:again|also|now|still"
    r"|otherwise|status\s+(?:post|after)|s/p|interval))\s*\Z"
)
AND = re.compile(r"\band\b")
# what starts the subject of a change after a finding ("... with the pneumothorax now resolved")
WITH_THE = re.compile(r"\bwith\s+(?=(?:the|its)\s)")
PLACEHOLDER_TAIL = re.compile(r"(?:\s*(?:" + lx.PLACEHOLDER.pattern + r"))+")
COORDINATORS = frozenset("and or with but nor".split())
VERB = frozenset("is are was were be been has have had remains remain appears appear seen "
                 "visible visualized identified noted".split())
VERB_WORD = re.compile(r"\b(?:" + "|".join(sorted(VERB)) + r")\b")
