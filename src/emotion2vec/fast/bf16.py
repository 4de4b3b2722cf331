"""The bf16 mode: the encoder's large matrix products in bfloat16, everything else in fp32.

A module swap beside :mod:`.int8`, for hardware with bf16 units (AVX512-BF16 or AMX on the CPU,
CUDA GPUs from Ampere on). Products take bf16 operands and accumulate in fp32 inside the kernel
(oneDNN on the CPU, cuBLAS on CUDA); their outputs are rounded to bf16 once. What stays fp32,
and why:

- the waveform conv layer (1 input channel: a tiny product whose LayerNorm is folded into it,
  and the layer that sees the raw samples' dynamic range);
- every LayerNorm (statistics of 512 / 768 values: bf16's 8-bit mantissa would round the
  variance), the residual stream between blocks, and each block's residual adds;
- attention itself (scores, softmax, weighted values, the ALiBi bias): the CPU flash kernel
  gains nothing in bf16, and the bias reaches -slope * 6,000 at 120 s, where bf16's step would
  be larger than the bias differences of neighbouring frames;
- the positional conv, the mean pooling and the head (negligible work).

Swapped (each a bf16 product with an fp32 result unless noted): conv layers 2-7 (one product
over each layer's windows, then LayerNorm and GELU in fp32), the feature projection, and in
each transformer block qkv, the output projection, fc1 and fc2 (fc1's output stays bf16 through
GELU into fc2, which rounds it there anyway).

As in :mod:`.int8`, the element-wise steps around each product (the casts to and from bf16,
bias, residual add, LayerNorm, GELU) are one function compiled with ``torch.compile``, so they
share passes over memory; uncompiled where the machine cannot compile (same maths). The conv
layers hand bf16 to each other (the next product rounds its input to bf16 anyway).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..model import Emotion2vecModel
from ..model.feature_extractor import conv_output_length
from . import accelerate
from .compiled import Compiled
from .conv import FastConvLayer
from .product_swap import ProductBlock, swap_products

DTYPE = torch.bfloat16


def bf16_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype
) -> torch.Tensor:
    """(..., in) any float -> (..., out) in ``out_dtype``: a bf16 product, fp32 accumulation."""
    return F.linear(x.to(DTYPE), weight, bias).to(out_dtype)


def bf16_block_tail(
    x: torch.Tensor,
    mixed: torch.Tensor,
    proj: tuple[torch.Tensor, torch.Tensor | None],
    norm1: tuple[torch.Tensor, torch.Tensor, float],
    fc1: tuple[torch.Tensor, torch.Tensor | None],
    fc2: tuple[torch.Tensor, torch.Tensor | None],
    norm2: tuple[torch.Tensor, torch.Tensor, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Everything of a post-LN block after the attention, products in bf16: x (block input,
    fp32) and mixed (attention output before its projection, fp32), both (rows, D) ->
    (LN2(h + FFN(h)), FFN(h)) fp32 with h = LN1(x + proj(mixed)). Each product is
    (bf16 weight, bf16 bias); each norm (weight, bias, eps), applied in fp32."""
    dim = x.shape[-1]
    h = F.layer_norm(x + bf16_linear(mixed, *proj, torch.float32), (dim,), *norm1)
    hidden = F.gelu(bf16_linear(h, *fc1, DTYPE))  # bf16: fc2 would round it to bf16 anyway
    ffn = F.linear(hidden, *fc2).float()
    return F.layer_norm(h + ffn, (dim,), *norm2), ffn


def bf16_conv(
    windows: torch.Tensor,
    weight_t: torch.Tensor,
    norm: tuple[torch.Tensor, torch.Tensor, float],
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """(L', k * C_in) bf16 windows @ (k * C_in, C_out) bf16 weights -> GELU(LayerNorm(.)) in
    fp32, returned as ``out_dtype``: (L', C_out)."""
    y = (windows @ weight_t).float()
    return F.gelu(F.layer_norm(y, (y.shape[-1],), *norm)).to(out_dtype)


_linear = Compiled(bf16_linear)
_block_tail = Compiled(bf16_block_tail)
_conv = Compiled(bf16_conv)


class Bf16Linear(nn.Module):
    """Inference-only stand-in for ``nn.Linear`` with bf16 weights: (..., in) any float ->
    (..., out) fp32."""

    def __init__(self, linear: nn.Linear, *, compile: bool = True):
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().to(DTYPE).clone())
        bias = None if linear.bias is None else linear.bias.detach().to(DTYPE).clone()
        self.register_buffer("bias", bias)
        self.compile = compile

    def operands(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias), both bf16."""
        return self.weight, self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        y = _linear(rows, self.weight, self.bias, torch.float32, compile=self.compile)
        return y.view(*x.shape[:-1], y.shape[-1])


class Bf16TransformerBlock(ProductBlock):
    """An inference-mode :class:`TransformerBlock` with bf16 products (output fp32). Attention
    itself stays in fp32; everything after it is :func:`bf16_block_tail`."""

    linear = Bf16Linear
    tail = _block_tail


class Bf16ConvLayer(nn.Module):
    """A :class:`~.conv.FastConvLayer` (conv -> LayerNorm -> GELU) as one bf16 product over its
    windows, LayerNorm and GELU in fp32: (L, C_in) -> (L', C_out), the same contract; the output
    is bf16 unless ``last`` (the feature projection's LayerNorm reads fp32). The windows are a
    strided view of the bf16 input (window t is rows [t * stride, t * stride + kernel) of the
    time-major input)."""

    def __init__(self, layer: FastConvLayer, *, last: bool = False, compile: bool = True):
        super().__init__()
        out_ch, in_ch, kernel = layer.conv.weight.shape
        self.kernel, self.stride = kernel, layer.conv.stride[0]
        # (out, in, k) -> (k * in, out): a window's values in memory order, tap by tap
        flat = layer.conv.weight.detach().permute(2, 1, 0).reshape(kernel * in_ch, out_ch)
        self.register_buffer("weight_t", flat.to(DTYPE).contiguous())
        self.norm = layer.norm
        self.out_dtype = torch.float32 if last else DTYPE
        self.compile = compile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(DTYPE).contiguous()
        length = conv_output_length(x.shape[0], self.kernel, self.stride)
        channels = x.shape[1]
        windows = x.as_strided(
            (length, self.kernel * channels), (self.stride * channels, 1), x.storage_offset()
        )
        norm = (self.norm.weight, self.norm.bias, self.norm.eps)
        return _conv(windows, self.weight_t, norm, self.out_dtype, compile=self.compile)


def to_bf16(model: Emotion2vecModel, *, compile: bool = True) -> Emotion2vecModel:
    """An inference copy of ``model`` whose large matrix products run in bf16 (see the module
    docstring), on ``model``'s device; ``model`` itself is left untouched. Approximate: the
    fidelity against the exact path is measured by ``benchmarks/precision.py``.
    ``compile=False`` skips ``torch.compile`` (same maths, slower)."""
    model = accelerate(copy.deepcopy(model).eval())
    swap_products(
        model, conv=Bf16ConvLayer, linear=Bf16Linear, block=Bf16TransformerBlock, compile=compile
    )
    model.precision, model.precision_choice = "bf16", None
    return model
