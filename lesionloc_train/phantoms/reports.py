"""Free-text reports for phantom studies, dictated the way radiologists write them, with every
FINDINGS and IMPRESSION sentence recorded (text, kind, and which finding or device it grounds).
The wording comes from a style's phrasebook (phrases_trained, phrases_heldout)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from lesionloc_train.phantoms import phrases_heldout, phrases_trained
from lesionloc_train.phantoms.devices import Device
from lesionloc_train.phantoms.film import Film
from lesionloc_train.phantoms.findings import Finding
from lesionloc_train.phantoms.wording import pick


@dataclass(frozen=True)
class ReportSentence:
    """One sentence; `text` is exactly report[start:end] (it may contain a wrapped line)."""

    text: str
    section: str  # "findings" | "impression"
    kind: str  # "finding" | "negated" | "normal"
    finding: str | None  # the finding type; "device" for a sentence about a device
    side: str | None
    zone: str | None
    finding_index: int | None  # which Finding's boxes ground it
    start: int
    end: int
    device_index: int | None = None  # which Device it describes


@dataclass(frozen=True)
class PhantomReport:
    text: str
    sentences: tuple[ReportSentence, ...]


def phrasebook(style: str) -> ModuleType:
    return phrases_heldout if style == "heldout" else phrases_trained


# The order an impression lists findings in: the most urgent first.
_URGENCY = ("pneumothorax", "mass", "consolidation", "effusion", "cardiomegaly", "nodule",
            "atelectasis")
# How FINDINGS is ordered: by organ (heart, lungs, pleura), lungs first, or lines and tubes first.
_ORDERS = (("devices", "heart", "lungs", "negations", "bones"),
           ("heart", "lungs", "negations", "devices", "bones"),
           ("lungs", "negations", "heart", "devices", "bones"),
           ("devices", "lungs", "heart", "negations", "bones"))


@dataclass
class _Item:
    text: str
    kind: str
    finding: Finding | None = None
    negated: str | None = None
    index: int | None = None
    device: int | None = None


@dataclass
class _Draft:
    """Sentences chosen for one section, by group, before layout."""

    groups: dict[str, list[_Item]] = field(default_factory=dict)

    def add(self, group: str, item: _Item | None) -> None:
        if item is not None and item.text:
            self.groups.setdefault(group, []).append(item)

    def ordered(self, order: tuple[str, ...]) -> list[_Item]:
        return [item for group in order for item in self.groups.get(group, [])]


def _choose(rng: np.random.Generator, options: list[str] | tuple[str, ...],
            used: set[str]) -> str | None:
    """A random option whose text is not yet in the report (each sentence text is unique)."""
    order = rng.permutation(len(options))
    for i in order:
        if options[int(i)] not in used:
            used.add(options[int(i)])
            return options[int(i)]
    return None


@dataclass
class _Writer:
    """Chooses sentences without repeating one."""

    rng: np.random.Generator
    book: ModuleType
    used: set[str] = field(default_factory=set)

    def normal(self, what: str) -> _Item | None:
        text = _choose(self.rng, self.book.NORMAL[what], self.used)
        return _Item(text, "normal") if text else None

    def negated(self, finding: str) -> _Item | None:
        text = _choose(self.rng, self.book.NEGATIONS[finding], self.used)
        return _Item(text, "negated", negated=finding) if text else None

    def pick(self, options: list[str], **kw: object) -> _Item | None:
        text = _choose(self.rng, options, self.used)
        return _Item(text, "finding", **kw) if text else None  # type: ignore[arg-type]


def write_report(findings: list[Finding], rng: np.random.Generator, sex: str = "O",
                 devices: list[Device] | None = None, film: Film | None = None,
                 style: str = "trained") -> PhantomReport:
    """A report for the study: header sections, FINDINGS, IMPRESSION, realistic layout mess.

    What is said of devices draws from its own stream, and every other draw is made whatever
    the film carries, so the same study with and without devices gets the same report apart
    from the device sentences.
    """
    devices = devices or []
    film = film or Film()
    book = phrasebook(style)
    device_rng = np.random.default_rng(rng.integers(2**63))
    w = _Writer(rng, book)
    candidates = {i: book.finding_sentences(f, rng) for i, f in enumerate(findings)}
    device_text = {k: book.device_sentences(d, device_rng) for k, d in enumerate(devices)}
    body = _findings_section(findings, candidates, w)
    has_findings_section = rng.random() > 0.04
    impression = _impression(findings, candidates, w, has_findings_section)
    has_impression = not has_findings_section or rng.random() > 0.05
    _device_sentences(devices, device_text, _Writer(device_rng, book, w.used), body, impression)
    person = {"F": "woman", "M": "man"}.get(sex, "patient")
    exam = "EXAMINATION_AP" if film.portable else "EXAMINATION"
    lines = any(d.type in ("endotracheal_tube", "central_venous_catheter") for d in devices)
    indication = "INDICATION_LINES" if rng.random() < 0.6 and lines else "INDICATION"
    sections = [(name, pick(rng, book.HEADERS[key]).format(person=person))
                for name, key in (("EXAMINATION", exam), ("INDICATION", indication),
                                  ("COMPARISON", "COMPARISON"))
                if rng.random() < {"EXAMINATION": 0.92, "INDICATION": 0.85,
                                   "COMPARISON": 0.8}[name]]
    order = _ORDERS[int(rng.integers(len(_ORDERS)))]
    return _layout(sections, body.ordered(order) if has_findings_section else None,
                   impression.ordered(("findings", "devices", "negations"))
                   if has_impression else None, rng)


def _device_sentences(devices: list[Device], device_text: dict[int, tuple[list[str], list[str]]],
                      w: _Writer, body: _Draft, impression: _Draft) -> None:
    for k in w.rng.permutation(len(devices)):
        # ECG leads are often left unsaid; tubes, lines and pacemakers almost never.
        said = 0.35 if devices[int(k)].type == "ecg_electrodes" else 0.92
        if w.rng.random() < said:
            body.add("devices", w.pick(device_text[int(k)][0], device=int(k)))
    for k, device in enumerate(devices):
        if device.type != "ecg_electrodes" and w.rng.random() < 0.3:
            impression.add("devices", w.pick(device_text[k][1], device=k))


def _findings_section(findings: list[Finding], candidates: dict[int, tuple[list[str], list[str]]],
                      w: _Writer) -> _Draft:
    rng = w.rng
    body = _Draft()
    present = {f.finding for f in findings}
    lung = [i for i, f in enumerate(findings) if f.finding != "cardiomegaly"]
    cardiac = [i for i, f in enumerate(findings) if f.finding == "cardiomegaly"]
    if cardiac:
        i = cardiac[0]
        body.add("heart", w.pick(candidates[i][0], finding=findings[i], index=i))
    elif rng.random() < 0.75:
        body.add("heart", w.normal("heart"))
    if rng.random() < 0.55:
        body.add("heart", w.normal("mediastinum"))
    for i in (lung[k] for k in rng.permutation(len(lung))):
        body.add("lungs", w.pick(candidates[i][0], finding=findings[i], index=i))
    if not lung and rng.random() < 0.7:
        body.add("lungs", w.normal("lungs_clear"))
    elif lung and rng.random() < 0.5:
        body.add("lungs", w.normal("lungs_otherwise_clear"))
    for absent, p in (("consolidation", 0.6), ("effusion", 0.65), ("pneumothorax", 0.65),
                      ("edema", 0.2), ("nodule", 0.1), ("mass", 0.1)):
        if absent not in present and rng.random() < p:
            body.add("negations", w.negated(absent))
    if rng.random() < 0.15:
        body.add("bones", w.normal("bones"))
    return body


def _impression(findings: list[Finding], candidates: dict[int, tuple[list[str], list[str]]],
                w: _Writer, has_findings_section: bool) -> _Draft:
    rng = w.rng
    impression = _Draft()
    present = {f.finding for f in findings}
    if not findings:
        impression.add("findings", w.normal("impression"))
    else:
        ranked = sorted(range(len(findings)), key=lambda i: _URGENCY.index(findings[i].finding))
        for rank, i in enumerate(ranked):
            # Minor findings are sometimes left out of the impression, unless it is all there is.
            if rank and has_findings_section and rng.random() < 0.15:
                continue
            impression.add("findings", w.pick(candidates[i][1], finding=findings[i], index=i))
        if rng.random() < 0.2:
            for absent in ("pneumothorax", "effusion"):
                if absent not in present:
                    impression.add("negations", w.negated(absent))
                    break
    return impression


def _layout(headers: list[tuple[str, str]], body: list[_Item] | None,
            impression: list[_Item] | None, rng: np.random.Generator) -> PhantomReport:
    parts: list[str] = []
    spans: list[tuple[int, int, str, _Item]] = []
    pos = 0

    def emit(text: str) -> None:
        nonlocal pos
        parts.append(text)
        pos += len(text)

    gap = "\n\n" if rng.random() < 0.35 else "\n"
    for name, value in headers:
        emit(f"{name}: {value}{gap}")
    if body is not None:
        emit("FINDINGS:" + ("\n" if rng.random() < 0.3 else " "))
        sep = pick(rng, (" ", " ", " ", "  ", "\n"))
        for k, item in enumerate(body):
            if k:
                emit(sep)
            spans.append((pos, pos + len(item.text), "findings", item))
            emit(item.text)
        emit(gap)
    if impression is not None:
        emit("IMPRESSION:")
        numbered = len(impression) > 1 and rng.random() < 0.6
        inline = rng.random() < 0.2
        for k, item in enumerate(impression):
            if numbered:
                emit((" " if inline else "\n") + f"{k + 1}. ")
            else:
                emit(" " if k == 0 and rng.random() < 0.8 else ("\n" if k == 0 else " "))
            spans.append((pos, pos + len(item.text), "impression", item))
            emit(item.text)
        emit("\n")
    text = "".join(parts)
    if rng.random() < 0.25:
        text = _wrap(text, int(rng.integers(50, 80)))
    sentences = []
    for start, end, section, item in spans:
        finding = item.finding
        name = finding.finding if finding else ("device" if item.device is not None
                                                else item.negated)
        sentences.append(ReportSentence(
            text=text[start:end], section=section, kind=item.kind, finding=name,
            side=finding.side if finding else None, zone=finding.zone if finding else None,
            finding_index=item.index, start=start, end=end, device_index=item.device))
    return PhantomReport(text, tuple(sentences))


_NO_BREAK_AFTER = re.compile(r"(^|\s)\d+\.$|approx\.$")


def _wrap(text: str, width: int) -> str:
    """Hard-wrap long lines at spaces (offsets do not move: a space becomes a newline), never
    right after a list number or an abbreviation."""
    chars = list(text)
    line_start = 0
    last_space = -1
    for i, ch in enumerate(chars):
        if ch == "\n":
            line_start, last_space = i + 1, -1
            continue
        if ch == " " and not _NO_BREAK_AFTER.search("".join(chars[line_start:i])):
            last_space = i
        if i - line_start >= width and last_space > line_start:
            chars[last_space] = "\n"
            line_start, last_space = last_space + 1, -1
    return "".join(chars)
