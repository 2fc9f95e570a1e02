"""The overlay figure as a DICOM Secondary Capture image in the input's study, new series."""

from __future__ import annotations

import cv2
import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from lesionloc_runtime import __version__
from lesionloc_runtime.dicom_out.identity import StudyIdentity

__all__ = ["CHARACTER_SET", "MANUFACTURER", "build_overlay_sc", "check_overlay", "fit_to_image"]

_SC_SERIES_NUMBER = 990  # high, so the derived series sort after the acquired ones
MANUFACTURER = "lesionloc"
CHARACTER_SET = "ISO_IR 192"  # UTF-8: report sentences and copied names may be non-ASCII


def check_overlay(overlay_rgb: np.ndarray) -> np.ndarray:
    """The figure as a contiguous (rows, columns, 3) uint8 array; ValueError otherwise (a
    caller bug, not a user mistake)."""
    arr = np.asarray(overlay_rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"overlay must be an RGB uint8 array (H, W, 3), got {arr.dtype} "
                         f"{arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"overlay is empty: {arr.shape}")
    return np.ascontiguousarray(arr)


def fit_to_image(overlay: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample an overlay of the whole radiograph onto the radiograph's own pixel grid, so an
    SR can draw the boxes on the SC in original pixel coordinates (non-DICOM inputs, where the
    SC stands in for the source image). The figure must show the image and only the image:
    the same aspect ratio to within a pixel."""
    rows, cols = overlay.shape[:2]
    if (cols, rows) == (width, height):
        return overlay
    if abs(cols * height / width - rows) > 1.0 and abs(rows * width / height - cols) > 1.0:
        raise ValueError(
            f"overlay {cols}x{rows} is not the {width}x{height} radiograph rescaled; for a "
            "non-DICOM input the SC must show the image alone so that boxes fit on it"
        )
    interp = cv2.INTER_AREA if cols > width else cv2.INTER_LINEAR
    return cv2.resize(overlay, (width, height), interpolation=interp)


def build_overlay_sc(identity: StudyIdentity, overlay: np.ndarray, *, series_uid: str,
                     sop_uid: str, series_description: str) -> hd.sc.SCImage:
    """A single-frame RGB Secondary Capture of `overlay` in the identity's study."""
    sc = hd.sc.SCImage(
        pixel_array=overlay,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        # highdicom insists on an orientation for PATIENT; it is blanked below because the
        # figure's orientation is not known here (PatientOrientation is Type 2C).
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        patient_orientation=("L", "F"),
        study_instance_uid=identity.study_instance_uid,
        series_instance_uid=series_uid,
        series_number=_SC_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="lesionloc-run",
        software_versions=__version__,
        series_description=series_description,
        specific_character_set=CHARACTER_SET,
    )
    sc.PatientOrientation = None
    # Laterality is Type 2C for paired body parts; saying the chest makes it not apply.
    sc.BodyPartExamined = "CHEST"
    identity.apply_to(sc)
    if identity.source is not None:
        # A derived image names what it was derived from (General Image module): references
        # only, no attribute of the source.
        ref = Dataset()
        ref.ReferencedSOPClassUID = identity.source.sop_class_uid
        ref.ReferencedSOPInstanceUID = identity.source.sop_instance_uid
        sc.SourceImageSequence = [ref]
    sc.DerivationDescription = "lesionloc: report sentences grounded as heatmaps and boxes"
    return sc
