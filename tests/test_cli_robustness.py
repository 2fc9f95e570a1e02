"""`lesionloc-run` against hostile or unlucky input: study ids that would leave OUT, manifests
that are not what they should be, output locations that cannot be written, reruns over
earlier results, options that do not apply. Each failure is one line on stderr and an exit
code, never a traceback, and nothing is written where it should not be."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lesionloc_runtime import batch, outputs
from lesionloc_runtime.batch_discovery import discover
from lesionloc_runtime.cli import main
from lesionloc_runtime.outputs import MAX_STUDY_ID_BYTES, derived_study_id, study_id_problem

THREE_FINDINGS = ("FINDINGS: Right lower lobe consolidation. Left upper lobe nodule. "
                  "Right pleural effusion.")


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture()
def study(tmp_path, phantom_study) -> tuple[Path, Path]:
    """A copy of one phantom study (image + report) in its own folder."""
    image, report, _ = phantom_study
    folder = tmp_path / "in"
    folder.mkdir()
    return Path(shutil.copy(image, folder)), Path(shutil.copy(report, folder))


def make_source(tmp_path: Path, phantom_set: Path, n: int = 3) -> Path:
    source = tmp_path / "studies"
    source.mkdir()
    for line in phantom_set.read_text().splitlines()[:n]:
        row = json.loads(line)
        shutil.copy(phantom_set.parent / row["image"], source)
        shutil.copy(phantom_set.parent / row["report"], source)
    return source


# 1. study ids

@pytest.mark.parametrize("study_id", ["../escape", "/abs/path", ".", "..", "", "a/b", "a\\b",
                                      "a\nb", "x\x00y", "é" * 65])
def test_study_id_that_is_not_one_plain_folder_is_a_usage_error(tmp_path, study, study_id):
    image, report = study
    code, _, stderr = run(image, "--report", report, "--out", tmp_path / "out",
                          "--study-id", study_id)
    assert code == 2 and "--study-id" in one_error_line(stderr)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("value", ['"../../pwned"', '"a/b"', "null", '""', '"."', "[1]"])
def test_manifest_study_id_that_is_not_one_plain_folder_names_the_line(tmp_path, study, value):
    image, _ = study
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"image": "in/{image.name}"}}\n'
                        f'{{"image": "in/{image.name}", "study_id": {value}}}\n')
    code, _, stderr = run(manifest, "--out", tmp_path / "out")
    assert code == 7 and f"{manifest}:2: study_id" in one_error_line(stderr)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "pwned").exists()


def test_study_id_rules():
    assert study_id_problem("CXR-0001_a.b") is None and study_id_problem(42) is not None
    assert study_id_problem("x" * MAX_STUDY_ID_BYTES) is None
    assert study_id_problem("x" * (MAX_STUDY_ID_BYTES + 1)) is not None
    for name in ["..", ".", "", "a/b", "a\tb", "\udcff", "x" * 300]:
        derived = derived_study_id(name)
        assert study_id_problem(derived) is None, (name, derived)


def test_long_derived_ids_are_short_unique_and_readable(tmp_path, phantom_study):
    image, _, _ = phantom_study
    study_uid = "1.2.826.0.1.3680043.8.498." + "1" * 60
    series = tmp_path / "pacs" / study_uid / (study_uid + ".2")
    series.mkdir(parents=True)
    for sop in ("3.1", "3.2"):
        shutil.copy(image, series / f"{study_uid}.{sop}.dcm")
    ids = [t.study_id for t in discover(tmp_path / "pacs", None)]
    assert len(set(ids)) == 2
    for study_id in ids:
        assert study_id_problem(study_id) is None and study_id.startswith(study_uid[:40])
    assert ids == [t.study_id for t in discover(tmp_path / "pacs", None)]  # stable across runs


def test_pacs_layout_with_long_names_runs(tmp_path, tiny_bundle, phantom_study):
    image, report, _ = phantom_study
    study_uid = "1.2.826.0.1.3680043.8.498." + "7" * 60
    series = tmp_path / "pacs" / study_uid / (study_uid + ".2")
    series.mkdir(parents=True)
    shutil.copy(image, series / f"{study_uid}.3.dcm")
    shutil.copy(report, series / f"{study_uid}.3.txt")
    code, stdout, stderr = run(tmp_path / "pacs", "--model", tiny_bundle, "--out", tmp_path / "out",
                               "-q", "--dicom-out")
    assert code == 0, stderr
    assert "1 studies done" in stdout and len(list((tmp_path / "out").glob("*/study.json"))) == 1


def test_manifest_image_name_over_the_system_limit_fails_alone(tmp_path, tiny_bundle, study):
    """Looking up `<stem>.txt` beside such an image raised ENAMETOOLONG out of the scan, a
    traceback before any study ran (found by fuzzing manifests)."""
    image, report = study
    rows = [{"image": f"in/{image.name}", "report": f"in/{report.name}"},
            {"image": "in/" + "x" * 300 + ".dcm"}]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, stdout, stderr = run(manifest, "--model", tiny_bundle, "--out", tmp_path / "out", "-q")
    assert code == 1 and "1 studies done, 0 already done, 1 failed" in stdout, stderr
    # the image is read before the report is looked for (a DICOM object that is no image is
    # skipped rather than failed for its lack of a report): the image's own error
    assert "cannot be opened (File name too long)" in stderr and "Traceback" not in stderr


def test_include_identifiers_copies_them_and_survives_a_damaged_one(tmp_path, tiny_bundle,
                                                                   study):
    image, report = study
    data = image.read_bytes()
    name_tag = b"\x10\x00\x10\x00PN"  # PatientName, explicit VR
    assert data.count(name_tag) == 1
    out = tmp_path / "out"
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle, "--out", out, "-q",
                          "--include-identifiers")
    assert code == 0, stderr
    identifiers = json.loads((out / image.stem / "study.json").read_text())["identifiers"]
    assert identifiers["PatientName"].startswith("Phantom^") and identifiers["PatientID"]
    image.write_bytes(data.replace(name_tag, name_tag[:4] + b"JS"))  # pydicom cannot read it
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle, "--out", out, "-q",
                          "--include-identifiers")
    assert code == 0, stderr
    damaged = json.loads((out / image.stem / "study.json").read_text())["identifiers"]
    assert damaged == {**identifiers, "PatientName": ""}


# 2. duplicate ids

def test_duplicate_study_ids_in_a_manifest_name_both_lines(tmp_path, study):
    image, report = study
    row = {"image": f"in/{image.name}", "report": f"in/{report.name}", "study_id": "same"}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f"{json.dumps(row)}\n\n{json.dumps(row)}\n")
    code, _, stderr = run(manifest, "--out", tmp_path / "out")
    line = one_error_line(stderr)
    assert code == 7 and f"{manifest}:3:" in line and "line 1" in line


def test_rows_without_study_id_whose_images_share_a_stem_are_refused(tmp_path, study):
    image, _ = study
    (tmp_path / "other").mkdir()
    shutil.copy(image, tmp_path / "other")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"image": "in/{image.name}"}}\n{{"image": "other/{image.name}"}}\n')
    code, _, stderr = run(manifest, "--out", tmp_path / "out")
    assert code == 7 and "also on line 1" in one_error_line(stderr)


# 3. reruns leave no stale files

def test_rerun_removes_our_stale_files_and_keeps_everything_else(tmp_path, tiny_bundle, study):
    image, report = study
    report.write_text(THREE_FINDINGS)
    out = tmp_path / "out"
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle, "--out", out,
                          "--save-raw", "--dicom-out", "--overlays", "-q")
    assert code == 0, stderr
    folder = out / image.stem
    assert (folder / "sentence_03.npy").is_file() and list(folder.glob("*_sc.dcm"))
    assert (folder / "summary.png").is_file() and (folder / "sentence_03_layer.png").is_file()
    (folder / "notes.txt").write_text("mine")
    (folder / "sentence_03.png.bak").write_text("mine too")
    (folder / ".sentence_07.png.k3j9x_2a.tmp").write_bytes(b"\x89PNG")  # a killed run's
    (folder / ".study.json.abcd1234.tmp").write_text("{")
    (folder / ".notes.txt.abcd1234.tmp").write_text("not ours")
    report.write_text("FINDINGS: Right lower lobe consolidation.")
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle, "--out", out, "-q")
    assert code == 0, stderr
    doc = json.loads((folder / "study.json").read_text())
    listed = set(outputs.listed_files(doc))
    assert {p.name for p in folder.iterdir()} == listed | {"notes.txt", "sentence_03.png.bak",
                                                             ".notes.txt.abcd1234.tmp"}
    assert listed == {"study.json", "study.html", "radiograph.png", "sentence_01_layer.png"}


def test_study_is_not_done_while_a_rerun_writes_it(tmp_path, tiny_bundle, study, monkeypatch):
    image, report = study
    out = tmp_path / "out"
    assert run(image, "--report", report, "--model", tiny_bundle, "--out", out, "-q")[0] == 0
    assert outputs.is_done(out, image.stem)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "atomic_write_bytes", full)
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle, "--out", out, "-q")
    assert code == 10 and "No space left on device" in one_error_line(stderr)
    assert not outputs.is_done(out, image.stem)


# 4. output locations that cannot be written

def test_out_that_is_a_file_is_a_usage_error(tmp_path, study):
    image, report = study
    code, _, stderr = run(image, "--report", report, "--out", report)
    assert code == 2 and "not a directory" in one_error_line(stderr)


def test_out_that_cannot_be_written_is_one_line(tmp_path, study, monkeypatch):
    image, report = study

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(outputs.tempfile, "TemporaryFile", read_only)
    code, _, stderr = run(image, "--report", report, "--out", tmp_path / "out")
    assert code == 10 and "cannot write" in one_error_line(stderr) and "Read-only" in stderr


def test_study_folder_blocked_by_a_file_or_a_long_name_is_one_line(tmp_path, tiny_bundle, study):
    image, report = study
    out = tmp_path / "out"
    out.mkdir()
    (out / image.stem).write_text("in the way")
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle, "--out", out, "-q")
    assert code == 10 and "in the way" in one_error_line(stderr)
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle,
                          "--out", tmp_path / ("o" * 300), "-q")
    assert code == 10 and "File name too long" in one_error_line(stderr)


def test_batch_study_that_cannot_be_written_fails_alone(tmp_path, tiny_bundle, phantom_set):
    source = make_source(tmp_path, phantom_set)
    out = tmp_path / "out"
    out.mkdir()
    blocked = sorted(source.glob("*.dcm"))[0].stem
    (out / blocked).write_text("in the way")
    code, stdout, stderr = run(source, "--model", tiny_bundle, "--out", out, "-q")
    assert code == 1 and "2 studies done, 0 already done, 1 failed" in stdout
    assert "in the way" in stderr and "internal error" not in stderr
    assert "Traceback" not in stdout + stderr


class PanicException(BaseException):
    """Stands in for pyo3's PanicException: a Rust extension's panic, not an Exception."""


def test_batch_study_whose_decoder_panics_fails_alone(tmp_path, tiny_bundle, phantom_set,
                                                     monkeypatch):
    from lesionloc_runtime import localizer  # Localizer.read_image reads through this name

    source = make_source(tmp_path, phantom_set)
    doomed = sorted(source.glob("*.dcm"))[1].stem
    real = localizer.read_image

    def read(path, **options):
        if Path(path).stem == doomed:
            raise PanicException("index out of bounds: the len is 32 but the index is 32")
        return real(path, **options)

    monkeypatch.setattr(localizer, "read_image", read)
    code, stdout, stderr = run(source, "--model", tiny_bundle, "--out", tmp_path / "out", "-q")
    assert code == 1 and "2 studies done, 0 already done, 1 failed" in stdout
    assert "internal error (PanicException: index out of bounds" in stderr


def test_full_disk_stops_the_batch_with_one_error(tmp_path, tiny_bundle, phantom_set, monkeypatch):
    source = make_source(tmp_path, phantom_set)
    calls = []

    def full(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "atomic_write_bytes", full)
    monkeypatch.setattr(batch, "atomic_write_json", full)  # the summary cannot be written either
    code, _, stderr = run(source, "--model", tiny_bundle, "--out", tmp_path / "out", "-q")
    line = one_error_line(stderr)
    assert code == 10 and "No space left on device" in line and "stopped the batch" in line
    assert "3 of 3 studies not done" in line and calls  # stopped at the first study


# 5. manifest encoding

@pytest.mark.parametrize("bad", ['{"image": ' + "9" * 5000 + "}", "[" * 100_000])
def test_manifest_row_python_cannot_hold_is_a_malformed_row(tmp_path, study, bad):
    """json.loads raises ValueError (over 4,300 digits) or RecursionError, not
    JSONDecodeError: it escaped as a traceback (found by fuzzing the evaluation readers)."""
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(bad + "\n")
    code, _, stderr = run(manifest, "--out", tmp_path / "out")
    assert code == 7 and "manifest.jsonl:1: malformed row" in one_error_line(stderr)


@pytest.mark.parametrize("row", ['{"image": "a\\u0000.png"}',
                                 '{"image": "a.png", "report": "r\\u0000.txt"}'])
def test_manifest_path_with_a_nul_is_a_malformed_row(tmp_path, study, row):
    """It failed its study as an 'internal error' with a traceback (found by fuzzing)."""
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(row + "\n")
    code, _, stderr = run(manifest, "--out", tmp_path / "out")
    assert code == 7 and "manifest.jsonl:1: malformed row" in one_error_line(stderr)


def test_manifest_that_is_not_utf8_is_a_manifest_error(tmp_path, study):
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes('{"image": "in/x.dcm"}\n'.encode("utf-16"))
    code, _, stderr = run(manifest, "--out", tmp_path / "out")
    assert code == 7 and f"{manifest}:1: not UTF-8" in one_error_line(stderr)


def test_manifest_with_a_utf8_bom_reads(tmp_path, tiny_bundle, study):
    image, report = study
    manifest = tmp_path / "m.jsonl"
    row = {"image": f"in/{image.name}", "report": f"in/{report.name}", "study_id": "bom"}
    manifest.write_bytes(b"\xef\xbb\xbf" + json.dumps(row).encode() + b"\n")
    code, stdout, stderr = run(manifest, "--model", tiny_bundle, "--out", tmp_path / "out", "-q")
    assert code == 0, stderr
    assert (tmp_path / "out" / "bom" / "study.json").is_file()


# 6. what counts as done

def test_rerun_redoes_studies_whose_outputs_are_incomplete(tmp_path, tiny_bundle, phantom_set):
    source = make_source(tmp_path, phantom_set)
    out = tmp_path / "out"
    cmd = (source, "--model", tiny_bundle, "--out", out, "-q")
    assert run(*cmd)[0] == 0
    first, second, third = sorted(p.name for p in out.iterdir() if p.is_dir())
    (out / first / "radiograph.png").unlink()
    (out / second / "study.json").write_text('{"truncated')
    (out / third / "study.html").write_bytes(b"")  # what a power cut can leave unsynced
    code, stdout, stderr = run(*cmd)
    assert code == 0, stderr
    assert "3 studies done, 0 already done, 0 failed" in stdout
    assert all(outputs.is_done(out, s) for s in (first, second, third))


# 7, 8. options that do not apply or cannot work

@pytest.mark.parametrize("args,complaint", [
    (["--report", "{report}"], "--report is for a single image"),
    (["--study-id", "x"], "--study-id is for a single image"),
    (["--json"], "--json is for a single image"),
    (["--reports", "{tmp}/nope"], "does not exist"),
    (["--reports", "{report}"], "is not a directory"),
    (["--workers", "0"], "--workers 0"),
    (["--threads", "-1"], "--threads -1"),
    (["--threads", "100000"], "--threads 100000"),
])
def test_batch_options_that_cannot_apply_are_usage_errors(tmp_path, study, args, complaint):
    _, report = study
    args = [a.format(report=report, tmp=tmp_path) for a in args]
    code, _, stderr = run(report.parent, *args, "--out", tmp_path / "out")
    assert code == 2 and complaint in one_error_line(stderr)


@pytest.mark.parametrize("args", [["--shard", "0/2"], ["--reports", "."], ["--workers", "2"],
                                  ["--threads", "0"], ["--threads", "257"]])
def test_single_study_options_that_cannot_apply_are_usage_errors(tmp_path, study, args):
    image, report = study
    code, _, stderr = run(image, "--report", report, *args, "--out", tmp_path / "out")
    assert code == 2 and args[0] in one_error_line(stderr)


def test_reports_given_to_a_manifest_are_a_usage_error(tmp_path, study):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"image": "in/x.dcm"}\n')
    code, _, stderr = run(manifest, "--reports", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and "--reports" in one_error_line(stderr)


def test_empty_input_folder_is_a_data_error(tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, stderr = run(tmp_path / "empty", "--out", tmp_path / "out")
    assert code == 7 and "no image files" in one_error_line(stderr)


# 8, 9, 11. missing reports: where they were looked for, on stderr

def test_missing_report_says_where_it_looked_on_stderr(tmp_path, tiny_bundle, study):
    image, report = study
    report.unlink()
    code, stdout, stderr = run(image.parent, "--model", tiny_bundle, "--out", tmp_path / "out", "-q")
    assert code == 1 and "0 studies done, 0 already done, 1 failed" in stdout
    assert "error:" not in stdout and "failed:" not in stdout
    assert f"expected {image.with_suffix('.txt').absolute()}" in stderr
    assert "failed: " in stderr


def test_manifest_row_without_report_uses_the_one_beside_the_image(tmp_path, tiny_bundle, study):
    image, report = study
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"image": "in/{image.name}", "study_id": "found"}}\n'
                        f'{{"image": "in/{image.name}", "study_id": "lost", "report": "in/x.txt"}}\n')
    code, _, stderr = run(manifest, "--model", tiny_bundle, "--out", tmp_path / "out", "-q")
    assert code == 1 and (tmp_path / "out" / "found" / "study.json").is_file()
    assert "lost" in stderr and "x.txt" in stderr
    shutil.move(report, tmp_path / "elsewhere.txt")
    code, _, stderr = run(manifest, "--model", tiny_bundle, "--out", tmp_path / "out2", "-q")
    assert f"expected {image.with_suffix('.txt').absolute()}" in stderr


# 10. the output directory inside the input folder

def test_output_inside_the_input_folder_is_not_taken_for_studies(tmp_path, tiny_bundle, phantom_set):
    source = make_source(tmp_path, phantom_set, n=2)
    hidden = source / ".snapshot"
    hidden.mkdir()
    shutil.copy(next(source.glob("*.dcm")), hidden)
    cmd = (source, "--model", tiny_bundle, "--out", source / "lesionloc-out", "-q")
    code, stdout, stderr = run(*cmd)
    assert code == 0 and "2 studies done, 0 already done, 0 failed" in stdout, stderr
    code, stdout, stderr = run(*cmd)
    assert code == 0 and "0 studies done, 2 already done, 0 failed" in stdout, stderr


def test_a_cd_export_skips_its_index_and_the_objects_that_are_no_image(tmp_path, tiny_bundle,
                                                                      phantom_study):
    """A DICOM media export (PS3.10): files without extensions, a DICOMDIR index, and beside
    the films objects that hold no image (a structured report, a presentation state). Those
    (the index too: a DICOM object without pixels) are skipped and said, not failed: the
    batch exits 0."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    image, report, _ = phantom_study
    series = tmp_path / "cd" / "DICOM" / "ST000001"
    series.mkdir(parents=True)
    shutil.copy(get_testdata_file("DICOMDIR"), tmp_path / "cd" / "DICOMDIR")
    shutil.copy(image, series / "IM000001")
    shutil.copy(report, series / "IM000001.txt")
    shutil.copy(get_testdata_file("reportsi.dcm"), series / "SR000001")  # no report of its own
    state = pydicom.Dataset()
    state.file_meta = FileMetaDataset()
    state.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"  # GSPS
    state.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    state.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    state.SOPClassUID = state.file_meta.MediaStorageSOPClassUID
    state.SOPInstanceUID = state.file_meta.MediaStorageSOPInstanceUID
    state.Modality = "PR"
    state.save_as(series / "PR000001", enforce_file_format=True)
    out = tmp_path / "out"
    code, stdout, stderr = run(tmp_path / "cd", "--model", tiny_bundle, "--out", out, "-q")
    assert code == 0, stderr
    assert "1 studies done, 0 already done, 0 failed, 3 skipped (no image)" in stdout
    assert "skipped: DICOMDIR: " in stderr and "no pixel data; it is not an image" in stderr
    assert "skipped: DICOM__ST000001__SR000001: " in stderr and "Structured Report" in stderr
    assert "skipped: DICOM__ST000001__PR000001: " in stderr and "Presentation State" in stderr
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["failed"] == [] and len(summary["skipped"]) == 3
    assert [p.parent.name for p in out.glob("*/study.json")] == ["DICOM__ST000001__IM000001"]
    # one such object given alone is still an error (exit 3), not silence
    code, _, stderr = run(series / "SR000001", "--query", "effusion", "--model", tiny_bundle,
                          "--out", tmp_path / "one")
    assert code == 3 and "Structured Report, not an image" in one_error_line(stderr)


def test_a_batch_leaves_out_what_an_earlier_run_wrote_inside_its_input(tmp_path, tiny_bundle,
                                                                       phantom_study, caplog):
    """`lesionloc-run data --out data/results`, then `lesionloc-run data --out results2`: the
    second took the first one's radiograph, layers, overlays and DICOM outputs for studies
    (8 failures for one real film with two findings, `--overlays --dicom-out`)."""
    image, report, _ = phantom_study
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(image, data / "a.dcm")
    shutil.copy(report, data / "a.txt")
    code, _, stderr = run(data, "--model", tiny_bundle, "--out", data / "results", "-q",
                          "--overlays", "--dicom-out")
    assert code == 0, stderr
    single = data / "single"  # and what a single study's run wrote (no batch summary)
    code, _, stderr = run(image, "--report", report, "--model", tiny_bundle, "--out", single, "-q")
    assert code == 0, stderr
    code, stdout, stderr = run(data, "--model", tiny_bundle, "--out", tmp_path / "results2", "-q")
    assert code == 0, stderr
    assert "1 studies done, 0 already done, 0 failed" in stdout
    # a warning: the CLI prints it as "warning: ..." (here pytest's handler has the record)
    assert f"left out what earlier lesionloc-run wrote: {data / 'results'}, " \
           f"{single / image.stem}" in caplog.text


def test_what_marks_an_earlier_output(tmp_path):
    from lesionloc_runtime.outputs import earlier_output

    for marks in (["batch_summary.json"], ["batch_summary.shard-2-of-8.json"],
                  [".batch_summary.json.lock"]):
        assert earlier_output(tmp_path, ["index.html", "x", *marks]), marks
    assert not earlier_output(tmp_path, ["index.html", "a.dcm", "summary.json"])
    (tmp_path / "study.json").write_text(json.dumps({"schema": "someone-else's"}))
    assert not earlier_output(tmp_path, ["study.json", "a.dcm"])  # not ours: a study's images
    (tmp_path / "study.json").write_text(json.dumps({"schema": "lesionloc-study"}))
    assert earlier_output(tmp_path, ["study.json", "radiograph.png"])
    assert not earlier_output(tmp_path, ["radiograph.png"])  # study.json not among the names


def test_a_batch_follows_links_to_folders_and_scans_each_folder_once(tmp_path, phantom_study,
                                                                     caplog):
    """A day's PACS export linked into the input folder was not scanned at all ("no image
    files found" when it held every film). Links to one folder, into the tree or back up it
    give no second study id and no loop."""
    image, report, _ = phantom_study
    export = tmp_path / "pacs" / "2026-12-06"
    export.mkdir(parents=True)
    for name in ("a", "b"):
        shutil.copy(image, export / f"{name}.dcm")
        shutil.copy(report, export / f"{name}.txt")
    data = tmp_path / "data"
    (data / "local").mkdir(parents=True)
    shutil.copy(image, data / "local" / "c.dcm")
    (data / "today").symlink_to(export)
    (data / "zz-today-again").symlink_to(export)  # a second link: the first by name wins
    (data / "also-local").symlink_to(data / "local")  # inside the input: scanned where it is
    (export / "up").symlink_to(data)  # back up the tree: no loop
    tasks = discover(data, None)
    assert [t.study_id for t in tasks] == ["local__c", "today__a", "today__b"]
    assert tasks[1].report == data / "today" / "a.txt"
    assert (f"left out links to folders scanned elsewhere in the input: {data / 'also-local'}, "
            f"{data / 'zz-today-again'}, {data / 'today' / 'up'}") in caplog.text
    assert discover(data / "today", None)[0].study_id == "a"  # SOURCE itself a link


def test_more_workers_than_usable_cpus_is_said(tmp_path, tiny_bundle, phantom_study, caplog,
                                               monkeypatch):
    """A container limited to 2 CPUs reports the host's cores to os.cpu_count() and nproc, so
    `--workers $(nproc)` there starts one worker per host core: a warning says so."""
    from lesionloc_runtime import cpuinfo

    image, report, _ = phantom_study
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(image, data / "a.dcm")
    shutil.copy(report, data / "a.txt")
    monkeypatch.setattr(cpuinfo, "usable_cpus", lambda: 2)
    for workers, warned in ((2, False), (3, True)):
        caplog.clear()
        code, _, stderr = run(data, "--model", tiny_bundle, "--out", tmp_path / f"out{workers}",
                              "-q", "--workers", workers)
        assert code == 0, stderr
        assert ("--workers 3: this process can use 2 CPUs" in caplog.text) is warned


def test_a_lost_worker_stops_the_batch_with_its_summary_written(tmp_path, tiny_bundle,
                                                                phantom_study, monkeypatch):
    """What the CLI makes of WorkerLost (the dispatch raising it after the first study): one
    error line, exit 11, and a summary that counts the study done and says why it stopped."""
    import itertools

    from lesionloc_runtime.errors import WorkerLost
    from lesionloc_runtime.processes import LOST

    image, report, _ = phantom_study
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        shutil.copy(image, data / f"{name}.dcm")
        shutil.copy(report, data / f"{name}.txt")
    real = batch._dispatch

    def dispatch(todo, settings, workers, localizer=None):
        yield from itertools.islice(real(todo[:1], settings, 1, localizer), 1)
        raise WorkerLost(LOST.format(note=""))

    monkeypatch.setattr(batch, "_dispatch", dispatch)
    out = tmp_path / "out"
    code, _, stderr = run(data, "--model", tiny_bundle, "--out", out, "-q")
    assert code == 11 and one_error_line(stderr).startswith("error: a worker process died")
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["done"] == 1 and summary["stopped"].startswith("a worker process died")
    assert summary["stopped"].endswith("; stopped the batch, 1 of 2 studies not done")
