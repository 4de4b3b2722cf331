"""The micro model of the test suite, importable by name from any test module
(``from model_factory import build_model``; ``conftest`` itself is ambiguous as a module name
because tests/pretrain has one too). tests/conftest.py wraps these as fixtures.

The micro model has every module of the published models at toy widths (the layout of the
FunASR parity fixture): the official 7-layer conv spec with 64 channels, embed_dim 64, 4 heads,
1 context block + 2 main blocks, 5 positional conv layers of kernel 19 in 16 groups, 10 extra
tokens, a 4-layer decoder of width 32.
"""

from __future__ import annotations

import math

import torch

from emotion2vec import Emotion2vecModel
from emotion2vec.config import (
    EMOTION_LABELS,
    OFFICIAL_CONV_LAYERS,
    DecoderConfig,
    EncoderConfig,
    ModelConfig,
)
from emotion2vec.fast import accelerate

#: The official (kernel, stride) spec with 64 channels.
MICRO_CONV = tuple((64, kernel, stride) for _, kernel, stride in OFFICIAL_CONV_LAYERS)


def build_micro_config(
    *,
    labels: tuple[str, ...] = EMOTION_LABELS,
    decoder: bool = True,
    **encoder_overrides,
) -> ModelConfig:
    """The micro ModelConfig; ``encoder_overrides`` replace EncoderConfig fields."""
    encoder = dict(
        conv_layers=MICRO_CONV,
        embed_dim=64,
        num_heads=4,
        context_depth=1,
        depth=2,
    )
    encoder.update(encoder_overrides)
    return ModelConfig(
        encoder=EncoderConfig(**encoder),
        decoder=DecoderConfig(dim=32) if decoder else None,
        labels=tuple(labels),
    )


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded values of a sensible scale.

    LayerNorm gains ~ 1 +- 0.3 and biases ~ +-0.2 (so a dropped affine changes outputs), weights
    ~ N(0, 1/fan_in), extra tokens ~ N(0, 1), ALiBi scales in [0.3, 1.7] except head 1, which is
    negative so that the clamp at 0 matters; the emotion head is scaled up so scores are far from
    uniform.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen) * std + mean

    done: set[str] = set()
    with torch.no_grad():
        for mod_name, mod in model.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(normal(mod.weight.shape, 0.3, 1.0))
                mod.bias.copy_(normal(mod.bias.shape, 0.2))
                done |= {prefix + "weight", prefix + "bias"}
            elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d)):
                w = mod.weight
                fan_in = w.shape[1] * (w.shape[2] if w.dim() == 3 else 1)
                std = 1.0 / math.sqrt(fan_in)
                if isinstance(mod, torch.nn.Conv1d):
                    std *= math.sqrt(2.0)
                if mod_name.startswith("head"):
                    std *= 4.0
                w.copy_(normal(w.shape, std))
                done.add(prefix + "weight")
                if mod.bias is not None:
                    mod.bias.copy_(normal(mod.bias.shape, 0.1))
                    done.add(prefix + "bias")
        for name, p in model.named_parameters():
            if name.endswith("extra_tokens"):
                p.copy_(normal(p.shape, 1.0))
                done.add(name)
            elif name.endswith("alibi_scale"):
                vals = torch.rand(p.shape, generator=gen) * 1.4 + 0.3
                if vals.numel() > 1:
                    vals.view(-1)[1] = -0.5
                p.copy_(vals)
                done.add(name)
    missing = [n for n, _ in model.named_parameters() if n not in done]
    assert not missing, f"randomize_ missed {missing}"


def build_model(
    seed: int = 0,
    *,
    labels: tuple[str, ...] = EMOTION_LABELS,
    decoder: bool = True,
    config: ModelConfig | None = None,
    reference: bool = False,
    **encoder_overrides,
) -> Emotion2vecModel:
    """A micro (or given-config) model with seeded random weights, in eval mode, with the fast
    modules as ``load_model`` gives them (``reference=True``: the reference modules)."""
    if config is None:
        config = build_micro_config(labels=labels, decoder=decoder, **encoder_overrides)
    torch.manual_seed(seed)
    model = Emotion2vecModel(config)
    randomize_(model, seed)
    return model.eval() if reference else accelerate(model.eval())
