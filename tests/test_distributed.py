"""DDP on CPU (gloo, 2 processes under torchrun) gives the loss and gradients of one process
on the combined batch: the global loss over all-gathered embeddings (gradients through the
gather), the local loss within each process's half, as docs/design.md specifies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lesionloc_train.losses import LesionLocLoss
from lesionloc_train.optimization import batch_inputs, loss_from_outputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp_case import make_batch, make_case


def _reference():
    """One process: each half through the image encoder on its own (BatchNorm statistics are
    per process under DDP, as without SyncBatchNorm), the global loss over the concatenated
    batch, the local loss averaged over the two halves."""
    cfg, model = make_case()
    halves = [make_batch(cfg, part=i, parts=2) for i in range(2)]
    outputs = [model(*batch_inputs(b, cfg)) for b in halves]
    loss_fn = LesionLocLoss(cfg.loss)
    per_half = [loss_from_outputs(loss_fn, o, b, model.logit_scale)
                for o, b in zip(outputs, halves, strict=True)]
    image = torch.cat([o[0] for o in outputs])
    report = torch.cat([o[2] for o in outputs])
    glob = loss_fn.global_loss(image, report, model.logit_scale.exp())
    total = glob["global_i2t"] + glob["global_t2i"] + sum(
        (t["local_t2i"] + t["local_i2t"]) for t in per_half) / 2
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return total.item(), grads


def _free_port() -> int:
    """A port nothing listens on now: a fixed one fails when two test runs share the machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_match_one_process_on_the_combined_batch(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()),
         str(Path(__file__).resolve().parent / "ddp_worker.py"), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in range(2):
        assert f"rank {rank}: group destroyed" in proc.stderr, proc.stderr[-3000:]
    from safetensors.torch import load_file

    losses = json.loads((tmp_path / "losses.json").read_text())
    ddp_grads = load_file(str(tmp_path / "grads.safetensors"))
    want_loss, want_grads = _reference()
    assert sum(losses) / len(losses) == pytest.approx(want_loss, rel=1e-5)
    assert set(ddp_grads) == set(want_grads)
    for name, grad in want_grads.items():
        # float32 sums over many pixels in another order: compare at the tensor's own scale
        scale = float(grad.abs().max())
        torch.testing.assert_close(ddp_grads[name], grad, rtol=1e-3, atol=1e-4 * scale + 1e-8,
                                   msg=name)
