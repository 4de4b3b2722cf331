"""The convolutional feature extractor (official: ``local_encoder``) and the projection.

Frame-length arithmetic lives here and nowhere else: :func:`conv_output_length` for one
convolution, :func:`frames_after` for a stack (the stack's stride and receptive field, which
configs report too, come from :func:`emotion2vec.config.conv_stride` / ``conv_receptive_field``). Every other place that needs a frame count
(audio helpers, batch jobs, ONNX export, FLOP counts, the fast modules) calls these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import conv_receptive_field, conv_stride

#: One conv layer of the extractor: (output channels, kernel, stride).
ConvSpec = tuple[int, int, int]


def conv_output_length(length, kernel: int, stride: int):
    """Output length of a convolution without padding: the windows that lie entirely inside
    the input, ``floor((L - kernel) / stride) + 1``, or 0 when ``L < kernel``.

    ``length`` is an int or an integer tensor (any shape; the result has its type). The tensor
    form only divides non-negative values, so it exports to ONNX (where division truncates)."""
    if isinstance(length, torch.Tensor):
        valid = (length - kernel).clamp_min(0) // stride + 1
        return torch.where(length >= kernel, valid, torch.zeros_like(valid))
    return (length - kernel) // stride + 1 if length >= kernel else 0


def frames_after(length, conv_layers: Sequence[ConvSpec]):
    """Frames a conv stack produces for ``length`` samples (int or integer tensor)."""
    for _, kernel, stride in conv_layers:
        length = conv_output_length(length, kernel, stride)
    return length


class ConvLayer(nn.Module):
    """Conv1d without bias -> LayerNorm over channels (in fp32) -> GELU.

    ``forward(x (B, C_in, L), lengths (B,)) -> (B, C_out, L'), lengths (B,)``: lengths travel
    with the data. A window that overlaps padding only produces frames past the row's new
    length, so the valid frames of a padded row are exactly those of the row alone.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, eps: float):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=False)
        self.norm = nn.LayerNorm(out_channels, eps=eps)

    def output_length(self, lengths):
        """(B,) input lengths (or an int) -> output lengths."""
        return conv_output_length(lengths, self.conv.kernel_size[0], self.conv.stride[0])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x).transpose(1, 2)  # (B, L', C_out)
        # The official extractor normalises in fp32 even under mixed precision.
        norm = self.norm
        y = F.layer_norm(y.float(), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        return F.gelu(y.type_as(x)).transpose(1, 2), self.output_length(lengths)


class ConvFeatureExtractor(nn.Module):
    """Waveform (B, N) -> conv features (B, T, C) at one frame per ``stride`` samples."""

    def __init__(self, conv_layers: Sequence[ConvSpec], eps: float = 1e-5):
        super().__init__()
        self.spec = tuple(tuple(layer) for layer in conv_layers)
        in_channels = [1] + [dim for dim, _, _ in self.spec[:-1]]
        self.layers = nn.ModuleList(
            ConvLayer(c_in, dim, kernel, stride, eps)
            for c_in, (dim, kernel, stride) in zip(in_channels, self.spec, strict=True)
        )

    @property
    def stride(self) -> int:
        """Samples between consecutive frames."""
        return conv_stride(self.spec)

    @property
    def receptive_field(self) -> int:
        """Samples one frame sees: the shortest input that gives a frame."""
        return conv_receptive_field(self.spec)

    def output_lengths(self, lengths):
        """Frames for inputs of ``lengths`` samples ((B,) tensor or int; 0 below the receptive
        field)."""
        return frames_after(lengths, self.spec)

    def forward(
        self, waves: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """waves (B, N) zero-padded, lengths (B,) valid samples (None: all N) ->
        features (B, T, C) and frame lengths (B,)."""
        batch, n = waves.shape
        if lengths is None:
            lengths = torch.full((batch,), n, dtype=torch.long, device=waves.device)
        if self.output_lengths(n) == 0:  # shorter than one window: nn.Conv1d would refuse
            return waves.new_zeros(batch, 0, self.spec[-1][0]), self.output_lengths(lengths)
        x = waves.unsqueeze(1)  # (B, 1, N)
        for layer in self.layers:
            x, lengths = layer(x, lengths)
        return x.transpose(1, 2), lengths


class FeatureProjection(nn.Module):
    """LayerNorm over conv channels then Linear to the transformer width (official ``project_features``)."""

    def __init__(self, in_dim: int, out_dim: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim, eps=eps)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, D)."""
        return self.linear(self.norm(x))
