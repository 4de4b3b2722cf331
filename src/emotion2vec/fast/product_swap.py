"""What the approximate modes (:mod:`.int8`, :mod:`.bf16`) share: a transformer block whose
products run in another number format, and the walk that swaps a model's products.

A mode supplies its linear layer (with ``operands()``), its compiled block tail (output
projection, residual adds, both LayerNorms, the FFN) and its conv layer; attention itself (scores,
softmax, weighted values) stays in fp32 in every mode."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..model import Emotion2vecModel
from ..model.transformer import TransformerBlock
from .alibi import AlibiBias
from .attention import attend


class ProductBlock(nn.Module):
    """An inference-mode :class:`TransformerBlock` whose products run in a subclass's format:
    the same ``(x, bias) -> (block output, FFN output)`` contract, in ``x``'s dtype."""

    #: The mode's linear layer class (built from an ``nn.Linear``; has ``operands()``).
    linear: Callable[..., nn.Module]
    #: The mode's compiled block tail (:class:`.compiled.Compiled`).
    tail: Callable[..., tuple[torch.Tensor, torch.Tensor]]

    def __init__(self, block: TransformerBlock, *, compile: bool = True):
        super().__init__()
        self.num_heads = block.attn.num_heads
        self.qkv = self.linear(block.attn.qkv, compile=compile)
        self.proj = self.linear(block.attn.proj, compile=compile)
        self.norm1 = block.norm1
        # fc1 and fc2 hold the FFN's operands; the tail applies GELU between them itself
        self.fc1 = self.linear(block.mlp.fc1, compile=compile)
        self.fc2 = self.linear(block.mlp.fc2, compile=compile)
        self.norm2 = block.norm2
        self.compile = compile

    def forward(self, x: torch.Tensor, bias: AlibiBias) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, D) -> (block output (B, T, D), FFN output (B, T, D))."""
        mixed = attend(self.qkv(x), bias, self.num_heads)
        # (B, T, D) as rows: a batch of one would otherwise compile a second graph
        out, ffn = type(self).tail(
            x.reshape(-1, x.shape[-1]),
            mixed.reshape(-1, x.shape[-1]),
            self.proj.operands(),
            (self.norm1.weight, self.norm1.bias, self.norm1.eps),
            self.fc1.operands(),
            self.fc2.operands(),
            (self.norm2.weight, self.norm2.bias, self.norm2.eps),
            compile=self.compile,
        )
        return out.view(x.shape).to(x.dtype), ffn.view(x.shape).to(x.dtype)


def swap_products(
    model: Emotion2vecModel,
    *,
    conv: Callable[..., nn.Module],
    linear: Callable[..., nn.Module],
    block: Callable[..., nn.Module],
    compile: bool = True,
) -> Emotion2vecModel:
    """Swap, in place, the conv layers after the waveform layer (``conv(layer, last=...,
    compile=...)``), the feature projection's linear layer and every transformer block of an
    accelerated inference model; freeze its parameters. Returns ``model``."""
    enc = model.encoder
    layers = enc.feature_extractor.layers
    for index, layer in enumerate(layers):
        if layer.conv.in_channels > 1:
            layers[index] = conv(layer, last=index == len(layers) - 1, compile=compile)
    enc.feature_projection.linear = linear(enc.feature_projection.linear, compile=compile)
    for stack in (enc.context_blocks, enc.blocks):
        for index, old in enumerate(stack):
            stack[index] = block(old, compile=compile)
    for param in model.parameters():
        param.requires_grad_(False)
    return model
