"""``finetune()``: one call from a config to a fine-tuned model folder."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load_model
from ..errors import ConfigError
from ..fast import accelerate
from ..model import Emotion2vecModel
from ..pipeline import Emotion2vec
from ..training import checkpointing
from ..training.device import resolve_device
from ..training.distributed import DistInfo, barrier, init_distributed
from ..training.layerdrop import set_layerdrop
from ..training.logfile import LOGGER, add_file_log, remove_file_log
from ..training.seeding import derive_seed
from ..training.trainer import Trainer
from .config import FinetuneConfig
from .data import LabeledBatches, index_items, label_set, load_waves, read_items
from .objective import BEST, EarlyStop, FinetuneObjective
from .probe_init import probe_init_head

log = logging.getLogger("emotion2vec.finetune")

CONFIG_NAME = "finetune_config.json"
LOG_NAME = "train.log"
#: Seed stream of the fresh head's initial weights.
INIT_STREAM = 3


@dataclass
class FinetuneResult:
    """What a run produced."""

    run_dir: Path
    """The run folder."""
    step: int
    """Updates done."""
    finished: bool
    """True when training ended (``max_updates`` reached or early stop): ``final/`` written."""
    early_stopped: bool
    """True when validation UA stopped improving before ``max_updates``."""
    final: Path | None
    """``RUN_DIR/final``: the best model on the validation set (the last one without it)."""
    best_ua: float | None
    """Best validation UA (None without a validation set)."""
    best_step: int | None
    """Update of the best validation UA."""
    model: Emotion2vecModel
    """The model as trained (last weights, this process's copy)."""
    metrics: dict[str, Any]
    """The last metrics record."""


def prepare_model(
    start: Emotion2vecModel, labels: tuple[str, ...], layerdrop: float | None
) -> Emotion2vecModel:
    """A model with ``start``'s encoder and a head for ``labels`` (no pre-training decoder).

    The head is kept when ``start`` already has exactly these labels; rows of labels that
    ``start``'s head knows are copied (an emotion2vec+ head re-used for a subset, say), the others
    start fresh (PyTorch's Linear init, seeded by the caller)."""
    encoder_cfg = replace(start.config.encoder)
    if layerdrop is not None:
        encoder_cfg.layerdrop = layerdrop
        encoder_cfg.context_layerdrop = layerdrop
    config = replace(start.config, encoder=encoder_cfg, decoder=None, labels=tuple(labels))
    model = accelerate(Emotion2vec(config))  # training and probe init run the fast modules
    model.encoder.load_state_dict(start.encoder.state_dict())
    if start.head is not None:
        old = {name: i for i, name in enumerate(start.labels)}
        with torch.no_grad():
            for row, name in enumerate(labels):
                if name in old:
                    model.head.linear.weight[row] = start.head.linear.weight[old[name]]
                    model.head.linear.bias[row] = start.head.linear.bias[old[name]]
        copied = sum(name in old for name in labels)
        if copied:
            log.info("head: %d of %d rows copied from the start model's head", copied, len(labels))
    return model


def _resolve_start(init: str) -> Emotion2vecModel:
    folder = checkpointing.run_model_folder(Path(init)) if init else None
    return load_model(folder or init)


def finetune(
    config: FinetuneConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    model: Emotion2vecModel | None = None,
    dist: DistInfo | None = None,
) -> FinetuneResult:
    """Fine-tune a model for classification and return the result.

    Args:
        config: the run's configuration (stored as ``RUN_DIR/finetune_config.json``).
        run_dir: the run folder: ``checkpoints/`` (model folder + ``trainer_state.pt``, as in
            pre-training), ``best/`` (best on the validation set), ``final/``,
            ``metrics.jsonl``, ``valid.jsonl``, ``train.log``.
        resume: continue from ``RUN_DIR/checkpoints/last`` exactly.
        model: start from this model instead of ``config.init``.
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
        if not config.manifest:
            raise ConfigError("no training manifest: pass --manifest FILE")
        items = read_items(
            config.manifest, path_column=config.path_column, label_column=config.label_column
        )
        labels = config.labels or label_set(items)
        if len(labels) < 2:
            raise ConfigError(f"need at least 2 classes, got {list(labels)}")
        config = replace(config, labels=tuple(labels))
        if dist.is_main:
            config.save(run_dir / CONFIG_NAME)
        workers = 2 * config.data.workers
        train = index_items(items, labels, min_samples=config.data.min_samples, workers=workers)
        counts = train.class_counts(len(labels))
        log.info(
            "train: %d items, %.2f h; classes %s",
            len(train.files),
            sum(f.samples for f in train.files) / 16000 / 3600,
            dict(zip(labels, counts.tolist(), strict=True)),
        )
        valid = None
        if config.valid:
            valid_items = read_items(
                config.valid, path_column=config.path_column, label_column=config.label_column
            )
            vset = index_items(valid_items, labels, min_samples=400, workers=workers)
            waves = load_waves(vset.files, workers=workers)
            ok = [i for i, w in enumerate(waves) if w is not None]
            valid = ([waves[i] for i in ok], vset.label_ids[ok])
            log.info("valid: %d items", len(ok))

        fresh_head = False
        if checkpoint is not None:
            student = load_model(checkpoint)
            set_layerdrop(student.config, config.layerdrop)
        else:
            start = model if model is not None else _resolve_start(config.init)
            fresh_head = start.head is None or not set(labels) <= set(start.labels)
            torch.manual_seed(derive_seed(config.run.seed, 0, INIT_STREAM))
            student = prepare_model(start, tuple(labels), config.layerdrop)
        objective = FinetuneObjective(
            student,
            config,
            class_counts=counts,
            valid=valid,
            run_dir=run_dir,
            is_main=dist.is_main,
        )
        if checkpoint is None:
            student.to(resolve_device(config.run.device, dist))  # for the probe and validation
        valid_pred = None
        if config.head_init == "probe" and fresh_head:
            # every process fits the same probe on the same data (deterministic)
            valid_pred = probe_init_head(
                student,
                [f.path for f in train.files],
                train.label_ids,
                valid=valid,
                class_weights=objective.class_weight,
                batch_seconds=config.valid_batch_seconds,
            )["valid_pred"]
        if checkpoint is None and valid is not None:
            # the start is a candidate too: fine-tuning that only hurts returns the start model
            objective.validate(0, predictions=valid_pred)
        source = LabeledBatches(
            train, config.data, seed=config.run.seed, normalize=student.config.normalize_waveform
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
        )
        if checkpoint is not None:
            trainer.resume_from(checkpoint)
        n_train = sum(p.numel() for p in student.parameters() if p.requires_grad)
        log.info(
            "fine-tuning %s: %.2fM trainable of %.2fM parameters; %d classes; layer decay %g; "
            "%d micro-batches per epoch",
            config.train,
            n_train / 1e6,
            sum(p.numel() for p in student.parameters()) / 1e6,
            len(labels),
            config.layer_decay,
            source.batches_per_epoch,
        )
        early = objective.stop
        if early:
            log.info("this run already stopped early; writing final/ again")
            fit_step, fit_metrics, finished = trainer.step, {}, True
        else:
            try:
                fit = trainer.fit()
                fit_step, fit_metrics, finished = fit.step, fit.last_metrics, fit.finished
                if finished and valid is not None and fit.step % config.eval_every:
                    objective.validate(fit.step)  # the last updates count too
            except EarlyStop as exc:
                log.info("%s", exc)
                early, finished = True, True
                fit_step, fit_metrics = trainer.step, trainer.last_metrics
                trainer.save_checkpoint()
        final = None
        if finished and dist.is_main:
            best = run_dir / BEST
            if valid is not None and (best / "config.json").is_file():
                final = checkpointing.write_dir_atomically(
                    run_dir / checkpointing.FINAL,
                    lambda tmp: shutil.copytree(best, tmp, dirs_exist_ok=True),
                )
            else:
                final = checkpointing.save_final(run_dir, objective.save_model)
            log.info("final model: %s", final)
        barrier(dist)
        return FinetuneResult(
            run_dir=run_dir,
            step=fit_step,
            finished=finished,
            early_stopped=early,
            final=final,
            best_ua=objective.best_ua if valid is not None else None,
            best_step=objective.best_step if valid is not None else None,
            model=student,
            metrics=fit_metrics,
        )
    finally:
        remove_file_log(loggers, handler)
