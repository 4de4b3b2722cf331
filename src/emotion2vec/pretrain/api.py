"""``pretrain()``: one call from a config to a trained run folder."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load_model
from ..errors import ConfigError
from ..model import Emotion2vecModel
from ..training import checkpointing
from ..training.batches import AudioBatches
from ..training.device import resolve_device, resolve_precision
from ..training.distributed import DistInfo, barrier, init_distributed
from ..training.layerdrop import set_layerdrop
from ..training.logfile import LOGGER, add_file_log, remove_file_log
from ..training.metrics import METRICS_NAME
from ..training.seeding import derive_seed
from ..training.trainer import Trainer
from .config import PretrainConfig
from .data import DataIndex, build_index, load_index, save_index
from .objective import PretrainObjective
from .plots import PLOT_NAME, plot_metrics
from .start import prepare_start

log = logging.getLogger("emotion2vec.pretrain")

CONFIG_NAME = "pretrain_config.json"
INDEX_NAME = "data_index.tsv"
SKIPPED_NAME = "skipped_files.tsv"
LOG_NAME = "train.log"
#: Seed stream of the initial weights (micro-batches use stream 0 and masks stream 1).
INIT_STREAM = 2


@dataclass
class PretrainResult:
    """What a run produced."""

    run_dir: Path
    """The run folder."""
    step: int
    """Updates done."""
    finished: bool
    """True when ``max_updates`` was reached (``final/`` written)."""
    final: Path | None
    """``RUN_DIR/final`` when finished (main process)."""
    checkpoint: Path | None
    """The last checkpoint folder (main process)."""
    model: Emotion2vecModel
    """The trained student (this process's copy)."""
    metrics: dict[str, Any]
    """The last metrics record."""


def _data_index(run_dir: Path, config: PretrainConfig, dist: DistInfo, reuse: bool) -> DataIndex:
    """The run's files: read from the stored index when resuming (the same files, whatever
    happened to the folders since), probed from ``config.data.paths`` otherwise."""
    path = run_dir / INDEX_NAME
    if dist.is_main and not (reuse and path.is_file()):
        index = build_index(
            config.data.paths, min_samples=config.data.min_samples, workers=2 * config.data.workers
        )
        save_index(path, index)
        if index.skipped:
            lines = "".join(f"{p}\t{r}\n" for p, r in index.skipped)
            (run_dir / SKIPPED_NAME).write_text("path\treason\n" + lines, encoding="utf-8")
        log.info(
            "data: %d files, %.2f h; %d unreadable skipped%s; %d shorter than %d samples left out",
            len(index.files),
            index.hours,
            len(index.skipped),
            f" (see {SKIPPED_NAME})" if index.skipped else "",
            index.too_short,
            config.data.min_samples,
        )
    barrier(dist)
    return load_index(path)


#: Seconds between loss-plot redraws at checkpoints (a draw costs about a second).
REDRAW_INTERVAL = 300.0


def _redraw(run_dir: Path) -> None:
    try:
        plot_metrics(run_dir / METRICS_NAME, run_dir / PLOT_NAME)
    except ConfigError as exc:
        log.debug("no loss plot: %s", exc)


class _Redraw:
    """Checkpoint hook: redraw the loss plot when the last draw is old enough."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.last = time.monotonic()

    def __call__(self, trainer: Trainer) -> None:
        if time.monotonic() - self.last >= REDRAW_INTERVAL:
            _redraw(self.run_dir)
            self.last = time.monotonic()


def pretrain(
    config: PretrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    model: Emotion2vecModel | None = None,
    dist: DistInfo | None = None,
) -> PretrainResult:
    """Pre-train (or continue pre-training) and return the result.

    Args:
        config: the run's configuration (stored as ``RUN_DIR/pretrain_config.json``).
        run_dir: the run folder (checkpoints, ``final/``, ``metrics.jsonl``, ``loss.png``,
            ``train.log``, ``data_index.tsv``).
        resume: continue from ``RUN_DIR/checkpoints/last`` exactly (weights, teacher, optimizer,
            schedule, RNG and data position). Without it, a folder with checkpoints is refused.
        model: start from this model instead of ``config.init`` / ``config.preset``.
        dist: rank and world size; by default read from torchrun's environment.
    """
    config.validate()
    run_dir = Path(run_dir)
    dist = dist or init_distributed(config.run.device)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(dist)
    # the engine's lines (checkpoints, resume, skipped files) belong in the run's log too
    loggers = [log, logging.getLogger(LOGGER)]
    handler = add_file_log(loggers, run_dir / LOG_NAME, dist.is_main)
    try:
        checkpoint = checkpointing.resume_point(run_dir, resume)
        if dist.is_main:
            config.save(run_dir / CONFIG_NAME)
        index = _data_index(run_dir, config, dist, reuse=resume)

        torch.manual_seed(derive_seed(config.run.seed, 0, INIT_STREAM))
        teacher = None
        if checkpoint is not None:
            student = load_model(checkpoint)
            set_layerdrop(student.config, config.layerdrop)
        else:
            start = prepare_start(config, model)
            student, teacher = start.model, start.teacher
        objective = PretrainObjective(
            student, config.masking, config.objective, seed=config.run.seed, teacher=teacher
        )
        source = AudioBatches(
            index.files,
            config.data,
            seed=config.run.seed,
            normalize=student.config.normalize_waveform,
            transform=objective.precompute if config.masking.precompute else None,
        )
        enc = student.config.encoder
        trainer = Trainer(
            objective,
            source,
            optim=config.optim,
            run=config.run,
            run_dir=run_dir,
            dist=dist,
            config=config.to_dict(),
            find_unused_parameters=enc.layerdrop > 0 or enc.context_layerdrop > 0,
            on_checkpoint=_Redraw(run_dir) if config.run.plot else None,
        )
        if checkpoint is not None:
            trainer.resume_from(checkpoint)
        device = resolve_device(config.run.device, dist)
        precision = resolve_precision(config.run.precision, device)
        n_params = sum(p.numel() for p in objective.module.parameters() if p.requires_grad)
        log.info(
            "student: %.2fM trainable parameters (D=%d, %d+%d blocks, %d extra tokens); teacher "
            "targets: top %d blocks; utterance loss %s (alpha %g)",
            n_params / 1e6,
            enc.embed_dim,
            enc.context_depth,
            enc.depth,
            enc.num_extra_tokens,
            objective.top_k,
            config.objective.utterance_loss,
            config.objective.utterance_alpha,
        )
        log.info(
            "%d micro-batches per epoch; %d process(es) x %d accumulation step(s) per update; "
            "device %s, %s",
            source.batches_per_epoch,
            dist.world_size,
            config.optim.update_freq,
            device,
            "fp32" if precision is None else f"{precision} autocast".replace("torch.", ""),
        )
        fit = trainer.fit()
        if dist.is_main and config.run.plot:
            _redraw(run_dir)
        return PretrainResult(
            run_dir=run_dir,
            step=fit.step,
            finished=fit.finished,
            final=fit.final,
            checkpoint=fit.checkpoint,
            model=student,
            metrics=fit.last_metrics,
        )
    finally:
        remove_file_log(loggers, handler)
