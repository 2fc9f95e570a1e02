"""Phantom reports: sentence offsets, kinds, wording variety, the held-out style, devices and
layout mess that a parser must survive."""

from __future__ import annotations

import re
from itertools import product

import numpy as np
import pytest

from lesionloc_runtime.text import classify_sentence
from lesionloc_train.phantoms import phrases_heldout, phrases_trained
from lesionloc_train.phantoms.devices import DEVICE_TYPES, Device
from lesionloc_train.phantoms.film import Film
from lesionloc_train.phantoms.findings import FINDING_TYPES, Finding
from lesionloc_train.phantoms.reports import write_report

NEGATION = re.compile(r"^(No|There is no|There are no)\b|\bnot seen\b")
DETAILS = {"endotracheal_tube": {"tip_above_carina_cm": 4.5}, "nasogastric_tube": {"tip": "stomach"},
           "central_venous_catheter": {"route": "right internal jugular", "tip": "superior vena cava"},
           "pacemaker": {"side": "left", "leads": 2}, "ecg_electrodes": {"count": 4},
           "sternotomy_wires": {"count": 6}}


def finding(kind: str, side: str | None = "right", zone: str | None = "lower",
            variant: str | None = None) -> Finding:
    if kind == "cardiomegaly":
        side = zone = None
    if kind == "effusion":
        zone = "lower"
    boxes = [[10, 10, 5, 5], [40, 10, 5, 5]] if side == "bilateral" else [[10, 10, 5, 5]]
    return Finding(kind, side, zone, "moderate" if kind in ("effusion", "pneumothorax",
                                                             "cardiomegaly") else None,
                   variant, boxes, np.zeros((4, 4), np.uint8), (7.0, 6.0),
                   0.62 if kind == "cardiomegaly" else None)


def device(kind: str) -> Device:
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    return Device(kind, DETAILS[kind], mask, mask.astype(np.float32))


def many_reports(n: int = 300, style: str = "trained"):
    rng = np.random.default_rng(0)
    kinds = list(FINDING_TYPES)
    for i in range(n):
        chosen = [kinds[(i + j) % len(kinds)] for j in range(i % 4)]
        sides = ["right", "left", "bilateral"]
        findings = [finding(k, sides[(i + j) % 3] if k in ("effusion", "consolidation")
                            else ("left" if (i + j) % 2 else "right"))
                    for j, k in enumerate(chosen)]
        devices = [device(DEVICE_TYPES[(i + j) % len(DEVICE_TYPES)]) for j in range(i % 3)]
        film = Film(view="AP", portable=True) if i % 3 == 0 else Film()
        yield findings, devices, write_report(findings, rng, "F" if i % 2 else "M", devices, film,
                                              style)


@pytest.mark.parametrize("style", ["trained", "heldout"])
def test_sentence_offsets_point_at_their_text(style):
    for _, _, report in many_reports(style=style):
        for s in report.sentences:
            assert report.text[s.start:s.end] == s.text


@pytest.mark.parametrize("style", ["trained", "heldout"])
def test_every_sentence_kind_is_the_one_the_report_parser_gives(style):
    """Plain radiology language: the runtime's parser reads each sentence as the generator
    labelled it (a device is a finding to the parser: something on the image)."""
    for findings, _, report in many_reports(style=style):
        for s in report.sentences:
            flat = " ".join(s.text.split())
            assert classify_sentence(flat) == s.kind, flat
            if s.kind == "negated":
                assert NEGATION.search(flat), flat
                assert s.finding not in {f.finding for f in findings}
            elif s.kind == "finding" and s.device_index is None:
                assert findings[s.finding_index].finding == s.finding
                assert not re.search(r"\b(no|without|normal|clear)\b", s.text, re.I), s.text


def test_every_finding_is_reported_and_normal_studies_are_said_to_be_normal():
    for findings, _, report in many_reports():
        grounded = {s.finding_index for s in report.sentences if s.kind == "finding"
                    and s.device_index is None}
        assert grounded == set(range(len(findings)))
        impression = [s.text for s in report.sentences if s.section == "impression"
                      and s.device_index is None]
        if not findings and impression:
            assert len(impression) == 1 and impression[0] in phrases_trained.NORMAL["impression"]


def test_devices_get_sentences_that_name_them():
    said = {kind: 0 for kind in DEVICE_TYPES}
    for _, devices, report in many_reports(600):
        for s in report.sentences:
            if s.device_index is not None:
                kind = devices[s.device_index].type
                said[kind] += 1
                assert s.kind == "finding" and s.finding == "device"
                if kind == "endotracheal_tube" and "cm" in s.text:
                    assert "4.5 cm" in " ".join(s.text.split())
    assert all(said.values()), said


_VARIANTS = [("consolidation", None), ("consolidation", "bronchograms"), ("nodule", None),
             ("mass", None), ("effusion", None), ("pneumothorax", None), ("atelectasis", "band"),
             ("atelectasis", "wedge"), ("cardiomegaly", None)]


@pytest.mark.parametrize("kind,variant", _VARIANTS)
def test_each_finding_has_five_phrasings_in_the_trained_style(kind, variant):
    for side, zone in product(("right", "left", "bilateral"), ("lower", "apical", "lateral")):
        if (kind == "pneumothorax") != (zone in ("apical", "lateral")):
            continue
        found, impression = phrases_trained.finding_sentences(
            finding(kind, side, zone, variant), np.random.default_rng(0))
        assert len(set(found)) >= 5 and len(set(impression)) >= 4, (side, zone)


def test_normal_statements_and_negations_have_five_phrasings():
    for options in (*phrases_trained.NORMAL.values(), *phrases_trained.NEGATIONS.values()):
        assert len(set(options)) >= 5


def test_the_heldout_style_shares_no_sentence_with_the_trained_one():
    trained = {" ".join(s.text.split()) for *_, r in many_reports(600) for s in r.sentences}
    heldout = {" ".join(s.text.split()) for *_, r in many_reports(600, "heldout")
               for s in r.sentences}
    assert len(heldout) > 150
    assert not trained & heldout, sorted(trained & heldout)[:5]
    for table in ("NORMAL", "NEGATIONS", "HEADERS"):
        for key, options in getattr(phrases_heldout, table).items():
            assert not set(options) & set(getattr(phrases_trained, table)[key]), key


def test_sentence_order_varies():
    firsts = set()
    for findings, _, report in many_reports(300):
        body = [s for s in report.sentences if s.section == "findings"]
        if findings and body:
            firsts.add(body[0].kind if body[0].device_index is None else "device")
    assert {"finding", "normal", "device"} <= firsts


def test_layout_mess_appears_but_never_breaks_after_a_list_number_or_abbreviation():
    wrapped = numbered = approx = 0
    for *_, report in many_reports(600):
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


@pytest.mark.parametrize("style", ["trained", "heldout"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_sides_are_spelled_out(side, style):
    rng = np.random.default_rng(1)
    for _ in range(30):
        report = write_report([finding("nodule", side, "upper")], rng, style=style)
        texts = [s.text for s in report.sentences if s.kind == "finding"]
        assert texts and all(side in t.lower() for t in texts)


def test_a_portable_film_is_examined_as_one():
    rng = np.random.default_rng(2)
    exams = set()
    for _ in range(40):
        text = write_report([], rng, film=Film(view="AP", portable=True)).text
        exams |= set(re.findall(r"EXAMINATION: (.*)", text))
    assert exams and exams <= set(phrases_trained.HEADERS["EXAMINATION_AP"])


def test_devices_add_their_sentences_and_change_no_other():
    for i, (findings, devices, _) in enumerate(many_reports(120)):
        if not devices:
            continue
        film = Film(view="AP", portable=True)
        with_devices = write_report(findings, np.random.default_rng(i), "F", devices, film)
        without = write_report(findings, np.random.default_rng(i), "F", [], film)

        def plain(report):
            return [(" ".join(s.text.split()), s.section, s.kind, s.finding_index)
                    for s in report.sentences if s.device_index is None]

        assert plain(with_devices) == plain(without)
