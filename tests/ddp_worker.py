"""Run under `torchrun --nproc_per_node 2` (gloo, CPU) by test_distributed.py: one forward and
backward of the training code path on this rank's half of a fixed batch, through DDP.
Writes each rank's loss and, from rank 0, the averaged gradients.

Each rank names its phase on stderr and dumps every thread's Python stack if it aborts
(faulthandler), so a failure's tail says where it stopped: twice in the clean-clone CI runs
on record a rank aborted inside gloo ("terminate called without an active exception"), the
second time with a barrier already before the teardown; 100 runs here, 40 of them beside two
busy loops, never did. Once both ranks have met after every result is written and the group
is destroyed, the process leaves with os._exit: interpreter finalization, where gloo's
remaining objects are torn down in no fixed order, has nothing left to do for this test."""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

from lesionloc_train.distributed import setup_distributed
from lesionloc_train.losses import LesionLocLoss
from lesionloc_train.optimization import batch_inputs, loss_from_outputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp_case import make_batch, make_case


def _phase(rank: int, what: str) -> None:
    print(f"rank {rank}: {what}", file=sys.stderr, flush=True)


def main(out: Path) -> None:
    faulthandler.enable()
    # torch's own deprecation of the gather with gradients, printed by both ranks, would push
    # the phases out of the tail the test shows on failure
    warnings.filterwarnings("ignore", category=FutureWarning, module="lesionloc_train.losses")
    info = setup_distributed("cpu")
    _phase(info.rank, "joined the group")
    cfg, model = make_case()
    batch = make_batch(cfg, part=info.rank, parts=info.world_size)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    terms = loss_from_outputs(LesionLocLoss(cfg.loss), ddp(*batch_inputs(batch, cfg)), batch,
                              model.logit_scale)
    terms["loss"].backward()
    _phase(info.rank, "backward done")
    losses = [None] * info.world_size
    dist.all_gather_object(losses, terms["loss"].item())
    if info.is_main:
        from safetensors.torch import save_file

        grads = {n: p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None}
        save_file(grads, str(out / "grads.safetensors"))
        (out / "losses.json").write_text(json.dumps(losses))
        _phase(info.rank, "results written")
    # both ranks tear the group down together, after rank 0 has written
    dist.barrier()
    _phase(info.rank, "met for the teardown")
    dist.destroy_process_group()
    _phase(info.rank, "group destroyed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
