"""AdamW with data2vec 2.0's weight-decay exemptions, and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms (every 1-D parameter) and the ALiBi scale are not decayed."""
    return param.ndim <= 1 or name.endswith(".bias") or "alibi_scale" in name


def build_optimizer(module: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``module``, in two groups (decay / no decay).

    Parameter order is that of ``named_parameters``, so optimizer states saved by one run load
    into the next.
    """
    decay, exempt = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (exempt if no_weight_decay(name, param) else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)


def warmup_updates(config: OptimConfig) -> int:
    """Length of the linear warm-up in updates."""
    if config.warmup_updates is not None:
        return int(config.warmup_updates)
    return int(round(config.warmup_fraction * config.max_updates))


def lr_at(update: int, config: OptimConfig) -> float:
    """Learning rate of optimizer update number ``update`` (1-based).

    Linear from lr/W to lr over the W warm-up updates, then a half cosine down to
    ``lr * final_lr_ratio`` at ``max_updates`` (and there after).
    """
    peak = config.lr
    final = peak * config.final_lr_ratio
    warm = warmup_updates(config)
    if update <= warm:
        return peak * update / warm
    span = max(1, config.max_updates - warm)
    progress = min(1.0, (update - warm) / span)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (times the group's ``lr_scale``, if it
    has one: fine-tuning's layer-wise decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
