"""DICOM output: the SR and SC written for `--dicom-out` are valid (dciodvfy), read back to the
study result, join the source's study without leaking its other attributes, and work for
PNG inputs with synthetic identifiers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lesionloc_runtime import __version__
from lesionloc_runtime.boxes import Box
from lesionloc_runtime.bundle import DEMO_NOTICE, RESEARCH_NOTICE
from lesionloc_runtime.dicom_out import (
    COPIED_ATTRIBUTES,
    SyntheticIds,
    read_back_sr,
    read_sr_provenance,
    write_dicom_outputs,
)
from lesionloc_runtime.errors import ConfigError, DicomOutputError, ImageReadError, LesionlocError
from lesionloc_runtime.heatmap import Heatmap
from lesionloc_runtime.imageio import Radiograph, read_image
from lesionloc_runtime.preprocess import Letterbox
from lesionloc_runtime.results import SentenceResult, StudyResult

WIDTH, HEIGHT = 256, 240
DCIODVFY = Path(sys.executable).parent / "dciodvfy"
CARD_SHA = "ab" * 32
SECRET = "SECRET-LEAK-CANARY"  # planted in source attributes that must not be copied


# -- fixtures ----------------------------------------------------------------------------

def _source_dicom(path: Path, drop: tuple[str, ...] = ()) -> Path:
    """A small DX image with patient/study attributes and identifying extras."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jörg"
    ds.PatientID = "MRN-0042"
    ds.PatientBirthDate = "19600102"
    ds.PatientSex = "M"
    ds.StudyDate = "20240305"
    ds.StudyTime = "101500"
    ds.ReferringPhysicianName = "Who^Doctor"
    ds.StudyID = "S77"
    ds.AccessionNumber = "ACC123"
    ds.Modality = "DX"
    # Attributes that identify the patient or site and must stay behind.
    ds.PatientAddress = SECRET
    ds.OtherPatientIDs = SECRET
    ds.PatientComments = SECRET
    ds.InstitutionName = SECRET
    ds.StudyDescription = SECRET
    ds.PerformingPhysicianName = "Secret^Leak"
    ds.DeviceSerialNumber = SECRET
    ds.Manufacturer = SECRET
    ds.add_new(0x00291010, "LO", SECRET)  # a private attribute
    ds.Rows, ds.Columns = HEIGHT, WIDTH
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    ds.PixelData = ((xx * 7 + yy * 3) % 4096).astype(np.uint16).tobytes()
    for name in drop:
        delattr(ds, name)
    ds.save_as(path, enforce_file_format=True)
    return path


def _heatmap() -> Heatmap:
    return Heatmap(np.zeros((4, 4), np.float32), Letterbox.fit(WIDTH, HEIGHT, 64), 16.0, 0.5)


def _result(demo: bool = False, study_id: str = "case-001") -> StudyResult:
    sentences = [
        SentenceResult(0, "Patchy opacity in the right lower lobe.", "findings", "finding",
                       0.61234, _heatmap(), (60.0, 150.0, 0.7),
                       [Box(40.5, 120.25, 50.0, 60.75, 0.7123), Box(150.0, 30.0, 20.4, 10.6, 0.5)]),
        SentenceResult(1, "No pleural effusion.", "findings", "negated", -0.1234),
        SentenceResult(2, "Heart size ≥ normal, possible 4.5 cm mass?", "impression", "finding",
                       0.3333, _heatmap(), (10.0, 10.0, 0.2), [], uncertain=True),
        SentenceResult(3, "PA and lateral views of the chest.", "impression", "other", 0.0512),
        SentenceResult(4, "left apex nodule", "query", "query", 0.45678, _heatmap(),
                       (20.0, 20.0, 0.4), [Box(0.0, 0.0, 64.0, 32.0, 0.456)]),
    ]
    return StudyResult(
        study_id=study_id, source="image", image_format="dicom", width=WIDTH, height=HEIGHT,
        pixel_spacing_mm=None, letterbox=Letterbox.fit(WIDTH, HEIGHT, 64),
        model={"name": "tiny-phantom", "card_sha256": CARD_SHA, "demo": demo,
               "quantization": "int8", "notice": DEMO_NOTICE if demo else RESEARCH_NOTICE},
        sentences=sentences,
    )


def _overlay(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    img[10:40, 10:60, 1] = 255
    return img


def _dciodvfy_errors(path: Path) -> list[str]:
    proc = subprocess.run([str(DCIODVFY), "-new", str(path)], capture_output=True, text=True,
                          timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "Error" in line]


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("dicom_case")
    radiograph = read_image(_source_dicom(root / "in.dcm"))
    result = _result(demo=True)
    outputs = write_dicom_outputs(result, radiograph, _overlay(300, 200), root / "out")
    return radiograph, result, outputs


@pytest.fixture(scope="module")
def png_case(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("png_case")
    radiograph = Radiograph.from_array(np.zeros((HEIGHT, WIDTH), np.uint8), "chest.png")
    result = _result(study_id="chest")
    ids = SyntheticIds(patient_id="RESEARCH-7", patient_name="Phantom^Seven",
                       study_id="PH7", accession_number="A7")
    outputs = write_dicom_outputs(result, radiograph, _overlay(WIDTH * 2, HEIGHT * 2),
                                  root / "out", synthetic_ids=ids)
    return radiograph, result, outputs, ids


# -- behaviours --------------------------------------------------------------------------

@pytest.mark.skipif(not DCIODVFY.exists(), reason="dicom3tools (dciodvfy) is not installed")
@pytest.mark.parametrize("case", ["dicom_case", "png_case"])
@pytest.mark.parametrize("kind", ["sr", "sc"])
def test_every_written_object_passes_dciodvfy(case, kind, request):
    outputs = request.getfixturevalue(case)[2]
    path = outputs.sr if kind == "sr" else outputs.sc
    assert _dciodvfy_errors(path) == []


def _assert_same_as_result(read: list[dict], result: StudyResult) -> None:
    expected = result.to_dict()["sentences"]
    assert [s["index"] for s in read] == [s["index"] for s in expected]
    for got, want in zip(read, expected, strict=True):
        assert (got["text"], got["section"], got["kind"], got["grounded"], got["uncertain"]) == (
            want["text"], want["section"], want["kind"], want["grounded"], want["uncertain"])
        assert round(got["score"], 4) == want["score"]
        assert len(got["boxes"]) == len(want["boxes"])
        for got_box, want_box in zip(got["boxes"], want["boxes"], strict=True):
            assert np.allclose(got_box["box"], want_box["box"], atol=0.1)
            assert round(got_box["score"], 4) == want_box["score"]


def test_sr_reads_back_to_the_study_result(dicom_case):
    _, result, outputs = dicom_case
    _assert_same_as_result(read_back_sr(outputs.sr), result)


def test_a_hedged_finding_is_uncertain_in_the_sr_and_no_other_sentence_is(dicom_case):
    _, result, outputs = dicom_case
    read = read_back_sr(outputs.sr)
    assert [s["uncertain"] for s in read] == [False, False, True, False, False]
    # Certainty of Finding (DCM 111012) = Uncertain (SCT 64957009), once: on sentence 2 alone.
    items = [i for i in _walk(pydicom.dcmread(outputs.sr)) if i.ValueType == "CODE"
             and i.ConceptNameCodeSequence[0].CodeValue == "111012"]
    assert [(i.ConceptCodeSequence[0].CodeValue, i.ConceptCodeSequence[0].CodingSchemeDesignator)
            for i in items] == [("64957009", "SCT")]


def test_sr_boxes_are_closed_polylines_on_the_source_image(dicom_case):
    radiograph, _, outputs = dicom_case
    sr = pydicom.dcmread(outputs.sr)
    scoords = [item for item in _walk(sr) if item.ValueType == "SCOORD"]
    assert len(scoords) == 3
    for item in scoords:
        assert item.GraphicType == "POLYLINE"
        points = np.asarray(item.GraphicData).reshape(-1, 2)
        assert len(points) == 5 and np.array_equal(points[0], points[-1])
        ref = item.ContentSequence[0].ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == radiograph.dicom.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == radiograph.dicom.SOPClassUID


def test_sr_identifies_lesionloc_and_the_model_bundle(dicom_case):
    prov = read_sr_provenance(dicom_case[2].sr)
    assert prov["algorithm_name"] == "lesionloc"
    assert prov["algorithm_version"] == __version__
    assert f"model_card_sha256={CARD_SHA}" in prov["parameters"]
    sr = pydicom.dcmread(dicom_case[2].sr)
    observer = [i.TextValue for i in _walk(sr) if i.ValueType == "TEXT"
                and i.ConceptNameCodeSequence[0].CodeValue == "121013"]
    assert observer == ["lesionloc"]


def test_demo_model_is_stated_in_the_sr_and_both_series(dicom_case):
    _, _, outputs = dicom_case
    prov = read_sr_provenance(outputs.sr)
    assert prov["demo"] is True
    assert DEMO_NOTICE in prov["notice"]
    assert any(p.startswith("DEMO MODEL") for p in prov["parameters"])
    for path in (outputs.sr, outputs.sc):
        assert "DEMO MODEL" in pydicom.dcmread(path).SeriesDescription


def test_research_model_is_not_called_a_demo(tmp_path):
    radiograph = read_image(_source_dicom(tmp_path / "in.dcm"))
    outputs = write_dicom_outputs(_result(demo=False), radiograph, _overlay(), tmp_path / "o")
    prov = read_sr_provenance(outputs.sr)
    assert prov["demo"] is False and prov["notice"] == RESEARCH_NOTICE
    assert "DEMO" not in pydicom.dcmread(outputs.sr).SeriesDescription


def test_outputs_join_the_source_study_in_new_series(dicom_case):
    radiograph, _, outputs = dicom_case
    src = radiograph.dicom
    sr, sc = pydicom.dcmread(outputs.sr), pydicom.dcmread(outputs.sc)
    for ds in (sr, sc):
        for name in COPIED_ATTRIBUTES:
            assert ds.get(name) == src.get(name), name
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID
        assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert sr.SeriesInstanceUID != sc.SeriesInstanceUID
    assert str(sr.PatientName) == "Müller^Jörg"
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert (sc.Rows, sc.Columns, sc.SamplesPerPixel) == (200, 300, 3)
    assert np.array_equal(sc.pixel_array, _overlay(300, 200))
    evidence = {ref.ReferencedSOPInstanceUID
                for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence
                for ref in series.ReferencedSOPSequence}
    assert evidence == {src.SOPInstanceUID, sc.SOPInstanceUID}


def test_nothing_else_of_the_source_leaks(dicom_case):
    _, _, outputs = dicom_case
    for path in (outputs.sr, outputs.sc):
        raw = path.read_bytes()
        assert SECRET.encode() not in raw
        assert b"Secret^Leak" not in raw
        ds = pydicom.dcmread(path)
        assert not any(elem.tag.is_private for elem in ds)
        for name in ("PatientAddress", "OtherPatientIDs", "PatientComments", "InstitutionName",
                     "StudyDescription", "PerformingPhysicianName", "DeviceSerialNumber"):
            assert name not in ds, name


def test_file_names_do_not_reveal_the_patient(dicom_case):
    _, _, outputs = dicom_case
    assert (outputs.sr.name, outputs.sc.name) == ("case-001_sr.dcm", "case-001_sc.dcm")
    assert sorted(p.name for p in outputs.sr.parent.iterdir()) == [
        "case-001_sc.dcm", "case-001_sr.dcm"]  # no temporary files left behind


def test_png_input_gets_a_new_study_with_synthetic_ids(png_case):
    _, result, outputs, ids = png_case
    sr, sc = pydicom.dcmread(outputs.sr), pydicom.dcmread(outputs.sc)
    for ds in (sr, sc):
        assert (ds.PatientID, str(ds.PatientName), ds.StudyID, ds.AccessionNumber) == (
            ids.patient_id, ids.patient_name, ids.study_id, ids.accession_number)
        assert ds.StudyInstanceUID == outputs.study_instance_uid
    assert sr.SeriesInstanceUID != sc.SeriesInstanceUID
    assert (sc.Columns, sc.Rows) == (WIDTH, HEIGHT)  # resampled onto the radiograph's grid
    _assert_same_as_result(read_back_sr(outputs.sr), result)


def test_png_sr_boxes_reference_the_secondary_capture(png_case):
    outputs = png_case[2]
    sr = pydicom.dcmread(outputs.sr)
    refs = {item.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            for item in _walk(sr) if item.ValueType == "SCOORD"}
    assert refs == {outputs.sc_sop_instance_uid}


def test_synthetic_id_defaults_are_anonymous_and_fresh(tmp_path):
    radiograph = Radiograph.from_array(np.zeros((HEIGHT, WIDTH), np.uint8), "x.png")
    first = write_dicom_outputs(_result(study_id="a-very-long-study-name-2024"), radiograph,
                                _overlay(), tmp_path / "1")
    second = write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path / "2")
    ds = pydicom.dcmread(first.sc)
    assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == (
        "ANONYMOUS", "ANONYMOUS^", "")
    assert ds.StudyID == "a-very-long-stud"  # the study id, cut to SH's 16 characters
    assert first.study_instance_uid != second.study_instance_uid


def test_synthetic_ids_that_dicom_cannot_encode_are_refused(tmp_path):
    radiograph = Radiograph.from_array(np.zeros((HEIGHT, WIDTH), np.uint8), "x.png")
    with pytest.raises(ConfigError, match="accession number"):
        write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path,
                            synthetic_ids=SyntheticIds(accession_number="X" * 17))


@pytest.mark.parametrize("drop", [("StudyInstanceUID",), ("SOPInstanceUID", "SOPClassUID")])
def test_source_without_required_uids_is_a_clear_error(tmp_path, drop):
    radiograph = read_image(_source_dicom(tmp_path / "in.dcm", drop=drop))
    with pytest.raises(DicomOutputError) as info:
        write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path / "out")
    message = str(info.value)
    assert all(name in message for name in drop) and "\n" not in message
    assert isinstance(info.value, ImageReadError) and isinstance(info.value, LesionlocError)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_source_of_a_non_standard_sop_class_is_a_clear_error(tmp_path):
    radiograph = read_image(_source_dicom(tmp_path / "in.dcm"))
    radiograph.dicom.SOPClassUID = "1.2.3.4.5.6.7"
    with pytest.raises(DicomOutputError, match="1.2.3.4.5.6.7"):
        write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path / "out")


def _damage(path: Path, tag_vr: bytes) -> Path:
    """The file with the VR of one element made unknown: pydicom raises when it is read."""
    data = path.read_bytes()
    assert data.count(tag_vr) == 1
    path.write_bytes(data.replace(tag_vr, tag_vr[:4] + b"JS"))
    return path


def test_source_with_damaged_or_malformed_uids_is_a_clear_error(tmp_path):
    """A damaged SOP Instance UID raised pydicom's NotImplementedError out of --dicom-out,
    and a UID with other bytes than digits and dots was copied into the objects (found by
    fuzzing)."""
    source = _damage(_source_dicom(tmp_path / "in.dcm"), b"\x08\x00\x18\x00UI")
    radiograph = read_image(source)
    with pytest.raises(DicomOutputError, match="lacks SOPInstanceUID"):
        write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path / "out")
    radiograph = read_image(_source_dicom(tmp_path / "in2.dcm"))
    with pytest.warns(UserWarning):  # pydicom warns about the invalid UID
        radiograph.dicom.SeriesInstanceUID = "1.2.3.\x0b4"
    with pytest.raises(DicomOutputError, match="SeriesInstanceUID is not a valid UID") as info:
        write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path / "out")
    assert str(info.value).isprintable()


def test_source_with_a_damaged_patient_attribute_copies_it_empty(tmp_path):
    source = _damage(_source_dicom(tmp_path / "in.dcm"), b"\x10\x00\x10\x00PN")
    written = write_dicom_outputs(_result(), read_image(source), _overlay(), tmp_path / "out")
    for path in (written.sc, written.sr):
        ds = pydicom.dcmread(path)
        assert ds.PatientName == "" and ds.PatientID == "MRN-0042"


def test_outputs_are_replaced_atomically(tmp_path, monkeypatch):
    radiograph = read_image(_source_dicom(tmp_path / "in.dcm"))
    first = write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path / "out")
    before = first.sr.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_dicom_outputs(_result(), radiograph, _overlay(), tmp_path / "out")
    assert first.sr.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "case-001_sc.dcm", "case-001_sr.dcm"]


def test_read_back_refuses_a_file_that_is_not_a_lesionloc_sr(tmp_path):
    path = _source_dicom(tmp_path / "image.dcm")
    with pytest.raises(DicomOutputError, match="not a DICOM SR"):
        read_back_sr(path)


def _walk(ds: Dataset) -> list[Dataset]:
    out: list[Dataset] = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out.extend(_walk(item))
    return out


def test_dicom_out_reads_a_malformed_uid_without_library_warnings(tmp_path, capsys, caplog):
    """A UID of other characters than digits and dots is refused with our one line only:
    pydicom's own warning and log line about it must not reach the terminal first."""
    import warnings

    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    from lesionloc_runtime.dicom_out.identity import StudyIdentity

    ds = Dataset()
    ds[0x0020000D] = RawDataElement(Tag(0x0020000D), "UI", 8, b"1.2.x3a\x00", 0, False, True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DicomOutputError):
            StudyIdentity.from_source(ds, 64, 64)
    assert not [str(w.message) for w in caught]
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]
