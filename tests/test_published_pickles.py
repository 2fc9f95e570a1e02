"""Published .pt/.ckpt files are pickles: a malicious one is refused without running, a
Lightning checkpoint's hyper-parameters are read without importing what they name, and a
damaged file is one line."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lesionloc_export.sources.pickles import load_pickle, plain
from lesionloc_runtime.errors import CheckpointError


class _Payload:
    """Unpickled, this would create `marker` (os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _EvalPayload:
    def __reduce__(self):
        return eval, ("__import__('os').getpid()",)


def test_a_pickle_that_runs_a_command_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    weights = tmp_path / "weights.pt"
    torch.save({"encoder.weight": torch.zeros(2), "x": _Payload(marker)}, weights)
    with pytest.raises(CheckpointError, match=r"refusing to load .* its pickle calls posix\.system"):
        load_pickle(weights, "image weights")
    assert not marker.exists()
    torch.save({"x": _EvalPayload()}, weights)
    with pytest.raises(CheckpointError, match="builtins.eval"):
        load_pickle(weights, "image weights")


def test_a_plain_pickle_that_is_not_a_torch_file_is_refused_without_running(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    weights = tmp_path / "weights.bin"
    weights.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    with pytest.raises(CheckpointError):
        load_pickle(weights, "text weights")
    assert not marker.exists()


def test_lightning_hyper_parameters_are_read_without_importing_what_they_name(tmp_path):
    """A DictConfig (what AFLoc's Lightning module saves) and a defaultdict come back as plain
    values; weights-only loading alone refuses the file; omegaconf is never imported."""
    from omegaconf import OmegaConf

    ckpt = tmp_path / "model.ckpt"
    hyper = OmegaConf.create({"model": {"text": {"last_n_layers": 4}}, "data": {"word_num": 97}})
    torch.save({"state_dict": {"afloc.w": torch.ones(3)}, "hyper_parameters": hyper,
                "callbacks": collections.defaultdict(list, {"k": [1]})}, ckpt)
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(ckpt, weights_only=True)
    script = (
        "import sys; from pathlib import Path\n"
        "from lesionloc_export.sources.pickles import load_pickle, plain\n"
        f"c = load_pickle(Path({str(ckpt)!r}), 'AFLoc checkpoint')\n"
        "print(plain(c['hyper_parameters']), dict(c['callbacks']), c['state_dict']['afloc.w'].sum().item())\n"
        "print('omegaconf' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    values, imported = out.stdout.strip().splitlines()
    assert values == "{'model': {'text': {'last_n_layers': 4}}, 'data': {'word_num': 97}} " \
                     "{'k': [1]} 3.0"
    assert imported == "False"
    assert plain(load_pickle(ckpt, "x")["hyper_parameters"])["data"]["word_num"] == 97


def test_a_truncated_or_missing_file_is_one_line(tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1000)}, weights)
    weights.write_bytes(weights.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_pickle(weights, "image weights")
    with pytest.raises(CheckpointError, match="not found"):
        load_pickle(tmp_path / "nope.pt", "image weights")
