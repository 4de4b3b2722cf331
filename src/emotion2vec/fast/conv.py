"""The fast conv feature extractor: a drop-in for :class:`emotion2vec.model.feature_extractor.
ConvFeatureExtractor` (same parameters, same ``(waves, lengths) -> (features, frames)``).

Three CPU tricks, none of which changes the numbers beyond fp32 rounding:

* each 512-channel layer runs time-major, (L, C), as one matrix product per kernel tap over
  strided rows of the input (BLAS reads the strided rows in place): several times faster on
  CPU than ``nn.Conv1d`` here, and no transposes for the LayerNorm;
* the waveform layer (1 input channel) folds its LayerNorm into its product at inference;
* the rows of a batch are laid end to end as one sequence and run in chunks of
  :data:`CHUNK_FRAMES` frames: large products whatever the batch size, memory bounded for
  recordings of any length.

Autograd works through all of it (the fold and the weight cache are inference-only), so
training runs these modules too (see :func:`emotion2vec.fast.accelerate`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.feature_extractor import ConvFeatureExtractor, ConvLayer, conv_output_length
from .activation import gelu


class FastConvLayer(nn.Module):
    """A :class:`ConvLayer` (shares its ``conv`` and ``norm``) run time-major:
    ``(L, C_in) -> (L', C_out)``, frames of one sequence, no lengths (the sequence has no
    padding)."""

    def __init__(self, layer: ConvLayer):
        super().__init__()
        self.conv = layer.conv
        self.norm = layer.norm
        self._cache: dict[str, tuple[tuple, tuple[torch.Tensor, ...]]] = {}

    def _cached(self, name: str, params: tuple[torch.Tensor, ...], dtype: torch.dtype, build):
        """``build()`` without autograd, kept until one of ``params`` changes (new storage, an
        in-place update, another dtype or device): re-laying out the weights on every call is a
        measurable share of a forward (docs/benchmarks.md)."""
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
        """(L, C_in) -> (L', C_out), L' = :func:`conv_output_length` of L."""
        kernel, stride = self.conv.kernel_size[0], self.conv.stride[0]
        length = conv_output_length(x.shape[0], kernel, stride)
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
#: small keep the LayerNorm / GELU passes and the tap products in cache (chosen with
#: benchmarks/extract_speed.py; docs/benchmarks.md has the comparison).
CHUNK_FRAMES = 128


class FastConvFeatureExtractor(nn.Module):
    """Drop-in for :class:`ConvFeatureExtractor` (shares its layers' parameters): waveform
    (B, N) + lengths -> conv features (B, T, C) + frame lengths.

    The rows of a batch are zero-padded to a multiple of the total stride and laid end to end as
    one sequence, so every row starts on the frame grid: row r's frame t is frame r * M + t of the
    sequence (M = padded length / stride). Each frame only sees the samples of its own window, so
    this gives exactly the frames of each row alone, with large matrix products whatever the
    batch size. The sequence is processed in chunks cut at frame boundaries (overlapping by the
    receptive field), which keeps memory bounded for recordings of any length.
    """

    def __init__(self, reference: ConvFeatureExtractor):
        super().__init__()
        self.spec = reference.spec
        self.layers = nn.ModuleList(FastConvLayer(layer) for layer in reference.layers)
        self.stride = reference.stride
        self.receptive_field = reference.receptive_field

    output_lengths = ConvFeatureExtractor.output_lengths

    def _run(self, samples: torch.Tensor) -> torch.Tensor:
        x = samples.unsqueeze(-1)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(
        self, waves: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """waves (B, N) zero-padded, lengths (B,) valid samples (None: all N) ->
        features (B, T, C) and frame lengths (B,)."""
        batch, n = waves.shape
        if lengths is None:
            lengths = torch.full((batch,), n, dtype=torch.long, device=waves.device)
        frame_lengths = self.output_lengths(lengths)
        frames = self.output_lengths(n)
        slots = -(-n // self.stride)  # frame slots per row, M
        flat = F.pad(waves, (0, slots * self.stride - n)).reshape(-1)
        total = self.output_lengths(flat.shape[0])
        if total == 0:
            return waves.new_zeros(batch, 0, self.spec[-1][0]), frame_lengths
        pieces = []
        for first in range(0, total, CHUNK_FRAMES):
            last = min(first + CHUNK_FRAMES, total)
            start = first * self.stride
            pieces.append(self._run(flat[start : (last - 1) * self.stride + self.receptive_field]))
        y = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0]
        y = F.pad(y, (0, 0, 0, batch * slots - total))
        return y.view(batch, slots, -1)[:, :frames], frame_lengths
