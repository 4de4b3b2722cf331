"""Analytic FLOP count of the encoder (multiply-adds x 2), for throughput and utilisation reports.

Counts the convolutions, linear layers and the two attention products; normalisation, activation
and softmax costs are left out (they are memory-bound and small), so utilisation figures based
on it are conservative.
"""

from __future__ import annotations

from ..config import ModelConfig
from .feature_extractor import conv_output_length


def encoder_flops(config: ModelConfig, num_samples: int) -> int:
    """FLOPs of one forward pass of the encoder (and head) on ``num_samples`` samples."""
    e = config.encoder
    flops = 0
    length, in_ch = num_samples, 1
    for ch, kernel, stride in e.conv_layers:
        length = conv_output_length(length, kernel, stride)
        flops += 2 * in_ch * kernel * ch * length
        in_ch = ch
    frames = length
    d = e.embed_dim
    flops += 2 * e.conv_dim * d * frames  # projection
    flops += e.pos_conv_layers * 2 * d * (d // e.pos_conv_groups) * e.pos_conv_kernel * frames
    seq = frames + e.num_extra_tokens
    hidden = int(d * e.mlp_ratio)
    per_block = 2 * seq * (3 * d * d + d * d + 2 * d * hidden) + 2 * 2 * seq * seq * d
    flops += e.num_layers * per_block
    flops += 2 * d * config.num_classes
    return flops
