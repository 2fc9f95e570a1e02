"""scripts/fetch_test_data.py without a network (file:// URLs and fake openers): downloads are
kept only with the right sha256, a broken download leaves nothing, derived files decode to the
original's pixels; and the tests' lookup of public files (conftest.require_real_file)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset

import conftest
from lesionloc_runtime.imageio import read_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch_test_data.py"
spec = importlib.util.spec_from_file_location("fetch_test_data", SCRIPT)
fetch = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = fetch  # dataclasses look their module up by name
spec.loader.exec_module(fetch)


def acr_nema_original(path: Path) -> Path:
    """A small file shaped like the real original: implicit VR, no preamble, no file meta,
    MONOCHROME1, 10 bits stored in 16."""
    rng = np.random.default_rng(3)
    ds = Dataset()
    ds.SOPClassUID = uid.ComputedRadiographyImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.Modality = "CR"
    ds.Rows, ds.Columns = 40, 36
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 10, 9, 0
    ds.PixelData = rng.integers(0, 1024, (40, 36), dtype=np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[:2] == b"\x08\x00"  # no preamble: a group 0008 tag first
    return path


@pytest.fixture()
def source(tmp_path, monkeypatch):
    """One download (the generated original, as a file:// URL) and the three derivations."""
    served = tmp_path / "served"
    served.mkdir()
    original = acr_nema_original(served / "original.dcm")
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    item = fetch.Download(fetch.ORIGINAL, original.as_uri(), digest, "test original", "here")
    monkeypatch.setattr(fetch, "DOWNLOADS", (item,))
    return item


def test_download_with_the_right_sha256_is_kept(tmp_path, source):
    dest = tmp_path / "data" / source.name
    dest.parent.mkdir()
    fetch.download(source, dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == source.sha256
    assert [p.name for p in dest.parent.iterdir()] == [source.name]


def test_download_with_another_sha256_is_refused_and_not_kept(tmp_path, source):
    wrong = fetch.Download(source.name, source.url, "0" * 64, "", "")
    (tmp_path / "data").mkdir()
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.download(wrong, tmp_path / "data" / source.name)
    assert list((tmp_path / "data").iterdir()) == []


class _Broken(io.BytesIO):
    def read(self, size: int = -1) -> bytes:
        if self.tell() > 0:
            raise ConnectionResetError("connection reset by peer")
        return super().read(16)


def test_interrupted_download_never_replaces_a_file_or_leaves_a_part(tmp_path, source):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / source.name
    target.write_bytes(b"what was there")
    with pytest.raises(fetch.FetchError, match="connection reset"):
        fetch.download(source, target, opener=lambda url: _Broken(b"x" * 100))
    assert target.read_bytes() == b"what was there"
    assert [p.name for p in target.parent.iterdir()] == [source.name]


@pytest.mark.parametrize("derived", fetch.DERIVED, ids=lambda d: d.syntax)
def test_derived_file_has_its_syntax_and_the_original_pixels(tmp_path, source, derived):
    original = tmp_path / "original.dcm"
    fetch.download(source, original)
    made = fetch.derive(derived, original, tmp_path / derived.name)
    ds = pydicom.dcmread(made)
    assert ds.file_meta.TransferSyntaxUID == getattr(uid, derived.syntax)
    np.testing.assert_array_equal(read_image(made).pixels, read_image(original).pixels)


def test_derivation_that_changes_a_pixel_is_refused_and_not_kept(tmp_path, source):
    original = tmp_path / "original.dcm"
    fetch.download(source, original)
    rle = next(d for d in fetch.DERIVED if d.syntax == "RLELossless")

    def off_by_one(path: Path, syntax: str) -> bytes:
        ds = pydicom.dcmread(io.BytesIO(fetch.encode(path, "ExplicitVRLittleEndian")))
        pixels = ds.pixel_array.copy()
        pixels[5, 5] ^= 1
        ds.PixelData = pixels.tobytes()
        ds.compress(uid.RLELossless, generate_instance_uid=False)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        return buffer.getvalue()

    with pytest.raises(fetch.FetchError, match="pixels differ"):
        fetch.derive(rle, original, tmp_path / rle.name, encoder=off_by_one)
    assert not (tmp_path / rle.name).exists()


def test_command_fills_the_folder_keeps_good_files_and_prints_the_export_line(
        tmp_path, source, capsys):
    dest = tmp_path / "cache"
    assert fetch.main(["--dest", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [source.name, *(d.name for d in fetch.DERIVED)])
    assert capsys.readouterr().out.strip().endswith(f"export LESIONLOC_TEST_DATA={dest}")
    assert fetch.main(["--dest", str(dest)], opener=lambda url: pytest.fail("downloaded")) == 0
    assert capsys.readouterr().out.count("already there") == 1 + len(fetch.DERIVED)


def test_command_failure_is_one_error_line(tmp_path, source, capsys):
    assert fetch.main(["--dest", str(tmp_path)], opener=lambda url: _Broken(b"x")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_help_names_every_file_its_source_and_licence(capsys):
    with pytest.raises(SystemExit):
        fetch.main(["--help"])
    text = capsys.readouterr().out
    for item in (*fetch.DOWNLOADS, *fetch.DERIVED):
        assert item.name in text
    for licence in ("MS-PL", "MIT", "research use"):
        assert licence in text


def test_lookup_prefers_the_environment_folder_then_the_shared_one(tmp_path, monkeypatch):
    env, shared = tmp_path / "env", tmp_path / "shared"
    for folder in (env, shared):
        folder.mkdir()
        (folder / "both.dcm").write_bytes(b"x")
    (shared / "only-shared.dcm").write_bytes(b"x")
    monkeypatch.setattr(conftest, "SHARED_TEST_DATA", shared)
    monkeypatch.setenv(conftest.TEST_DATA_ENV, str(env))
    assert conftest.real_data_file("both.dcm") == env / "both.dcm"
    assert conftest.real_data_file("only-shared.dcm") == shared / "only-shared.dcm"
    assert conftest.real_data_file("nowhere.dcm") is None


def test_missing_public_file_skips_saying_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "SHARED_TEST_DATA", tmp_path / "absent")
    monkeypatch.delenv(conftest.TEST_DATA_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        conftest.require_real_file("CR-MONO1-10-chest.dcm")
    reason = str(info.value)
    assert "LESIONLOC_TEST_DATA" in reason and "fetch_test_data.py" in reason
