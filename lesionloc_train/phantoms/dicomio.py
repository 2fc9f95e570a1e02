"""Writing phantom images: 16-bit PNG and DX DICOM (For Presentation) in the variants a PACS
sends (MONOCHROME1, VOI window or LUT, RLE / JPEG-LS / JPEG 2000 lossless), all of which
`lesionloc_runtime.imageio.read_image` decodes to the same display values as the PNG."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

MAX_VALUE = 4095  # 12 bits stored in 16
BITS_STORED = 12
_UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for generated UIDs
_COMPRESSIONS = {"rle": (RLELossless, "pylibjpeg"), "jpeg-ls": (JPEGLSLossless, "pyjpegls"),
                 "jpeg2000": (JPEG2000Lossless, "pylibjpeg")}
_EPOCH = dt.date(2021, 1, 4)


@dataclass(frozen=True)
class DicomVariant:
    """How a study's pixels are stored. `offset` shifts stored values; the VOI undoes it."""

    photometric: str  # "MONOCHROME2" | "MONOCHROME1"
    voi: str  # "full" (window over all 12 bits) | "window" (shifted values) | "lut" | "none"
    offset: int
    compression: str  # "none" | "rle" | "jpeg-ls" | "jpeg2000"

    @property
    def transfer_syntax(self) -> str:
        return _COMPRESSIONS[self.compression][0] if self.compression != "none" else \
            ExplicitVRLittleEndian


@cache
def available_compressions() -> tuple[str, ...]:
    """Compressions whose pydicom encoder plugin is installed here."""
    from pydicom.pixels import get_encoder

    found = []
    for name, (uid, plugin) in _COMPRESSIONS.items():
        encoder = get_encoder(uid)
        if encoder.is_available and plugin in encoder.available_plugins:
            found.append(name)
    return tuple(found)


def sample_variant(rng: np.random.Generator, stored_range: tuple[int, int]) -> DicomVariant:
    """About a quarter MONOCHROME1; a VOI window (identity or shifted) or LUT; 45% compressed
    (when the encoders are installed).

    A DX "For Presentation" image must carry a VOI window or LUT (dciodvfy flags its absence),
    so every variant has one; "full range" windows show all 12 bits unchanged."""
    photometric = "MONOCHROME1" if rng.random() < 0.25 else "MONOCHROME2"
    voi = str(rng.choice(["full", "window", "lut"], p=[0.45, 0.35, 0.2]))
    lo, hi = stored_range
    if photometric == "MONOCHROME1":
        lo, hi = MAX_VALUE - hi, MAX_VALUE - lo
    offset = 0
    if voi != "full":
        # Shift stored values within the 12 bits; a LUT's first mapped value cannot be negative.
        low = 0 if voi == "lut" else -lo
        offset = int(rng.integers(low, MAX_VALUE - hi + 1)) if MAX_VALUE - hi >= low else 0
    kinds = ("none",) + available_compressions()
    # JPEG 2000 is the slowest encoder by far: it gets the smallest share.
    share = {"none": 0.55, "rle": 0.16, "jpeg-ls": 0.17, "jpeg2000": 0.12}
    weights = np.array([share[k] for k in kinds])
    compression = str(rng.choice(kinds, p=weights / weights.sum()))
    return DicomVariant(photometric, voi, offset, compression)


def quantize(display: np.ndarray) -> np.ndarray:
    """Display values in [0, 1] to 12-bit integers (uint16)."""
    return np.round(np.clip(display, 0.0, 1.0) * MAX_VALUE).astype(np.uint16)


def png16_bytes(values: np.ndarray) -> bytes:
    """12-bit values as a 16-bit PNG whose v/65535 equals values/4095 to within 8e-6."""
    wide = np.round(values.astype(np.float64) * (65535.0 / MAX_VALUE)).astype(np.uint16)
    # "Up" filter with run-length deflate: noisy radiographs gain little from full LZ77, and
    # this is 8x faster than the default for files 15% smaller.
    ok, buf = cv2.imencode(".png", wide, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                          cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                                          cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise RuntimeError("OpenCV could not encode a 16-bit PNG")
    return buf.tobytes()


def mask_png_bytes(mask: np.ndarray) -> bytes:
    # 1-bit PNG: 5x faster to write than 8-bit; OpenCV reads it back as uint8 0 / 255.
    ok, buf = cv2.imencode(".png", (mask > 0).astype(np.uint8) * 255,
                           [cv2.IMWRITE_PNG_BILEVEL, 1, cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise RuntimeError("OpenCV could not encode a mask PNG")
    return buf.tobytes()


def stored_values(values: np.ndarray, variant: DicomVariant) -> np.ndarray:
    stored = values.astype(np.int32)
    if variant.photometric == "MONOCHROME1":
        stored = MAX_VALUE - stored
    stored = stored + variant.offset
    if stored.min() < 0 or stored.max() > MAX_VALUE:
        raise ValueError("stored values do not fit in 12 bits; the variant's offset is wrong")
    return stored.astype(np.uint16)


def study_uid(dataset_key: str, study_id: str, what: str) -> str:
    """A UID that is a pure function of the data set, the study and its role."""
    return generate_uid(_UID_ROOT, entropy_srcs=["lesionloc-phantom", dataset_key, study_id, what])


# SNOMED CT codes of the DX views (DICOM CID 4010).
_VIEW_CODES = {"PA": ("272479007", "postero-anterior"), "AP": ("399348003", "antero-posterior")}


def dicom_bytes(values: np.ndarray, variant: DicomVariant, study_id: str, index: int,
                dataset_key: str, spacing_mm: float, sex: str, view: str = "PA",
                burned_in_text: bool = False) -> bytes:
    """A DX For Presentation DICOM file of one phantom study (`view` "PA" or "AP";
    `burned_in_text`: the pixels carry written words, as BurnedInAnnotation must say)."""
    ds = Dataset()
    sop_uid = study_uid(dataset_key, study_id, "instance")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "LESIONLOC_PH1"
    ds.file_meta = meta
    ds.SOPInstanceUID = sop_uid
    _study(ds, study_id, index, dataset_key, sex, view)
    _image(ds, values.shape, variant, spacing_mm, burned_in_text)
    _voi(ds, variant)
    arr = stored_values(values, variant)
    if variant.compression == "none":
        ds.PixelData = arr.tobytes()
    else:
        uid, plugin = _COMPRESSIONS[variant.compression]
        ds.compress(uid, arr, encoding_plugin=plugin, generate_instance_uid=False)
    ds["PixelData"].VR = "OW" if variant.compression == "none" else "OB"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _study(ds: Dataset, study_id: str, index: int, dataset_key: str, sex: str,
           view: str) -> None:
    """Patient, study, series and equipment: synthetic identifiers, fixed dates."""
    date = (_EPOCH + dt.timedelta(days=index % 1400)).strftime("%Y%m%d")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = "120000"
    ds.AccessionNumber = f"PH{index:07d}"
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "lesionloc synthetic phantom"
    ds.InstitutionName = "Synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"Chest {view} (synthetic phantom)"
    ds.SeriesDescription = view
    ds.ManufacturerModelName = "phantom generator"
    ds.PatientName = f"Phantom^{study_id}"
    ds.PatientID = study_id
    ds.PatientBirthDate = ""
    ds.PatientSex = sex
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic data: no real patient"
    ds.BodyPartExamined = "CHEST"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = "lesionloc phantoms 1"
    ds.DetectorType = "SCINTILLATOR"
    ds.ViewPosition = view
    ds.PositionerType = "COLUMN" if view == "PA" else "NONE"
    ds.StudyInstanceUID = study_uid(dataset_key, study_id, "study")
    ds.SeriesInstanceUID = study_uid(dataset_key, study_id, "series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    # Radiological convention: columns run toward the patient's left, rows toward the feet.
    ds.PatientOrientation = ["L", "F"]
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = Sequence([_code("51185008", "SCT", "Chest")])
    ds.ViewCodeSequence = Sequence([_code(_VIEW_CODES[view][0], "SCT", _VIEW_CODES[view][1])])
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence()
    ds.AcquisitionContextSequence = Sequence()


def _image(ds: Dataset, shape: tuple[int, ...], variant: DicomVariant, spacing_mm: float,
           burned_in_text: bool) -> None:
    """Image pixel and DX image attributes of 12 bits stored in 16."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = variant.photometric
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    # +1: higher stored values mean more X-ray intensity (darker), as MONOCHROME1 stores them.
    ds.PixelIntensityRelationshipSign = 1 if variant.photometric == "MONOCHROME1" else -1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "INVERSE" if variant.photometric == "MONOCHROME1" else "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "YES" if burned_in_text else "NO"
    ds.ImagerPixelSpacing = [f"{spacing_mm:.6g}", f"{spacing_mm:.6g}"]
    ds.PixelSpacing = [f"{spacing_mm:.6g}", f"{spacing_mm:.6g}"]
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "Synthetic phantom: spacing as generated"


def _voi(ds: Dataset, variant: DicomVariant) -> None:
    if variant.voi in ("full", "window"):
        ds.WindowCenter = variant.offset + (MAX_VALUE + 1) // 2
        ds.WindowWidth = MAX_VALUE + 1
        ds.VOILUTFunction = "LINEAR"
        ds.WindowCenterWidthExplanation = "FULL RANGE"
    elif variant.voi == "lut":
        item = Dataset()
        entries = MAX_VALUE + 1 - variant.offset
        item.LUTDescriptor = [entries, variant.offset, BITS_STORED]
        item.LUTExplanation = "IDENTITY"
        item.add_new(0x00283006, "OW", np.arange(entries, dtype="<u2").tobytes())  # LUT Data
        ds.VOILUTSequence = Sequence([item])


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
