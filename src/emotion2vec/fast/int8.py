"""The fast approximate CPU mode: int8 matrix products with one activation scale per row.

Every matrix product of the encoder except the first conv layer's (1 input channel, 0.2% of the
FLOPs) and the grouped positional conv's runs as ``int8 x int8 -> int32`` (``torch._int_mm``:
oneDNN, VNNI where the CPU has it), then is scaled back to fp32:

- weights: symmetric int8, one scale per output channel, quantised once;
- activations: symmetric int8, one scale per *row* (frame), computed on the fly.

Per-row activation scales are what makes the conv stack quantisable. After the conv LayerNorms,
quiet frames (silence, pauses) are orders of magnitude smaller than speech frames; one scale per
tensor rounds them to zero, and the next LayerNorm blows the rounding up again. Measured on 48
RAVDESS clips with base-size random weights: int8 conv layers 1-6 with one scale per tensor gave
utterance-embedding cosine 0.927 (min) to the exact path; with one scale per row, 0.9998.

The quantise / product / rescale (+ bias, + GELU, + the conv layers' LayerNorm) steps are one
function compiled with ``torch.compile`` (inductor, dynamic shapes), so the element-wise passes
are fused into one loop before and one after the product; in each transformer block, everything
after the attention (output projection, residual adds, both LayerNorms, the FFN) is one compiled
function, which also fuses each LayerNorm and GELU with the quantisation of the next product's
input (faster than product by product; figures: docs/benchmarks.md). Compiling takes a while
the first time in a process (inductor caches on disk across processes); when it fails (for
example no C++ compiler) the same functions run uncompiled, with a warning: the same maths,
slower (the two can round a few activations to neighbouring int8 steps: embedding cosine between
them > 0.9999).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..model import Emotion2vecModel
from ..model.feature_extractor import conv_output_length
from . import accelerate
from .compiled import Compiled as _Compiled
from .conv import FastConvLayer
from .product_swap import ProductBlock, swap_products

#: Scale floor: an all-zero row quantises to zeros instead of dividing by zero.
_TINY = 1e-30


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> int8 (in, out) laid out for ``_int_mm``, and the (out,) scales."""
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp_min(_TINY) / 127.0
    quantized = torch.round(weight / scale[:, None]).to(torch.int8)
    return quantized.t().contiguous(), scale


#: ``max |GELU(y)|`` over ``y < 0`` (GELU's minimum is -0.16997, at y = -0.7518), rounded up.
GELU_NEGATIVE_BOUND = 0.17


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, K) float -> (M, K) int8 and the (M, 1) scales: each row symmetric, with its own scale."""
    top = x.abs().amax(dim=1, keepdim=True).clamp_min(_TINY)
    # times the reciprocal: a vector division per element costs far more than a product
    return torch.round(x * (127.0 / top)).to(torch.int8), top / 127.0


def quantize_gelu_rows(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`quantize_rows` of ``GELU(y)``, with each row's range bounded from ``y`` itself:
    ``GELU(y) <= y`` for ``y >= 0`` and ``|GELU(y)| < GELU_NEGATIVE_BOUND`` for ``y < 0``, so
    ``max(max y, bound)`` covers every value without evaluating GELU for it (an erf per element,
    the costliest step of the FFN's epilogue, now runs once per element instead of twice).
    Nothing is clipped; the step is larger than :func:`quantize_rows`'s by the factor
    ``1 / Phi(max y)`` (0.1% at ``max y = 3``; FFN rows of 3,072 values reach far beyond that)."""
    top = y.amax(dim=1, keepdim=True).clamp_min(GELU_NEGATIVE_BOUND)
    return torch.round(F.gelu(y) * (127.0 / top)).to(torch.int8), top / 127.0


def int8_matmul(
    quantized: torch.Tensor,
    scale: torch.Tensor,
    weight_t: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """Rows of :func:`quantize_rows` times weights of :func:`quantize_weight` -> (M, N) float."""
    y = torch._int_mm(quantized, weight_t).to(torch.float32) * (scale * weight_scale)
    return y if bias is None else y + bias


def int8_product(
    x: torch.Tensor,
    weight_t: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    norm: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    gelu: bool = False,
) -> torch.Tensor:
    """(M, ...) float rows (flattened to M x K) -> (M, N) float: x @ W + bias, then optionally
    LayerNorm over N (weight, bias, eps) and GELU. Rows are quantised with their own scale."""
    rows = quantize_rows(x.reshape(x.shape[0], -1).float())
    y = int8_matmul(*rows, weight_t, weight_scale, bias)
    if norm is not None:
        y = F.layer_norm(y, (y.shape[-1],), norm[0], norm[1], norm[2])
    return F.gelu(y) if gelu else y


def int8_block_tail(
    x: torch.Tensor,
    mixed: torch.Tensor,
    proj: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    norm1: tuple[torch.Tensor, torch.Tensor, float],
    fc1: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    fc2: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    norm2: tuple[torch.Tensor, torch.Tensor, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Everything of a post-LN transformer block after the attention, with int8 products:
    x (block input) and mixed (attention output before its projection), both (rows, D) ->
    (LN2(h + FFN(h)), FFN(h)) with h = LN1(x + proj(mixed)). Each product is
    (weight_t, weight_scale, bias) of :func:`quantize_weight`; each norm (weight, bias, eps).
    One compiled function, so the residual adds, the LayerNorms, GELU and the quantisation of
    the next product's input share passes over memory instead of one pass each."""
    dim = x.shape[-1]
    h = F.layer_norm(x.float() + int8_product(mixed, *proj), (dim,), *norm1)
    hidden = int8_product(h, *fc1)
    ffn = int8_matmul(*quantize_gelu_rows(hidden), *fc2)
    return F.layer_norm(h + ffn, (dim,), *norm2), ffn


_product = _Compiled(int8_product)
_block_tail = _Compiled(int8_block_tail)


class Int8Linear(nn.Module):
    """Inference-only stand-in for ``nn.Linear``: (..., in) -> (..., out)."""

    def __init__(self, linear: nn.Linear, *, compile: bool = True):
        super().__init__()
        weight_t, scale = quantize_weight(linear.weight)
        self.register_buffer("weight_t", weight_t)
        self.register_buffer("weight_scale", scale)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)
        self.compile = compile

    def operands(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(weight_t, weight_scale, bias): the product's arguments of :func:`int8_product`."""
        return self.weight_t, self.weight_scale, self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _product(x.reshape(-1, x.shape[-1]), *self.operands(), compile=self.compile)
        return y.view(*x.shape[:-1], y.shape[-1]).to(x.dtype)


class Int8TransformerBlock(ProductBlock):
    """An inference-mode :class:`TransformerBlock` with int8 products. Attention itself stays in
    fp32; everything after it is :func:`int8_block_tail`."""

    linear = Int8Linear
    tail = _block_tail


class Int8ConvLayer(nn.Module):
    """A :class:`~.conv.FastConvLayer` (conv -> LayerNorm -> GELU) as one int8 product over its windows:
    (L, C_in) -> (L', C_out), the same contract. The windows are a strided view of the input
    (time-major rows are contiguous, so window t is rows [t * stride, t * stride + kernel)), read
    in place by the compiled quantisation loop."""

    def __init__(self, layer: FastConvLayer, *, last: bool = False, compile: bool = True):
        """``last`` is accepted for :func:`.product_swap.swap_products`: every int8 conv
        layer's output is already in its input's dtype."""
        super().__init__()
        out_ch, in_ch, kernel = layer.conv.weight.shape
        self.kernel, self.stride = kernel, layer.conv.stride[0]
        # (out, in, k) -> (out, k, in): a window's values in memory order, tap by tap
        flat = layer.conv.weight.detach().permute(0, 2, 1).reshape(out_ch, kernel * in_ch)
        weight_t, scale = quantize_weight(flat)
        self.register_buffer("weight_t", weight_t)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("norm_weight", layer.norm.weight.detach().float().clone())
        self.register_buffer("norm_bias", layer.norm.bias.detach().float().clone())
        self.eps = layer.norm.eps
        self.compile = compile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        length = conv_output_length(x.shape[0], self.kernel, self.stride)
        channels = x.shape[1]
        windows = x.as_strided(
            (length, self.kernel * channels), (self.stride * channels, 1), x.storage_offset()
        )
        y = _product(
            windows,
            self.weight_t,
            self.weight_scale,
            None,
            norm=(self.norm_weight, self.norm_bias, self.eps),
            gelu=True,
            compile=self.compile,
        )
        return y.to(x.dtype)


def quantize_int8(model: Emotion2vecModel, *, compile: bool = True) -> Emotion2vecModel:
    """A CPU inference copy of ``model`` whose matrix products run in int8 (see the module
    docstring); ``model`` itself is left untouched. Approximate: the README reports its fidelity
    against the exact path. ``compile=False`` skips ``torch.compile`` (same maths, slower)."""
    model = accelerate(copy.deepcopy(model).to("cpu").eval())
    swap_products(
        model, conv=Int8ConvLayer, linear=Int8Linear, block=Int8TransformerBlock, compile=compile
    )
    model.precision, model.precision_choice = "int8", None
    return model
