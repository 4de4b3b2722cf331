"""The training engine: accumulate, scale, clip, step, checkpoint, resume, log.

It knows nothing about emotion2vec's objectives. An :class:`~.protocols.Objective` supplies the
trainable module, computes a loss on a batch and does whatever follows an update (pre-training:
the EMA teacher step); a :class:`~.protocols.BatchSource` supplies numbered micro-batches.
Pre-training and fine-tuning share this engine.

Loss normalisation (fairseq's): an objective returns a *sum* of per-sample losses and its sample
size. Gradients of the sums are accumulated over the micro-batches of an update and summed over
processes, then divided by the total sample size. The update therefore depends only on which
micro-batches form it, not on how they are split across processes and accumulation steps.

Data order: update ``u`` consumes global micro-batches ``p .. p + W*F - 1`` (``p`` the data
position, W processes, F accumulation steps); process ``r`` takes ``p + k*W + r`` for
``k < F``. With per-micro-batch seeding (:mod:`.seeding`) one process with F = 2 computes the
same update as two processes with F = 1.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import Emotion2vecError
from . import checkpointing
from .config import OptimConfig, RunConfig
from .device import resolve_device, resolve_precision
from .distributed import DistInfo, all_reduce_sum, barrier
from .logfile import LOGGER
from .metrics import MetricsLogger
from .optim import build_optimizer, set_lr
from .protocols import BatchSource, Objective
from .schedule import lr_at
from .seeding import derive_seed, rng_state, seed_everything, set_rng_state
from .stop import StopRequest

log = logging.getLogger(LOGGER)

STATE_VERSION = 1


class TrainingError(Emotion2vecError):
    """Training cannot continue (non-finite gradients, collapse, inconsistent resume)."""


@dataclass
class FitResult:
    """How a call to :meth:`Trainer.fit` ended."""

    step: int
    """Updates done."""
    data_position: int
    """Next global micro-batch number."""
    finished: bool
    """True when ``max_updates`` was reached."""
    checkpoint: Path | None
    """The last checkpoint written (rank 0; None elsewhere)."""
    final: Path | None
    """The final model folder when finished (rank 0)."""
    last_metrics: dict[str, Any]
    """The last metrics record."""


def micro_batch_indices(
    position: int, rank: int, world_size: int, update_freq: int
) -> Iterator[int]:
    """The global micro-batch numbers process ``rank`` trains on, from data position
    ``position`` on: ``position + k * world_size + rank`` for the ``update_freq`` steps ``k`` of
    each update, then the next update's block of ``world_size * update_freq``."""
    while True:
        for k in range(update_freq):
            yield position + k * world_size + rank
        position += world_size * update_freq


class Trainer:
    """Runs an objective over a batch source with AdamW, schedule, AMP, DDP and checkpoints.

    Args:
        objective: see :class:`Objective`; its module must already hold the weights to start
            from (for a resume, the checkpoint's model folder).
        source: see :class:`BatchSource`.
        optim, run: the generic configs.
        run_dir: where checkpoints, ``final/`` and ``metrics.jsonl`` go.
        dist: this process's rank and world size (one process by default).
        config: JSON-able run configuration stored in every trainer state.
        find_unused_parameters: DDP option, needed when parts of the module may be skipped
            (layer drop).
        on_checkpoint: called on rank 0 after each checkpoint (e.g. to redraw the loss plot).
    """

    def __init__(
        self,
        objective: Objective,
        source: BatchSource,
        *,
        optim: OptimConfig,
        run: RunConfig,
        run_dir: str | Path,
        dist: DistInfo | None = None,
        config: dict[str, Any] | None = None,
        find_unused_parameters: bool = True,
        on_checkpoint=None,
    ):
        self.objective = objective
        self.source = source
        self.optim_config = optim
        self.run = run
        self.run_dir = Path(run_dir)
        self.dist = dist or DistInfo()
        self.config = config or {}
        self.on_checkpoint = on_checkpoint
        if run.threads:
            torch.set_num_threads(run.threads)
        self.device = resolve_device(run.device, self.dist)
        self.amp_dtype = resolve_precision(run.precision, self.device)
        objective.to(self.device)
        self.module = objective.module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # the model's only buffers (ALiBi slopes) are constants: no need to sync them on
            # every forward (torch >= 2.13 names the option forward_sync_buffers)
            params = inspect.signature(DDP.__init__).parameters
            no_sync = (
                {"forward_sync_buffers": False}
                if "forward_sync_buffers" in params
                else {"broadcast_buffers": False}
            )
            self.module = DDP(
                objective.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
                **no_sync,
            )
        # an objective may build its own optimizer (fine-tuning: per-layer groups with lr_scale)
        custom = getattr(objective, "build_optimizer", None)
        self.optimizer = (
            custom(optim) if custom is not None else build_optimizer(objective.module, optim)
        )
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.step = 0
        self.data_position = 0
        self.metrics = MetricsLogger(
            self.run_dir, enabled=self.dist.is_main, tensorboard=run.tensorboard
        )
        self.last_checkpoint: Path | None = None
        self.last_metrics: dict[str, Any] = {}
        self._last_logs: dict[str, float] = {}

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything beyond the model weights that an exact resume needs."""
        return {
            "version": STATE_VERSION,
            "step": self.step,
            "data_position": self.data_position,
            "world_size": self.dist.world_size,
            "update_freq": self.optim_config.update_freq,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {
                "name": "warmup_cosine",
                "step": self.step,
                "lr": lr_at(max(self.step, 1), self.optim_config),
            },
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "objective": self.objective.state_dict(),
            "rng": rng_state(),
            "config": self.config,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the model weights are loaded by the caller)."""
        if int(state.get("version", 0)) > STATE_VERSION:
            raise TrainingError("trainer state written by a newer emotion2vec; upgrade")
        per_update = state["world_size"] * state["update_freq"]
        if per_update != self.dist.world_size * self.optim_config.update_freq:
            log.warning(
                "resuming with %d processes x %d accumulation steps instead of %d x %d: each "
                "update now sees a different number of micro-batches",
                self.dist.world_size,
                self.optim_config.update_freq,
                state["world_size"],
                state["update_freq"],
            )
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.objective.load_state_dict(state["objective"])
        self.step = int(state["step"])
        self.data_position = int(state["data_position"])
        set_rng_state(state["rng"])
        self.metrics.truncate_after(self.step)

    def resume_from(self, folder: Path) -> None:
        """Load ``folder/trainer_state.pt``."""
        self.load_state_dict(checkpointing.load_trainer_state(folder))
        log.info("resumed from %s at update %d", folder, self.step)

    def save_checkpoint(self) -> Path | None:
        """Checkpoint the current update (rank 0 writes; everyone waits)."""
        folder = None
        if self.dist.is_main:
            folder = checkpointing.save_checkpoint(
                self.run_dir,
                self.step,
                self.objective.save_model,
                self.state_dict(),
                self.run.keep_last,
            )
            self.last_checkpoint = folder
            log.info("checkpoint: %s", folder)
            if self.on_checkpoint is not None:
                self.on_checkpoint(self)
        barrier(self.dist)
        return folder

    # ------------------------------------------------------------------ loop

    def _indices(self) -> Iterator[int]:
        return micro_batch_indices(
            self.data_position, self.dist.rank, self.dist.world_size, self.optim_config.update_freq
        )

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _train_update(self, batches: list[Any], stop: bool) -> dict[str, Any]:
        """One optimizer update over this process's micro-batches; returns reduced sums."""
        self.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        names = self.objective.stat_names
        stat_sums = torch.zeros(2 * len(names), dtype=torch.float64, device=self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        sample_size = 0.0
        audio = 0.0
        last = len(batches) - 1
        for k, batch in enumerate(batches):
            seed_everything(derive_seed(self.run.seed, batch.index))
            batch = batch.to(self.device)
            sync = not self.dist.enabled or k == last
            with contextlib.nullcontext() if sync else self.module.no_sync():
                with self._autocast():
                    out = self.objective.step(self.module, batch)
                loss = out.loss.float()
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            loss_sum += loss.detach().double()
            sample_size += float(out.sample_size)
            audio += float(batch.audio_seconds)
            for j, name in enumerate(names):
                total, count = out.stats.get(name, (0.0, 0.0))
                stat_sums[2 * j] += torch.as_tensor(total, dtype=torch.float64).to(self.device)
                stat_sums[2 * j + 1] += float(count)
        head = torch.tensor(
            [sample_size, audio, float(stop)], dtype=torch.float64, device=self.device
        )
        vector = all_reduce_sum(torch.cat([head, loss_sum.view(1), stat_sums]), self.dist)
        values = vector.tolist()
        total_samples, total_audio, stops, total_loss = values[:4]
        sums = values[4:]
        return {
            "sample_size": total_samples,
            "audio_seconds": total_audio,
            "stop": stops > 0,
            "loss_sum": total_loss,
            "stats": {n: (sums[2 * j], sums[2 * j + 1]) for j, n in enumerate(names)},
        }

    def _apply_update(self, sample_size: float) -> tuple[float, bool]:
        """Normalise, clip and step; returns (grad norm, whether the update was applied)."""
        if sample_size <= 0:
            log.warning("update %d has no samples (every file failed?): skipped", self.step + 1)
            return 0.0, False
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        # DDP averaged the gradient sums over processes; undo that and divide by the sample size.
        factor = (self.dist.world_size if self.dist.enabled else 1.0) / sample_size
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(factor)
        max_norm = self.optim_config.clip_norm if self.optim_config.clip_norm > 0 else math.inf
        grads = [p for p in self.params if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(grads, max_norm)) if grads else 0.0
        set_lr(self.optimizer, lr_at(self.step + 1, self.optim_config))
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scaler.get_scale() < scale:
                log.warning(
                    "fp16 overflow at update %d: skipped (loss scale %g)", self.step + 1, scale
                )
                return norm, False
            return norm, True
        if not math.isfinite(norm):
            raise TrainingError(
                f"non-finite gradients at update {self.step + 1} (grad norm {norm}); lower the "
                "learning rate or enable clipping, and resume from the last checkpoint"
            )
        self.optimizer.step()
        return norm, True

    def fit(self) -> FitResult:
        """Train until ``max_updates`` (or ``stop_after``, or a stop signal); checkpoint at
        every ``save_every`` updates and at the end; write ``final/`` when finished."""
        optim, run = self.optim_config, self.run
        target = (
            optim.max_updates if run.stop_after is None else min(run.stop_after, optim.max_updates)
        )
        from tqdm.auto import tqdm

        # tqdm's disable=None hides the bar when stderr is not a terminal
        disable = None if run.progress is None else not run.progress
        bar = tqdm(
            total=target,
            initial=self.step,
            unit="upd",
            disable=True if not self.dist.is_main else disable,
            dynamic_ncols=True,
        )
        window = self._new_window()
        batches_iter = self.source.iterate(self._indices())
        stopped = False
        try:
            with StopRequest() as stop_request:
                while self.step < target:
                    batches = [next(batches_iter) for _ in range(optim.update_freq)]
                    reduced = self._train_update(batches, stop_request.requested)
                    self.data_position += self.dist.world_size * optim.update_freq
                    norm, applied = self._apply_update(reduced["sample_size"])
                    stats = {
                        n: (s / c if c else float("nan")) for n, (s, c) in reduced["stats"].items()
                    }
                    if applied:
                        self.step += 1
                        self._last_logs = self.objective.after_update(self.step) or {}
                    self._accumulate(window, reduced, norm)
                    bar.update(1 if applied else 0)
                    if self.step % run.log_every == 0 and applied:
                        record = self._flush(window)
                        if record["loss"] is not None:
                            bar.set_postfix(loss=f"{record['loss']:.4f}")
                        window = self._new_window()
                    if applied:
                        try:
                            self.objective.check(stats, self.step)
                        except Exception:
                            if window["updates"]:
                                self._flush(window)
                            raise
                    if reduced["stop"] and self.step < target:
                        stopped = True
                        break
                    if applied and self.step % run.save_every == 0 and self.step < target:
                        self.save_checkpoint()
        except BaseException:
            self.metrics.close()
            raise
        finally:
            bar.close()
            close = getattr(batches_iter, "close", None)
            if close is not None:
                close()
        if window["updates"]:
            self._flush(window)
        self.save_checkpoint()
        final = None
        finished = self.step >= optim.max_updates and not stopped
        if finished and self.dist.is_main:
            final = checkpointing.save_final(self.run_dir, self.objective.save_model)
            log.info("final model: %s", final)
        barrier(self.dist)
        self.metrics.close()
        return FitResult(
            step=self.step,
            data_position=self.data_position,
            finished=finished,
            checkpoint=self.last_checkpoint,
            final=final,
            last_metrics=self.last_metrics,
        )

    # ------------------------------------------------------------------ metrics

    def _new_window(self) -> dict[str, Any]:
        return {
            "updates": 0,
            "loss_sum": 0.0,
            "sample_size": 0.0,
            "audio_seconds": 0.0,
            "stats": {},
            "start": time.perf_counter(),
            "grad_norm": 0.0,
        }

    def _accumulate(self, window: dict[str, Any], reduced: dict[str, Any], norm: float) -> None:
        window["updates"] += 1
        window["loss_sum"] += reduced["loss_sum"]
        window["sample_size"] += reduced["sample_size"]
        window["audio_seconds"] += reduced["audio_seconds"]
        window["grad_norm"] = norm
        for name, (s, c) in reduced["stats"].items():
            acc = window["stats"].setdefault(name, [0.0, 0.0])
            acc[0] += s
            acc[1] += c

    def _flush(self, window: dict[str, Any]) -> dict[str, Any]:
        elapsed = max(time.perf_counter() - window["start"], 1e-9)
        record: dict[str, Any] = {
            "step": self.step,
            "epoch": round(self.source.epoch_of(self.data_position), 4),
            "loss": window["loss_sum"] / window["sample_size"] if window["sample_size"] else None,
        }
        for name, (s, c) in window["stats"].items():
            record[name] = s / c if c else None
        record.update(self._last_logs)
        record["lr"] = lr_at(max(self.step, 1), self.optim_config)
        record["grad_norm"] = window["grad_norm"]
        record["audio_seconds_per_second"] = window["audio_seconds"] / elapsed
        record["updates_per_second"] = window["updates"] / elapsed
        record["time"] = time.time()
        self.last_metrics = record
        self.metrics.log(record)
        return record
