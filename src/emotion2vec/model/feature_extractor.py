"""The convolutional feature extractor (official: ``local_encoder``) and the projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activation import gelu


class ConvLayer(nn.Module):
    """Conv1d without bias, LayerNorm over channels at each time step (in fp32), GELU.

    Works time-major, (L, C): the convolution is computed as one matrix product per kernel tap
    over strided rows of the input (BLAS reads the strided rows in place), which runs several
    times faster on CPU than ``nn.Conv1d`` for these 512-channel layers and needs no transposes
    for the LayerNorm. The weights stay an ``nn.Conv1d`` so checkpoints map one to one.

    The waveform layer (1 input channel) folds its LayerNorm into the product at inference (see
    :meth:`_waveform_layer`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, eps: float):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=False)
        self.norm = nn.LayerNorm(out_channels, eps=eps)
        self._cache: dict[str, tuple[tuple, tuple[torch.Tensor, ...]]] = {}

    def _cached(self, name: str, params: tuple[torch.Tensor, ...], dtype: torch.dtype, build):
        """``build()`` without autograd, kept until one of ``params`` changes (new storage, an
        in-place update, another dtype or device): re-laying out the weights each call cost about
        1% of a forward."""
        key = (dtype, *((p.data_ptr(), p._version, p.device) for p in params))
        hit = self._cache.get(name)
        if hit is None or hit[0] != key:
            with torch.no_grad():
                hit = (key, build())
            self._cache[name] = hit
        return hit[1]

    def _tap_weights(self, dtype: torch.dtype) -> torch.Tensor:
        """The weights as (k, in, out), one matrix per kernel tap."""
        weight = self.conv.weight
        if weight.requires_grad and torch.is_grad_enabled():
            return weight.to(dtype).permute(2, 1, 0).contiguous()
        return self._cached(
            "taps", (weight,), dtype, lambda: (weight.to(dtype).permute(2, 1, 0).contiguous(),)
        )[0]

    def _waveform_layer(self, windows: torch.Tensor) -> torch.Tensor:
        """Inference form of the waveform layer: (L', k) sample windows -> GELU(LN(conv)).

        With one input channel each output frame is y = W w for a window w of k samples, so the
        LayerNorm's statistics over the output channels are functions of w alone:
        mean(y) = m.w with m the mean row of W, and var(y) = w' S w with S the k x k covariance
        of W's rows. Hence LN(y) = g * (W - m) w / sqrt(w' S w + eps) + b, which is one product
        of the rescaled windows with the centred, gain-scaled weights, bias included: the
        LayerNorm's two passes over the 512-channel output (the largest tensor of the model,
        3,200 frames a second) disappear. The same maths as LayerNorm in fp32 up to rounding.
        """
        weight, norm = self.conv.weight, self.norm

        def build():
            w = weight[:, 0, :].double()  # (out, k)
            centred = w - w.mean(dim=0)
            cov = centred.t() @ centred / w.shape[0]  # (k, k), biased like LayerNorm
            scaled = centred * norm.weight.double()[:, None]
            return cov.float(), scaled.t().contiguous().float(), norm.bias.detach().float()

        cov, scaled_t, bias = self._cached(
            "waveform", (weight, norm.weight, norm.bias), torch.float32, build
        )
        windows = windows.contiguous()
        var = ((windows @ cov) * windows).sum(dim=1, keepdim=True).clamp_min_(0)
        inv_std = torch.rsqrt(var.add_(norm.eps))
        return gelu(torch.addmm(bias, windows * inv_std, scaled_t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(L, C_in) -> (L', C_out) with L' = (L - kernel) // stride + 1."""
        kernel, stride = self.conv.kernel_size[0], self.conv.stride[0]
        length = (x.shape[0] - kernel) // stride + 1
        if self.conv.in_channels == 1:
            # the waveform layer: explicit windows, one small product
            windows = x[:, 0].unfold(0, kernel, stride)
            tracked = x.requires_grad or self.conv.weight.requires_grad
            inference = not (torch.is_grad_enabled() and tracked)
            if inference and x.dtype == torch.float32:
                return self._waveform_layer(windows)
            y = windows @ self.conv.weight[:, 0, :].to(x.dtype).t()
        else:
            taps = self._tap_weights(x.dtype)  # (k, in, out)
            span = stride * (length - 1) + 1
            y = x[0:span:stride] @ taps[0]
            for j in range(1, kernel):
                tap = x[j : j + span : stride]
                y = y.addmm_(tap, taps[j]) if not y.requires_grad else torch.addmm(y, tap, taps[j])
        # The official extractor normalises in fp32 even under mixed precision.
        y = F.layer_norm(
            y.float(),
            self.norm.normalized_shape,
            self.norm.weight.float(),
            self.norm.bias.float(),
            self.norm.eps,
        ).type_as(y)
        return gelu(y)


#: The conv stack runs over at most this many output frames at a time. The first layer's output
#: is 64 x longer than the frames (128 frames -> 16 MB per intermediate tensor), and chunks this
#: small keep the LayerNorm / GELU passes and the tap products in cache: measured on RAVDESS-length
#: batches (2 threads, base size), the conv stack took 1.22 s at 128 frames against 1.55-1.73 s at
#: 500 (65 MB tensors, each one fresh pages from the OS); 96 to 192 were all within noise.
CHUNK_FRAMES = 128


class ConvFeatureExtractor(nn.Module):
    """Waveform (B, N) -> conv features (B, T, C) at one frame per ``stride`` samples.

    The rows of a batch are zero-padded to a multiple of the total stride and laid end to end as
    one sequence, so every row starts on the frame grid: row r's frame t is frame r * M + t of the
    sequence (M = padded length / stride). Each frame only sees the samples of its own window, so
    this gives exactly the frames of each row alone, with large matrix products whatever the
    batch size. The sequence is processed in chunks cut at frame boundaries (overlapping by the
    receptive field), which keeps memory bounded for recordings of any length.
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

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples."""
        if num_samples < self.receptive_field:
            return 0
        return (num_samples - self.receptive_field) // self.stride + 1

    def _run(self, samples: torch.Tensor) -> torch.Tensor:
        x = samples.unsqueeze(-1)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, N) float waveforms -> (B, T, C), T = frames of N samples."""
        batch, n = waves.shape
        frames = self.num_frames(n)
        slots = -(-n // self.stride)  # frame slots per row, M
        flat = F.pad(waves, (0, slots * self.stride - n)).reshape(-1)
        total = self.num_frames(flat.shape[0])
        if total == 0:
            return waves.new_zeros(batch, 0, self.spec[-1][0])
        pieces = []
        for first in range(0, total, CHUNK_FRAMES):
            last = min(first + CHUNK_FRAMES, total)
            start = first * self.stride
            pieces.append(self._run(flat[start : (last - 1) * self.stride + self.receptive_field]))
        y = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0]
        y = F.pad(y, (0, 0, 0, batch * slots - total))
        return y.view(batch, slots, -1)[:, :frames]

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
