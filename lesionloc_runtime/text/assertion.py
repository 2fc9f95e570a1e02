"""What a report sentence asserts: its kind (finding, negated, normal or other), whether the
finding is hedged, and which span of it names the finding. Assertion is per clause and per
cue scope, so "No pneumothorax, but a small left effusion persists." grounds its second half."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from lesionloc_runtime.text import edges as ed
from lesionloc_runtime.text import leads, veto
from lesionloc_runtime.text import lexicon as lx
from lesionloc_runtime.text import other_cues as oc
from lesionloc_runtime.text.clauses import (
    CHANGE,
    about_the_exam,
    alternatives_first,
    asked,
    blank,
    change_kept,
    content_words,
    contrast,
    cue_word,
    form_kind,
    negated_kind,
    only_stability,
    prepare,
    recommendation,
    seen_kind,
)
from lesionloc_runtime.text.records import SentenceKind

__all__ = ["Assertion", "RulesVerdict", "assess", "assess_by_rules", "classify_sentence"]


@dataclass(frozen=True)
class Assertion:
    """The assertion of one sentence. `span` (offsets into the sentence text) is the grounded
    part of a finding: the whole sentence unless part of it is negated, normal or other."""

    kind: SentenceKind
    uncertain: bool = False
    span: tuple[int, int] | None = None


class _Part(NamedTuple):
    kind: SentenceKind
    uncertain: bool
    start: int
    end: int


class _Analysis:
    """The parts of one sentence: each clause, cut further at cue scopes, becomes parts of
    kind finding, negated, normal or other with their offsets."""

    # Cue splits per sentence: real ones need a handful; thousands of cues in one sentence
    # (a machine-made line) are read as plain clauses instead of recursing that deep.
    MAX_SPLITS = 40

    def __init__(self, text: str) -> None:
        self.low, self.index = prepare(text)
        self.hints = lx.triggered(self.low)
        self.splits = 0
        self.start = 0  # after a section's name ("IMPRESSION: ")
        # Set when a rule read a finding where a cue word alone would say none ("not
        # completely cleared", "top normal", "not seen on the prior"): the veto leaves it be.
        self.deliberate = False

    def may(self, group: str) -> bool:
        """Whether a pattern group can match anywhere in the sentence."""
        return group in self.hints

    def parts(self) -> list[_Part]:
        if (kind := form_kind(self.low)) is not None:  # "Hx: ...", "Large opacities: 0."
            return [_Part(kind, False, 0, len(self.low))]
        header = leads.SECTION_LEAD.match(self.low)
        pos = self.start = header.end() if header and header.group().strip() else 0
        out, joined = [], False
        for m in lx.CLAUSE_BREAK.finditer(self.low, pos):
            self.append(out, self.clause(pos, m.start()), joined)
            pos, joined = m.end(), m.group() in ("but", "though", "although")
        self.append(out, self.clause(pos, len(self.low)), joined)
        return out

    def append(self, out: list[_Part], parts: list[_Part], joined: bool) -> None:
        """Add a clause's parts. After "but", a clause with nothing to localize that only
        qualifies the finding before it joins it: stability ("enlarged but stable") or a
        predicate without a subject ("... but was better seen on the CT")."""
        if (joined and len(parts) == 1 and parts[0].kind == "other" and out
                and out[-1].kind == "finding"):
            text = self.low[parts[0].start : parts[0].end]
            if only_stability(text) or (text.split()[0] in ed.VERB and self.other_start(text) is None):
                out[-1] = out[-1]._replace(end=parts[0].end)
                return
        if joined and parts and parts[0].kind == "finding" and out and out[-1].kind == "other" \
                and only_stability(self.low[out[-1].start : out[-1].end]):  # "Persistent but improved ..."
            parts[0] = parts[0]._replace(start=out.pop().start)
        out.extend(parts)

    def trim(self, a: int, b: int) -> tuple[int, int]:
        m = lx.CONNECTIVE.match(self.low, a, b)
        if m:
            a = m.end()
        m = ed.TRAILING.search(self.low, a, b)
        return a, (m.start() if m else b)

    def clause(self, a: int, b: int) -> list[_Part]:
        """The parts of low[a:b], in order."""
        a, b = self.trim(a, b)
        seg = self.low[a:b]
        if not lx.WORD.search(seg):
            return []
        self.splits += 1
        if self.splits > self.MAX_SPLITS:
            return self.leaf(a, b)
        lead = lx.COMPARISON_LEAD.match(seg)
        if lead:
            return [_Part("other", False, a, a + lead.end()), *self.clause(a + lead.end(), b)]
        other = self.other_start(seg)
        if other is not None:  # what advice is about may be a finding: "... evaluation of the nodule"
            about = oc.ADVISED_ABOUT.search(seg, other)
            cut = a + about.end() if about and lx.FINDING_TERM.search(seg, about.end()) else b
            return [*self.clause(a, a + other), _Part("other", False, a + other, cut), *self.leaf(cut, b)]
        hedge = self.may("hedge_back") and lx.HEDGE_BACK.search(seg)
        if hedge:
            start = self.subject_start(a, a + hedge.start())
            return [*self.clause(a, start), _Part("finding", True, start, b)]
        cue = self.negation(seg) if self.may("negation") else None
        if cue is not None:
            return self.negated(a, b, cue)
        return self.leaf(a, b)

    def other_start(self, seg: str) -> int | None:
        """Where the part with nothing to localize starts in a clause (0: all of it), or None."""
        if (self.may("prior") and lx.NO_PRIOR.search(seg)) or lx.REQUEST.match(seg) or asked(seg):
            return 0
        if self.may("limitation") and (hypothetical := lx.HYPOTHETICAL.search(seg)):
            # "..., so small effusions may be missed": its subject is not asserted either.
            return seg.rfind(",", 0, hypothetical.start()) + 1
        hits = [m for m in (
            self.may("communication") and lx.COMMUNICATION.search(seg),
            self.may("recommendation") and recommendation(seg),
            self.may("request") and lx.PURPOSE.search(seg),
            self.may("fitness") and lx.FITNESS.search(seg),  # "Normal study, fit for duty."
        ) if m]
        if hits:
            if oc.CONDITIONAL.match(seg):  # "If symptoms persist, CT is advised."
                return 0
            cue = min(m.start() for m in hits)
            start = seg.rfind(",", 0, cue) + 1
            words = [w for w in content_words(seg[start:cue]) if w not in oc.URGENCY]
            # a test first ("CT-guided biopsy"), or a procedure named alone ("Chest tube placement")
            placed = 0 < len(words) <= 4 and words[-1] in oc.PROCEDURES
            tested = (not words or placed or words[0].split("-")[0] in oc.TESTS) and any(
                m.re is lx.RECOMMENDATION for m in hits)
            # "8 mm nodule for which CT is advised"
            return cue if not tested and lx.FINDING_TERM.search(seg, start, cue) else start
        limited = self.may("limitation") and lx.LIMITATION.search(seg)
        named = limited and lx.FINDING_TERM.search(blank(oc.LIMITED_FOR, blank(lx.TECHNIQUE_OBSCURING, seg)))
        self.deliberate |= bool(named and lx.LOW_VOLUMES.search(seg))  # a limit and a finding
        # ("The partially imaged upper abdomen is unremarkable." is a normal statement)
        return 0 if limited and not named and not self.normal_cue(seg) else None

    def negation(self, seg: str) -> re.Match[str] | None:
        """The first negation cue that negates: not a partial change ("nearly resolved"), not
        persistence ("has not cleared"), not visibility elsewhere ("not seen on the prior")."""
        blanked = blank(lx.NO_CHANGE, seg) if lx.NO_CHANGE_WORD.search(seg) else seg
        for m in lx.NEGATION.finditer(blanked):
            word = cue_word(m)
            if word in CHANGE:
                # Partial change ("nearly resolved", "resolved partially") or one only wanted
                if change_kept(seg, m):
                    self.deliberate = True
                    continue
            elif word == "not" and (lx.VISIBILITY.match(seg, m.end()) or contrast(seg, m)):
                self.deliberate = True
                continue
            elif word == "no" and lx.NO_SIGNIFICANCE.match(seg, m.end()):
                # "A calcified granuloma of no clinical significance": what it qualifies stays
                self.deliberate = True
                continue
            return m
        return None

    def subject_start(self, a: int, cue: int) -> int:
        """Where the subject of a backward cue starts: the comma segment before it, extended
        backwards over segments without content ("The effusion, previously seen, resolved")."""
        end, start = cue, a
        while (comma := self.low.rfind(",", a, end)) >= 0:
            if [w for w in content_words(self.low[comma + 1 : end]) if w not in lx.CHANGE_MODIFIER]:
                start = comma + 1
                break
            end = comma
        # "Trachea is midline and the mediastinum is not widened": what comes before an "and"
        # with a verb of its own is a statement of its own, not part of the subject. The
        # subject starts after the last such "and" that has words of its own after it.
        verb = ed.VERB_WORD.search(self.low, start, cue)
        if verb is None:
            return start
        end, words = cue, False
        for m in reversed(list(ed.AND.finditer(self.low, verb.end(), cue))):
            words = words or bool(content_words(self.low[m.end() : end]))
            if words:
                return m.end()
            end = m.start()
        return start

    def negated(self, a: int, b: int, cue: re.Match[str]) -> list[_Part]:
        low = self.low
        c0, c1 = a + cue.start(), a + cue.end()
        word = cue_word(cue)
        scope = (lx.SCOPE_END_CHANGE if word in CHANGE else lx.SCOPE_END).search(low, c1, b)
        end = scope.start() if scope else b
        if word in lx.BACKWARD:
            start = self.subject_start(a, c0)
            if word in CHANGE and (absolute := list(ed.WITH_THE.finditer(low, start, c0))):
                start = absolute[-1].end()  # "Drain in situ with the pneumothorax now resolved."
            before = self.clause(a, start)
        else:
            change = word in CHANGE or word.startswith("extubat")
            has_object = any(w not in lx.GENERIC for w in content_words(low[c1:end]))
            before, start = self.forward_subject(a, c0, has_object, change)
        kind = negated_kind(low[start:c0], low[c1:end], word)
        return [*before, _Part(kind, False, start, end), *self.clause(end, b)]

    def forward_subject(
        self, a: int, c0: int, has_object: bool, change: bool
    ) -> tuple[list[_Part], int]:
        """The text before a forward cue: an assertion of its own ("Mild cardiomegaly without
        edema"), a label ("Pleura: no effusion"), or the subject of the negation ("Evaluation
        shows no effusion"). Modifiers of a change cue belong to it ("Complete resolution")."""
        pre = self.low[a:c0]
        while True:
            tail = ed.FILLER_TAIL.search(pre)
            words = pre.split()
            if tail and tail.start() < len(pre):
                pre = pre[: tail.start()]
            elif change and words and words[-1] in lx.CHANGE_MODIFIER:
                pre = pre[: pre.rstrip().rfind(" ") + 1]
            else:
                break
        stripped = pre.rstrip()
        if not stripped:
            return [], a
        if stripped.endswith(":"):  # a label: the negated thing itself unless an object follows
            return ([], a + len(pre)) if has_object else ([], a)
        last = stripped.split()[-1].strip(".")
        if stripped.endswith((",", "&")) or last in ed.COORDINATORS:
            cut = len(stripped) - (1 if stripped.endswith((",", "&")) else len(last))
            return self.clause(a, a + cut), c0
        if last in lx.OPEN_END:
            comma = pre.rfind(",")
            return (self.clause(a, a + comma), a + comma + 1) if comma >= 0 else ([], a)
        words = content_words(pre)
        if not lx.FINDING_TERM.search(pre) and all(
            w in lx.ANATOMY or w in lx.GENERIC or w in lx.EXAM or w in lx.EXAM_LABELS for w in words
        ):
            return [], a  # "Lungs without consolidation": the place is what the negation is about
        return self.clause(a, c0), c0

    def leaf(self, a: int, b: int) -> list[_Part]:
        """A clause without negation or "other" cues."""
        seg = self.low[a:b]
        stable = self.may("stability") and lx.STABILITY.search(seg) is not None
        core = blank(lx.STABILITY, seg) if stable else seg
        words = content_words(core)
        if not words:
            return [_Part("other", False, a, b)] if stable else []
        borderline = self.may("borderline") and lx.BORDERLINE.search(core) is not None
        self.deliberate |= borderline
        if self.normal_cue(core) and not borderline:
            if not lx.FINDING_TERM.search(blank(lx.NORMAL_ATTRIBUTE, core)):
                return [_Part("normal", False, a, b)]
            return self.normal_and_finding(a, b)
        kind = seen_kind(seg, words, self.deliberate)
        if kind is not None:  # "is visible on the lateral view" continues the clause before it
            return [] if kind == "other" and seg.split()[0] in ed.VERB else [_Part(kind, False, a, b)]
        if about_the_exam(seg, core, words):
            return [_Part("other", False, a, b)]
        if stable and not borderline and all(
                w in lx.ANATOMY or w in lx.GENERIC or w in lx.EXAM or w in lx.EXAM_LABELS
                for w in content_words(blank(lx.NORMAL_ATTRIBUTE, core))):
            return [_Part("normal", False, a, b)]
        return [_Part("finding", self.hedged(core), a, b)]

    def normal_cue(self, seg: str) -> bool:
        return self.may("normal") and (
            lx.NORMAL_CUE.search(seg) is not None or lx.CLEAR_LABEL.search(seg) is not None)

    def normal_and_finding(self, a: int, b: int) -> list[_Part]:
        """A clause with a normal cue that names a finding: "Mild cardiomegaly, lungs clear."
        has a normal piece; "The ET tube is in normal position." is one finding."""
        low = self.low
        cuts = [a, *(m.start() for m in ed.PIECE.finditer(low, a, b) if m.start() > a), b]
        pieces = [(s, e) for s, e in zip(cuts, cuts[1:], strict=False) if e > s]
        normal = [self.normal_cue(low[s:e]) and lx.FINDING_TERM.search(low, s, e) is None
                  for s, e in pieces]
        if len(pieces) == 1 or not any(normal):
            return [_Part("finding", self.hedged(low[a:b]), a, b)]
        parts: list[_Part] = []
        for (s, e), is_normal in zip(pieces, normal, strict=True):
            parts.extend([_Part("normal", False, *self.trim(s, e))] if is_normal
                         else self.clause(s, e))
        return parts

    def hedged(self, core: str) -> bool:
        """Whether a finding clause is only hedged: a hedge with no finding named before it
        ("Possible effusion"), or alternatives ("Atelectasis versus edema", "A or B")."""
        hedge = lx.HEDGE.search(core) if self.may("hedge") else None
        query = lx.QUERY_MARK.search(core) if "?" in core else None
        if query and (hedge is None or query.start() < hedge.start()):
            hedge = query
        if hedge is None:
            return alternatives_first(core)
        cut = hedge.start()
        if lx.VERSUS.match(core, cut):
            cut = core.rfind(",", 0, cut) + 1
        return lx.FINDING_TERM.search(core, 0, cut) is None or alternatives_first(core)


def _combine(text: str, parts: list[_Part], index: list[int] | None, begin: int) -> Assertion:
    findings = [p for p in parts if p.kind == "finding"]
    if findings:
        uncertain = all(p.uncertain for p in findings)
        if len(findings) == len(parts):  # the whole sentence but its section's name
            if index and begin:  # up to the blanks after it ("IMPRESSION: XXXX opacity.")
                begin = len(text) - len(text[index[begin - 1] + 1 :].lstrip())
            return Assertion("finding", uncertain, (begin, len(text)))
        start, end = findings[0].start, findings[-1].end
        if index is not None:  # back to offsets into the text with its placeholders
            start, end = index[start], index[end - 1] + 1
            tail = ed.PLACEHOLDER_TAIL.match(text, end)
            end = tail.end() if tail else end  # "new since ___" ends with its blank
        if not text[end:].strip(" \t.!?)]\"'"):
            end = len(text)
        if not text[:start].strip(" \t([\"'-"):
            start = 0
        return Assertion("finding", uncertain, (start, end))
    for p in parts:
        if p.kind in ("negated", "normal"):
            return Assertion(p.kind)
    return Assertion("other")


class RulesVerdict(NamedTuple):
    """The rules' assertion of a sentence, its prepared text, and whether the second opinion
    may overrule it (making it `other`): not a non-finding, a finding a rule read deliberately
    (partial change, borderline size, visibility elsewhere), a finding part beside others, or
    a sentence that starts with a device, a foreign body or a specific finding."""

    assertion: Assertion
    low: str
    open_to_veto: bool


def assess_by_rules(text: str) -> RulesVerdict:
    """The rules' assertion of one sentence, without the second opinion."""
    analysis = _Analysis(text)
    parts = analysis.parts()
    said = _combine(text, parts, analysis.index, analysis.start)
    # A sentence the rules cut into a finding part and others ("The band has been removed;
    # residual port tubing remains.") has its finding where the rules put it: the second
    # opinion, which reads whole sentences, would weigh the other parts' words.
    whole = said.kind == "finding" and all(p.kind == "finding" for p in parts)
    # "ECG electrodes are seen over the chest.", "Free air is seen under the diaphragm.": what
    # a sentence starts by naming is a finding, whatever follows
    named = leads.named(analysis.low)
    return RulesVerdict(said, analysis.low, whole and not analysis.deliberate and not named)


@lru_cache(maxsize=16384)
def _assess(text: str) -> Assertion:
    said, low, open_to_veto = assess_by_rules(text)
    model = veto.load_model() if open_to_veto else None
    if model is not None and model.overrules(low):
        return Assertion("other")
    return said


def assess(text: str) -> Assertion:
    """The assertion of one sentence (its folded text): the rules', where a finding that the
    second opinion (text/veto.py) finds improbable is overruled."""
    # Reports repeat the same sentences ("No pneumothorax."), so short ones are cached.
    return _assess(text) if len(text) <= 500 else _assess.__wrapped__(text)


def classify_sentence(text: str) -> SentenceKind:
    """"finding", "negated", "normal" or "other" (nothing on the image to localize)."""
    return assess(text).kind
