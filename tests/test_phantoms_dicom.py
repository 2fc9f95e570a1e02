"""Phantom DICOM files: every storage variant decodes like the PNG, and passes dciodvfy."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lesionloc_runtime.imageio import read_image
from lesionloc_train.phantoms import generate_dataset, load_manifest, render_study
from lesionloc_train.phantoms.dicomio import (
    DicomVariant,
    available_compressions,
    dicom_bytes,
    png16_bytes,
    quantize,
    sample_variant,
)

COMPRESSIONS = ("none", "rle", "jpeg-ls", "jpeg2000")
VARIANTS = list(itertools.product(("MONOCHROME2", "MONOCHROME1"), ("full", "window", "lut"),
                                  COMPRESSIONS))


def dciodvfy() -> str | None:
    found = shutil.which("dciodvfy")
    beside = Path(sys.executable).parent / "dciodvfy"
    return found or (str(beside) if beside.exists() else None)


def dciodvfy_errors(path: Path) -> list[str]:
    tool = dciodvfy()
    if tool is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if "Error" in line]


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    study = render_study(np.random.default_rng(2), 200, 168)
    return quantize(study.image)


@pytest.fixture(scope="module")
def png_pixels(values, tmp_path_factory) -> np.ndarray:
    path = tmp_path_factory.mktemp("png") / "a.png"
    path.write_bytes(png16_bytes(values))
    return read_image(path).pixels


def write_variant(values: np.ndarray, variant: DicomVariant, path: Path) -> Path:
    path.write_bytes(dicom_bytes(values, variant, "p000001", 1, "test", 0.7, "F"))
    return path


def offset_for(voi: str, photometric: str, values: np.ndarray) -> int:
    if voi == "full":
        return 0
    lo, hi = int(values.min()), int(values.max())
    if photometric == "MONOCHROME1":
        lo, hi = 4095 - hi, 4095 - lo
    return -lo if voi == "window" else 4095 - hi  # the extreme shifts the 12 bits allow


@pytest.mark.parametrize("photometric,voi,compression", VARIANTS)
def test_every_dicom_variant_decodes_to_the_png_pixels(values, png_pixels, tmp_path,
                                                       photometric, voi, compression):
    if compression != "none" and compression not in available_compressions():
        pytest.skip(f"no {compression} encoder installed")
    variant = DicomVariant(photometric, voi, offset_for(voi, photometric, values), compression)
    path = write_variant(values, variant, tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == photometric
    assert ds.BitsAllocated == 16 and ds.BitsStored == 12
    assert ds.file_meta.TransferSyntaxUID == variant.transfer_syntax
    pixels = read_image(path).pixels
    assert pixels.shape == png_pixels.shape
    assert float(np.abs(pixels - png_pixels).max()) < 1e-4
    assert np.abs(png_pixels - values / 4095.0).max() < 1e-4


@pytest.mark.parametrize("photometric,voi,compression", VARIANTS)
def test_every_dicom_variant_passes_dciodvfy(values, tmp_path, photometric, voi, compression):
    if compression != "none" and compression not in available_compressions():
        pytest.skip(f"no {compression} encoder installed")
    variant = DicomVariant(photometric, voi, offset_for(voi, photometric, values), compression)
    path = write_variant(values, variant, tmp_path / "a.dcm")
    assert dciodvfy_errors(path) == []


def test_dicom_header_is_a_synthetic_dx_for_presentation(values, tmp_path):
    path = write_variant(values, DicomVariant("MONOCHROME2", "full", 0, "none"), tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.DigitalXRayImageStorageForPresentation
    assert ds.Modality == "DX" and ds.PresentationIntentType == "FOR PRESENTATION"
    assert [float(v) for v in ds.PixelSpacing] == [0.7, 0.7]
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.7, 0.7]
    assert ds.PatientID == "p000001" and str(ds.PatientName) == "Phantom^p000001"
    assert ds.PatientOrientation == ["L", "F"]
    assert read_image(path).pixel_spacing_mm == (0.7, 0.7)


def test_variant_mix_is_about_a_quarter_monochrome1_with_all_compressions():
    rng = np.random.default_rng(0)
    variants = [sample_variant(rng, (100, 3900)) for _ in range(800)]
    share = np.mean([v.photometric == "MONOCHROME1" for v in variants])
    assert 0.2 < share < 0.3
    assert {v.voi for v in variants} == {"full", "window", "lut"}
    assert {v.compression for v in variants} == {"none", *available_compressions()}


def test_every_phantom_dicom_of_a_data_set_passes_dciodvfy_and_matches_its_png(tmp_path):
    generate_dataset(tmp_path, 16, seed=21, width=192, height=160, workers=1)
    for rec in load_manifest(tmp_path):
        dcm = tmp_path / rec["image"]
        assert dciodvfy_errors(dcm) == [], rec["study_id"]
        a = read_image(dcm).pixels
        b = read_image(tmp_path / rec["image_png"]).pixels
        assert float(np.abs(a - b).max()) < 1e-4, rec["study_id"]
