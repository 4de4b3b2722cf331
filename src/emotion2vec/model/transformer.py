"""Multi-head self-attention with an additive bias, and the post-LN transformer block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention; the bias (ALiBi + key padding) is added to the logits in fp32."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D); bias: (B or 1, H, T, T) from :class:`~.positional.Alibi`. Returns
        (B, T, D)."""
        batch, length, dim = x.shape
        heads = self.qkv(x).view(batch, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = heads.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, Dh)
        dropout = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout)
        return self.dropout(self.proj(out.transpose(1, 2).reshape(batch, length, dim)))


class FeedForward(nn.Module):
    """fc1 -> GELU -> dropout -> fc2."""

    def __init__(self, dim: int, hidden: int, activation_dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(activation_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x))))


class TransformerBlock(nn.Module):
    """Post-LN block (official ``AltBlock`` with ``layer_norm_first=False``).

    x = LN1(x + Attn(x)); y = LN2(x + Dropout(FFN(x))). Also returns the FFN output before the
    residual, which is what pre-training uses as the teacher's per-block target.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        eps: float,
        attention_dropout: float,
        dropout: float,
        activation_dropout: float,
        post_mlp_dropout: float,
    ):
        super().__init__()
        self.attn = SelfAttention(dim, num_heads, attention_dropout, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), activation_dropout)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.post_mlp_dropout = nn.Dropout(post_mlp_dropout)

    def forward(self, x: torch.Tensor, bias) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, D), bias: the attention bias of this pass -> (block output (B, T, D), FFN
        output (B, T, D))."""
        x = self.norm1(x + self.attn(x, bias))
        ffn = self.mlp(x)
        return self.norm2(x + self.post_mlp_dropout(ffn)), ffn
