"""The convolutional feature extractor (official: ``local_encoder``) and the projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    """Conv1d without bias, LayerNorm over channels at each time step (in fp32), GELU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, eps: float):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=False)
        self.norm = nn.LayerNorm(out_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, L) -> (B, C_out, L')."""
        x = self.conv(x)
        # The official extractor normalises in fp32 even under mixed precision.
        y = F.layer_norm(
            x.transpose(1, 2).float(),
            self.norm.normalized_shape,
            self.norm.weight.float(),
            self.norm.bias.float(),
            self.norm.eps,
        ).type_as(x)
        return F.gelu(y.transpose(1, 2))


#: In inference, the conv stack runs over at most this many output frames x batch rows at a time
#: (the first layer's output is 64 x wider than the frames: 500 frames -> 65 MB per row).
CHUNK_FRAMES = 1000


class ConvFeatureExtractor(nn.Module):
    """Waveform (B, N) -> conv features (B, C, T) at one frame per ``stride`` samples.

    In inference, long inputs run in chunks cut at frame boundaries (multiples of the total
    stride, overlapping by the receptive field), which gives exactly the frames of a single pass
    with bounded memory.
    """

    def __init__(self, conv_layers: tuple[tuple[int, int, int], ...], eps: float = 1e-5):
        super().__init__()
        self.spec = tuple(conv_layers)
        layers = []
        in_channels = 1
        for dim, kernel, stride in self.spec:
            layers.append(ConvLayer(in_channels, dim, kernel, stride, eps))
            in_channels = dim
        self.layers = nn.ModuleList(layers)
        self.stride = 1
        self.receptive_field = 1
        for _, kernel, stride in self.spec:
            self.receptive_field += (kernel - 1) * self.stride
            self.stride *= stride

    def _run(self, waves: torch.Tensor) -> torch.Tensor:
        x = waves.unsqueeze(1)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, N) float waveforms -> (B, C, T)."""
        total = int(self.output_lengths(torch.tensor(waves.shape[-1])))
        chunk = max(1, CHUNK_FRAMES // waves.shape[0])
        if torch.is_grad_enabled() or total <= chunk:
            return self._run(waves)
        pieces = []
        for first in range(0, total, chunk):
            last = min(first + chunk, total)
            start = first * self.stride
            pieces.append(
                self._run(waves[:, start : (last - 1) * self.stride + self.receptive_field])
            )
        return torch.cat(pieces, dim=2)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames produced for inputs of ``lengths`` samples (0 when shorter than the receptive field).

        Each layer keeps only windows that lie entirely inside the input, so the valid frames of a
        zero-padded row are exactly the frames of that row alone.
        """
        out = lengths.to(torch.long)
        for _, kernel, stride in self.spec:
            out = torch.where(
                out >= kernel, torch.div(out - kernel, stride, rounding_mode="floor") + 1, 0
            )
        return out


class FeatureProjection(nn.Module):
    """LayerNorm over conv channels then Linear to the transformer width (official ``project_features``)."""

    def __init__(self, in_dim: int, out_dim: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim, eps=eps)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, D)."""
        return self.linear(self.norm(x))
