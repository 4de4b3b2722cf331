"""Targets and losses of online distillation (pure functions on tensors)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..model import masked_mean

INSTANCE_NORM_EPS = 1e-5


def instance_norm_time(
    x: torch.Tensor, padding_mask: torch.Tensor | None, eps: float = INSTANCE_NORM_EPS
) -> torch.Tensor:
    """Normalise each channel of each row over its valid frames (zero mean, unit biased
    variance, no affine), in fp32: (B, T, D) -> (B, T, D); padded frames become 0.

    Without padding this is ``F.instance_norm`` on (B, D, T), data2vec 2.0's per-layer target
    normalisation; with padding, padded frames are left out of the statistics.
    """
    x = x.float()
    if padding_mask is None:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + eps)
    keep = (~padding_mask).unsqueeze(-1).to(x.dtype)
    count = keep.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (x * keep).sum(dim=1, keepdim=True) / count
    var = (((x - mean) * keep) ** 2).sum(dim=1, keepdim=True) / count
    return (x - mean) * torch.rsqrt(var + eps) * keep


def teacher_targets(
    ffn_outputs: Sequence[torch.Tensor],
    padding_mask: torch.Tensor | None,
    top_k: int,
    instance_norm: bool = True,
) -> torch.Tensor:
    """Average of the top ``top_k`` blocks' FFN outputs (each instance-normalised over time):
    L tensors (B, T, D) -> (B, T, D) fp32. ``top_k`` is clamped to the number of blocks."""
    if not ffn_outputs:
        raise ValueError("the teacher returned no FFN outputs")
    layers = list(ffn_outputs)[-min(top_k, len(ffn_outputs)) :]
    if instance_norm:
        layers = [instance_norm_time(y, padding_mask) for y in layers]
    else:
        layers = [y.float() for y in layers]
    return torch.stack(layers).mean(dim=0)


def loss_scale(dim: int, scale: float | None) -> float:
    """Factor on squared errors: ``scale`` or 1/sqrt(D) (data2vec 2.0's default)."""
    return 1.0 / math.sqrt(dim) if scale is None else float(scale)


def regression_loss(prediction: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """Scaled squared error summed over the last axis, in fp32: (..., D), (..., D) -> (...)."""
    diff = prediction.float() - target.float()
    return (diff * diff).sum(dim=-1) * scale


def utterance_prediction(
    variant: str,
    *,
    extra_tokens: torch.Tensor,
    frames: torch.Tensor,
    frames_padding_mask: torch.Tensor | None,
    chunk_pooling: str = "mean",
    chunk_tokens: int | None = None,
    token_index: int = -1,
) -> torch.Tensor:
    """The student's utterance-level prediction.

    extra_tokens: (R, E, D) last-block outputs at the extra tokens; frames: (R, T_keep, D) the
    student's outputs at its visible frames. Returns (R, D), or (R, K, D) for chunk pooling
    "each" (one prediction per chunk token).

    * "token": the output at extra token ``token_index``;
    * "chunk": the first ``chunk_tokens`` extra tokens (all by default), averaged ("mean") or
      kept apart ("each");
    * "global": the mean of the student's visible, non-padded frame outputs.
    """
    if variant == "global":
        return masked_mean(frames, frames_padding_mask)
    n_extra = extra_tokens.shape[1]
    if n_extra == 0:
        raise ValueError(f"the {variant!r} utterance loss needs extra tokens; this model has none")
    if variant == "token":
        if not -n_extra <= token_index < n_extra:
            raise ValueError(f"token_index {token_index} out of range for {n_extra} extra tokens")
        return extra_tokens[:, token_index]
    if variant == "chunk":
        k = n_extra if chunk_tokens is None else chunk_tokens
        if k > n_extra:
            raise ValueError(f"chunk_tokens {k} exceeds the model's {n_extra} extra tokens")
        chunk = extra_tokens[:, :k]
        return chunk.mean(dim=1) if chunk_pooling == "mean" else chunk
    raise ValueError(f"unknown utterance loss variant {variant!r}")


def utterance_loss(prediction: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-row utterance loss: prediction (R, D) or (R, K, D), target (R, D) -> (R,); with K
    predictions per row, their losses are averaged."""
    if prediction.dim() == 3:
        return regression_loss(prediction, target.unsqueeze(1), scale).mean(dim=1)
    return regression_loss(prediction, target, scale)


def mean_channel_std(x: torch.Tensor) -> torch.Tensor:
    """Collapse statistic of data2vec 2.0 (its "target_var"/"pred_var"): the standard deviation
    of each channel over all rows, averaged over channels: (N, D) -> scalar."""
    x = x.detach().float().reshape(-1, x.shape[-1])
    if x.shape[0] < 2:
        return x.new_zeros(())
    return torch.sqrt(x.var(dim=0) + 1e-6).mean()
