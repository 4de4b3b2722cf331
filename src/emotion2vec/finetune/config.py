"""Configuration of supervised fine-tuning (an emotion classifier on top of the encoder).

The optimiser, schedule, batching and run options are the training engine's own
(:class:`~emotion2vec.training.config.OptimConfig`, :class:`~emotion2vec.training.config.RunConfig`,
:class:`~emotion2vec.training.config.DataConfig`); only their defaults differ.
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

#: What is trained: the head only, the head + the top N blocks, or everything.
TRAIN_MODES = ("head", "top", "all")
#: How a fresh classification head starts.
HEAD_INITS = ("probe", "random")


def _data_defaults() -> DataConfig:
    # Labeled utterances are short: keep them whole (up to 30 s), pad instead of cropping.
    return DataConfig(
        min_samples=400, max_samples=480_000, max_tokens=960_000, crop_to_shortest=False
    )


def _optim_defaults() -> OptimConfig:
    # fine-tuning keeps its own choices (AdamW with decay exemptions, clipping at 1.0); the
    # pre-training defaults are the authors' pre-training run
    return OptimConfig(
        lr=5e-5,
        max_updates=2_000,
        warmup_fraction=0.1,
        weight_decay=0.01,
        clip_norm=1.0,
        adam="torch",
        decay_all=False,
    )


def _run_defaults() -> RunConfig:
    return RunConfig(save_every=500, log_every=10, plot=False)


@dataclass(kw_only=True)
class FinetuneConfig(JsonConfig):
    """Everything a fine-tuning run needs; stored as ``RUN_DIR/finetune_config.json``."""

    KIND: ClassVar[str] = "fine-tuning config"

    init: str = ""
    """The model to start from: a published name, an official checkpoint or folder, one of our
    model folders, or a pre-training run folder (its final model)."""
    manifest: str = ""
    """Labeled training manifest (CSV/TSV/JSONL, :func:`emotion2vec.evaluate.read_manifest`)."""
    valid: str | None = None
    """Labeled validation manifest; enables evaluation every ``eval_every`` updates, early
    stopping on its UA, and ``final/`` = the best model on it."""
    labels: tuple[str, ...] = ()
    """The label set, in output order; empty: the sorted labels of the training manifest.
    Items whose label is not in the set are left out (e.g. IEMOCAP's 4 classes)."""
    path_column: str | None = None
    """Manifest column of the audio paths (None: ``path``)."""
    label_column: str | None = None
    """Manifest column of the labels (None: ``label``)."""
    train: str = "all"
    """"head": the classifier only (the encoder frozen, in eval mode); "top": the head and the
    top ``top_blocks`` transformer blocks; "all": everything (see ``freeze_cnn``)."""
    top_blocks: int = 2
    """With ``train="top"``: how many blocks, counted from the top over context + main blocks."""
    freeze_cnn: bool = True
    """With ``train="all"``: keep the conv feature extractor frozen (wav2vec 2.0 / data2vec
    fine-tuning practice); the projection and everything above train."""
    layer_decay: float = 1.0
    """Layer-wise learning-rate decay: the head gets lr, block i from the top lr * decay**i
    (i = 1 for the top block), the embedding layers (CNN, projection, positional conv, ALiBi
    scales, extra tokens, context LayerNorm) lr * decay**(L + 1). 1.0: one lr for everything."""
    head_lr_scale: float = 1.0
    """Extra factor on the head's learning rate (a fresh head often wants more than the body)."""
    head_init: str = "probe"
    """How a fresh head starts: "probe" (the logistic regression of the start model's frozen
    utterance embeddings of the training set, L2 chosen on ``valid``: LP-FT) or "random"
    (PyTorch's Linear init). A head the start model already has for these labels is kept."""
    class_weights: bool = False
    """Weight the cross-entropy by inverse class frequency of the training set (N / (C n_c))."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy."""
    layerdrop: float | None = 0.0
    """Layer drop during fine-tuning (None: the model's own, 0.05 for the published models)."""
    eval_every: int = 100
    """Evaluate on ``valid`` every this many updates (and at the end)."""
    patience: int | None = 10
    """Stop after this many evaluations without a UA improvement (None: never stop early)."""
    min_delta: float = 0.0
    """An evaluation improves on the best when its UA exceeds it by more than this."""
    valid_batch_seconds: float = 60.0
    """Padded audio seconds per validation batch."""
    data: DataConfig = field(default_factory=_data_defaults)
    """Audio batching of the training set (the engine's, :mod:`emotion2vec.training.batches`)."""
    optim: OptimConfig = field(default_factory=_optim_defaults)
    """Optimizer and schedule."""
    run: RunConfig = field(default_factory=_run_defaults)
    """Device, precision, logging and checkpoints."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        data = dict(data)
        kwargs: dict[str, Any] = {}
        try:
            for name, kind, default in (
                ("data", DataConfig, _data_defaults),
                ("optim", OptimConfig, _optim_defaults),
                ("run", RunConfig, _run_defaults),
            ):
                sub = dataclasses.asdict(default())
                sub.update(data.pop(name, None) or {})
                if name == "data":
                    sub["paths"] = tuple(str(p) for p in sub["paths"])
                if name == "optim":
                    sub["betas"] = tuple(float(b) for b in sub["betas"])
                kwargs[name] = kind(**sub)
            if "labels" in data:
                data["labels"] = tuple(data["labels"])
            config = cls(**kwargs, **data)
        except TypeError as exc:
            raise ConfigError(f"invalid fine-tuning config: {exc}") from None
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError naming the field when a value cannot work."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(self.train in TRAIN_MODES, f"train must be one of {TRAIN_MODES}")
        need(self.head_init in HEAD_INITS, f"head_init must be one of {HEAD_INITS}")
        need(self.top_blocks >= 0, "top_blocks must be >= 0")
        need(0.0 < self.layer_decay <= 1.0, "layer_decay must lie in (0, 1]")
        need(self.head_lr_scale > 0, "head_lr_scale must be > 0")
        need(0.0 <= self.label_smoothing < 1.0, "label_smoothing must lie in [0, 1)")
        need(self.layerdrop is None or 0.0 <= self.layerdrop < 1.0, "layerdrop must lie in [0, 1)")
        need(self.eval_every >= 1, "eval_every must be >= 1")
        need(self.patience is None or self.patience >= 1, "patience must be >= 1")
        need(self.valid_batch_seconds > 0, "valid_batch_seconds must be > 0")
        need(len(set(self.labels)) == len(self.labels), "labels must be distinct")
        validate_data(self.data)
        validate_optim(self.optim)
        validate_run(self.run)
