"""The learning-rate schedule of every run: linear warm-up, then fairseq's half cosine."""

from __future__ import annotations

import math

from .config import OptimConfig


def warmup_updates(config: OptimConfig) -> int:
    """Length of the linear warm-up in updates."""
    if config.warmup_updates is not None:
        return int(config.warmup_updates)
    return int(round(config.warmup_fraction * config.max_updates))


def lr_at(update: int, config: OptimConfig) -> float:
    """Learning rate of optimizer update number ``update`` (1-based), fairseq's ``cosine``
    schedule as the authors' run stepped it: the rate of an update is the schedule after the
    updates already done, ``k = update - 1``.

    Warm-up: linear from 0 (k = 0) towards lr (k = W); then a half cosine from lr down to
    ``lr * final_lr_ratio`` at ``k = max_updates`` (and there after).
    """
    peak = config.lr
    final = peak * config.final_lr_ratio
    warm = warmup_updates(config)
    done = max(0, update - 1)
    if done < warm:
        return peak * done / warm
    span = max(1, config.max_updates - warm)
    progress = min(1.0, (done - warm) / span)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
