"""Fast attention: drop-ins for :class:`emotion2vec.model.transformer.SelfAttention` and
``FeedForward``. Long inputs attend in blocks of query rows (bounded memory) or, on CPU
without padding, with the bias read from its diagonals; the FFN's GELU runs in place."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.transformer import FeedForward, SelfAttention
from .activation import gelu
from .alibi import AlibiBias


def _cpu_flash_attention():
    """The CPU flash-attention kernel that also returns its log-sum-exps and takes a float mask
    (PyTorch >= 2.3), or None."""
    try:
        op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    except (AttributeError, RuntimeError):
        return None
    return op if "attn_mask" in str(op.default._schema) else None


_CPU_FLASH = _cpu_flash_attention()

#: Above this many attention-score elements (B x H x T x T), attention runs in blocks of query rows
#: so that memory stays bounded for long recordings (2**26 floats = 256 MB).
MAX_SCORE_ELEMENTS = 2**26


def attend(
    qkv: torch.Tensor, bias: AlibiBias | torch.Tensor, num_heads: int, dropout: float = 0.0
) -> torch.Tensor:
    """Multi-head attention of packed projections: qkv (B, T, 3 D) -> (B, T, D), before the
    output projection. Inputs long enough that the (B, H, T, T) bias would pass
    ``MAX_SCORE_ELEMENTS`` run with the bias given by its diagonals where it has that form
    (:func:`attend_by_diagonals`: on CPU without padding or autograd, such as one long recording),
    else in blocks of query rows."""
    batch, length, width = qkv.shape
    dim = width // 3
    heads = qkv.view(batch, length, 3, num_heads, dim // num_heads)
    q, k, v = heads.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, Dh)
    if isinstance(bias, torch.Tensor):  # a bias built whole by the reference Alibi
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout)
        return out.transpose(1, 2).reshape(batch, length, dim)
    rows = max(1, MAX_SCORE_ELEMENTS // (batch * num_heads * length))
    diagonals = None
    inference = not torch.is_grad_enabled() and dropout == 0.0 and _CPU_FLASH is not None
    if inference and rows < length and q.device.type == "cpu" and q.dtype == torch.float32:
        diagonals = bias.diagonals()
    if diagonals is not None:
        out = attend_by_diagonals(q, k, v, diagonals, bias.num_extra)
    elif rows >= length:
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


def attend_by_diagonals(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, diagonals: torch.Tensor, num_extra: int
) -> torch.Tensor:
    """Attention (B, H, E + T, Dh) -> (B, H, E + T, Dh) with the ALiBi bias given by its
    diagonals (:meth:`AlibiBias.diagonals`, no padding), CPU fp32, inference only (the kernel
    does not pass gradients through the log-sum-exps the extra-token merge uses).

    The frame block of the bias is a Toeplitz matrix: with the frame keys taken in reverse
    order it becomes a Hankel matrix, which is a strided view of the (H, 2T - 1) diagonals
    (row stride 1, column stride 1). The flash-attention kernel reads the mask through its
    strides, so it gets the whole bias from a vector that stays in cache: no (B, H, T, T)
    tensor is built, multiplied per layer or streamed from memory, and memory stays O(T) for
    inputs of any length (no blocks of query rows needed). :func:`attend` uses it only where
    the bias would otherwise be built in blocks of query rows, once per layer: there it is
    faster than the row blocks. Shorter inputs build their bias once per forward, and there the
    extra-token merge below costs more than it saves (figures: docs/benchmarks.md).

    The extra tokens, whose bias is 0 to and from everything, do not fit that view; the frame
    queries attend to their E keys separately and the two softmax parts are merged through
    their log-sum-exps (what the kernel itself does between its blocks of keys). Reversing the
    keys changes only the order of the sums: ~1e-6 from the bias-tensor path.
    """
    e = num_extra
    frames = q.shape[2] - e
    heads = q.shape[1]
    hankel = diagonals.as_strided((1, heads, frames, frames), (0, diagonals.stride(0), 1, 1))
    q_frames = q[:, :, e:]
    out, lse = _CPU_FLASH(q_frames, k[:, :, e:].flip(2), v[:, :, e:].flip(2), attn_mask=hankel)
    if e == 0:
        return out
    # frame queries against the extra tokens' keys (zero bias), then the two softmax parts
    # merged: weight of the extra part = e^lse_extra / (e^lse + e^lse_extra)
    out_extra, lse_extra = _CPU_FLASH(q_frames, k[:, :, :e], v[:, :, :e])
    merged = torch.lerp(out, out_extra, torch.sigmoid(lse_extra - lse).unsqueeze(-1))
    # the extra tokens' own queries: no bias at all
    extra = F.scaled_dot_product_attention(q[:, :, :e], k, v)
    return torch.cat([extra, merged], dim=2)


class FastSelfAttention(nn.Module):
    """Shares ``qkv``, ``proj`` and ``dropout`` with a :class:`SelfAttention`; takes the
    :class:`AlibiBias` of :class:`~.alibi.LazyAlibi` (or a plain bias tensor)."""

    def __init__(self, reference: SelfAttention):
        super().__init__()
        self.num_heads = reference.num_heads
        self.qkv = reference.qkv
        self.proj = reference.proj
        self.attention_dropout = reference.attention_dropout
        self.dropout = reference.dropout

    def forward(self, x: torch.Tensor, bias: AlibiBias | torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D)."""
        dropout = self.attention_dropout if self.training else 0.0
        return self.dropout(self.proj(attend(self.qkv(x), bias, self.num_heads, dropout)))


class FastFeedForward(nn.Module):
    """Shares ``fc1``, ``fc2`` and ``dropout`` with a :class:`FeedForward`; GELU in place."""

    def __init__(self, reference: FeedForward):
        super().__init__()
        self.fc1 = reference.fc1
        self.fc2 = reference.fc2
        self.dropout = reference.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(gelu(self.fc1(x))))
