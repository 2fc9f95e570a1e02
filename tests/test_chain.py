"""The product end to end through its three CLIs, the runtime without torch, tampered bundles
and user mistakes (one-line error, non-zero exit, never a traceback)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_train_export_run_in_sequence_through_the_clis(tmp_path, phantom_set, phantom_study):
    run_dir, bundle, out = tmp_path / "run", tmp_path / "bundle", tmp_path / "out"
    proc = run(BIN / "lesionloc-train", "pretrain", "--preset", "tiny", "--manifest", phantom_set,
               "--out", run_dir, "--max-steps", "3", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "trained 3 steps" in proc.stdout
    proc = run(BIN / "lesionloc-export", run_dir, "--out", bundle, "--quantize", "int8",
               "--calibration", phantom_set, "--calibration-images", "4", "--parity-images", "2")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["parity"]["passed"] is True and summary["text_layout"] == "packed (mean)"
    image, report, row = phantom_study
    proc = run(BIN / "lesionloc-run", image, "--report", report, "--model", bundle, "--out", out)
    assert proc.returncode == 0, proc.stderr
    study = out / image.stem
    doc = json.loads((study / "study.json").read_text())
    findings = [s for s in doc["sentences"] if s["kind"] == "finding"]
    assert findings and all(s["grounded"] for s in findings)
    assert sorted(p.name for p in study.glob("sentence_*.png")) == [
        s["files"]["layer"] for s in findings]
    assert (study / "study.html").is_file()
    assert f"open {study / 'study.html'}" in proc.stdout


BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ImportError(name + ' is blocked in this test')
sys.meta_path.insert(0, _Block())
try:
    import torch  # noqa
except ImportError:
    pass
else:
    raise SystemExit('torch was importable')
"""


def test_runtime_runs_a_bundle_where_importing_torch_fails(tmp_path, tiny_bundle, phantom_study):
    image, report, _ = phantom_study
    code = BLOCK_TORCH + f"""
import json
from lesionloc_runtime.localizer import Localizer
result = Localizer.load({str(tiny_bundle)!r}).localize({str(image)!r}, {str(report)!r})
assert result.grounded, 'no grounded sentence'
from lesionloc_runtime.cli import main
try:
    main([{str(image)!r}, '--report', {str(report)!r}, '--model', {str(tiny_bundle)!r},
          '--out', {str(tmp_path / 'out')!r}, '-q'])
except SystemExit as exit:
    assert exit.code == 0, exit.code
assert 'torch' not in sys.modules and 'transformers' not in sys.modules
print('ok', len(result.grounded))
"""
    proc = run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("ok")


def test_a_bundle_with_one_changed_byte_is_refused(tmp_path, tiny_bundle, phantom_study):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    target = bundle / "image_encoder.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    image, report, _ = phantom_study
    proc = run(BIN / "lesionloc-run", image, "--report", report, "--model", bundle,
               "--out", tmp_path / "out")
    assert_one_line_error(proc, "image_encoder.onnx", "checksum")
    assert proc.returncode == 5
    assert not (tmp_path / "out").exists()


def test_a_bundle_of_another_format_version_is_refused(tmp_path, tiny_bundle, phantom_study):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "lesionloc.json").read_text())
    manifest["format_version"] = 99
    (bundle / "lesionloc.json").write_text(json.dumps(manifest))
    image, report, _ = phantom_study
    proc = run(BIN / "lesionloc-run", image, "--report", report, "--model", bundle)
    assert_one_line_error(proc, "format version 99")


@pytest.mark.parametrize("case", ["missing image", "text as png", "corrupt dicom", "truncated dicom",
                                  "empty report", "missing report", "binary report", "5 MB report",
                                  "missing bundle", "no report or query"])
def test_user_mistakes_end_with_one_line_and_nonzero_exit(tmp_path, tiny_bundle, phantom_study, case):
    image, report, _ = phantom_study
    args = [str(image), "--report", str(report), "--model", str(tiny_bundle), "--out", str(tmp_path)]
    needle = ""
    if case == "missing image":
        args[0], needle = str(tmp_path / "nope.dcm"), "no such file"
    elif case == "text as png":
        fake = tmp_path / "fake.png"
        fake.write_text("this is not an image\n")
        args[0], needle = str(fake), "fake.png"
    elif case == "corrupt dicom":
        corrupt = tmp_path / "corrupt.dcm"
        data = bytearray(image.read_bytes())
        data[200:4000] = b"\xff" * 3800  # the header is garbage now
        corrupt.write_bytes(bytes(data))
        args[0], needle = str(corrupt), "corrupt.dcm"
    elif case == "truncated dicom":
        truncated = tmp_path / "truncated.dcm"
        truncated.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
        args[0], needle = str(truncated), "truncated.dcm"
    elif case == "5 MB report":
        big = tmp_path / "big.txt"
        big.write_text("FINDINGS: There is a right upper lobe opacity. " * 110_000)
        args[2], needle = str(big), "big.txt"
    elif case == "empty report":
        empty = tmp_path / "empty.txt"
        empty.write_text("")
        args[2], needle = str(empty), "empty"
    elif case == "missing report":
        args[2], needle = str(tmp_path / "none.txt"), "none.txt"
    elif case == "binary report":
        binary = tmp_path / "binary.txt"
        binary.write_bytes(bytes(range(256)) * 10)
        args[2], needle = str(binary), "binary"
    elif case == "missing bundle":
        args[4], needle = str(tmp_path / "no-bundle"), "no-bundle"
    elif case == "no report or query":
        args = [str(image), "--model", str(tiny_bundle)]
        needle = "--report"
    proc = run(BIN / "lesionloc-run", *args)
    assert_one_line_error(proc, needle)
