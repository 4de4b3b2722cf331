"""The configs the training engine reads, shared by pre-training and fine-tuning.

:class:`DataConfig` (batching of audio files), :class:`OptimConfig` (optimizer, schedule,
accumulation) and :class:`RunConfig` (device, precision, logging, checkpoints). Their defaults
are the authors' pre-training run; fine-tuning overrides what it does differently in its own
config's factories. Stored run configs hold these as plain JSON sections (``data``, ``optim``,
``run``), so a field renamed here breaks every stored run: add fields, never rename them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text
from ..errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ADAMS = ("fairseq", "torch")


@dataclass(kw_only=True)
class DataConfig:
    """Audio files and how they are cut into micro-batches (pre-training: unlabeled audio;
    fine-tuning: the manifest's files, with its own defaults)."""

    paths: tuple[str, ...] = ()
    """Audio directories (searched recursively), audio files or manifests (csv/tsv/jsonl/txt)."""
    min_samples: int = 8_000
    """Files shorter than this (16 kHz samples) are not used (the run: ``min_sample_size=8000``,
    0.5 s)."""
    max_samples: int = 320_000
    """Longer files are randomly cropped to this many samples (data2vec 2.0: ``max_sample_size``)."""
    max_tokens: int = 600_000
    """Padded input samples per micro-batch and process, before cloning (the run: 600000 per
    GPU; x 4 GPUs x update_freq 6 = 14.4 M samples, 15 min of audio, per update)."""
    max_batch_size: int | None = None
    """Optional cap on utterances per micro-batch."""
    crop_to_shortest: bool = True
    """Crop every utterance of a batch, at a random offset, to the batch's shortest (fairseq's
    ``pad=False``), so batches carry no padding; False pads to the longest instead."""
    workers: int = 2
    """Background threads decoding audio ahead of the model."""
    prefetch: int = 4
    """Micro-batches decoded ahead of the one being trained on."""


@dataclass(kw_only=True)
class OptimConfig:
    """Adam with decoupled weight decay, cosine schedule with warm-up, clipping and accumulation."""

    lr: float = 7.5e-5
    """Peak learning rate (paper)."""
    betas: tuple[float, float] = (0.9, 0.98)
    """Adam betas (data2vec 2.0)."""
    eps: float = 1e-6
    """Adam epsilon (data2vec 2.0)."""
    weight_decay: float = 0.01
    """Decoupled weight decay (fairseq's ``adam``, AdamW-style)."""
    adam: str = "fairseq"
    """"fairseq" (the runs' Adam: eps added before the bias correction) or "torch" (AdamW)."""
    decay_all: bool = True
    """Weight decay on every parameter (the run: fairseq's plain ``adam`` ignores data2vec 2.0's
    per-parameter overrides); False exempts biases, norms (1-D parameters) and the ALiBi scale."""
    max_updates: int = 100_000
    """Length of the schedule in optimizer updates (template ``max_update``)."""
    warmup_fraction: float = 0.05
    """Linear warm-up over this fraction of ``max_updates`` (the run: 5,000 of 100,000)."""
    warmup_updates: int | None = None
    """Warm-up length in updates; overrides ``warmup_fraction`` when set."""
    final_lr_ratio: float = 0.0
    """The cosine decays to ``lr * final_lr_ratio``."""
    clip_norm: float = 0.0
    """Clip the global gradient norm to this (0: no clipping, the run's ``clip_norm``)."""
    update_freq: int = 1
    """Micro-batches accumulated per update (per process)."""


@dataclass(kw_only=True)
class RunConfig:
    """Where and how the engine runs."""

    device: str = "auto"
    """"auto" (the local GPU if there is one), "cpu", "cuda" or "cuda:N"."""
    precision: str = "auto"
    """"auto" (fp32 on CPU, fp16 with loss scaling on GPUs, as the run), "fp32", "bf16", "fp16"."""
    seed: int = 1
    """Seed of everything random; each micro-batch reseeds from (seed, its global index)."""
    threads: int | None = None
    """CPU threads for torch (None: torch's default)."""
    log_every: int = 10
    """Write a metrics line every this many updates."""
    save_every: int = 1_000
    """Checkpoint every this many updates (and always at the end)."""
    keep_last: int = 3
    """Checkpoints kept; older ones are deleted."""
    tensorboard: bool = False
    """Also write TensorBoard event files (needs the ``tensorboard`` package)."""
    progress: bool | None = None
    """Progress bar: None shows it on a terminal only."""
    plot: bool = True
    """Draw ``RUN_DIR/loss.png`` at the end (and at checkpoints, at most every 5 minutes)."""
    stop_after: int | None = None
    """Stop (with a checkpoint) after this update without changing the schedule; resume later."""


class JsonConfig:
    """``save``/``load`` as JSON for a config class with ``to_dict``/``from_dict``; ``KIND``
    names it in errors."""

    KIND = "config"

    def save(self, path: str | Path) -> None:
        """Write as JSON (atomically)."""
        write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path):
        """Read a JSON file written by :meth:`save`."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read {cls.KIND} ({exc})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(doc)


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate_data(d: DataConfig) -> None:
    """Raise ConfigError naming the ``data.*`` field whose value cannot work."""
    _need(d.min_samples >= 400, "data.min_samples must be >= 400 (one frame)")
    _need(d.max_samples >= d.min_samples, "data.max_samples must be >= data.min_samples")
    _need(d.max_tokens > 0, "data.max_tokens must be > 0")
    _need(d.max_batch_size is None or d.max_batch_size >= 1, "data.max_batch_size must be >= 1")
    _need(d.workers >= 1 and d.prefetch >= 1, "data.workers and data.prefetch must be >= 1")


def validate_optim(p: OptimConfig) -> None:
    """Raise ConfigError naming the ``optim.*`` field whose value cannot work."""
    _need(p.lr > 0, "optim.lr must be > 0")
    _need(p.max_updates >= 1, "optim.max_updates must be >= 1")
    _need(0.0 <= p.warmup_fraction < 1.0, "optim.warmup_fraction must lie in [0, 1)")
    _need(p.warmup_updates is None or p.warmup_updates >= 0, "optim.warmup_updates must be >= 0")
    _need(p.update_freq >= 1, "optim.update_freq must be >= 1")
    _need(p.adam in ADAMS, "optim.adam must be 'fairseq' or 'torch'")
    _need(p.clip_norm >= 0, "optim.clip_norm must be >= 0")


def validate_run(r: RunConfig) -> None:
    """Raise ConfigError naming the ``run.*`` field whose value cannot work."""
    _need(r.precision in PRECISIONS, f"run.precision must be one of {PRECISIONS}")
    _need(r.log_every >= 1 and r.save_every >= 1, "run.log_every and run.save_every must be >= 1")
    _need(r.keep_last >= 1, "run.keep_last must be >= 1")
    _need(r.stop_after is None or r.stop_after >= 1, "run.stop_after must be >= 1")
