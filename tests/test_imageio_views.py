"""A lateral view is read, with a note that the model was trained on frontal views; the note
reaches the console and study.json through `lesionloc-run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from test_imageio_dicom import dataset, save, synthetic

from lesionloc_runtime.imageio import read_image

BIN = Path(sys.executable).parent


def view_code(meaning: str) -> list[Dataset]:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "0", "SCT", meaning
    return [item]


def lateral_notes(tmp_path: Path, **elements: object) -> list[str]:
    image = read_image(save(dataset(synthetic(12), **elements), tmp_path / "view.dcm"))
    return [n for n in image.notes if n.startswith("lateral view")]


@pytest.mark.parametrize(("elements", "where"), [
    ({"ViewPosition": "LL"}, "ViewPosition LL"),
    ({"ViewPosition": "RL"}, "ViewPosition RL"),
    ({"ViewPosition": "LATERAL"}, "ViewPosition LATERAL"),
    ({"ViewCodeSequence": view_code("left lateral")}, "ViewCodeSequence left lateral"),
    ({"SeriesDescription": "CHEST_LAT"}, "its SeriesDescription says so"),
    ({"ProtocolName": "Thorax lateral"}, "its ProtocolName says so"),
])
def test_lateral_view_is_read_with_a_note_naming_where_the_header_says_so(tmp_path, elements,
                                                                          where):
    notes = lateral_notes(tmp_path, **elements)
    assert len(notes) == 1 and f"({where})" in notes[0], notes
    assert "trained on frontal (PA/AP)" in notes[0]


@pytest.mark.parametrize("elements", [
    {},
    {"ViewPosition": "PA"},
    {"ViewPosition": "LLD"},  # left lateral decubitus: a frontal projection
    {"ViewCodeSequence": view_code("postero-anterior")},
    {"ViewCodeSequence": view_code("left lateral decubitus")},
    {"SeriesDescription": "CHEST PA AND LAT"},  # a series of both views says nothing
    {"SeriesDescription": "Collateral vessels"},  # "lat" only as a whole word
])
def test_frontal_or_unknown_view_gets_no_lateral_note(tmp_path, elements):
    assert lateral_notes(tmp_path, **elements) == []


def test_lateral_warning_reaches_the_console_and_study_json(tmp_path, tiny_bundle):
    image = save(dataset(synthetic(12), ViewPosition="LL", PatientName="Doe^Jane",
                         SeriesDescription="Doe Jane lateral"), tmp_path / "lateral.dcm")
    report = tmp_path / "lateral.txt"
    report.write_text("FINDINGS: Right pleural effusion.\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run([str(BIN / "lesionloc-run"), str(image), "--report", str(report),
                           "--model", str(tiny_bundle), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert [w for w in warnings if "lateral view (ViewPosition LL)" in w
            and "trained on frontal" in w], proc.stderr
    notes = json.loads((out / "lateral" / "study.json").read_text())["input"]["notes"]
    assert [n for n in notes if n.startswith("lateral view (ViewPosition LL)")], notes
    assert "Doe" not in proc.stderr + proc.stdout + json.dumps(notes)
