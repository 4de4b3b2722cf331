"""Configuration of self-supervised pre-training.

Defaults are the settings of the authors' own run behind emotion2vec_base: their launch script
``audio_base_ls_cp_iemocap_meld_cmumosei_msppodcast_mead_cls.sh`` and the configs and code it
uses in github ddlBoJack/fairseq, branch ``emotion2vec`` (commit 47cc7d53). Where we offer
something else it is a named option; ``docs/pretraining.md`` opens with the table of every
setting. :class:`OptimConfig` and :class:`RunConfig` are generic: the training engine
(:mod:`emotion2vec.pretrain.trainer`) reads only those two, so fine-tuning reuses them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError

UTTERANCE_LOSSES = ("chunk", "token", "global", "none")
UTTERANCE_WEIGHTINGS = ("sum", "mean")
INIT_LAYOUTS = ("authors", "split", "keep")
CHUNK_POOLINGS = ("mean", "each")
MASK_TYPES = ("spans", "block")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: ``--preset`` names; "base" is emotion2vec_base, any name of :data:`emotion2vec.config.PRESETS`
#: also works.
PRESET_ALIASES = {"base": "emotion2vec_base", "tiny": "tiny"}


@dataclass(kw_only=True)
class DataConfig:
    """Unlabeled audio and how it is cut into batches."""

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
class MaskConfig:
    """Masking of the student's input frames (data2vec 2.0)."""

    mask_prob: float = 0.5
    """Masked fraction if spans did not overlap: ``mask_prob * T / mask_length`` span starts per
    row (official ``mask_prob``; with overlaps about 41% of frames end up masked)."""
    mask_length: int = 5
    """Frames per span (official ``mask_length``)."""
    min_masks: int = 1
    """At least this many spans per row (official ``min_masks``)."""
    mask_type: str = "block"
    """"block" (the run: fairseq's precomputed block masks, drawn per file over its whole length,
    exactly ``int(T * mask_prob)`` masked frames, then cropped with the batch: about 50% masked);
    "spans": data2vec 2.0's in-model masking (random span starts, spans may overlap, 39-41%)."""
    mask_prob_adjust: float = 0.05
    """Block masks only: extra span centres, ``T * (mask_prob + adjust) / mask_length``."""
    precompute: bool = True
    """Compute masks in the background data workers (the run precomputes them in the dataset);
    False computes them in the training step (same masks either way)."""


@dataclass(kw_only=True)
class ObjectiveConfig:
    """The online-distillation objective: EMA teacher targets, frame and utterance losses."""

    clone_batch: int = 8
    """Each utterance is repeated this many times with independent masks (``clone_batch``)."""
    average_top_k_layers: int = 8
    """Targets average the FFN outputs of this many top blocks (clamped to the model's depth)."""
    instance_norm_targets: bool = True
    """Instance-normalise each block's output over time before averaging."""
    utterance_loss: str = "chunk"
    """"chunk" (pool several extra tokens), "token" (one extra token), "global" (mean of the
    student's frame outputs) or "none"."""
    utterance_alpha: float = 1.0
    """Weight of the utterance-level loss (the run: ``cls_loss=1``)."""
    utterance_weighting: str = "sum"
    """"sum" (the run: the utterance loss is multiplied by the micro-batch's masked frames before
    fairseq divides by the update's, i.e. a sum over the micro-batch's rows) or "mean" (the
    paper's L_frm + alpha * L_utt with both terms means: rows weighted by their masked frames)."""
    utterance_reads_dropout: bool = True
    """The utterance prediction reads the student outputs after the decoder's input dropout (the
    run: that dropout is in place); False reads them undropped."""
    chunk_pooling: str = "mean"
    """Chunk variant: "mean" averages the chunk tokens' outputs, then regresses the target;
    "each" regresses the target from every chunk token and averages the losses."""
    chunk_tokens: int | None = None
    """Chunk variant: how many extra tokens form the chunk (None: all of the model's)."""
    token_index: int = -1
    """Token variant: which extra token predicts the utterance target (-1: the last, as
    data2vec 2.0's cls loss)."""
    loss_scale: float | None = None
    """Factor on squared errors; None for 1/sqrt(D) (official ``loss_scale: null``)."""
    decoder_noise_std: float = 0.01
    """Std of the noise that stands in for masked frames at the decoder input (``mask_noise_std``)."""
    ema_decay: float = 0.999
    """EMA decay at the first update (official ``ema_decay``)."""
    ema_end_decay: float = 0.99999
    """EMA decay from ``ema_anneal_end_step`` on (official ``ema_end_decay``)."""
    ema_anneal_end_step: int = 20_000
    """Updates over which the decay rises linearly from start to end."""
    min_target_var: float = 0.1
    """Stop when the targets' mean per-channel std falls below this (collapse guard)."""
    min_pred_var: float = 0.01
    """Stop when the predictions' mean per-channel std falls below this (collapse guard)."""
    var_check_after: int = 5_000
    """The collapse guards apply only after this many updates."""
    extra_tokens_if_missing: int = 10
    """Extra tokens added when the start model has none (a data2vec 2.0 checkpoint)."""
    init_layout: str = "authors"
    """How a data2vec 2.0 start checkpoint's blocks map onto the model (``--init``): "authors"
    (the run's ``strict=False`` load: checkpoint blocks 0..depth-1 become the main blocks, the
    context blocks stay freshly initialised, further checkpoint blocks are dropped), "split"
    (the first ``context_depth`` checkpoint blocks become the context blocks, the next ``depth``
    the main blocks) or "keep" (the checkpoint's own architecture, e.g. 12 main blocks)."""
    init_context_depth: int = 4
    """Context (prenet) blocks of the model built from a data2vec 2.0 start ("authors", "split")."""
    init_depth: int = 8
    """Main blocks of the model built from a data2vec 2.0 start ("authors", "split")."""
    teacher_from_checkpoint: bool = True
    """Start the EMA teacher from the start checkpoint's ``_ema`` copy when it has one (the run:
    fairseq restores it); False copies the student."""


@dataclass(kw_only=True)
class OptimConfig:
    """Adam with decoupled weight decay, cosine schedule with warm-up, clipping and accumulation
    (generic)."""

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
    """Where and how the engine runs (generic)."""

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
        from ..atomic import write_text

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


#: What fields added with the authors' recipe meant before it (for configs stored by older runs).
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "objective": {"utterance_weighting": "mean", "utterance_reads_dropout": False},
    "optim": {"adam": "torch", "decay_all": False},
}


@dataclass(kw_only=True)
class PretrainConfig(JsonConfig):
    """Everything a pre-training run needs; stored as ``RUN_DIR/pretrain_config.json``."""

    KIND: ClassVar[str] = "pre-training config"

    preset: str = "base"
    """Model to train from scratch: "base" (emotion2vec_base), "tiny", or any model preset."""
    init: str | None = None
    """Start from this model instead: a published name, an official checkpoint, one of our
    model folders, or a previous run's folder."""
    layerdrop: float | None = None
    """Override the model's layer drop (main and context blocks) during training."""
    data: DataConfig = field(default_factory=DataConfig)
    """Audio and batching."""
    masking: MaskConfig = field(default_factory=MaskConfig)
    """Student masks."""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """Teacher, targets and losses."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer and schedule."""
    run: RunConfig = field(default_factory=RunConfig)
    """Device, precision, logging and checkpoints."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        data = dict(data)
        parts = {
            "data": DataConfig,
            "masking": MaskConfig,
            "objective": ObjectiveConfig,
            "optim": OptimConfig,
            "run": RunConfig,
        }
        kwargs: dict[str, Any] = {}
        # a config stored before the authors' recipe became the default (no utterance_weighting)
        # keeps the behaviour it was trained with when it is resumed
        legacy = (
            isinstance(data.get("objective"), dict)
            and "utterance_weighting" not in data["objective"]
        )
        try:
            for name, kind in parts.items():
                sub = dict(data.pop(name, None) or {})
                if legacy:
                    sub = {**LEGACY_DEFAULTS.get(name, {}), **sub}
                if name == "data" and "paths" in sub:
                    sub["paths"] = tuple(str(p) for p in sub["paths"])
                if name == "optim" and "betas" in sub:
                    sub["betas"] = tuple(float(b) for b in sub["betas"])
                kwargs[name] = kind(**sub)
            config = cls(**kwargs, **data)
        except TypeError as exc:
            raise ConfigError(f"invalid pre-training config: {exc}") from None
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError naming the field when a value cannot work."""
        d, m, o, p, r = self.data, self.masking, self.objective, self.optim, self.run

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(d.min_samples >= 400, "data.min_samples must be >= 400 (one frame)")
        need(d.max_samples >= d.min_samples, "data.max_samples must be >= data.min_samples")
        need(d.max_tokens > 0, "data.max_tokens must be > 0")
        need(d.max_batch_size is None or d.max_batch_size >= 1, "data.max_batch_size must be >= 1")
        need(d.workers >= 1 and d.prefetch >= 1, "data.workers and data.prefetch must be >= 1")
        need(0.0 < m.mask_prob < 1.0, "masking.mask_prob must lie in (0, 1)")
        need(m.mask_length >= 1, "masking.mask_length must be >= 1")
        need(m.min_masks >= 0, "masking.min_masks must be >= 0")
        need(m.mask_type in MASK_TYPES, f"masking.mask_type must be one of {MASK_TYPES}")
        need(o.clone_batch >= 1, "objective.clone_batch must be >= 1")
        need(o.average_top_k_layers >= 1, "objective.average_top_k_layers must be >= 1")
        need(
            o.utterance_loss in UTTERANCE_LOSSES,
            f"objective.utterance_loss must be one of {UTTERANCE_LOSSES}",
        )
        need(
            o.chunk_pooling in CHUNK_POOLINGS,
            f"objective.chunk_pooling must be one of {CHUNK_POOLINGS}",
        )
        need(o.chunk_tokens is None or o.chunk_tokens >= 1, "objective.chunk_tokens must be >= 1")
        need(o.utterance_alpha >= 0, "objective.utterance_alpha must be >= 0")
        need(
            0.0 <= o.ema_decay <= o.ema_end_decay <= 1.0,
            "need 0 <= objective.ema_decay <= objective.ema_end_decay <= 1",
        )
        need(o.ema_anneal_end_step >= 0, "objective.ema_anneal_end_step must be >= 0")
        need(o.extra_tokens_if_missing >= 1, "objective.extra_tokens_if_missing must be >= 1")
        need(
            o.utterance_weighting in UTTERANCE_WEIGHTINGS,
            f"objective.utterance_weighting must be one of {UTTERANCE_WEIGHTINGS}",
        )
        need(o.init_layout in INIT_LAYOUTS, f"objective.init_layout must be one of {INIT_LAYOUTS}")
        need(o.init_context_depth >= 0, "objective.init_context_depth must be >= 0")
        need(o.init_depth >= 1, "objective.init_depth must be >= 1")
        need(p.lr > 0, "optim.lr must be > 0")
        need(p.max_updates >= 1, "optim.max_updates must be >= 1")
        need(0.0 <= p.warmup_fraction < 1.0, "optim.warmup_fraction must lie in [0, 1)")
        need(p.warmup_updates is None or p.warmup_updates >= 0, "optim.warmup_updates must be >= 0")
        need(p.update_freq >= 1, "optim.update_freq must be >= 1")
        need(p.adam in ("fairseq", "torch"), "optim.adam must be 'fairseq' or 'torch'")
        need(p.clip_norm >= 0, "optim.clip_norm must be >= 0")
        need(r.precision in PRECISIONS, f"run.precision must be one of {PRECISIONS}")
        need(
            r.log_every >= 1 and r.save_every >= 1, "run.log_every and run.save_every must be >= 1"
        )
        need(r.keep_last >= 1, "run.keep_last must be >= 1")
        need(r.stop_after is None or r.stop_after >= 1, "run.stop_after must be >= 1")
        need(self.layerdrop is None or 0.0 <= self.layerdrop < 1.0, "layerdrop must lie in [0, 1)")
