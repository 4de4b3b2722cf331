"""Self-supervised pre-training of emotion2vec: online distillation from an EMA teacher with a
frame-level and an utterance-level loss (Ma et al. 2024, on data2vec 2.0's mechanics).

    from emotion2vec.pretrain import PretrainConfig, pretrain

    config = PretrainConfig(preset="tiny")
    config.data.paths = ("corpus/",)
    config.optim.max_updates = 2000
    result = pretrain(config, "runs/tiny")          # RUN_DIR/final is a normal model folder
    emotion2vec.load_model(result.final).extract("speech.wav")

The engine (:mod:`emotion2vec.training`) is objective-agnostic; :mod:`.objective` is the
pre-training plug-in. See ``docs/pretraining.md`` for the decisions on what upstream leaves open.
The engine's names listed here (``Trainer``, ``DistInfo``, ``OptimConfig``, ...) are
:mod:`emotion2vec.training`'s, kept importable from here for code written before it existed.
"""

from ..training import (
    AudioBatches,
    Batch,
    DataConfig,
    DistInfo,
    FitResult,
    Objective,
    OptimConfig,
    RunConfig,
    StepOutput,
    Trainer,
    TrainingError,
    init_distributed,
    read_metrics,
)
from .api import PretrainResult, pretrain
from .config import MaskConfig, ObjectiveConfig, PretrainConfig
from .data import build_index
from .ema import EmaTeacher, ema_decay_at
from .objective import CollapseError, MaskedStudent, PretrainObjective
from .plots import plot_metrics
from .start import load_start_model, prepare_model

__all__ = [
    "AudioBatches",
    "Batch",
    "CollapseError",
    "DataConfig",
    "DistInfo",
    "EmaTeacher",
    "FitResult",
    "MaskConfig",
    "MaskedStudent",
    "Objective",
    "ObjectiveConfig",
    "OptimConfig",
    "PretrainConfig",
    "PretrainObjective",
    "PretrainResult",
    "RunConfig",
    "StepOutput",
    "Trainer",
    "TrainingError",
    "build_index",
    "ema_decay_at",
    "init_distributed",
    "load_start_model",
    "plot_metrics",
    "prepare_model",
    "pretrain",
    "read_metrics",
]
