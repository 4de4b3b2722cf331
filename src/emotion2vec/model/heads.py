"""Pooling and the utterance-level emotion head of the emotion2vec+ models."""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(frames: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over valid frames: (B, T, D), (B, T) True = padding -> (B, D)."""
    if padding_mask is None:
        return frames.mean(dim=1)
    keep = (~padding_mask).unsqueeze(-1).to(frames.dtype)
    return (frames * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


class EmotionHead(nn.Module):
    """Linear(D -> C) on the utterance embedding (official ``proj``); logits, softmax outside."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(embed_dim, num_classes)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, C) logits."""
        return self.linear(embedding)
