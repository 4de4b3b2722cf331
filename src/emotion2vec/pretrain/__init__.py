"""Self-supervised pre-training of emotion2vec: online distillation from an EMA teacher with a
frame-level and an utterance-level loss (Ma et al. 2024, on data2vec 2.0's mechanics).

    from emotion2vec.pretrain import PretrainConfig, pretrain

    config = PretrainConfig(preset="tiny")
    config.data.paths = ("corpus/",)
    config.optim.max_updates = 2000
    result = pretrain(config, "runs/tiny")          # RUN_DIR/final is a normal model folder
    emotion2vec.load_model(result.final).extract("speech.wav")

The engine (:mod:`.trainer`) is objective-agnostic; :mod:`.objective` is the pre-training
plug-in. See ``docs/pretraining.md`` for the decisions on what upstream leaves open.
"""

from .api import PretrainResult, pretrain
from .config import (
    DataConfig,
    MaskConfig,
    ObjectiveConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
)
from .data import AudioBatches, Batch, build_index
from .distributed import DistInfo, init_distributed
from .ema import EmaTeacher, ema_decay_at
from .metrics import read_metrics
from .objective import CollapseError, MaskedStudent, PretrainObjective
from .plots import plot_metrics
from .start import load_start_model, prepare_model
from .trainer import FitResult, Objective, StepOutput, Trainer, TrainingError

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
