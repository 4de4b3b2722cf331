"""The lazy ALiBi bias: a drop-in for :class:`emotion2vec.model.positional.Alibi` whose result
:mod:`emotion2vec.fast.attention` reads by blocks of query rows or by its diagonals instead of
as one (B, H, L, L) tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Row-block distances are cached across blocks up to this many floats (2**26 = 256 MB).
MAX_CACHED_DISTANCES = 2**26


class AlibiBias:
    """The additive attention bias of one forward pass, built lazily per block of query rows.

    bias[b, h, i, j] = -slope_h * scale_h * |pos_i - pos_j| over frames, 0 to and from the extra
    tokens in front, and -inf at padded keys. Short inputs build the whole (B, H, L, L) tensor once
    and every block reuses it. Long inputs would need 1.7 GB for 120 s at 12 heads, so attention
    asks for row blocks instead: the head-independent distances of each block are kept (T x T
    floats in all) and the per-head bias is one multiplication per block and layer (for very long inputs
    the distances are recomputed instead of kept). Without padding, at inference, long inputs
    need none of that: :meth:`diagonals` gives the whole frame bias as (H, 2T - 1) values.
    """

    def __init__(
        self,
        slopes: torch.Tensor,
        scale: torch.Tensor,
        num_frames: int,
        *,
        positions: torch.Tensor | None = None,
        num_extra_tokens: int = 0,
        key_padding_mask: torch.Tensor | None = None,
    ):
        # Official: (slope * -distance) * clamp(scale, 0). One per-head factor here, so the bias
        # costs one multiplication (rounding differs by ~1 ulp).
        self.coef = slopes.float() * scale.float().clamp_min(0)  # (H,)
        self.num_extra = num_extra_tokens
        self.length = num_extra_tokens + num_frames
        device = slopes.device
        pos = (
            torch.arange(num_frames, device=device).unsqueeze(0) if positions is None else positions
        )
        self.positions = pos.to(torch.float32)  # (B or 1, T)
        self.num_frames = num_frames
        self._evenly_spaced = positions is None
        self._diagonals: torch.Tensor | None = None
        self.key_padding_mask = None
        if key_padding_mask is not None:
            extra = key_padding_mask.new_zeros(key_padding_mask.shape[0], num_extra_tokens)
            self.key_padding_mask = torch.cat([extra, key_padding_mask], dim=1)  # (B, E + T)
        self._full: torch.Tensor | None = None
        self._distances: dict[tuple[int, int], torch.Tensor] = {}
        self._buffer: torch.Tensor | None = None

    def _distance(self, start: int, end: int) -> torch.Tensor:
        """-|pos_i - pos_j| for query rows [start, end): (B or 1, end - start, E + T), 0 for extra tokens.

        Kept for the next blocks while all of them together stay small (T x T floats: 144 MB at
        120 s); beyond that (3.6 GB at 10 minutes) they are recomputed, which costs one pass.
        """
        key = (start, end)
        if key in self._distances:
            return self._distances[key]
        e = self.num_extra
        q_pos = self.positions[:, max(start - e, 0) : max(end - e, 0)]
        distance = -(q_pos.unsqueeze(-1) - self.positions.unsqueeze(-2)).abs()
        distance = F.pad(distance, (e, 0, min(e, end) - min(e, start), 0))
        if self.positions.shape[0] * self.length * self.length <= MAX_CACHED_DISTANCES:
            self._distances[key] = distance
        return distance

    def rows(self, start: int, end: int) -> torch.Tensor:
        """Bias for query rows [start, end) of the (E + T) sequence: (B or 1, H, end - start, E + T)."""
        if self._full is not None:
            return self._full[:, :, start:end]
        distance = self._distance(start, end).unsqueeze(1)
        coef = self.coef.view(1, -1, 1, 1)
        # With autograd on, the attention may keep this bias for its backward (whenever q, k or
        # v need gradients, even with a frozen scale): a fresh tensor, never the shared buffer.
        if torch.is_grad_enabled():
            bias = distance * coef
            if self.key_padding_mask is not None:
                bias = bias.masked_fill(self.key_padding_mask[:, None, None, :], float("-inf"))
            return bias
        # Inference: each row block is consumed before the next is asked for, so one buffer
        # serves them all (fresh 100 MB allocations cost more in page faults than the product).
        rows = (
            distance.shape[0] if self.key_padding_mask is None else self.key_padding_mask.shape[0]
        )
        shape = (rows, coef.shape[1], end - start, self.length)
        size = shape[0] * shape[1] * shape[2] * shape[3]
        if self._buffer is None or self._buffer.numel() < size:
            self._buffer = torch.empty(size, dtype=torch.float32, device=distance.device)
        bias = torch.mul(
            distance.expand(rows, -1, -1, -1), coef, out=self._buffer[:size].view(shape)
        )
        if self.key_padding_mask is not None:
            bias.masked_fill_(self.key_padding_mask[:, None, None, :], float("-inf"))
        return bias

    def diagonals(self) -> torch.Tensor | None:
        """The frame-to-frame bias by its diagonals, for attention whose frame keys are in reverse
        order: (H, 2T - 1) with ``bias[b, h, E + i, E + T - 1 - j] = diagonals[h, i + j]``, so
        ``diagonals.as_strided((H, T, T), (2T - 1, 1, 1))`` is the whole frame block without
        ever building it (a Hankel matrix: each anti-diagonal is one distance). None when the
        bias has no such form or autograd needs it: explicit positions (pre-training's visible
        frames), any padded key, or a trainable ALiBi scale with gradients on.

        Same values as :meth:`rows`: ``-|i - j|`` times the per-head factor, in fp32.
        """
        if not self._evenly_spaced or (torch.is_grad_enabled() and self.coef.requires_grad):
            return None
        if self.key_padding_mask is not None and bool(self.key_padding_mask.any()):
            return None
        if self._diagonals is None:
            n = self.num_frames
            offset = torch.arange(2 * n - 1, device=self.coef.device, dtype=torch.float32)
            distance = -(offset - (n - 1)).abs()
            self._diagonals = distance.unsqueeze(0) * self.coef.unsqueeze(1)
        return self._diagonals

    def full(self) -> torch.Tensor:
        """The whole bias (B or 1, H, E + T, E + T), computed once and reused by every block."""
        if self._full is None:
            self._full = self.rows(0, self.length)
            self._distances.clear()
            self._buffer = None  # the full bias keeps the buffer's storage alive
        return self._full


class LazyAlibi(nn.Module):
    """Same call as :class:`~emotion2vec.model.positional.Alibi`; returns an :class:`AlibiBias`
    (``full()`` is the reference module's tensor) for :class:`~.attention.FastSelfAttention`."""

    def forward(
        self,
        slopes: torch.Tensor,
        scale: torch.Tensor,
        num_frames: int,
        *,
        positions: torch.Tensor | None = None,
        num_extra_tokens: int = 0,
        key_padding_mask: torch.Tensor | None = None,
    ) -> AlibiBias:
        return AlibiBias(
            slopes,
            scale,
            num_frames,
            positions=positions,
            num_extra_tokens=num_extra_tokens,
            key_padding_mask=key_padding_mask,
        )
