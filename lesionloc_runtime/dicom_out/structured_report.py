"""The grounded report as a DICOM Comprehensive SR (TID 1500 Measurement Report), and reading
it back. Layout (docs/dicom-output.md): one measurement group per box (TID 1410, a closed
POLYLINE on the image) or per sentence without a box (TID 1501), each carrying the sentence
text, section, kind, whether it was grounded, whether a finding is hedged, and its scores."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    ContainerContentItem,
    DeviceObserverIdentifyingAttributes,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from lesionloc_runtime import __version__
from lesionloc_runtime.boxes import Box
from lesionloc_runtime.bundle import DEMO_NOTICE, RESEARCH_NOTICE
from lesionloc_runtime.dicom_out.capture import CHARACTER_SET, MANUFACTURER
from lesionloc_runtime.dicom_out.identity import StudyIdentity
from lesionloc_runtime.errors import DicomOutputError
from lesionloc_runtime.results import SentenceResult, StudyResult

__all__ = ["RegionTarget", "build_sr", "read_back_sr", "read_sr_provenance"]

_SR_SERIES_NUMBER = 991
_ALGORITHM_NAME = "lesionloc"

# No standard concept names a sentence-image similarity or a report sentence's kind, so they
# come from a private coding scheme, declared in the SR's Coding Scheme Identification.
_SCHEME = "99LESIONLOC"
_SENTENCE = Code("sentence", _SCHEME, "Report sentence")
_SECTION = Code("report-section", _SCHEME, "Report section")
_KIND = Code("sentence-kind", _SCHEME, "Sentence kind")
_SENTENCE_SCORE = Code("sentence-score", _SCHEME, "Sentence-image local alignment score")
_BOX_SCORE = Code("box-score", _SCHEME, "Heatmap maximum in box")
_GROUNDED = Code("grounded", _SCHEME, "Grounded on image")
_KIND_MEANINGS = {
    "finding": "Finding sentence",
    "negated": "Negated finding sentence",
    "normal": "Normal statement",
    "other": "Sentence with nothing to localize",
    "query": "Free-text query",
}
# A hedged finding ("Possible small effusion.") carries the standard Certainty of Finding
# concept with the SNOMED qualifier Uncertain; a finding stated plainly carries none.
_CERTAINTY = Code("111012", "DCM", "Certainty of Finding")
_UNCERTAIN = Code("64957009", "SCT", "Uncertain")
_PLAIN_CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")
_QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")
_TRACKING = re.compile(r"sentence (\d+)(?: box (\d+) of \d+)?$")


@dataclass(frozen=True)
class RegionTarget:
    """The image whose pixels the SCOORDs are in: the source DICOM, or the SC for PNG inputs."""

    sop_class_uid: str
    sop_instance_uid: str


def _algorithm_identification(model: dict[str, Any]) -> AlgorithmIdentification:
    """TID 4019: name, version, and the model bundle that produced the result."""
    demo = bool(model.get("demo", False))
    parameters = [
        f"model={model.get('name', 'unknown')}",
        f"model_card_sha256={model.get('card_sha256', 'unknown')}",
        f"quantization={model.get('quantization', 'unknown')}",
        f"demo={'true' if demo else 'false'}",
    ]
    if demo:
        parameters.append(DEMO_NOTICE)  # starts with "DEMO MODEL"
    return AlgorithmIdentification(
        name=_ALGORITHM_NAME, version=__version__, parameters=parameters,
        manufacturer=MANUFACTURER,
    )


def _observation_context(model: dict[str, Any]) -> ObservationContext:
    # The device UID is derived from the model bundle: the same bundle is the same observer.
    sha = str(model.get("card_sha256", "unknown"))
    uid = generate_uid(prefix=None, entropy_srcs=[_ALGORITHM_NAME, __version__, sha])
    model_name = str(model.get("name", "unknown"))[:50]  # TEXT, but kept LO-sized for viewers
    if model.get("demo"):
        model_name = f"{model_name} (DEMO MODEL)"
    device = DeviceObserverIdentifyingAttributes(
        uid=uid, name=_ALGORITHM_NAME, manufacturer_name=MANUFACTURER, model_name=model_name,
    )
    return ObservationContext(observer_device_context=ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device,
    ))


def _kind_code(kind: str) -> Code:
    return Code(kind[:16], _SCHEME, _KIND_MEANINGS.get(kind, kind))


def _polyline(box: Box) -> np.ndarray:
    """A box as a closed 5-point POLYLINE. Box x/y are pixel edges (0 = left edge of the first
    column), which is also the origin of DICOM SCOORD image coordinates (PS3.3 C.18.6.1.2)."""
    x, y = box.x, box.y
    x1, y1 = x + box.width, y + box.height
    return np.array([[x, y], [x1, y], [x1, y1], [x, y1], [x, y]], dtype=np.float32)


def _groups(sentence: SentenceResult, target: RegionTarget,
            algorithm: AlgorithmIdentification) -> list[Any]:
    evaluations = [
        QualitativeEvaluation(_KIND, _kind_code(sentence.kind)),
        QualitativeEvaluation(_GROUNDED, codes.SCT.Yes if sentence.grounded else codes.SCT.No),
    ]
    if sentence.uncertain:
        evaluations.append(QualitativeEvaluation(_CERTAINTY, _UNCERTAIN))
    sentence_score = Measurement(_SENTENCE_SCORE, float(sentence.score), codes.UCUM.NoUnits)
    groups: list[Any] = []
    total = len(sentence.boxes)
    for number, box in enumerate(sentence.boxes, start=1):
        region = ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=_polyline(box),
            source_image=SourceImageForRegion(target.sop_class_uid, target.sop_instance_uid),
        )
        groups.append(PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(
                identifier=f"sentence {sentence.index} box {number} of {total}"),
            referenced_region=region,
            algorithm_id=algorithm,
            measurements=[sentence_score,
                          Measurement(_BOX_SCORE, float(box.score), codes.UCUM.NoUnits)],
            qualitative_evaluations=evaluations,
        ))
    if not groups:
        groups.append(MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(identifier=f"sentence {sentence.index}"),
            algorithm_id=algorithm,
            measurements=[sentence_score],
            qualitative_evaluations=evaluations,
            source_images=[SourceImageForMeasurementGroup(
                target.sop_class_uid, target.sop_instance_uid)],
        ))
    for group in groups:
        # TID 1501/1410 allow TEXT qualitative evaluations; highdicom only builds CODE ones.
        texts = [TextContentItem(name=_SENTENCE, value=sentence.text,
                                 relationship_type=RelationshipTypeValues.CONTAINS)]
        if sentence.section:
            texts.append(TextContentItem(name=_SECTION, value=sentence.section,
                                         relationship_type=RelationshipTypeValues.CONTAINS))
        group[0].ContentSequence.extend(texts)
    return groups


def build_sr(result: StudyResult, identity: StudyIdentity, target: RegionTarget,
             evidence: list[Dataset], *, series_uid: str, sop_uid: str,
             series_description: str) -> hd.sr.ComprehensiveSR:
    """The Comprehensive SR of every sentence in `result`, boxes drawn on `target`."""
    if not result.sentences:
        raise ValueError("a study result without sentences has nothing to report in an SR")
    algorithm = _algorithm_identification(result.model)
    groups = [g for s in result.sentences for g in _groups(s, target, algorithm)]
    report = MeasurementReport(
        observation_context=_observation_context(result.model),
        procedure_reported=_PLAIN_CHEST_XRAY,
        imaging_measurements=groups,
    )
    # TID 1500 row 12: a report-level qualitative evaluation says whether the model was a demo.
    notice = TextContentItem(
        name=codes.DCM.Comment,
        value=str(result.model.get("notice") or
                  (DEMO_NOTICE if result.model.get("demo") else RESEARCH_NOTICE)),
        relationship_type=RelationshipTypeValues.CONTAINS,
    )
    if result.model.get("demo") and DEMO_NOTICE not in notice.TextValue:
        notice.TextValue = f"{DEMO_NOTICE} {notice.TextValue}"
    container = ContainerContentItem(name=_QUALITATIVE_EVALUATIONS,
                                     relationship_type=RelationshipTypeValues.CONTAINS)
    container.ContentSequence = [notice]
    report[0].ContentSequence.append(container)
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=series_uid,
        series_number=_SR_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="lesionloc-run",
        software_versions=__version__,
        series_description=series_description,
        is_complete=True,
        specific_character_set=CHARACTER_SET,
        coding_schemes=[CodingSchemeIdentificationItem(
            designator=_SCHEME, name="lesionloc private codes",
            responsible_organization="lesionloc project")],
    )
    identity.apply_to(sr)
    return sr


def read_back_sr(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse a lesionloc SR back into one dict per sentence, in report order:
    `{"index", "text", "section", "kind", "grounded", "uncertain", "score", "boxes": [{"box":
    [x, y, w, h], "score"}]}`, boxes in pixels of the referenced image (the source image, or the SC for
    non-DICOM inputs). DicomOutputError if the file is not a lesionloc SR."""
    report = _read_report(path).content
    planar = report.get_planar_roi_measurement_groups()
    image_level = report.get_image_measurement_groups()
    sentences: dict[int, dict[str, Any]] = {}
    boxes: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for group in [*planar, *image_level]:
        match = _TRACKING.match(group.tracking_identifier or "")
        if match is None:
            raise DicomOutputError(f"{path}: measurement group "
                                   f"{group.tracking_identifier!r} was not written by lesionloc")
        index = int(match.group(1))
        texts = _texts(group[0])
        kind = group.get_qualitative_evaluations(name=_KIND)
        grounded = group.get_qualitative_evaluations(name=_GROUNDED)
        certainty = group.get_qualitative_evaluations(name=_CERTAINTY)
        score = group.get_measurements(name=_SENTENCE_SCORE)
        sentences.setdefault(index, {
            "index": index,
            "text": texts.get(_SENTENCE.value, ""),
            "section": texts.get(_SECTION.value, ""),
            "kind": kind[0].value.value if kind else "",
            "grounded": bool(grounded) and grounded[0].value == codes.SCT.Yes,
            "uncertain": any(c.value == _UNCERTAIN for c in certainty),
            "score": float(score[0].value) if score else float("nan"),
        })
        if match.group(2) is not None:
            points = np.asarray(group.roi.value, dtype=np.float64)
            (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
            box_score = group.get_measurements(name=_BOX_SCORE)
            boxes.setdefault(index, []).append((int(match.group(2)), {
                "box": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "score": float(box_score[0].value) if box_score else float("nan"),
            }))
    for index, sentence in sentences.items():
        sentence["boxes"] = [b for _, b in sorted(boxes.get(index, []), key=lambda t: t[0])]
    return [sentences[i] for i in sorted(sentences)]


def read_sr_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The algorithm identification and report-level notice of a lesionloc SR:
    `{"algorithm_name", "algorithm_version", "parameters", "notice", "demo"}`."""
    sr = _read_report(path)
    out: dict[str, Any] = {"algorithm_name": None, "algorithm_version": None,
                           "parameters": [], "notice": None, "demo": False}
    names = {"111001": "algorithm_name", "111003": "algorithm_version"}
    for item in _walk(sr.content[0]):
        code = item.ConceptNameCodeSequence[0].CodeValue
        if item.ValueType != "TEXT":
            continue
        if code in names and out[names[code]] is None:
            out[names[code]] = item.TextValue
        elif code == "111002" and item.TextValue not in out["parameters"]:
            out["parameters"].append(item.TextValue)
        elif code == codes.DCM.Comment.value:
            out["notice"] = item.TextValue
    out["demo"] = "demo=true" in out["parameters"]
    return out


def _read_report(path: str | os.PathLike[str]) -> Any:
    try:
        sr = hd.sr.srread(path)
    except Exception as exc:  # pydicom/highdicom raise many types for a foreign file
        raise DicomOutputError(f"{path}: not a DICOM SR ({exc})") from None
    if not isinstance(sr.content, MeasurementReport):
        raise DicomOutputError(f"{path}: not a DICOM TID 1500 measurement report")
    return sr


def _texts(item: Dataset) -> dict[str, str]:
    """TEXT children of a content item by concept code value (first occurrence wins)."""
    found: dict[str, str] = {}
    for child in item.get("ContentSequence", []):
        if child.ValueType == "TEXT":
            found.setdefault(child.ConceptNameCodeSequence[0].CodeValue, child.TextValue)
    return found


def _walk(item: Dataset) -> list[Dataset]:
    out: list[Dataset] = []
    for child in item.get("ContentSequence", []):
        out.append(child)
        out.extend(_walk(child))
    return out

