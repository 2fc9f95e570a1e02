"""Who and which study a derived DICOM object belongs to: the patient and study attributes
copied from a source DICOM (and nothing else), or synthetic ones for PNG/JPEG inputs."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import UID

from lesionloc_runtime.errors import ConfigError, DicomOutputError
from lesionloc_runtime.imageio import UID_TEXT, header_value

__all__ = [
    "COPIED_ATTRIBUTES",
    "REQUIRED_SOURCE_ATTRIBUTES",
    "SourceImage",
    "StudyIdentity",
    "SyntheticIds",
    "output_names",
    "reference_dataset",
]

# The only source attributes a derived object inherits (Patient and General Study modules,
# PS3.3 C.7.1.1 and C.7.2.1). Everything else in the source header stays behind.
COPIED_ATTRIBUTES: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
# Without these the SR cannot reference the source image, nor the objects join its study.
REQUIRED_SOURCE_ATTRIBUTES: tuple[str, ...] = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
)


@dataclass(frozen=True)
class SyntheticIds:
    """Identifiers for the new study created when the input is not DICOM (PNG/JPEG).

    Defaults: patient id "ANONYMOUS", name "ANONYMOUS^" (a family name only), study id =
    the result's study id cut to 16 characters, no accession number, and a fresh Study
    Instance UID. Pass the same `study_instance_uid` for several images to put them in one
    study."""

    patient_id: str = "ANONYMOUS"
    patient_name: str = "ANONYMOUS^"
    study_id: str | None = None
    accession_number: str = ""
    study_instance_uid: str | None = None

    def validate(self) -> None:
        """ConfigError if a value cannot be encoded in its DICOM attribute."""
        limits = {
            "patient id": (self.patient_id, 64),
            "patient name": (self.patient_name, 64),
            "study id": (self.study_id or "", 16),
            "accession number": (self.accession_number, 16),
        }
        for what, (value, limit) in limits.items():
            if len(value) > limit:
                raise ConfigError(f"synthetic {what} {value!r} is longer than {limit} characters")
            if "\\" in value or any(ord(c) < 32 for c in value):
                raise ConfigError(f"synthetic {what} {value!r} contains a backslash or control "
                                  "character, which DICOM does not allow")
        uid = self.study_instance_uid
        if uid is not None and (len(uid) > 64 or not re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid)):
            raise ConfigError(f"synthetic study instance UID {uid!r} is not a valid DICOM UID")


@dataclass(frozen=True)
class SourceImage:
    """The DICOM image the boxes are drawn on, as an SR references it."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str


@dataclass(frozen=True)
class StudyIdentity:
    """Patient and General Study attributes for every object written for one study."""

    patient_name: Any
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_instance_uid: str
    study_date: str
    study_time: str
    referring_physician_name: Any
    study_id: str
    accession_number: str
    source: SourceImage | None  # None: the input was not DICOM

    @classmethod
    def from_source(cls, ds: Any, width: int, height: int) -> StudyIdentity:
        """Copy the allowed attributes from a source DICOM header; DicomOutputError names
        every required attribute that is absent, empty, unreadable or not a valid UID. An
        optional attribute that cannot be read (a damaged element) is copied as empty."""
        values = {name: header_value(ds, name) or ""
                  for name in (*COPIED_ATTRIBUTES, *REQUIRED_SOURCE_ATTRIBUTES)}
        missing = [name for name in REQUIRED_SOURCE_ATTRIBUTES if not str(values[name])]
        if missing:
            raise DicomOutputError(
                f"the source DICOM lacks {', '.join(missing)} (or it cannot be read), which "
                "derived DICOM objects must reference; fix the header or run without --dicom-out"
            )
        malformed = [name for name in REQUIRED_SOURCE_ATTRIBUTES
                     if not (isinstance(values[name], str) and UID_TEXT.fullmatch(values[name]))]
        if malformed:
            raise DicomOutputError(
                f"the source DICOM's {', '.join(malformed)} "
                f"{'is not a valid UID' if len(malformed) == 1 else 'are not valid UIDs'}"
                " (digits and dots, at most 64 characters); derived DICOM "
                "objects cannot reference it, so fix the header or run without --dicom-out"
            )
        sop_class = UID(values["SOPClassUID"])
        if sop_class.type != "SOP Class":
            # highdicom (and any SR reader) needs the standard IOD of a referenced image.
            raise DicomOutputError(
                f"the source DICOM's SOP Class UID {sop_class} is not a standard storage class; "
                "an SR cannot reference it, so run without --dicom-out"
            )
        rows, cols = header_value(ds, "Rows"), header_value(ds, "Columns")
        if rows is not None and cols is not None and (int(cols), int(rows)) != (width, height):
            # Boxes are in the result's pixel grid; they must be the source's pixels.
            raise ValueError(f"result is {width}x{height} but the source DICOM is {cols}x{rows}")
        return cls(
            patient_name=values["PatientName"],
            patient_id=str(values["PatientID"]),
            patient_birth_date=str(values["PatientBirthDate"]),
            patient_sex=str(values["PatientSex"]),
            study_instance_uid=str(values["StudyInstanceUID"]),
            study_date=str(values["StudyDate"]),
            study_time=str(values["StudyTime"]),
            referring_physician_name=values["ReferringPhysicianName"],
            study_id=str(values["StudyID"]),
            accession_number=str(values["AccessionNumber"]),
            source=SourceImage(
                sop_class_uid=values["SOPClassUID"],
                sop_instance_uid=values["SOPInstanceUID"],
                series_instance_uid=values["SeriesInstanceUID"],
                study_instance_uid=values["StudyInstanceUID"],
            ),
        )

    @classmethod
    def synthetic(cls, ids: SyntheticIds, default_study_id: str,
                  now: datetime.datetime | None = None) -> StudyIdentity:
        """A new study for a non-DICOM input, dated now."""
        ids.validate()
        now = now or datetime.datetime.now()
        study_id = ids.study_id if ids.study_id is not None else _safe_name(default_study_id)[:16]
        return cls(
            patient_name=ids.patient_name,
            patient_id=ids.patient_id,
            patient_birth_date="",
            patient_sex="",
            study_instance_uid=ids.study_instance_uid or str(hd.UID()),
            study_date=now.strftime("%Y%m%d"),
            study_time=now.strftime("%H%M%S"),
            referring_physician_name="",
            study_id=study_id,
            accession_number=ids.accession_number,
            source=None,
        )

    def apply_to(self, ds: Any) -> None:
        """Set the Patient and General Study attributes on a new object, verbatim: highdicom's
        constructors would reject real-world values (a name without '^', sex 'U') that the
        source legitimately carries, so the objects are built without them and filled here."""
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.PatientBirthDate = self.patient_birth_date
        ds.PatientSex = self.patient_sex
        ds.StudyInstanceUID = self.study_instance_uid
        ds.StudyDate = self.study_date
        ds.StudyTime = self.study_time
        ds.ReferringPhysicianName = self.referring_physician_name
        ds.StudyID = self.study_id
        ds.AccessionNumber = self.accession_number


def reference_dataset(sop_class_uid: str, sop_instance_uid: str, series_instance_uid: str,
                      study_instance_uid: str) -> Dataset:
    """A header holding only what highdicom needs to reference an instance as SR evidence,
    so that nothing else of the referenced object can be copied into the SR."""
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.SeriesInstanceUID = series_instance_uid
    ds.StudyInstanceUID = study_instance_uid
    for name in COPIED_ATTRIBUTES:
        if name != "StudyInstanceUID":
            setattr(ds, name, "")  # Type 2: present and empty until `apply_to` fills them
    return ds


def _safe_name(text: str) -> str:
    """A value safe for an SH attribute or a file name: letters, digits, '.', '_', '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"


def output_names(study_id: str) -> tuple[str, str]:
    """The file names of a study's secondary capture and structured report: the study id
    (the input's file stem or --study-id), never header values."""
    stem = _safe_name(study_id)
    return f"{stem}_sc.dcm", f"{stem}_sr.dcm"
