"""Adam with decoupled weight decay (all parameters, or data2vec 2.0's exemptions), and the
warm-up + cosine schedule of fairseq."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms (every 1-D parameter) and the ALiBi scale are not decayed."""
    return param.ndim <= 1 or name.endswith(".bias") or "alibi_scale" in name


class FairseqAdam(torch.optim.Optimizer):
    """Adam exactly as fairseq's ``adam`` optimizer steps it (the authors' runs).

    Two things differ from ``torch.optim.AdamW``: ``eps`` is added to ``sqrt(v)`` *before* the
    bias correction (``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``; torch adds it
    after), so at step t the effective eps is ``eps / sqrt(1 - b2^t)``, 7x torch's at t = 1 with
    b2 = 0.98, which changes the first steps of parameters with gradients near eps; and the
    decoupled weight decay is written ``p += -wd * lr * p`` before the Adam step. Written with
    ``torch._foreach`` ops, one kernel per operation and parameter group.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid Adam settings lr={lr} betas={betas} eps={eps}")
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            grads, avgs, sqs, steps = [], [], [], []
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                grads.append(p.grad if p.grad.dtype == p.dtype else p.grad.to(p.dtype))
                avgs.append(state["exp_avg"])
                sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            torch._foreach_mul_(avgs, beta1)
            torch._foreach_add_(avgs, grads, alpha=1.0 - beta1)
            torch._foreach_mul_(sqs, beta2)
            torch._foreach_addcmul_(sqs, grads, grads, value=1.0 - beta2)
            denom = torch._foreach_sqrt(sqs)
            torch._foreach_add_(denom, eps)
            if wd != 0:
                torch._foreach_add_(params, params, alpha=-wd * lr)
            for step in sorted(set(steps)):
                idx = [i for i, s in enumerate(steps) if s == step]
                size = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
                torch._foreach_addcdiv_(
                    [params[i] for i in idx],
                    [avgs[i] for i in idx],
                    [denom[i] for i in idx],
                    value=-size,
                )
        return loss


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


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (times the group's ``lr_scale``, if it
    has one: fine-tuning's layer-wise decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
