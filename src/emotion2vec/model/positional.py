"""Relative positional information: the grouped positional conv and the ALiBi bias."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PositionalConv(nn.Module):
    """Stack of grouped convs whose output is *added* to the features (official ``relative_positional_encoder``).

    Each layer: Conv1d(D, D, kernel, padding kernel//2, groups) -> LayerNorm without affine -> GELU.
    Padded frames are zeroed before every layer, so a row of a padded batch sees exactly the zero
    padding it would see alone; without this, padding leaks into the last ~45 frames.
    """

    def __init__(self, dim: int, kernel: int, layers: int, groups: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D); padding_mask: (B, T) bool, True = padding. Returns (B, T, D)."""
        if x.shape[1] == 0:  # no frames (input shorter than one window): nothing to convolve
            return x.clone()
        keep = None if padding_mask is None else (~padding_mask).unsqueeze(1).to(x.dtype)
        h = x.transpose(1, 2)  # (B, D, T)
        for conv in self.convs:
            if keep is not None:
                h = h * keep
            h = conv(h).transpose(1, 2)  # (B, T, D) for the LayerNorm over channels
            h = F.gelu(F.layer_norm(h, (conv.out_channels,), eps=self.eps)).transpose(1, 2)
        return h.transpose(1, 2)


def alibi_slopes(num_heads: int) -> list[float]:
    """The geometric ALiBi slopes (Press et al.); for a non-power-of-two count, the slopes of the
    nearest lower power of two followed by every other slope of the next power of two."""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


class Alibi(nn.Module):
    """Builds the additive attention bias of one forward pass (no parameters of its own: the
    slopes and the trainable scale belong to the encoder, whose checkpoint keys they are).

    ``bias[b, h, i, j] = -slope_h * max(scale_h, 0) * |pos_i - pos_j|`` between frames, 0 to and
    from the extra tokens in front, ``-inf`` at padded keys.
    """

    def forward(
        self,
        slopes: torch.Tensor,
        scale: torch.Tensor,
        num_frames: int,
        *,
        positions: torch.Tensor | None = None,
        num_extra_tokens: int = 0,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """slopes, scale: (H,); positions: (B, T) frame positions (None: 0..T-1; pre-training
        passes the positions of its visible frames); key_padding_mask: (B, T) True = padding.
        Returns (B or 1, H, E + T, E + T) float32."""
        # Official: (slope * -distance) * clamp(scale, 0); one per-head factor here, so the bias
        # costs one multiplication (rounding differs by ~1 ulp).
        coef = slopes.float() * scale.float().clamp_min(0)  # (H,)
        if positions is None:
            positions = torch.arange(num_frames, device=slopes.device).unsqueeze(0)
        pos = positions.to(torch.float32)  # (B or 1, T)
        distance = -(pos.unsqueeze(-1) - pos.unsqueeze(-2)).abs()  # (B or 1, T, T)
        e = num_extra_tokens
        distance = F.pad(distance, (e, 0, e, 0))  # extra tokens: distance 0 to and from all
        bias = distance.unsqueeze(1) * coef.view(1, -1, 1, 1)
        if key_padding_mask is not None:
            keys = F.pad(key_padding_mask, (e, 0), value=False)  # (B, E + T)
            bias = bias.masked_fill(keys[:, None, None, :], float("-inf"))
        return bias
