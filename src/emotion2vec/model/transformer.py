"""Multi-head self-attention with an additive bias, and the post-LN transformer block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activation import gelu
from .positional import AlibiBias

#: Above this many attention-score elements (B x H x T x T), attention runs in blocks of query rows
#: so that memory stays bounded for long recordings (2**26 floats = 256 MB).
MAX_SCORE_ELEMENTS = 2**26


def attend(
    qkv: torch.Tensor, bias: AlibiBias, num_heads: int, dropout: float = 0.0
) -> torch.Tensor:
    """Multi-head attention of packed projections: qkv (B, T, 3 D) -> (B, T, D), before the
    output projection. Inputs long enough that the (B, H, T, T) scores would pass
    ``MAX_SCORE_ELEMENTS`` run in blocks of query rows."""
    batch, length, width = qkv.shape
    dim = width // 3
    heads = qkv.view(batch, length, 3, num_heads, dim // num_heads)
    q, k, v = heads.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, Dh)
    rows = max(1, MAX_SCORE_ELEMENTS // (batch * num_heads * length))
    if rows >= length:
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.full().to(q.dtype), dropout_p=dropout
        )
    else:
        out = torch.cat(
            [
                F.scaled_dot_product_attention(
                    q[:, :, s : s + rows],
                    k,
                    v,
                    attn_mask=bias.rows(s, min(s + rows, length)).to(q.dtype),
                    dropout_p=dropout,
                )
                for s in range(0, length, rows)
            ],
            dim=2,
        )
    return out.transpose(1, 2).reshape(batch, length, dim)


class SelfAttention(nn.Module):
    """Multi-head self-attention; the bias (ALiBi + key padding) is added to the logits in fp32."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: AlibiBias) -> torch.Tensor:
        """x: (B, T, D); bias: the ALiBi + key-padding bias of this pass. Returns (B, T, D)."""
        dropout = self.attention_dropout if self.training else 0.0
        return self.dropout(self.proj(attend(self.qkv(x), bias, self.num_heads, dropout)))


class FeedForward(nn.Module):
    """fc1 -> GELU -> dropout -> fc2."""

    def __init__(self, dim: int, hidden: int, activation_dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(activation_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(gelu(self.fc1(x))))


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

    def forward(self, x: torch.Tensor, bias: AlibiBias) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, D) -> (block output (B, T, D), FFN output (B, T, D))."""
        x = self.norm1(x + self.attn(x, bias))
        ffn = self.mlp(x)
        return self.norm2(x + self.post_mlp_dropout(ffn)), ffn
