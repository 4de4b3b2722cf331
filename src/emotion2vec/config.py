"""Dataclass configurations of the emotion2vec model, with the published presets.

Defaults are the values of the published ``emotion2vec_base`` checkpoint (FunASR's
``template.yaml``, see ``shared/reference/emotion2vec.md`` section 1.2). Presets only
override what differs. Option names of the official code are given in each docstring so
configs can be checked against the original.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


def conv_stride(conv_layers) -> int:
    """Samples between consecutive frames of a conv stack of ``(dim, kernel, stride)`` layers:
    the product of the strides. (Frame counts: :mod:`emotion2vec.model.feature_extractor`.)"""
    stride = 1
    for _, _, s in conv_layers:
        stride *= s
    return stride


def conv_receptive_field(conv_layers) -> int:
    """Samples one frame of a conv stack sees: the shortest input that gives a frame."""
    field_, jump = 1, 1
    for _, kernel, s in conv_layers:
        field_ += (kernel - 1) * jump
        jump *= s
    return field_


#: (out channels, kernel, stride) of the 7 conv layers of the official feature extractor.
OFFICIAL_CONV_LAYERS: tuple[tuple[int, int, int], ...] = (
    (512, 10, 5),
    (512, 3, 2),
    (512, 3, 2),
    (512, 3, 2),
    (512, 3, 2),
    (512, 2, 2),
    (512, 2, 2),
)

#: Output order of the 9-class head of the emotion2vec+ models (``tokens.txt``).
EMOTION_LABELS: tuple[str, ...] = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "neutral",
    "other",
    "sad",
    "surprised",
    "unknown",
)


@dataclass(kw_only=True)
class EncoderConfig:
    """The speech encoder: conv feature extractor, positional conv, ALiBi, transformer."""

    conv_layers: tuple[tuple[int, int, int], ...] = OFFICIAL_CONV_LAYERS
    """(channels, kernel, stride) per conv layer (official: ``feature_encoder_spec``)."""
    embed_dim: int = 768
    """Transformer width D (official: ``embed_dim``)."""
    num_heads: int = 12
    """Attention heads (official: ``num_heads``)."""
    mlp_ratio: float = 4.0
    """Feed-forward width as a multiple of D (official: ``mlp_ratio``)."""
    context_depth: int = 4
    """Blocks of the context encoder, run before the main blocks (official: ``prenet_depth``)."""
    depth: int = 8
    """Main transformer blocks (official: ``depth``)."""
    norm_eps: float = 1e-5
    """Epsilon of every LayerNorm (official: ``norm_eps``)."""
    pos_conv_kernel: int = 19
    """Kernel of each positional conv layer (official: ``max(3, conv_pos_width // conv_pos_depth)`` = 95 // 5)."""
    pos_conv_layers: int = 5
    """Number of positional conv layers (official: ``conv_pos_depth``)."""
    pos_conv_groups: int = 16
    """Groups of the positional convs (official: ``conv_pos_groups``)."""
    num_extra_tokens: int = 10
    """Learned tokens prepended before the transformer (official: ``num_extra_tokens``)."""
    dropout: float = 0.1
    """Dropout after the attention output projection (official: ``encoder_dropout``)."""
    attention_dropout: float = 0.1
    """Dropout on attention probabilities (official: ``attention_dropout``)."""
    activation_dropout: float = 0.0
    """Dropout inside the feed-forward, after GELU (official: ``activation_dropout``)."""
    post_mlp_dropout: float = 0.1
    """Dropout on the feed-forward output before the residual (official: ``post_mlp_drop``)."""
    context_dropout: float = 0.1
    """Dropout after the context encoder's input LayerNorm (official: ``prenet_dropout``)."""
    layerdrop: float = 0.05
    """Probability of skipping a main block in training (official: ``layerdrop``)."""
    context_layerdrop: float = 0.05
    """Probability of skipping a context block in training (official: ``prenet_layerdrop``)."""

    @property
    def conv_dim(self) -> int:
        """Channels of the last conv layer (input of the projection)."""
        return self.conv_layers[-1][0]

    @property
    def num_layers(self) -> int:
        """All transformer blocks: context + main."""
        return self.context_depth + self.depth

    @property
    def frame_stride(self) -> int:
        """Samples between consecutive output frames (320 = 20 ms at 16 kHz)."""
        return conv_stride(self.conv_layers)

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame (400 = 25 ms): the shortest usable input."""
        return conv_receptive_field(self.conv_layers)


@dataclass(kw_only=True)
class DecoderConfig:
    """The light conv decoder used only in pre-training (official ``modalities.audio.decoder``)."""

    dim: int = 384
    """Channels of the decoder convs (official: ``decoder_dim``)."""
    kernel: int = 7
    """Kernel size (official: ``decoder_kernel``)."""
    layers: int = 4
    """Number of conv layers (official: ``decoder_layers``)."""
    groups: int = 16
    """Conv groups (official: ``decoder_groups``)."""
    input_dropout: float = 0.1
    """Dropout on the decoder input (official: ``input_dropout``)."""


@dataclass(kw_only=True)
class ModelConfig:
    """A whole model: encoder, optional pre-training decoder, optional emotion head."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """The speech encoder."""
    decoder: DecoderConfig | None = field(default_factory=DecoderConfig)
    """Pre-training decoder; None for models that do not carry one (the plus models)."""
    labels: tuple[str, ...] = ()
    """Class names of the emotion head, in output order; empty for no head."""
    normalize_waveform: bool = True
    """Zero-mean/unit-variance normalise each waveform before the encoder (official: ``normalize``)."""
    sample_rate: int = 16000
    """Sample rate the model expects."""

    @property
    def num_classes(self) -> int:
        """Size of the emotion head (0 when there is none)."""
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples are kept; JSON writes them as lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        data = dict(data)
        try:
            enc = dict(data.pop("encoder", {}) or {})
            if "conv_layers" in enc:
                enc["conv_layers"] = tuple(
                    tuple(int(v) for v in layer) for layer in enc["conv_layers"]
                )
            encoder = EncoderConfig(**enc)
            if "decoder" in data:
                dec = data.pop("decoder")
                decoder = DecoderConfig(**dec) if dec is not None else None
            else:
                decoder = DecoderConfig()
            if "labels" in data:
                data["labels"] = tuple(data["labels"])
            config = cls(encoder=encoder, decoder=decoder, **data)
            config.validate()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid model config: {exc}") from None
        return config

    def approx_parameters(self) -> float:
        """Parameter count implied by the sizes (computed, nothing allocated)."""
        return _approx_parameters(self)

    def validate(self) -> None:
        """Raise ConfigError when the values cannot make a working model, or would allocate an
        absurd amount of memory (a crafted config): sizes are checked against bounds, naming the
        field, before any tensor exists."""
        e = self.encoder

        def bounded(name: str, value, low, high) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"encoder/decoder field {name} must be a number, got {value!r}")
            if not (low <= value <= high):
                raise ConfigError(f"{name} = {value} is outside the sane range [{low}, {high}]")

        bounded("encoder.embed_dim", e.embed_dim, 1, 8192)
        bounded("encoder.num_heads", e.num_heads, 1, 256)
        bounded("encoder.mlp_ratio", e.mlp_ratio, 0.01, 64)
        bounded("encoder.context_depth", e.context_depth, 0, 128)
        bounded("encoder.depth", e.depth, 1, 128)
        bounded("encoder.pos_conv_kernel", e.pos_conv_kernel, 1, 1023)
        bounded("encoder.pos_conv_layers", e.pos_conv_layers, 0, 64)
        bounded("encoder.pos_conv_groups", e.pos_conv_groups, 1, 8192)
        bounded("encoder.num_extra_tokens", e.num_extra_tokens, 0, 4096)
        for name in (
            "dropout",
            "attention_dropout",
            "activation_dropout",
            "post_mlp_dropout",
            "context_dropout",
            "layerdrop",
            "context_layerdrop",
        ):
            bounded(f"encoder.{name}", getattr(e, name), 0.0, 1.0)
        if not e.conv_layers:
            raise ConfigError("conv_layers must not be empty")
        bounded("encoder.conv_layers (count)", len(e.conv_layers), 1, 64)
        for i, layer in enumerate(e.conv_layers):
            if len(layer) != 3:
                raise ConfigError(f"encoder.conv_layers[{i}] must be (channels, kernel, stride)")
            bounded(f"encoder.conv_layers[{i}] channels", layer[0], 1, 8192)
            bounded(f"encoder.conv_layers[{i}] kernel", layer[1], 1, 4096)
            bounded(f"encoder.conv_layers[{i}] stride", layer[2], 1, 4096)
        bounded("labels (count)", len(self.labels), 0, 100_000)
        if self.decoder is not None:
            d = self.decoder
            bounded("decoder.dim", d.dim, 1, 8192)
            bounded("decoder.kernel", d.kernel, 1, 1023)
            bounded("decoder.layers", d.layers, 1, 64)
            bounded("decoder.groups", d.groups, 1, 8192)
            bounded("decoder.input_dropout", d.input_dropout, 0.0, 1.0)
        params = self.approx_parameters()
        if params > 3e9:
            raise ConfigError(
                f"this config describes about {params / 1e9:.1f} billion parameters "
                f"({4 * params / 2**30:.0f} GiB in fp32): refused as implausible for an "
                "emotion2vec model (embed_dim, depth, conv_layers)"
            )
        if e.embed_dim % e.num_heads:
            raise ConfigError(
                f"embed_dim {e.embed_dim} is not divisible by num_heads {e.num_heads}"
            )
        if e.embed_dim % e.pos_conv_groups:
            raise ConfigError(
                f"embed_dim {e.embed_dim} is not divisible by pos_conv_groups {e.pos_conv_groups}"
            )
        if e.pos_conv_kernel % 2 == 0:
            raise ConfigError("pos_conv_kernel must be odd so the positional conv keeps the length")
        if not e.conv_layers:
            raise ConfigError("conv_layers must not be empty")
        if self.decoder is not None:
            d = self.decoder
            if d.dim % d.groups or e.embed_dim % d.groups:
                raise ConfigError("decoder dim and embed_dim must be divisible by decoder groups")
            if d.kernel % 2 == 0:
                raise ConfigError("decoder kernel must be odd")


def _approx_parameters(config: ModelConfig) -> float:
    e = config.encoder
    d = e.embed_dim
    conv, c_in = 0.0, 1
    for c, k, _ in e.conv_layers:
        conv += c_in * c * k + 2 * c
        c_in = c
    block = d * d * (4 + 2 * e.mlp_ratio) + 9 * d
    pos = e.pos_conv_layers * (d * d / max(e.pos_conv_groups, 1) * e.pos_conv_kernel + d)
    total = conv + c_in * d + pos + (e.context_depth + e.depth) * block + e.num_extra_tokens * d
    if config.decoder is not None:
        dec = config.decoder
        total += dec.layers * dec.dim * dec.dim / max(dec.groups, 1) * dec.kernel + dec.dim * d
    return total + len(config.labels) * d


def emotion2vec_base() -> ModelConfig:
    """emotion2vec_base: 768-d, 4 + 8 blocks, pre-training decoder, no emotion head."""
    return ModelConfig()


def emotion2vec_plus_base() -> ModelConfig:
    """emotion2vec_plus_base (and _seed): emotion2vec_base's encoder with the 9-class head."""
    return ModelConfig(decoder=None, labels=EMOTION_LABELS)


def emotion2vec_plus_seed() -> ModelConfig:
    """emotion2vec_plus_seed: same shape as plus_base."""
    return emotion2vec_plus_base()


def emotion2vec_plus_large() -> ModelConfig:
    """emotion2vec_plus_large: 1024-d, 16 heads, 4 + 8 blocks, 9-class head."""
    return ModelConfig(
        encoder=EncoderConfig(embed_dim=1024, num_heads=16),
        decoder=None,
        labels=EMOTION_LABELS,
    )


def tiny() -> ModelConfig:
    """A few-million-parameter model of the same design, for CPU experiments and tests."""
    conv = ((256, 10, 5),) + ((256, 3, 2),) * 4 + ((256, 2, 2),) * 2
    return ModelConfig(
        encoder=EncoderConfig(
            conv_layers=conv, embed_dim=256, num_heads=4, context_depth=2, depth=4
        ),
        decoder=DecoderConfig(dim=128),
    )


PRESETS = {
    "emotion2vec_base": emotion2vec_base,
    "emotion2vec_plus_seed": emotion2vec_plus_seed,
    "emotion2vec_plus_base": emotion2vec_plus_base,
    "emotion2vec_plus_large": emotion2vec_plus_large,
    "tiny": tiny,
}


def preset(name: str) -> ModelConfig:
    """The config of a named preset (see :data:`PRESETS`)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
