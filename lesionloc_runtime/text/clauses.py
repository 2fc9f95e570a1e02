"""What the words of a clause say: a sentence prepared for matching (lower case, placeholders
out, typing errors of cue words corrected), its content words, and the decisions made from
word classes alone (a clause about the exam, the kind of what a negation negates)."""

from __future__ import annotations

import re

from lesionloc_runtime.text import leads, spelling
from lesionloc_runtime.text import lexicon as lx
from lesionloc_runtime.text import other_cues as oc
from lesionloc_runtime.text.records import SentenceKind

__all__ = [
    "CHANGE",
    "about_the_exam",
    "alternatives_first",
    "asked",
    "blank",
    "change_kept",
    "content_words",
    "contrast",
    "cue_word",
    "form_kind",
    "negated_kind",
    "only_stability",
    "prepare",
    "recommendation",
    "seen_kind",
]

# Change cues: what they negate is gone, so always a specific finding.
CHANGE = frozenset("resolved removed cleared discontinued decannulated resolution removal clearing pulled "
                   "withdrawn absorbed re-expanded reexpanded disappeared disappearance regression "
                   "no-longer disappear disappears regressed resorbed reabsorbed out drained".split())
_HEAD = frozenset("process processes abnormality abnormalities disease diseases findings remarks "
                  "finding pathology change changes alteration alterations peculiarities peculiarity "
                  "anomaly anomalies particularity particularities".split())
# Words of stability before a negation say nothing of what the organ is: "Silhouette
# unchanged, not widened." is about the silhouette; nor do "otherwise" ("Otherwise no acute
# cardiopulmonary disease.") and "completely" ("Completely negative.").
_STABLE = frozenset("stable unchanged unaltered similar otherwise completely entirely totally".split())
# What an organ is said not to be, as a normal statement: "Heart not enlarged.", "Mediastinum
# without widening.", "Mediastinum not shifted." (the subject is anatomy, not a finding).
_DEVIATION = frozenset("enlarged enlarge enlargement widened widen widening shifted shift "
                       "displaced displacement deviated deviation dilated dilatation increased "
                       "engorged congested".split())
# A clause's subject that names its finding in the sentence before: "It is not seen on the
# lateral view.", "This was not present on the prior study."
_PRONOUN = frozenset("this it these they".split())
_SEEN = frozenset("not well clearly definitely".split())


# "A or B" as the first finding of a clause, up to a break in the phrase.
_OR = re.compile(r"\s+or\s+")
_OR_BREAK = re.compile(r"[,;:(]|\b(?:with|and|in|at|of)\b")

# what may stand between a dictated "Know" (no) and its finding: "Know focal consolidation."
_MODIFIERS = re.compile(r"(?:(?:focal|small|large|acute|new|definite|significant|obvious|gross|residual"
                        r"|left|right|bilateral|sizable|moderate)\s+){0,2}")
_DICTATED_COLON = re.compile(r"\b(impression|findings|conclusion|comparison|history|indication"
                             r"|technique|clinical\s+history)\s+colon\b")


def prepare(text: str) -> tuple[str, list[int] | None]:
    """Lower case with placeholders taken out (and the white space around them folded) and
    misspelt cue words corrected, and for each character its offset in `text` (None: the
    same offsets)."""
    low, index = text.lower(), None
    if lx.MAYBE_PLACEHOLDER.search(text) or len(low) != len(text):
        masked = lx.PLACEHOLDER.sub(lambda m: "\0" * len(m.group()), text)
        chars: list[str] = []
        index = []
        for i, c in enumerate(masked):
            if c == "\0" or (c.isspace() and chars and chars[-1] == " "):
                continue
            lower = " " if c.isspace() else c.lower()
            chars.append(lower if len(lower) == 1 else c)  # a few lower-case to two ("İ")
            index.append(i)
        low = "".join(chars)
    if "(y/n)" in low:  # a form's answer: "Pleural effusion (Y/N): N" (same length)
        low = _YES_NO.sub(_yes_no, low)
    low, index = spelling.correct(low, index, _known)
    if " colon" in low:  # dictated punctuation: "Impression colon no acute process."
        low = _DICTATED_COLON.sub(
            lambda m: m.group(1) + ":" + " " * (len(m.group()) - len(m.group(1)) - 1), low)
    if low.startswith("know ") and lx.FINDING_TERM.match(low, 5 + len(_MODIFIERS.match(low, 5).group())):
        low = "no  " + low[4:]  # dictation: "Know pneumothorax." (same length: offsets hold)
    return low, index


_YES_NO = re.compile(r"\(y/n\)\s*:?\s*([yn])\b")


def _yes_no(m: re.Match[str]) -> str:
    """"(y/n): n" as an absence ("(y/n)n", the shortest, has as many characters as "absent"),
    "(y/n): y" as nothing: what it answers stands as stated."""
    return ("absent" if m.group(1) == "n" else "").rjust(len(m.group()))


def _known(word: str) -> bool:
    """A word of the lexicon, never read as a typing error ("staple" is no "stable")."""
    return word in lx.KNOWN or lx.FINDING_TERM.match(word) is not None


def content_words(s: str) -> list[str]:
    """Content words: letters only, filler left out."""
    out = []
    for w in lx.WORD.findall(s):
        w = w.strip("-'")
        if w.endswith("'s"):  # "the resident's findings"
            w = w[:-2]
        if w and w not in lx.FILLER:
            out.append(w)
    return out


def only_stability(text: str) -> bool:
    """Whether a part only says that something stays as it was ("but stable")."""
    return bool(lx.STABILITY.search(text) and not content_words(blank(lx.STABILITY, text)))


def blank(pattern: re.Pattern[str], s: str) -> str:
    return pattern.sub(lambda m: " " * len(m.group()), s)


def about_the_exam(seg: str, core: str, words: list[str]) -> bool:
    """Whether a clause without negation or normal cues has nothing on the image: the exam's
    name, or no finding, device or measurement named and an administrative word, a pointer to
    elsewhere in the report, or the exam named with no place or descriptor. Words no list
    knows, with none of these, make a finding."""
    if lx.EXAM_NAME.match(seg):
        return True
    if lx.FINDING_TERM.search(core):
        return False
    return (
        (any(w in lx.ADMIN for w in words) and not lx.DIAGNOSIS.search(seg))
        or all(w in lx.EXAM or w in lx.EXAM_LABELS for w in words)
        or lx.REFERENCE.search(seg) is not None
        or (_names_the_exam(seg) and not lx.DIAGNOSIS.search(seg) and not any(
            w in lx.LOCATION or w in lx.DESCRIPTOR for w in _place_words(seg)))
    )


def _names_the_exam(seg: str) -> bool:
    """Whether the exam is what a clause is about: it starts as a comparison, or names the exam
    outside a phrase saying where something was seen ("on the lateral view")."""
    if lx.COMPARING.match(seg):
        return True
    return any(w in lx.EXAM_SUBJECT for w in content_words(blank(lx.SEEN_ON, seg)))


def _place_words(seg: str) -> list[str]:
    """The content words of a clause outside phrases saying where or on which view."""
    return content_words(blank(lx.VIEW_SIDE, blank(lx.SEEN_ON, seg)))


def cue_word(cue: re.Match[str]) -> str:
    """The word a negation cue is known by: its first, or "no-longer" ("The drain is no longer
    in situ": gone, negating its subject like "removed")."""
    words = cue.group().split()
    return "no-longer" if words[:2] == ["no", "longer"] else words[0]


# What a finding is said not to be, after a comma: "Apical pleural capping, not suggestive of
# TB.", "Skin folds ..., not to be confused with pneumothorax." (the finding stays).
_NOT_WHAT = re.compile(r"\s+(?:(?:\w+ly\s+)?(?:suggestive|typical|characteristic|diagnostic|indicative"
                       r"|consistent|compatible)\s+(?:of|with)|in\s+keeping\s+with|to\s+be\s+(?:confused"
                       r"|mistaken)\s+(?:with|for))\b"
                       # or what it is not like: "8 mm nodule, not calcified", "Fracture, not displaced."
                       r"|\s+(?:\w+ly\s+)?(?:calcified|displaced|cavitat(?:ed|ing)|loculated|spiculated)\b")
# A change only wanted: "Dobhoff tube tip projects over the bronchus and should be removed."
_WANTED = re.compile(r"\b(?:should|must|will|would|can|could|may|might|to)\s+(?:now\s+)?be\s+\Z")


def change_kept(seg: str, cue: re.Match[str]) -> bool:
    """Whether a change cue leaves its finding there: a partial change ("nearly resolved", a
    bounded look back; "resolved partially") or one only wanted ("should be removed")."""
    a = cue.start()
    return bool(lx.PARTIAL.search(seg, max(0, a - 80), a) or lx.PARTIAL_AFTER.match(seg, cue.end())
                or _WANTED.search(seg, max(0, a - 30), a))


def contrast(seg: str, cue: re.Match[str]) -> bool:
    """", not the right" closing a clause: a place corrected, not a finding negated; ", not
    suggestive of TB": what the finding is not; a negation inside a form's label ("Other
    findings not related to TB: mild thoracic scoliosis.")."""
    if seg[: cue.start()].rstrip().endswith(",") and _NOT_WHAT.match(seg, cue.end()):
        return True
    colon = seg.find(":", cue.end())
    if colon >= 0 and content_words(seg[: cue.start()]) and lx.FINDING_TERM.search(seg, colon):
        return True
    rest = seg[cue.end():]
    if len(rest) > 40 or not seg[max(0, cue.start() - 4) : cue.start()].rstrip().endswith(","):
        return False
    after = content_words(rest)
    return bool(after) and all(w in lx.ANATOMY for w in after)


def negated_kind(subject: str, negated: str, cue: str) -> SentenceKind:
    """"normal" when what is negated is no specific finding ("No acute cardiopulmonary
    process", "Negative.") or the subject is an organ said not to deviate ("Heart not
    enlarged.", but "No hilar enlargement." names a finding), else "negated"; `subject` is the
    text before the cue, `negated` after it. Change cues always negate a finding."""
    if cue in CHANGE or cue.startswith("extubat"):
        return "negated"
    before = [w for w in content_words(subject) if w not in _STABLE]
    # "No acute disease and no change.": the change statement is no object of the negation
    after = content_words(blank(lx.NO_CHANGE, negated) if lx.NO_CHANGE_WORD.search(negated) else negated)
    label, colon, rest = subject.rpartition(":")
    if after and colon and not lx.FINDING_TERM.search(label) and not any(
            w in lx.ANATOMY for w in content_words(label)):
        # a label naming no organ or finding: "NIGHTHAWK PRELIMINARY: No acute findings."
        before = [w for w in content_words(rest) if w not in _STABLE]
    # "Heart not enlarged, mediastinum central.", "... not enlarged for age / on this AP view."
    deviation = [w for w in content_words(lx.NORMAL_ATTRIBUTE.sub(" ", negated.split(",")[0]))
                 if w not in lx.EXAM]
    organ = bool(before) and all(
        w in lx.ANATOMY or w in lx.GENERIC or lx.NORMAL_CUE.fullmatch(w) for w in before)
    if organ and (not after or cue == "clear" or (deviation and all(w in _DEVIATION for w in deviation))):
        # ... or nothing named: "Heart and aorta without features."; or an organ "clear of"
        # something: "The lungs are clear of focal infiltrates." (as "Lungs are clear without ...")
        return "normal"
    words = before + after
    nothing = lx.EXAM | lx.ADMIN | lx.EXAM_LABELS
    if (words or cue == "no") and cue not in ("negative", "neg") and all(
        w in nothing for w in words
    ):
        # Nothing negated at all ("GMC No. ___") or only exam words ("Lateral view not
        # obtained."): nothing about the image's content.
        return "other"
    head = any(w in _HEAD for w in words)  # "findings" is also a header word: looked at first
    words = [w for w in words if w not in nothing]
    if all(w in lx.GENERIC for w in words) or (
        all(w in lx.GENERIC or w in lx.ANATOMY for w in words) and head
    ):
        return "normal"
    return "negated"


_ASKED = re.compile(r"\A\W*(?:\?\s*[a-z]|known\b)")


def asked(seg: str) -> bool:
    """Whether a clause is the referrer's question or history: a query mark or "known" first
    and the patient's symptoms or history after a comma ("?Inhaled foreign body, coughing after
    eating peanuts.", "Known metastatic breast cancer, increasing breathlessness.").
    A query alone ("?Consolidation right base.") is the reader's hedged finding."""
    if not _ASKED.match(seg):
        return False
    return any(w in lx.SYMPTOMS for piece in seg.split(",")[1:] for w in content_words(piece))


def alternatives_first(core: str) -> bool:
    """Whether the first finding a clause names is one of two alternatives: "Small right
    pleural effusion or pleural thickening.", "Left basilar atelectasis or scarring." (a
    differential, as with "versus"); "Left basal opacity, atelectasis or pneumonia." names the
    opacity first."""
    first = lx.FINDING_TERM.search(core) if " or " in core else None
    if first is None:
        return False
    m = _OR.search(core, first.end())
    if m is None or _OR_BREAK.search(core, first.end(), m.start()) or lx.FINDING_TERM.search(
            core, first.end(), m.start()):
        return False
    stop = _OR_BREAK.search(core, m.end())
    second = lx.FINDING_TERM.search(core, m.end(), stop.start() if stop else len(core))
    # one thing in its number: "Cavity or cavities: present" is no differential
    return second is not None and second.group() != first.group()


def seen_kind(seg: str, words: list[str], deliberate: bool) -> SentenceKind | None:
    """The kind of a clause of exam words only ("which was not present on the prior"), or, when
    a "not" in the sentence was read as no negation (`deliberate`: visibility elsewhere), of a
    place said not to be seen on a view ("The right costophrenic angle is not well seen on the
    frontal view": a limit of the film, other); a pronoun said not to have been seen before
    stands for a finding seen now. None for any other clause."""
    if not (all(w in lx.EXAM or w == "not" for w in words) or (deliberate and "not" in words and all(
            w in lx.EXAM or w in lx.ANATOMY or w in _SEEN for w in words))):
        return None
    return "finding" if deliberate and seg.split()[0] in _PRONOUN else "other"


# A form's field answered no: "Large opacities: 0.", "Any parenchymal abnormalities consistent
# with pneumoconiosis? NO.", "Discrete nodule(s) without calcification: absent."
_FORM_NO = re.compile(r"\A\W*(?:\d+[a-z]?[.)]\s+)?(?P<label>[^:?;]{2,80}?)\s*[:?]\s*(?:no|none|nil|absent"
                      r"|negative|0)\W*\Z")


def form_kind(low: str) -> SentenceKind | None:
    """The kind of a whole sentence that its form decides: a label that makes it other ("Hx:
    ..."), or a field answered no, read as "no <label>" would be; None for any other."""
    if lx.OTHER_LABEL.match(low):
        return "other"
    m = _FORM_NO.match(low)
    if m is None or leads.SECTION_LEAD.fullmatch(m.group("label") + ": "):  # "Impression: negative."
        return None
    return negated_kind(m.group("label"), "", "no")


def recommendation(seg: str) -> re.Match[str] | None:
    """The first recommendation cue of a clause that recommends ("Consider TB." offers a
    diagnosis, "TB should be considered." too)."""
    for m in lx.RECOMMENDATION.finditer(seg):
        if not (oc.OFFERED.fullmatch(m.group()) and lx.FINDING_TERM.search(seg, m.end())
                and not oc.TO_ASSESS.search(seg, m.end())) and not (
                oc.OFFERED_BEFORE.match(seg, m.start()) and lx.FINDING_TERM.search(seg, 0, m.start())
                and not oc.TESTS.intersection(content_words(seg)[:1])):
            return m
    return None
