"""Free-text reports for phantom studies, dictated the way radiologists write them, with every
FINDINGS and IMPRESSION sentence recorded (text, kind, and which finding it grounds)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lesionloc_train.phantoms.findings import Finding


@dataclass(frozen=True)
class ReportSentence:
    """One sentence; `text` is exactly report[start:end] (it may contain a wrapped line)."""

    text: str
    section: str  # "findings" | "impression"
    kind: str  # "finding" | "negated" | "normal"
    finding: str | None
    side: str | None
    zone: str | None
    finding_index: int | None  # which Finding's boxes ground it
    start: int
    end: int


@dataclass(frozen=True)
class PhantomReport:
    text: str
    sentences: tuple[ReportSentence, ...]


_SEVERITY_ADVERB = {"mild": "mildly", "moderate": "moderately", "marked": "markedly"}
_CONSOLIDATION = ("consolidation", "airspace opacity", "airspace disease", "opacity",
                  "airspace consolidation")
_NEGATIONS = {
    "pneumothorax": ("No pneumothorax.", "There is no pneumothorax.",
                     "No evidence of pneumothorax."),
    "effusion": ("There is no pleural effusion.", "No pleural effusion.",
                 "No pleural effusion is seen."),
    "consolidation": ("No focal consolidation is seen.", "No focal consolidation.",
                      "There is no focal airspace opacity."),
    "nodule": ("No suspicious pulmonary nodule.", "No pulmonary nodule is identified."),
    "mass": ("No mass is identified.", "There is no lung mass."),
}
_HEADERS = {
    "EXAMINATION": ("Chest PA.", "Chest radiograph, PA view.", "CHEST (PA).", "Chest PA ___."),
    "INDICATION": ("___-year-old with cough and fever.", "___-year-old {person} with shortness "
                   "of breath.", "___-year-old {person} with chest pain.", "___ with hemoptysis, "
                   "evaluate for mass.", "Evaluate for pneumonia.", "___-year-old with fever "
                   "and productive cough, rule out pneumonia."),
    "COMPARISON": ("None.", "___.", "Chest radiograph from ___.", "None available."),
}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def location(side: str, zone: str, rng: np.random.Generator) -> tuple[str, str]:
    """(noun phrase after "the", adjective phrase before a noun) for a side and zone."""
    if zone == "lingula":
        return _pick(rng, ("lingula", "left lingula")), "lingular"
    if side == "bilateral":
        noun, adj = {
            "lower": ("bilateral lower lobes", "bilateral lower lobe"),
            "basal": (_pick(rng, ("bilateral lung bases", "lung bases bilaterally")),
                      "bilateral basilar"),
            "middle": ("bilateral mid lung zones", "bilateral mid lung"),
            "upper": ("bilateral upper lobes", "bilateral upper lobe"),
        }.get(zone, (f"bilateral {zone} regions", f"bilateral {zone}"))
        return noun, adj
    table = {
        "upper": [f"{side} upper lobe", f"{side} upper zone", f"{side} upper lung"],
        "lower": [f"{side} lower lobe", f"{side} lower zone", f"{side} lower lung"],
        "middle": ([f"{side} middle lobe", f"{side} mid lung zone", f"{side} midlung"]
                   if side == "right" else [f"{side} mid lung zone", f"{side} midlung"]),
        "apical": [f"{side} apex", f"{side} lung apex"],
        "basal": [f"{side} lung base", f"{side} base"],
        "perihilar": [f"{side} perihilar region", f"{side} perihilar lung"],
        "lateral": [f"{side} lateral hemithorax", f"{side} lateral chest wall"],
    }
    noun = _pick(rng, table[zone])
    adj = {"apical": f"{side} apical", "basal": f"{side} basilar",
           "perihilar": f"{side} perihilar", "lateral": f"{side} lateral"}.get(zone, noun)
    if adj.endswith(" zone") and rng.random() < 0.5:
        adj = adj[: -len(" zone")]
    return noun, adj


def _size(mm: float, rng: np.random.Generator, approx: bool = True) -> str:
    prefix = "approx. " if approx and rng.random() < 0.12 else ""
    if mm < 15 and rng.random() < 0.6:
        return f"{prefix}{round(mm):d} mm"
    return f"{prefix}{mm / 10:.1f} cm"


def finding_sentences(f: Finding, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Candidate FINDINGS sentences and IMPRESSION restatements for one finding."""
    kind, side, zone = f.finding, f.side or "", f.zone or ""
    w_mm, h_mm = f.size_mm or (10.0, 10.0)
    if kind == "cardiomegaly":
        sev = f.severity or "mild"
        ratio = f"{f.ratio:.2f}" if f.ratio else "0.60"
        return ([f"The heart is {_SEVERITY_ADVERB[sev]} enlarged.", f"{_cap(sev)} cardiomegaly.",
                 f"The cardiac silhouette is enlarged, with a cardiothoracic ratio of {ratio}.",
                 "Enlarged cardiac silhouette."],
                ["Cardiomegaly.", f"{_cap(sev)} cardiomegaly.", "Enlarged heart."])
    if kind == "effusion":
        sev = f.severity or "small"
        if side == "bilateral":
            return ([f"{_cap(sev)} bilateral pleural effusions.",
                     f"There are {sev} bilateral pleural effusions.",
                     f"Bilateral pleural effusions, {sev} in size."],
                    [f"{_cap(sev)} bilateral pleural effusions.", "Bilateral pleural effusions."])
        found = [f"{_cap(sev)} {side} pleural effusion.", f"There is a {sev} {side} pleural effusion.",
                 f"{_cap(sev)} {side} pleural effusion with blunting of the costophrenic angle.",
                 f"{_cap(sev)} amount of {side} pleural fluid."]
        if sev == "small":
            found.append(f"Blunting of the {side} costophrenic angle, consistent with a small "
                         "effusion.")
        return found, [f"{_cap(sev)} {side} pleural effusion.", f"{_cap(side)} pleural effusion."]
    if kind == "pneumothorax":
        sev = f.severity or "small"
        if zone == "apical":
            found = [f"There is a {sev} {side} apical pneumothorax.",
                     f"{_cap(sev)} {side} pneumothorax at the apex.",
                     f"A visceral pleural line is seen at the {side} apex, consistent with a {sev} "
                     "pneumothorax."]
        else:
            found = [f"{_cap(sev)} {side} pneumothorax along the lateral chest wall.",
                     f"There is a {sev} {side} lateral pneumothorax.",
                     f"A {side} pleural line with a lucent, avascular periphery indicates a {sev} "
                     "pneumothorax."]
        return found, [f"{_cap(sev)} {side} pneumothorax.", f"{_cap(side)} pneumothorax."]
    noun, adj = location(side, zone, rng)
    if kind == "consolidation":
        syn = _pick(rng, _CONSOLIDATION)
        found = [f"There is {adj} {syn}.", f"{_cap(syn)} is present in the {noun}.",
                 f"Patchy {syn} in the {noun}.",
                 f"Focal {syn} in the {noun}, concerning for pneumonia.",
                 f"{_cap(adj)} {syn} may reflect pneumonia."]
        if f.variant == "bronchograms":
            found = [f"{_cap(syn)} in the {noun} with air bronchograms.",
                     f"There is {adj} consolidation containing air bronchograms."]
        return found, [f"{_cap(adj)} pneumonia.", f"{_cap(adj)} consolidation, likely pneumonia.",
                       f"Findings concerning for {adj} pneumonia."]
    if kind == "nodule":
        size = _size(max(w_mm, h_mm), rng)
        return ([f"A {size} nodule projects over the {noun}.",
                 f"There is a {size} nodule in the {noun}.",
                 f"{_cap(size)} nodular opacity in the {noun}.",
                 f"Small nodule in the {noun}, measuring {size}.",
                 f"A well-circumscribed nodule in the {noun} measures {size}."],
                [f"{_cap(adj)} pulmonary nodule.",
                 f"{_cap(_size(max(w_mm, h_mm), rng, False))} {adj} nodule, recommend CT for "
                 "further evaluation."])
    if kind == "mass":
        size = _size(max(w_mm, h_mm), rng)
        dims = f"{w_mm / 10:.1f} x {h_mm / 10:.1f} cm"
        return ([f"There is a {size} mass in the {noun}.",
                 f"A lobulated mass measuring {dims} is seen in the {noun}.",
                 f"{_cap(adj)} mass measuring {size}.",
                 f"Large rounded opacity in the {noun}, measuring {dims}."],
                [f"{_cap(adj)} mass, concerning for malignancy.", f"{_cap(adj)} mass."])
    # atelectasis
    if f.variant == "wedge":
        found = [f"Wedge-shaped opacity in the {noun}, compatible with atelectasis.",
                 f"{_cap(adj)} atelectasis with volume loss."]
    else:
        found = [f"Plate-like atelectasis in the {noun}.",
                 f"Linear opacity in the {noun}, likely subsegmental atelectasis.",
                 f"There is {adj} atelectasis."]
    return found, [f"{_cap(adj)} atelectasis.", f"Atelectasis in the {noun}."]


# The order an impression lists findings in: the most urgent first.
_URGENCY = ("pneumothorax", "mass", "consolidation", "effusion", "cardiomegaly", "nodule",
            "atelectasis")


@dataclass
class _Draft:
    """Sentences chosen for one section before layout."""

    items: list[tuple[str, str, Finding | None, str | None, int | None]]

    def add(self, text: str, kind: str, finding: Finding | None = None,
            negated: str | None = None, index: int | None = None) -> None:
        self.items.append((text, kind, finding, negated, index))


def _choose(rng: np.random.Generator, options: list[str] | tuple[str, ...],
            used: set[str]) -> str | None:
    """A random option whose text is not yet in the report (each sentence text is unique)."""
    order = rng.permutation(len(options))
    for i in order:
        if options[int(i)] not in used:
            used.add(options[int(i)])
            return options[int(i)]
    return None


def write_report(findings: list[Finding], rng: np.random.Generator,
                 sex: str = "O") -> PhantomReport:
    """A report for the study: header sections, FINDINGS, IMPRESSION, realistic layout mess."""
    used: set[str] = set()
    present = {f.finding for f in findings}
    lung_findings = [i for i, f in enumerate(findings) if f.finding != "cardiomegaly"]
    candidates = {i: finding_sentences(f, rng) for i, f in enumerate(findings)}

    body = _Draft([])
    cardiac = [i for i, f in enumerate(findings) if f.finding == "cardiomegaly"]
    heart_first = []
    if cardiac:
        heart_first.append(("finding", cardiac[0]))
    elif rng.random() < 0.75:
        heart_first.append(("normal", _pick(rng, ("The heart size is normal.",
                                                 "Heart size is normal."))))
    if rng.random() < 0.55:
        heart_first.append(("normal", _pick(rng, ("The mediastinal contours are unremarkable.",
                                                 "The cardiomediastinal silhouette is within "
                                                 "normal limits."))))
    for kind, what in heart_first:
        if kind == "finding":
            i = int(what)
            body.add(_choose(rng, candidates[i][0], used) or "", "finding", findings[i], None, i)
        else:
            used.add(str(what))
            body.add(str(what), "normal")
    for i in (lung_findings[k] for k in rng.permutation(len(lung_findings))):
        text = _choose(rng, candidates[i][0], used)
        if text:
            body.add(text, "finding", findings[i], None, i)
    if not lung_findings and rng.random() < 0.7:
        used.add("The lungs are clear.")
        body.add("The lungs are clear.", "normal")
    elif lung_findings and rng.random() < 0.5:
        used.add("The lungs are otherwise clear.")
        body.add("The lungs are otherwise clear.", "normal")
    for absent, p in (("consolidation", 0.6), ("effusion", 0.65), ("pneumothorax", 0.65),
                      ("nodule", 0.1), ("mass", 0.1)):
        if absent not in present and rng.random() < p:
            text = _choose(rng, _NEGATIONS[absent], used)
            if text:
                body.add(text, "negated", None, absent)

    has_findings_section = rng.random() > 0.04
    impression = _Draft([])
    if not findings:
        text = _choose(rng, ["No acute cardiopulmonary process."] * 4
                       + ["Normal chest radiograph."], used)
        impression.add(text or "No acute cardiopulmonary process.", "normal")
    else:
        ranked = sorted(range(len(findings)), key=lambda i: _URGENCY.index(findings[i].finding))
        for rank, i in enumerate(ranked):
            # Minor findings are sometimes left out of the impression, unless it is all there is.
            if rank and has_findings_section and rng.random() < 0.15:
                continue
            text = _choose(rng, candidates[i][1], used)
            if text:
                impression.add(text, "finding", findings[i], None, i)
        if rng.random() < 0.2:
            for absent in ("pneumothorax", "effusion"):
                if absent not in present:
                    text = _choose(rng, _NEGATIONS[absent], used)
                    if text:
                        impression.add(text, "negated", None, absent)
                    break
    has_impression = not has_findings_section or rng.random() > 0.05
    person = {"F": "woman", "M": "man"}.get(sex, "patient")
    sections = [(name, _pick(rng, values).format(person=person))
                for name, values in _HEADERS.items()
                if rng.random() < {"EXAMINATION": 0.92, "INDICATION": 0.85,
                                   "COMPARISON": 0.8}[name]]
    return _layout(sections, body if has_findings_section else None,
                   impression if has_impression else None, rng)


def _layout(headers: list[tuple[str, str]], body: _Draft | None, impression: _Draft | None,
            rng: np.random.Generator) -> PhantomReport:
    parts: list[str] = []
    spans: list[tuple[int, int, str, tuple]] = []
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
        sep = _pick(rng, (" ", " ", " ", "  ", "\n"))
        for k, item in enumerate(body.items):
            if k:
                emit(sep)
            spans.append((pos, pos + len(item[0]), "findings", item))
            emit(item[0])
        emit(gap)
    if impression is not None:
        emit("IMPRESSION:")
        numbered = len(impression.items) > 1 and rng.random() < 0.6
        inline = rng.random() < 0.2
        for k, item in enumerate(impression.items):
            if numbered:
                emit((" " if inline else "\n") + f"{k + 1}. ")
            else:
                emit(" " if k == 0 and rng.random() < 0.8 else ("\n" if k == 0 else " "))
            spans.append((pos, pos + len(item[0]), "impression", item))
            emit(item[0])
        emit("\n")
    text = "".join(parts)
    if rng.random() < 0.25:
        text = _wrap(text, int(rng.integers(50, 80)))
    sentences = []
    for start, end, section, (_, kind, finding, negated, index) in spans:
        sentences.append(ReportSentence(
            text=text[start:end], section=section, kind=kind,
            finding=finding.finding if finding else negated,
            side=finding.side if finding else None, zone=finding.zone if finding else None,
            finding_index=index, start=start, end=end))
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
