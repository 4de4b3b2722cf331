"""The light conv decoder of pre-training (official ``Decoder1d``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DecoderConfig


class Decoder(nn.Module):
    """Reconstructs teacher targets for every frame from the student's output.

    Layers: Conv1d(k, groups) -> LayerNorm without affine -> GELU, with a residual from the
    previous layer wherever the widths match (all but the first); then Linear(dim -> D).

    ``input_dropout`` is applied by the pre-training objective to the student's output (extra
    tokens included) *before* the masked positions are filled, as the authors' ``decoder_input``
    does; :meth:`forward` takes the already assembled sequence.
    """

    def __init__(self, config: DecoderConfig, embed_dim: int):
        super().__init__()
        self.config = config
        dims = [embed_dim] + [config.dim] * config.layers
        self.convs = nn.ModuleList(
            nn.Conv1d(
                dims[i],
                dims[i + 1],
                config.kernel,
                padding=config.kernel // 2,
                groups=config.groups,
            )
            for i in range(config.layers)
        )
        self.proj = nn.Linear(config.dim, embed_dim)
        self.input_dropout = nn.Dropout(config.input_dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D) full-length sequence (masked frames filled) -> (B, T, D)."""
        keep = None if padding_mask is None else (~padding_mask).unsqueeze(1).to(x.dtype)
        h = x.transpose(1, 2)
        for conv in self.convs:
            residual = h
            if keep is not None:
                h = h * keep
            h = conv(h)
            h = F.gelu(F.layer_norm(h.transpose(1, 2), (h.shape[1],)).transpose(1, 2))
            if residual.shape == h.shape:
                h = h + residual
        return self.proj(h.transpose(1, 2))
