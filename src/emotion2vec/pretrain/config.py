"""Configuration of self-supervised pre-training.

Defaults are the settings of the authors' own run behind emotion2vec_base: their launch script
``audio_base_ls_cp_iemocap_meld_cmumosei_msppodcast_mead_cls.sh`` and the configs and code it
uses in github ddlBoJack/fairseq, branch ``emotion2vec`` (commit 47cc7d53). Where we offer
something else it is a named option; ``docs/pretraining.md`` opens with the table of every
setting. The sections the training engine reads (:class:`DataConfig`, :class:`OptimConfig`,
:class:`RunConfig`) are :mod:`emotion2vec.training.config`'s, shared with fine-tuning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError
from ..training.config import (
    DataConfig,
    JsonConfig,
    OptimConfig,
    RunConfig,
    validate_data,
    validate_optim,
    validate_run,
)

UTTERANCE_LOSSES = ("chunk", "token", "global", "none")
UTTERANCE_WEIGHTINGS = ("sum", "mean")
INIT_LAYOUTS = ("authors", "split", "keep")
CHUNK_POOLINGS = ("mean", "each")
MASK_TYPES = ("spans", "block")
#: ``--preset`` names; "base" is emotion2vec_base, any name of :data:`emotion2vec.config.PRESETS`
#: also works.
PRESET_ALIASES = {"base": "emotion2vec_base", "tiny": "tiny"}


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
        m, o = self.masking, self.objective

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        validate_data(self.data)
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
        validate_optim(self.optim)
        validate_run(self.run)
        need(self.layerdrop is None or 0.0 <= self.layerdrop < 1.0, "layerdrop must lie in [0, 1)")
