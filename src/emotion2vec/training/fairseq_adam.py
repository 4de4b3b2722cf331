"""Adam as fairseq steps it: the optimizer of the authors' pre-training run
(``OptimConfig.adam = "fairseq"``)."""

from __future__ import annotations

import math

import torch


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
