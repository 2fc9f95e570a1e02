"""`lesionloc-train prepare-mimic` on a small tree in MIMIC-CXR-JPG's official layout: tables
mimic-cxr-2.0.0-{split,metadata}.csv(.gz), images files/pXX/pSUBJECT/sSTUDY/DICOM.jpg and the
MIMIC-CXR reports files/pXX/pSUBJECT/sSTUDY.txt (the report texts are invented here)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lesionloc_runtime.batch_manifest import read_manifest
from lesionloc_train.mimic import prepare_mimic

SPLIT_HEADER = ["dicom_id", "study_id", "subject_id", "split"]
# The column order of the real metadata table (subject_id before study_id); read by name.
METADATA_HEADER = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
]
VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "": ""}

REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ with cough and fever.

 COMPARISON:  None.

 FINDINGS:

 Patchy opacity in the right lower lobe.  No pleural effusion or pneumothorax.
 The cardiomediastinal silhouette is normal.

 IMPRESSION:

 Right lower lobe opacity, possibly pneumonia.
"""
BLANK_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PORTABLE AP)

 INDICATION:  ___

 FINDINGS:

 ___

 IMPRESSION:

 ___
"""


def dicom_id(n: int) -> str:
    """Official ids are five dash-separated groups of 8 hex digits; numbered so that sorted
    order is known."""
    return f"{n:08x}-2c8d5c3a-7b1f64e0-9d0e1a55-4f6b8e21"


# (split-table split, subject, study, [(dicom number, ViewPosition, jpg written)], report)
# report: text, "" for an empty file, None for no file.
STUDIES = [
    ("train", "10000032", "50000001", [(3, "PA", True), (1, "AP", True), (2, "LATERAL", True)], REPORT),
    ("train", "10000032", "50000002", [(4, "AP", True), (5, "LATERAL", True)], REPORT),
    ("validate", "10000045", "50000003", [(6, "LATERAL", True)], REPORT),  # no frontal view
    ("validate", "10000045", "50000004", [(7, "PA", True), (8, "", True)], REPORT),
    ("test", "11000011", "50000005", [(9, "PA", True)], None),  # report missing
    ("test", "11000011", "50000006", [(10, "PA", True)], ""),  # report empty
    ("train", "12000022", "50000007", [(11, "PA", True)], BLANK_REPORT),  # no sentence
    ("train", "12000022", "50000008", [(12, "PA", False), (13, "AP", True)], REPORT),  # PA jpg gone
    ("train", "12000022", "50000009", [(14, "PA", False)], REPORT),  # image missing
    ("test", "13000033", "50000010", [(15, "PA", True), (16, "LATERAL", True)], REPORT),
]
NOT_IN_SPLIT_TABLE = ("13000033", "50000010", 17)  # a metadata row the split table lacks
HEIGHT, WIDTH = 12, 10  # metadata Rows, Columns and the jpg's size


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def make_mimic(base: Path, gz: bool = True, reports: Path | None = None) -> Path:
    """A MIMIC-CXR-JPG tree at base/mimic-cxr-jpg; reports merged into it unless `reports`
    (then written to reports/files/...)."""
    root = base / "mimic-cxr-jpg"
    report_root = reports or root
    jpeg = np.linspace(0, 255, HEIGHT * WIDTH, dtype=np.uint8).reshape(HEIGHT, WIDTH)
    split_rows, meta_rows = [], []
    for split, subject, study, images, report in STUDIES:
        study_dir = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        study_dir.mkdir(parents=True, exist_ok=True)
        for n, view, present in images:
            if present:
                assert cv2.imwrite(str(study_dir / f"{dicom_id(n)}.jpg"), jpeg)
            split_rows.append([dicom_id(n), study, subject, split])
            meta_rows.append([
                dicom_id(n), subject, study, "CHEST (PA AND LAT)", view, str(HEIGHT), str(WIDTH),
                "21800506", "213014.531", "CHEST (PA AND LAT)", VIEW_MEANING[view], "Erect",
            ])
        if report is not None:
            report_path = report_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
            report_path.parent.mkdir(parents=True, exist_ok=True)
            report_path.write_text(report, encoding="utf-8")
    subject, study, n = NOT_IN_SPLIT_TABLE
    meta_rows.append([dicom_id(n), subject, study, "CHEST (PA AND LAT)", "PA", str(HEIGHT),
                      str(WIDTH), "21800506", "213014.531", "", "", ""])
    suffix = ".csv.gz" if gz else ".csv"
    write_table(root / f"mimic-cxr-2.0.0-split{suffix}", SPLIT_HEADER, split_rows)
    write_table(root / f"mimic-cxr-2.0.0-metadata{suffix}", METADATA_HEADER, meta_rows)
    return root


def run(*args: object):
    result = CliRunner().invoke(prepare_mimic, [str(a) for a in args])
    return result


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def image_rel(subject: str, study: str, n: int) -> str:
    return f"files/p{subject[:2]}/p{subject}/s{study}/{dicom_id(n)}.jpg"


def report_rel(subject: str, study: str) -> str:
    return f"files/p{subject[:2]}/p{subject}/s{study}.txt"


@pytest.fixture
def mimic(tmp_path: Path) -> Path:
    return make_mimic(tmp_path)


# ---------------------------------------------------------------------------------------------
# The manifest


@pytest.mark.parametrize("gz", [True, False], ids=["csv.gz", "csv"])
def test_one_frontal_image_per_study_pa_preferred(tmp_path: Path, gz: bool):
    root = make_mimic(tmp_path, gz=gz)
    out = root / "manifest.jsonl"
    result = run(root, "--out", out)
    assert result.exit_code == 0, result.output
    assert rows_of(out) == [
        {"study_id": "s50000001", "subject_id": "p10000032", "split": "train",
         "image": image_rel("10000032", "50000001", 3), "report": report_rel("10000032", "50000001"),
         "width": WIDTH, "height": HEIGHT, "view": "PA", "dicom_id": dicom_id(3)},
        {"study_id": "s50000002", "subject_id": "p10000032", "split": "train",
         "image": image_rel("10000032", "50000002", 4), "report": report_rel("10000032", "50000002"),
         "width": WIDTH, "height": HEIGHT, "view": "AP", "dicom_id": dicom_id(4)},
        {"study_id": "s50000004", "subject_id": "p10000045", "split": "val",
         "image": image_rel("10000045", "50000004", 7), "report": report_rel("10000045", "50000004"),
         "width": WIDTH, "height": HEIGHT, "view": "PA", "dicom_id": dicom_id(7)},
        {"study_id": "s50000008", "subject_id": "p12000022", "split": "train",
         "image": image_rel("12000022", "50000008", 13), "report": report_rel("12000022", "50000008"),
         "width": WIDTH, "height": HEIGHT, "view": "AP", "dicom_id": dicom_id(13)},
        {"study_id": "s50000010", "subject_id": "p13000033", "split": "test",
         "image": image_rel("13000033", "50000010", 15), "report": report_rel("13000033", "50000010"),
         "width": WIDTH, "height": HEIGHT, "view": "PA", "dicom_id": dicom_id(15)},
    ]
    for row in rows_of(out):
        assert (root / row["image"]).is_file() and (root / row["report"]).is_file()
        assert "sentences" not in row


def test_summary_counts_skips_per_reason_and_rows_per_split(mimic: Path):
    result = run(mimic, "--out", mimic / "m.jsonl")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "wrote 5 rows" in out and "(train 3, val 1, test 1)" in out
    assert "read 16 rows of mimic-cxr-2.0.0-split.csv.gz, 17 rows of mimic-cxr-2.0.0-metadata.csv.gz" in out
    skipped = out.split("skipped: ")[1]
    for expected in ("1 image missing", "1 image not in the split table", "1 report empty",
                     "1 report missing", "1 report without sentences",
                     "1 study without a PA/AP view"):
        assert expected in skipped


def test_read_manifest_reads_the_train_split_back(mimic: Path):
    out = mimic / "m.jsonl"
    assert run(mimic, "--out", out).exit_code == 0
    records, stats = read_manifest(out, split="train")
    assert [r.study_id for r in records] == ["s50000001", "s50000002", "s50000008"]
    assert all(r.image.is_file() and r.report.is_file() for r in records)
    assert (records[0].width, records[0].height) == (WIDTH, HEIGHT)
    assert stats.skipped == {}
    val, _ = read_manifest(out, split="val")
    assert [r.study_id for r in val] == ["s50000004"]


def test_paths_are_absolute_when_not_below_the_manifest(mimic: Path, tmp_path: Path):
    out = tmp_path / "elsewhere" / "m.jsonl"
    assert run(mimic, "--out", out).exit_code == 0
    row = rows_of(out)[0]
    assert Path(row["image"]).is_absolute() and Path(row["report"]).is_absolute()
    assert Path(row["image"]) == mimic / image_rel("10000032", "50000001", 3)
    records, _ = read_manifest(out, split="train")
    assert records[0].image.is_file()


def test_separate_reports_directory(tmp_path: Path):
    reports = tmp_path / "mimic-cxr-reports"
    root = make_mimic(tmp_path, reports=reports)
    out = tmp_path / "m.jsonl"
    result = run(root, "--reports", reports, "--out", out)
    assert result.exit_code == 0, result.output
    row = rows_of(out)[0]
    assert row["image"] == "mimic-cxr-jpg/" + image_rel("10000032", "50000001", 3)
    assert row["report"] == "mimic-cxr-reports/" + report_rel("10000032", "50000001")
    assert len(read_manifest(out, split="train")[0]) == 3


def test_reports_may_point_at_their_files_directory(tmp_path: Path):
    reports = tmp_path / "mimic-cxr-reports"
    root = make_mimic(tmp_path, reports=reports)
    result = run(root, "--reports", reports / "files", "--out", tmp_path / "m.jsonl")
    assert result.exit_code == 0, result.output
    assert "wrote 5 rows" in result.stdout


def test_splits_option_selects_and_maps_validate_to_val(mimic: Path):
    out = mimic / "m.jsonl"
    result = run(mimic, "--out", out, "--splits", "validate,test")
    assert result.exit_code == 0, result.output
    assert [(r["study_id"], r["split"]) for r in rows_of(out)] == [
        ("s50000004", "val"), ("s50000010", "test")]
    assert "(val 1, test 1)" in result.stdout
    again = run(mimic, "--out", out, "--splits", "val", "--overwrite")  # the manifest's name works too
    assert again.exit_code == 0, again.output
    assert [r["split"] for r in rows_of(out)] == ["val"]


def test_views_option_sets_which_views_and_their_preference(mimic: Path):
    out = mimic / "m.jsonl"
    assert run(mimic, "--out", out, "--views", "ap,pa").exit_code == 0
    first = rows_of(out)[0]
    assert (first["study_id"], first["view"], first["dicom_id"]) == ("s50000001", "AP", dicom_id(1))
    assert run(mimic, "--out", out, "--views", "LATERAL", "--overwrite").exit_code == 0
    assert {r["view"] for r in rows_of(out)} == {"LATERAL"}


def test_all_frontal_keeps_every_frontal_image_with_unique_ids(mimic: Path):
    out = mimic / "m.jsonl"
    result = run(mimic, "--out", out, "--all-frontal")
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    study_one = [r for r in rows if r["subject_id"] == "p10000032" and "s50000001" in r["study_id"]]
    assert [(r["view"], r["dicom_id"]) for r in study_one] == [("PA", dicom_id(3)), ("AP", dicom_id(1))]
    assert len({r["study_id"] for r in rows}) == len(rows)  # the cache keys images by study_id
    assert study_one[0]["study_id"] == f"s50000001_{dicom_id(3)}"
    assert "1 image missing (study kept)" in result.stdout  # the PA of s50000008


def test_limit_stops_after_n_rows(mimic: Path):
    out = mimic / "m.jsonl"
    assert run(mimic, "--out", out, "--limit", "2").exit_code == 0
    assert [r["study_id"] for r in rows_of(out)] == ["s50000001", "s50000002"]


def test_no_check_files_keeps_studies_whose_files_are_missing(mimic: Path):
    out = mimic / "m.jsonl"
    result = run(mimic, "--out", out, "--no-check-files")
    assert result.exit_code == 0, result.output
    studies = [r["study_id"] for r in rows_of(out)]
    assert studies == ["s50000001", "s50000002", "s50000004", "s50000005", "s50000006",
                       "s50000007", "s50000008", "s50000009", "s50000010"]
    assert rows_of(out)[6]["dicom_id"] == dicom_id(12)  # the PA, whose jpg is not there


def test_malformed_rows_are_reported_with_line_numbers_and_skipped(tmp_path: Path):
    root = make_mimic(tmp_path, gz=False)
    split_csv = root / "mimic-cxr-2.0.0-split.csv"
    meta_csv = root / "mimic-cxr-2.0.0-metadata.csv"
    split_lines = len(split_csv.read_text().splitlines())
    meta_lines = len(meta_csv.read_text().splitlines())
    with split_csv.open("a") as f:
        f.write(f"{dicom_id(30)},50000030,13000033,holdout\n")  # line split_lines + 1
        f.write(f"{dicom_id(31)},50000031,13000033,train\n")
        f.write(f"{dicom_id(32)},50000032,13000033,train,extra\n")  # split_lines + 3
    with meta_csv.open("a") as f:
        f.write(f"{dicom_id(31)},13000033,50000031,CHEST,PA,abc,10,21800506,1,,,\n")  # meta+1
        f.write(f"{dicom_id(33)},13000033\n")  # meta+2: too few fields
        f.write("../../etc/passwd,13000033,50000033,CHEST,PA,12,10,21800506,1,,,\n")  # meta+3
    result = run(root, "--out", root / "m.jsonl")
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert f"mimic-cxr-2.0.0-split.csv:{split_lines + 1}: split 'holdout'" in err
    assert f"mimic-cxr-2.0.0-split.csv:{split_lines + 3}: 5 fields where the header has 4" in err
    assert f"mimic-cxr-2.0.0-metadata.csv:{meta_lines + 1}: Rows 'abc' is not a positive integer" in err
    assert f"mimic-cxr-2.0.0-metadata.csv:{meta_lines + 2}: fewer fields than the header" in err
    assert f"mimic-cxr-2.0.0-metadata.csv:{meta_lines + 3}: dicom_id '../../etc/passwd'" in err
    assert "5 malformed CSV row" in result.stdout
    assert len(rows_of(root / "m.jsonl")) == 5  # the good rows are all still there


def test_mimic_module_imports_without_torch():
    code = "import sys, lesionloc_train.mimic; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_registered_as_lesionloc_train_prepare_mimic(mimic: Path):
    try:
        from lesionloc_train.cli import main
    except ImportError as exc:  # another subcommand's module is not written yet
        pytest.skip(f"lesionloc_train.cli does not import: {exc}")
    result = CliRunner().invoke(main, ["prepare-mimic", str(mimic), "--out", str(mimic / "m.jsonl")])
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------
# Errors: one line, non-zero exit, no traceback


def assert_error(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_root_without_files_directory(tmp_path: Path):
    root = make_mimic(tmp_path)
    (root / "files").rename(root / "images")
    result = run(root, "--out", tmp_path / "m.jsonl")
    assert_error(result, "no files/ directory")
    assert not (tmp_path / "m.jsonl").exists()


@pytest.mark.parametrize("table", ["split", "metadata"])
def test_missing_table_is_named(mimic: Path, tmp_path: Path, table: str):
    (mimic / f"mimic-cxr-2.0.0-{table}.csv.gz").unlink()
    assert_error(run(mimic, "--out", tmp_path / "m.jsonl"), f"mimic-cxr-2.0.0-{table}.csv.gz not found")


def test_existing_out_needs_overwrite(mimic: Path):
    out = mimic / "m.jsonl"
    out.write_text("keep me\n")
    assert_error(run(mimic, "--out", out), "exists", "--overwrite")
    assert out.read_text() == "keep me\n"
    assert run(mimic, "--out", out, "--overwrite").exit_code == 0
    assert len(rows_of(out)) == 5


def test_unknown_split_name(mimic: Path):
    assert_error(run(mimic, "--out", mimic / "m.jsonl", "--splits", "train,holdout"),
                 "--splits", "holdout")


def test_table_without_a_required_column(mimic: Path):
    write_table(mimic / "mimic-cxr-2.0.0-metadata.csv.gz", ["dicom_id", "study_id"], [["a", "1"]])
    assert_error(run(mimic, "--out", mimic / "m.jsonl"), "ViewPosition", "missing from the header")


def test_truncated_gzip_table(mimic: Path):
    path = mimic / "mimic-cxr-2.0.0-split.csv.gz"
    path.write_bytes(path.read_bytes()[:-20])
    assert_error(run(mimic, "--out", mimic / "m.jsonl"), "mimic-cxr-2.0.0-split.csv.gz", "unreadable")


def test_reports_directory_without_files(tmp_path: Path):
    root = make_mimic(tmp_path, reports=tmp_path / "reports")
    (tmp_path / "elsewhere").mkdir()
    assert_error(run(root, "--reports", tmp_path / "elsewhere", "--out", tmp_path / "m.jsonl"),
                 "no files/ directory with the MIMIC-CXR reports")
    (tmp_path / "elsewhere" / "mimic-cxr-reports.zip").write_bytes(b"PK")
    assert_error(run(root, "--reports", tmp_path / "elsewhere", "--out", tmp_path / "m.jsonl"),
                 "extract mimic-cxr-reports.zip")


def test_reports_not_merged_and_no_reports_option(tmp_path: Path):
    root = make_mimic(tmp_path, reports=tmp_path / "reports")
    out = tmp_path / "m.jsonl"
    assert_error(run(root, "--out", out), "no usable study", "report missing", "--reports")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Found by fuzzing: each of these escaped as a traceback (ValueError, OSError, FileExistsError)

def test_paths_over_the_system_limit_and_out_below_a_file(mimic: Path, tmp_path: Path):
    long = "x" * 300
    assert_error(run(tmp_path / long, "--out", tmp_path / "a.jsonl"), "no such directory")
    assert_error(run(mimic, "--reports", tmp_path / long, "--out", tmp_path / "b.jsonl"),
                 "no files/ directory with the MIMIC-CXR reports")
    assert_error(run(mimic, "--out", tmp_path / f"{long}.jsonl"), "cannot write the manifest",
                 "File name too long")
    below_a_file = mimic / "mimic-cxr-2.0.0-split.csv.gz" / "m.jsonl"
    result = run(mimic, "--out", below_a_file)
    assert_error(result, "cannot write the manifest")
    assert result.exit_code == 10


@pytest.mark.parametrize("new_id", ["1" * 5000, "1" * 300])
def test_ids_too_long_to_be_mimic_ids_are_skipped(tmp_path: Path, new_id: str):
    """A 5,000-digit id overflowed int(); a 300-digit one made a file name over NAME_MAX."""
    root = make_mimic(tmp_path, gz=False)
    for table in ("split", "metadata"):
        path = root / f"mimic-cxr-2.0.0-{table}.csv"
        path.write_text(path.read_text().replace("10000032", new_id))
    result = run(root, "--out", tmp_path / "m.jsonl")
    assert result.exit_code == 0, result.output
    assert all(new_id not in json.dumps(row) for row in rows_of(tmp_path / "m.jsonl"))


def test_out_below_thousands_of_missing_folders_is_one_line(mimic: Path):
    """pathlib's mkdir recursed once per missing folder: a RecursionError (found by fuzzing)."""
    out = mimic.parent / ("a/" * 1100) / "out.jsonl"  # under PATH_MAX, over the recursion limit
    result = run(mimic, "--out", out)
    assert result.exit_code == 10, result.output
    assert "error:" in result.output and "Traceback" not in result.output
