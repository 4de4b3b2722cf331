"""The optimizer of a run: Adam with decoupled weight decay over all parameters, or with
data2vec 2.0's exemptions; parameter groups may carry an ``lr_scale`` (fine-tuning's layer-wise
decay) that :func:`set_lr` honours."""

from __future__ import annotations

import torch
from torch import nn

from .config import OptimConfig
from .fairseq_adam import FairseqAdam


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms (every 1-D parameter) and the ALiBi scale are not decayed."""
    return param.ndim <= 1 or name.endswith(".bias") or "alibi_scale" in name


def build_optimizer(
    module: nn.Module, config: OptimConfig, *, decay_all: bool | None = None
) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over the trainable parameters of ``module``.

    ``config.adam`` "fairseq" is :class:`FairseqAdam` (the authors' update), "torch" is
    ``torch.optim.AdamW``. ``decay_all`` (default: ``config.decay_all``) decays every parameter,
    as the authors' run did (fairseq's plain ``adam`` applies one weight decay to all
    parameters); otherwise biases, norms and the ALiBi scale form a second group without decay.
    Parameter order is that of ``named_parameters``, so optimizer states saved by one run load
    into the next.
    """
    if decay_all is None:
        decay_all = getattr(config, "decay_all", False)
    decay, exempt = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (exempt if not decay_all and no_weight_decay(name, param) else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    kind = getattr(config, "adam", "torch")
    if kind == "fairseq":
        return FairseqAdam(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (times the group's ``lr_scale``, if it
    has one: fine-tuning's layer-wise decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
