"""Explicit key map between the official state dict layout and our modules.

Official keys (``…`` = ``modality_encoders.AUDIO.``; the plus models prefix every backbone key with
``d2v_model.``) on the left, ours on the right. ``{i}`` is a layer index; ``offset`` is added to it
when going from official to ours (the official positional conv is a Sequential whose index 0 is a
transpose).
"""

from __future__ import annotations

import re

import torch

AUDIO = "modality_encoders.AUDIO."

#: (official key pattern, our key pattern, index offset official -> ours)
KEY_RULES: tuple[tuple[str, str, int], ...] = (
    (AUDIO + "extra_tokens", "encoder.extra_tokens", 0),
    (AUDIO + "alibi_scale", "encoder.alibi_scale", 0),
    (
        AUDIO + "local_encoder.conv_layers.{i}.0.weight",
        "encoder.feature_extractor.layers.{i}.conv.weight",
        0,
    ),
    (
        AUDIO + "local_encoder.conv_layers.{i}.2.1.weight",
        "encoder.feature_extractor.layers.{i}.norm.weight",
        0,
    ),
    (
        AUDIO + "local_encoder.conv_layers.{i}.2.1.bias",
        "encoder.feature_extractor.layers.{i}.norm.bias",
        0,
    ),
    (AUDIO + "project_features.1.weight", "encoder.feature_projection.norm.weight", 0),
    (AUDIO + "project_features.1.bias", "encoder.feature_projection.norm.bias", 0),
    (AUDIO + "project_features.2.weight", "encoder.feature_projection.linear.weight", 0),
    (AUDIO + "project_features.2.bias", "encoder.feature_projection.linear.bias", 0),
    (
        AUDIO + "relative_positional_encoder.{i}.0.weight",
        "encoder.positional_conv.convs.{i}.weight",
        -1,
    ),
    (
        AUDIO + "relative_positional_encoder.{i}.0.bias",
        "encoder.positional_conv.convs.{i}.bias",
        -1,
    ),
    (AUDIO + "context_encoder.norm.weight", "encoder.context_norm.weight", 0),
    (AUDIO + "context_encoder.norm.bias", "encoder.context_norm.bias", 0),
    (AUDIO + "context_encoder.blocks.{i}.{rest}", "encoder.context_blocks.{i}.{rest}", 0),
    (AUDIO + "decoder.blocks.{i}.0.weight", "decoder.convs.{i}.weight", 0),
    (AUDIO + "decoder.blocks.{i}.0.bias", "decoder.convs.{i}.bias", 0),
    (AUDIO + "decoder.proj.weight", "decoder.proj.weight", 0),
    (AUDIO + "decoder.proj.bias", "decoder.proj.bias", 0),
    ("blocks.{i}.{rest}", "encoder.blocks.{i}.{rest}", 0),
    ("proj.weight", "head.linear.weight", 0),
    ("proj.bias", "head.linear.bias", 0),
)

#: Block sub-keys (identical names on both sides).
BLOCK_PARAMS = (
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
)

_REST = "(?P<rest>" + "|".join(re.escape(p) for p in BLOCK_PARAMS) + ")"


def _compile(pattern: str) -> re.Pattern[str]:
    regex = re.escape(pattern).replace(re.escape("{i}"), r"(?P<i>\d+)")
    regex = regex.replace(re.escape("{rest}"), _REST)
    return re.compile(regex + r"\Z")


_FORWARD = [(_compile(src), dst, off) for src, dst, off in KEY_RULES]
_BACKWARD = [(_compile(dst), src, -off) for src, dst, off in KEY_RULES]


def _translate(key: str, rules) -> str | None:
    for regex, template, offset in rules:
        m = regex.match(key)
        if m is None:
            continue
        groups = m.groupdict()
        out = template
        if "i" in groups:
            index = int(groups["i"]) + offset
            if index < 0:
                return None
            out = out.replace("{i}", str(index))
        if "rest" in groups:
            out = out.replace("{rest}", groups["rest"])
        return out
    return None


def official_to_ours(key: str) -> str | None:
    """Our parameter name for an official key (prefix already stripped), or None if unknown."""
    return _translate(key, _FORWARD)


def ours_to_official(key: str) -> str | None:
    """The official key (without ``d2v_model.``) for one of our parameter names, or None."""
    return _translate(key, _BACKWARD)


def official_tensor_to_ours(our_key: str, tensor: torch.Tensor) -> torch.Tensor:
    """Reshape the tensors whose official layout differs from ours."""
    if our_key == "encoder.alibi_scale":
        # official (1, 1, H, 1, 1); old data2vec 2.0 files (1, H, 1, 1)
        return tensor.reshape(-1)
    if our_key == "encoder.extra_tokens":
        return tensor.reshape(tensor.shape[-2], tensor.shape[-1]) if tensor.dim() == 3 else tensor
    return tensor


def ours_tensor_to_official(our_key: str, tensor: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`official_tensor_to_ours`."""
    if our_key == "encoder.alibi_scale":
        return tensor.reshape(1, 1, -1, 1, 1)
    if our_key == "encoder.extra_tokens":
        return tensor.unsqueeze(0)
    return tensor
