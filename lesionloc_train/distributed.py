"""Process-group and precision setup as small functions that return values: torchrun
environment -> (rank, world size, device); device -> autocast context and GradScaler."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from lesionloc_runtime.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (RANK/WORLD_SIZE/LOCAL_RANK), NCCL on CUDA
    and gloo on CPU; a plain `python` run is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but no CUDA GPU is available")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, dev)


def cleanup_distributed(meet: bool = False) -> None:
    """Tear the process group down. `meet`: every rank got here normally, so they first wait
    for each other (gloo can abort a rank that destroys its group while a peer still uses the
    connection); after an error a rank leaves at once, since its peers may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if meet:
            dist.barrier()
        dist.destroy_process_group()


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"optim.precision must be auto, fp32, bf16 or fp16, not {precision!r}")
    if precision != "auto":
        if device.type != "cuda" and precision == "fp16":
            raise ConfigError("fp16 training needs a CUDA device")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def get_autocast(precision: str, device: torch.device) -> Callable[[], Any]:
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext


def broadcast_object(value: Any, info: DistInfo) -> Any:
    """Rank 0's value on every rank (e.g. the resolved `--resume latest` path)."""
    if not info.distributed:
        return value
    holder = [value if info.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
