"""GPU check: training throughput (pairs/s) and peak memory of the full model at 448 px with
bf16 on one GPU, then the same step under DDP with one process (the torchrun code path).
Writes JSON. Runs on CPU at tiny size too, which is how CI keeps it working:

    python -m benchmarks.gpu_check --out gpu.json                      # on a GPU machine
    python -m benchmarks.gpu_check --tiny --device cpu --out cpu.json  # anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch


def _batch(cfg, size: int, batch: int, sentences: int = 6, tokens: int = 24, report: int = 96):
    from lesionloc_train.data import Batch

    gen = torch.Generator().manual_seed(0)
    vocab = int((cfg.model.text.bert or {}).get("vocab_size", 1000))
    valid = torch.ones(batch, sentences, dtype=torch.bool)
    ids = torch.randint(5, vocab, (batch * sentences, tokens), generator=gen)
    return Batch(torch.rand(batch, 1, size, size, generator=gen),
                 torch.randint(5, vocab, (batch, report), generator=gen),
                 torch.ones(batch, report, dtype=torch.long), ids, torch.ones_like(ids),
                 torch.arange(batch * sentences), valid, list(range(batch)), [])


def measure(cfg, device: torch.device, batch_size: int, steps: int, ddp: bool) -> dict:
    from lesionloc_train.distributed import get_autocast, resolve_precision
    from lesionloc_train.losses import LesionLocLoss
    from lesionloc_train.model import LesionLocModel
    from lesionloc_train.optimization import batch_inputs, build_optimizer, loss_from_outputs

    model = LesionLocModel(cfg.model).to(device).train()
    wrapped = model
    if ddp:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    precision = resolve_precision(cfg.optim.precision, device)
    autocast = get_autocast(precision, device)
    loss_fn = LesionLocLoss(cfg.loss)
    optimizer = build_optimizer(model, cfg)
    batch = _batch(cfg, cfg.model.image.image_size, batch_size).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            outputs = wrapped(*batch_inputs(batch, cfg))
        terms = loss_from_outputs(loss_fn, outputs, batch, model.logit_scale)
        terms["loss"].backward()
        optimizer.step()
        return float(terms["loss"].detach())

    for _ in range(2):  # warm-up (cuDNN autotuning, allocator)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"ddp": ddp, "precision": precision, "batch_size": batch_size, "steps": steps,
            "pairs_per_s": batch_size * steps / seconds, "seconds": seconds,
            "peak_memory_gib": peak, "loss": loss}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="tiny preset (CPU smoke test)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from benchmarks.full_model import BIO_CLINICALBERT, RESNET50
    from lesionloc_train.config import load_config
    from lesionloc_train.distributed import cleanup_distributed

    if args.tiny:
        cfg = load_config("tiny")
    else:
        cfg = load_config("full", ["model.image.backbone=null", f"model.image.resnet={json.dumps(RESNET50)}",
                                   "model.text.model=null", f"model.text.bert={json.dumps(BIO_CLINICALBERT)}",
                                   "model.image.image_size=448", "optim.precision=bf16"])
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    batch = args.batch_size or (4 if args.tiny else 128)
    steps = args.steps or (3 if args.tiny else 20)
    record = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
              platform.processor() or platform.machine(), "torch": torch.__version__,
              "config": cfg.name, "image_size": cfg.model.image.image_size, "runs": []}
    while True:  # a card with less memory than the default batch needs: halve it
        try:
            record["runs"].append(measure(cfg, device, batch, steps, ddp=False))
            break
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            record.setdefault("out_of_memory_at_batch", []).append(batch)
            batch //= 2
            torch.cuda.empty_cache()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                         rank=0, world_size=1)
    try:
        record["runs"].append(measure(cfg, device, batch, steps, ddp=True))
    finally:
        cleanup_distributed()
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
