"""Supervised fine-tuning: an emotion classifier on the utterance embedding, trained with the
pre-training engine (AMP, DDP, exact resume), validated for early stopping on UA.

    from emotion2vec.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(init="emotion2vec_base", manifest="train.csv", valid="valid.csv")
    result = finetune(config, "runs/ft")           # runs/ft/final: a model folder with labels
"""

from .api import FinetuneResult, finetune, prepare_model
from .config import TRAIN_MODES, FinetuneConfig
from .objective import EarlyStop, FinetuneObjective, layer_ids

__all__ = [
    "TRAIN_MODES",
    "EarlyStop",
    "FinetuneConfig",
    "FinetuneObjective",
    "FinetuneResult",
    "finetune",
    "layer_ids",
    "prepare_model",
]
