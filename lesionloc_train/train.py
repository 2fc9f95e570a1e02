"""The pretraining loop: AMP, DDP under torchrun, gradient accumulation, warmup + cosine,
clipping, JSON Lines metrics, atomic checkpoints and exact resume. `pretrain` is a short
sequence of named steps; each step is a small function below it."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lesionloc_runtime.errors import ConfigError, DataError, TrainingDiverged, WorkerLost
from lesionloc_runtime.fileio import atomic_write_json
from lesionloc_runtime.processes import LOST
from lesionloc_runtime.progress import progress as progress_bar
from lesionloc_train.cache import ImageCache
from lesionloc_train.checkpoint import (
    TrainingState,
    load_checkpoint,
    load_training_state,
    resolve_checkpoint,
    save_checkpoint,
)
from lesionloc_train.config import TrainConfig
from lesionloc_train.data import (
    Batch,
    Collator,
    ResumableSampler,
    StudyDataset,
    StudyRecord,
    read_manifest,
)
from lesionloc_train.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    cleanup_distributed,
    get_autocast,
    resolve_precision,
    setup_distributed,
)
from lesionloc_train.losses import LesionLocLoss
from lesionloc_train.model import LesionLocModel, TextTokenizer, resolve_tokenizer
from lesionloc_train.optimization import (
    batch_inputs,
    build_optimizer,
    loss_from_outputs,
    warmup_cosine,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    state: TrainingState
    last: dict[str, float]


def pretrain(
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `cfg` into `run_dir` (checkpoints/, metrics.jsonl, config.json)."""
    run_dir = Path(run_dir)
    info = setup_distributed(device)
    try:
        seed_everything(cfg.seed, info.rank)
        resume_from = resolve_resume(resume, run_dir, info)
        records = load_records(cfg, "train")
        tokenizer_path = prepare_tokenizer(cfg, run_dir, records, resume_from, info)
        model = build_model(cfg, resume_from).to(info.device)
        loop = TrainingLoop(cfg, run_dir, model, records, tokenizer_path, info, progress)
        if resume_from is not None:
            loop.restore(resume_from)
        result = loop.run()
    except BaseException:
        cleanup_distributed()
        raise
    cleanup_distributed(meet=True)
    return result


def seed_everything(seed: int, rank: int) -> None:
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)


def resolve_resume(resume: str | None, run_dir: Path, info: DistInfo) -> Path | None:
    """`--resume latest` (this run's newest checkpoint) or a checkpoint path; resolved on rank
    0 and broadcast, so every rank resumes from the same step."""
    if resume is None:
        return None
    found: str | None = None
    if info.is_main:
        target = run_dir if resume == "latest" else Path(resume)
        if resume == "latest" and not (run_dir / "checkpoints" / "latest").is_file():
            found = ""
        else:
            found = str(resolve_checkpoint(target))
    found = broadcast_object(found, info)
    if found == "":
        log.warning("--resume latest: no checkpoint in %s yet, starting from scratch", run_dir)
        return None
    return Path(found) if found else None


def load_records(cfg: TrainConfig, split: str) -> list[StudyRecord]:
    if not cfg.data.train_manifest:
        raise ConfigError("no training manifest: pass --manifest or set data.train_manifest")
    records, stats = read_manifest(cfg.data.train_manifest, split=split,
                                   max_rows=cfg.data.max_rows)
    if stats.skipped:
        log.warning("manifest: %d rows skipped (%s)", sum(stats.skipped.values()), stats.skipped)
    return records


def prepare_tokenizer(cfg: TrainConfig, run_dir: Path, records: list[StudyRecord],
                      resume_from: Path | None, info: DistInfo) -> Path:
    """Rank 0 writes run_dir/tokenizer.json (from the checkpoint when resuming, else from
    the model directory or a vocabulary built on the training reports); others wait."""
    target = run_dir / "tokenizer.json"
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is not None:
            target.write_bytes((resume_from / "tokenizer.json").read_bytes())
        elif not target.is_file() or cfg.model.text.tokenizer or cfg.model.text.model:
            corpus = None
            if not cfg.model.text.model and not cfg.model.text.tokenizer:
                corpus = [r.report.read_text(encoding="utf-8", errors="replace") for r in records]
            resolve_tokenizer(cfg.model.text, run_dir, corpus)
    barrier(info)
    return target


def build_model(cfg: TrainConfig, resume_from: Path | None) -> LesionLocModel:
    if resume_from is not None:  # the architecture comes from the checkpoint: no download
        return load_checkpoint(resume_from).model.train()
    return LesionLocModel(cfg.model, cfg.loss.init_temperature).train()


def _fault_injection(step: int) -> None:
    """LESIONLOC_FAULT_KILL_AT_STEP=N: SIGKILL this process after step N (resume tests)."""
    target = os.environ.get("LESIONLOC_FAULT_KILL_AT_STEP")
    if target and step == int(target):
        os.kill(os.getpid(), signal.SIGKILL)


class TrainingLoop:
    """Owns the per-run objects; `run` is the loop, the rest are its steps."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, model: LesionLocModel,
                 records: list[StudyRecord], tokenizer: Path, info: DistInfo,
                 progress: bool) -> None:
        self.cfg, self.run_dir, self.info, self.progress = cfg, run_dir, info, progress
        self.tokenizer_path = tokenizer
        self.model = model
        self.precision = resolve_precision(cfg.optim.precision, info.device)
        self.autocast = get_autocast(self.precision, info.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.ddp = self._wrap(model)
        self.loss_fn = LesionLocLoss(cfg.loss)
        self.optimizer = build_optimizer(model, cfg)
        preprocessing = cfg.preprocess_config()
        cache = ImageCache.open(cfg.data.cache, preprocessing) if cfg.data.cache else None
        self.dataset = StudyDataset(records, preprocessing, cfg.seed, cfg.data.augment, cache)
        self.sampler = ResumableSampler(len(records), cfg.seed, info.rank, info.world_size)
        self.collator = Collator(TextTokenizer(tokenizer), cfg.loss.local_kinds,
                                 cfg.loss.max_sentences, cfg.model.text.max_length,
                                 cfg.model.text.report_max_length)
        batches = math.ceil(self.sampler.per_rank / cfg.data.batch_size)
        self.steps_per_epoch = max(1, batches // cfg.optim.grad_accum)
        self.total_steps = cfg.optim.max_steps or cfg.optim.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(cfg.optim.warmup_steps, self.total_steps))
        self.state = TrainingState()
        self.skipped_total = 0
        self.last_checkpoint: Path | None = None
        self.metrics_path = run_dir / "metrics.jsonl"
        self.tb = self._tensorboard()

    def _wrap(self, model: LesionLocModel) -> torch.nn.Module:
        if not self.info.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        unused = not (self.cfg.loss.uses_global and self.cfg.loss.uses_local)
        ids = [self.info.local_rank] if self.info.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)

    def _tensorboard(self) -> Any:
        if not self.info.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def restore(self, checkpoint: Path) -> None:
        self.state = load_training_state(checkpoint, self.optimizer, self.scheduler, self.scaler)
        self.last_checkpoint = checkpoint
        if self.info.is_main:
            log.info("resumed from %s at step %d", checkpoint, self.state.step)

    def loader(self) -> DataLoader:
        self.dataset.epoch = self.state.epoch
        self.sampler.set_epoch(self.state.epoch, self.state.position)
        workers = self.cfg.data.workers
        return DataLoader(
            self.dataset, batch_size=self.cfg.data.batch_size, sampler=self.sampler,
            collate_fn=self.collator, num_workers=workers, pin_memory=self.info.device.type == "cuda",
            # its own generator: creating a loader must not consume the global RNG, or a
            # resumed run would draw different dropout masks than an uninterrupted one
            generator=torch.Generator().manual_seed(self.cfg.seed),
            persistent_workers=False, prefetch_factor=4 if workers else None,
        )

    def batches(self) -> Iterator[Batch]:
        """The loader's batches; a data worker killed (the kernel's out-of-memory killer)
        is WorkerLost naming the checkpoint to resume from, not PyTorch's RuntimeError
        traceback."""
        try:
            yield from self.loader()
        except RuntimeError as exc:
            if not str(exc).startswith("DataLoader worker"):
                raise
            kept = self.last_checkpoint or "none yet"
            raise WorkerLost(f"{LOST.format(note='')}: {exc}; the last checkpoint is {kept}: "
                             "--resume latest goes on from it (with fewer data.workers if "
                             "memory is short)") from None

    def run(self) -> TrainResult:
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", self.cfg.to_dict())
        # closed (its last line drawn) before an error is printed, as on success
        with progress_bar(self.total_steps, self.cfg.name, "step",
                          self.progress and self.info.is_main, initial=self.state.step) as bar:
            last: dict[str, float] = {}
            accum: list[Batch] = []
            tick = time.perf_counter()
            pairs = 0
            while self.state.step < self.total_steps:
                usable_batches = 0
                for batch in self.batches():
                    self.skipped_total += len(batch.skipped)
                    self.state.position += batch.size + len(batch.skipped)
                    if batch.size == 0:
                        continue
                    usable_batches += 1
                    accum.append(batch)
                    if len(accum) < self.cfg.optim.grad_accum:
                        continue
                    terms = self.optimizer_step(accum)
                    pairs += sum(b.size for b in accum) * self.info.world_size
                    accum = []
                    self.state.step += 1
                    bar.update()
                    if self.state.step % self.cfg.log_every == 0 or self.state.step == self.total_steps:
                        elapsed = time.perf_counter() - tick
                        last = self.log(terms, pairs / max(elapsed, 1e-9))
                        bar.set_postfix(loss=f"{last['loss']:.3f}")
                        tick, pairs = time.perf_counter(), 0
                    if self.state.step % self.cfg.checkpoint_every == 0:
                        self.checkpoint()
                    _fault_injection(self.state.step)
                    if self.state.step >= self.total_steps:
                        break
                else:  # the epoch ran out
                    if usable_batches == 0 and self.skipped_total > 0:
                        raise DataError("an epoch passed without one usable batch: every row was "
                                        f"skipped ({self.skipped_total} unreadable); check the data")
                    self.state.epoch += 1
                    self.state.position = 0
                    accum = []
                    if self.cfg.validate_every_epoch:
                        self.validate()
                    continue
        if self.last_checkpoint is None or not self.last_checkpoint.name.endswith(
                f"{self.state.step:07d}"):
            self.checkpoint()
        return TrainResult(self.run_dir, self.last_checkpoint, self.state, last)

    def optimizer_step(self, batches: list[Batch]) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for i, batch in enumerate(batches):
            sync = i == len(batches) - 1
            context = self.ddp.no_sync() if (self.info.distributed and not sync) else nullcontext()
            with context:
                terms = self.compute_loss(batch.to(self.info.device))
                loss = terms["loss"] / len(batches)
                self.check_finite(terms)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                else:
                    loss.backward()
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach()) / len(batches)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.clip_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm)
            totals["grad_norm"] = float(norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))
        return totals

    def compute_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        with self.autocast():
            outputs = self.ddp(*batch_inputs(batch, self.cfg))
        return loss_from_outputs(self.loss_fn, outputs, batch, self.model.logit_scale)

    def check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        bad = not bool(torch.isfinite(terms["loss"]).item())
        if self.info.distributed:
            flag = torch.tensor([1.0 if bad else 0.0], device=self.info.device)
            torch.distributed.all_reduce(flag)
            bad = bool(flag.item() > 0)
        if bad:
            values = {k: float(v.detach()) for k, v in terms.items()}
            kept = self.last_checkpoint or "none yet"
            raise TrainingDiverged(
                f"the loss became non-finite at step {self.state.step + 1} ({values}); training "
                f"stopped. Last good checkpoint: {kept}. Lower optim.lr or use precision fp32/bf16."
            )

    def log(self, terms: dict[str, float], pairs_per_s: float) -> dict[str, float]:
        record = {"step": self.state.step, "epoch": self.state.epoch, **terms,
                  "lr": self.scheduler.get_last_lr()[0],
                  "temperature": float(1.0 / self.model.logit_scale.detach().exp()),
                  "skipped": self.skipped_total, "pairs_per_s": pairs_per_s}
        if self.info.is_main:
            with open(self.metrics_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.tb is not None:
                for key, value in record.items():
                    self.tb.add_scalar(f"train/{key}", value, self.state.step)
        return record

    def checkpoint(self) -> None:
        if self.info.is_main:
            self.last_checkpoint = save_checkpoint(
                self.run_dir, self.model, self.cfg, self.tokenizer_path, self.state,
                self.optimizer, self.scheduler, self.scaler, keep=self.cfg.keep_checkpoints)
        barrier(self.info)

    def validate(self) -> None:
        """Localization metrics on the validation split when it carries sentence boxes."""
        from lesionloc_train.validation import validate_localization

        if not self.info.is_main:
            barrier(self.info)
            return
        result = validate_localization(self.model, self.cfg, self.tokenizer_path, self.info.device)
        if result:
            record = {"step": self.state.step, "epoch": self.state.epoch,
                      **{f"val/{k}": v for k, v in result.items()}}
            with open(self.metrics_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.tb is not None:
                for key, value in result.items():
                    self.tb.add_scalar(f"val/{key}", value, self.state.step)
        self.model.train()
        barrier(self.info)
