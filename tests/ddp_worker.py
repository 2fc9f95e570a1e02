"""Run under `torchrun --nproc_per_node 2` (gloo, CPU) by test_distributed.py: one forward and
backward of the training code path on this rank's half of a fixed batch, through DDP.
Writes each rank's loss and, from rank 0, the averaged gradients."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from lesionloc_train.distributed import setup_distributed
from lesionloc_train.losses import LesionLocLoss
from lesionloc_train.optimization import batch_inputs, loss_from_outputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp_case import make_batch, make_case


def main(out: Path) -> None:
    info = setup_distributed("cpu")
    cfg, model = make_case()
    batch = make_batch(cfg, part=info.rank, parts=info.world_size)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    terms = loss_from_outputs(LesionLocLoss(cfg.loss), ddp(*batch_inputs(batch, cfg)), batch,
                              model.logit_scale)
    terms["loss"].backward()
    losses = [None] * info.world_size
    dist.all_gather_object(losses, terms["loss"].item())
    if info.is_main:
        from safetensors.torch import save_file

        grads = {n: p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None}
        save_file(grads, str(out / "grads.safetensors"))
        (out / "losses.json").write_text(json.dumps(losses))
    # Both ranks tear the group down together: once in about ten clean-clone runs, rank 1
    # destroying its group while rank 0 was still writing aborted it in gloo ("terminate called
    # without an active exception", SIGABRT).
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
