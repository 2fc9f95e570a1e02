"""Phantom reports: sentence offsets, kinds, layout mess that a parser must survive."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lesionloc_train.phantoms.findings import FINDING_TYPES, Finding
from lesionloc_train.phantoms.reports import write_report

NORMAL = {"The heart size is normal.", "Heart size is normal.", "The lungs are clear.",
          "The lungs are otherwise clear.", "The mediastinal contours are unremarkable.",
          "The cardiomediastinal silhouette is within normal limits.",
          "No acute cardiopulmonary process.", "Normal chest radiograph."}
NEGATION = re.compile(r"^(No|There is no) ")


def finding(kind: str, side: str | None = "right", zone: str | None = "lower") -> Finding:
    if kind == "cardiomegaly":
        side = zone = None
    if kind == "effusion":
        zone = "lower"
    boxes = [[10, 10, 5, 5], [40, 10, 5, 5]] if side == "bilateral" else [[10, 10, 5, 5]]
    return Finding(kind, side, zone, "moderate" if kind in ("effusion", "pneumothorax",
                                                             "cardiomegaly") else None,
                   None, boxes, np.zeros((4, 4), np.uint8), (7.0, 6.0),
                   0.62 if kind == "cardiomegaly" else None)


def many_reports(n: int = 300):
    rng = np.random.default_rng(0)
    kinds = [k for k in FINDING_TYPES]
    for i in range(n):
        chosen = [kinds[(i + j) % len(kinds)] for j in range(i % 4)]
        sides = ["right", "left", "bilateral"]
        findings = [finding(k, sides[(i + j) % 3] if k in ("effusion", "consolidation")
                            else ("left" if (i + j) % 2 else "right"))
                    for j, k in enumerate(chosen)]
        yield findings, write_report(findings, rng, "F" if i % 2 else "M")


def test_sentence_offsets_point_at_their_text():
    for _, report in many_reports():
        for s in report.sentences:
            assert report.text[s.start:s.end] == s.text


def test_kinds_follow_the_conventions():
    for findings, report in many_reports():
        for s in report.sentences:
            if s.kind == "normal":
                assert " ".join(s.text.split()) in NORMAL
            elif s.kind == "negated":
                assert NEGATION.match(" ".join(s.text.split())), s.text
                assert s.finding not in {f.finding for f in findings}
            else:
                assert s.finding_index is not None
                assert findings[s.finding_index].finding == s.finding
                assert not re.search(r"\b(no|without|normal|clear)\b", s.text, re.I), s.text


def test_every_finding_is_reported_and_normal_studies_are_said_to_be_normal():
    for findings, report in many_reports():
        grounded = {s.finding_index for s in report.sentences if s.kind == "finding"}
        assert grounded == set(range(len(findings)))
        impression = [s.text for s in report.sentences if s.section == "impression"]
        if not findings and impression:
            assert impression in (["No acute cardiopulmonary process."],
                                  ["Normal chest radiograph."])


def test_layout_mess_appears_but_never_breaks_after_a_list_number_or_abbreviation():
    wrapped = numbered = approx = 0
    for _, report in many_reports(600):
        text = report.text
        numbered += bool(re.search(r"(^|\s)1\. ", text))
        approx += "approx. " in text
        assert not re.search(r"(^|\n|\s)\d+\.\n", text)
        assert "approx.\n" not in text
        for s in report.sentences:
            wrapped += "\n" in s.text
            assert s.text.endswith(".")
            assert not re.match(r"\d+\. ", s.text)
            assert s.text == s.text.strip()
    assert wrapped and numbered and approx


@pytest.mark.parametrize("side", ["right", "left"])
def test_sides_are_spelled_out(side):
    rng = np.random.default_rng(1)
    for _ in range(30):
        report = write_report([finding("nodule", side, "upper")], rng)
        texts = [s.text for s in report.sentences if s.kind == "finding"]
        assert texts and all(side in t.lower() for t in texts)
