"""The `synth` and `synth-preview` commands: output, and one-line errors for user mistakes."""

from __future__ import annotations

import cv2
import pytest
from click.testing import CliRunner

from lesionloc_train.phantoms import load_manifest
from lesionloc_train.phantoms.cli import synth, synth_preview


def run(command, args):
    return CliRunner().invoke(command, [str(a) for a in args])


def assert_one_line_error(result, needle: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert needle in lines[0]


def test_synth_writes_a_data_set_and_preview_draws_it(tmp_path):
    out = tmp_path / "set"
    result = run(synth, ["--out", out, "--n", 4, "--seed", 2, "--size", 192, "--workers", 1])
    assert result.exit_code == 0, result.output
    assert "Wrote 4 studies of 192x192" in result.output
    records = load_manifest(out)
    assert len(records) == 4 and records[0]["width"] == 192
    montage = tmp_path / "montage.png"
    result = run(synth_preview, [out, "--out", montage, "--n", 3, "--cols", 3, "--tile", 128])
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(montage))
    assert image.shape[1] == 3 * 128 and image.shape[0] > 128


def test_synth_width_height_and_split_fractions(tmp_path):
    out = tmp_path / "set"
    result = run(synth, ["--out", out, "--n", 4, "--width", 200, "--height", 160,
                         "--split-fractions", "0.5,0.25,0.25", "--no-png"])
    assert result.exit_code == 0, result.output
    records = load_manifest(out)
    assert {(r["width"], r["height"]) for r in records} == {(200, 160)}
    assert sorted(r["split"] for r in records) == ["test", "train", "train", "val"]
    assert all(r["image_png"] is None for r in records)


def test_synth_refuses_a_non_empty_directory_without_overwrite(tmp_path):
    (tmp_path / "something").write_text("x")
    assert_one_line_error(run(synth, ["--out", tmp_path, "--n", 2, "--size", 160]),
                          "--overwrite")
    result = run(synth, ["--out", tmp_path, "--n", 2, "--size", 160, "--overwrite"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args,needle", [
    (["--n", 0], "at least 1"),
    (["--split-fractions", "a,b,c"], "three numbers"),
    (["--split-fractions", "0.5,0.5"], "exactly three"),
    (["--split-fractions", "0.7,0.2,0.2"], "sum to 1"),
    (["--size", 256, "--width", 200], "not both"),
    (["--width", 256], "go together"),
    (["--size", 20], "between"),
    (["--workers", 0], "--workers"),
    (["--seed", -3], "non-negative"),
])
def test_synth_bad_input_is_a_one_line_error(tmp_path, args, needle):
    assert_one_line_error(run(synth, ["--out", tmp_path / "x", *args]), needle)


def test_preview_without_a_manifest_is_a_one_line_error(tmp_path):
    assert_one_line_error(run(synth_preview, [tmp_path]), "no phantom manifest")


def test_preview_of_a_broken_manifest_is_a_one_line_error(tmp_path):
    (tmp_path / "manifest.jsonl").write_text("{not json\n")
    assert_one_line_error(run(synth_preview, [tmp_path]), "not valid JSON")
