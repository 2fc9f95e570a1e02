"""Nothing leaves the machine: ONNX Runtime's and OpenVINO's usage reporting stays off
(lesionloc_runtime/privacy.py). Each check runs a fresh process with a home of its own, where
the two libraries keep what they collect (a device id and an event queue in
~/.cache/Microsoft, a client id and a usage count in ~/intel) when they report."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "lesionloc_runtime" / "demo" / "examples" / "example1"
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def _fresh_home(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    return {**env, "HOME": str(home), "LESIONLOC_OPENVINO_CACHE": "off", **extra}


def _collected(home: Path) -> list[str]:
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file())


@pytest.mark.parametrize("providers", ["cpu", "openvino"])
def test_a_study_leaves_nothing_for_the_libraries_to_report(tmp_path, providers):
    """Before, one study wrote .cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,
    onnxruntime.db} (ONNX Runtime 1.32 queues its events there for Microsoft's collector:
    the machine, the model file names, run counts, errors) and, with OpenVINO, intel/
    {openvino_ga_cid,stats} (Google Analytics)."""
    if providers == "openvino" and not HAS_OPENVINO:
        pytest.skip("needs OpenVINO")
    env = _fresh_home(tmp_path)
    done = subprocess.run([str(BIN / "lesionloc-run"), f"{EXAMPLE}.dcm", "--report",
                           f"{EXAMPLE}.txt", "--out", str(tmp_path / "out"), "-q",
                           "--providers", providers], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert _collected(Path(env["HOME"])) == []


def test_onnxruntime_imported_through_each_package_starts_quiet(tmp_path):
    """The switch must be set before onnxruntime is imported (it starts collecting at import);
    export and training modules import onnxruntime before the runtime's modules (import
    order), so each package sets it first."""
    env = _fresh_home(tmp_path)
    for package in ("lesionloc_runtime", "lesionloc_export", "lesionloc_train"):
        code = f"import {package}, onnxruntime, os; print(os.environ['ORT_DISABLE_TELEMETRY'])"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env)
        assert done.returncode == 0 and done.stdout == "1\n", (package, done.stderr)
    assert _collected(Path(env["HOME"])) == []


def test_a_choice_of_ones_own_is_kept():
    code = "import os, lesionloc_runtime; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout == "0\n", done.stderr


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs OpenVINO")
def test_openvino_imported_without_its_conversion_tools_still_offers_them_later(tmp_path):
    code = ("import sys\nfrom lesionloc_runtime.privacy import import_openvino\n"
            "ov = import_openvino()\nassert not hasattr(ov, 'convert_model')\n"
            "assert not [m for m in sys.modules if 'telemetry' in m]\n"
            "ov.Core().get_available_devices()\n"
            "import openvino.tools.ovc\nprint('ok')")
    env = _fresh_home(tmp_path, CI="true")  # the tools' own import here must report nothing
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout == "ok\n", done.stderr


def test_sessions_turn_the_events_off_unless_one_chose_them(monkeypatch):
    """For an onnxruntime imported before lesionloc (its switch read already)."""
    from types import SimpleNamespace

    from lesionloc_runtime.privacy import quiet_sessions

    calls = []
    fake = SimpleNamespace(disable_telemetry_events=lambda: calls.append("off"))
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "1")
    quiet_sessions(fake)
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")
    quiet_sessions(fake)
    assert calls == ["off"]
