"""CPU speed-ups of the reference network, each a module that replaces its reference module.

Every fast module shares its reference module's parameters (same objects, same state-dict
keys, so checkpoints, ``save_pretrained`` and fingerprints are unchanged) and gives its
numbers up to fp32 rounding (tests/test_fast.py checks each pair):

============================================  ==============================================
reference (:mod:`emotion2vec.model`)          fast
============================================  ==============================================
``feature_extractor.ConvFeatureExtractor``    :class:`.conv.FastConvFeatureExtractor`
``positional.PositionalConv``                 :class:`.positional.FastPositionalConv`
``positional.Alibi``                          :class:`.alibi.LazyAlibi`
``transformer.SelfAttention``                 :class:`.attention.FastSelfAttention`
``transformer.FeedForward``                   :class:`.attention.FastFeedForward`
============================================  ==============================================

:func:`accelerate` applies them. Who uses which:

* inference: ``emotion2vec.load_model`` accelerates every model it loads;
* training (pre-training and fine-tuning objectives) accelerates too: every fast module passes
  gradients (the inference-only tricks, the waveform-layer fold, the weight cache and the
  diagonal attention, switch themselves off when autograd needs them), and these are the code
  paths the pre-training parity tests against fairseq were established on;
* ONNX export and the tests' reference computations use the reference modules.

:mod:`.int8` (``quantize_int8``) and :mod:`.bf16` (``to_bf16``) are further, approximate swaps
on top of these; :mod:`.precision` chooses among fp32 / bf16 / int8 by the hardware
(``load_model(..., precision=...)``).
"""

from __future__ import annotations

from torch import nn

from ..model import Emotion2vecModel
from ..model.feature_extractor import ConvFeatureExtractor
from ..model.positional import Alibi, PositionalConv
from ..model.transformer import FeedForward, SelfAttention
from .alibi import LazyAlibi
from .attention import FastFeedForward, FastSelfAttention
from .conv import FastConvFeatureExtractor
from .positional import FastPositionalConv

__all__ = ["accelerate", "is_accelerated"]


def accelerate(model: Emotion2vecModel) -> Emotion2vecModel:
    """Swap the fast modules into ``model`` in place and return it (idempotent)."""
    enc = model.encoder
    # new modules start in training mode: each takes its reference's mode
    if type(enc.feature_extractor) is ConvFeatureExtractor:
        enc.feature_extractor = _like(FastConvFeatureExtractor, enc.feature_extractor)
    if type(enc.positional_conv) is PositionalConv:
        enc.positional_conv = _like(FastPositionalConv, enc.positional_conv)
    if type(enc.alibi) is Alibi:
        enc.alibi = LazyAlibi().train(enc.alibi.training)
    for block in [*enc.context_blocks, *enc.blocks]:
        # int8 blocks (emotion2vec.fast.int8) have no attn / mlp of this kind: left alone
        if type(getattr(block, "attn", None)) is SelfAttention:
            block.attn = _like(FastSelfAttention, block.attn)
        if type(getattr(block, "mlp", None)) is FeedForward:
            block.mlp = _like(FastFeedForward, block.mlp)
    return model


def _like(fast_class, reference: nn.Module) -> nn.Module:
    return fast_class(reference).train(reference.training)


def is_accelerated(model: nn.Module) -> bool:
    """True when no reference module that :func:`accelerate` replaces is left in ``model``."""
    swapped = (ConvFeatureExtractor, PositionalConv, Alibi, SelfAttention, FeedForward)
    return not any(type(m) in swapped for m in model.modules())
