"""Tests of emotion2vec.config: presets (parameter counts on the meta device), serialisation,
validation and the conv-stack arithmetic."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from emotion2vec import Emotion2vecModel
from emotion2vec.config import (
    EMOTION_LABELS,
    OFFICIAL_CONV_LAYERS,
    PRESETS,
    DecoderConfig,
    EncoderConfig,
    ModelConfig,
    emotion2vec_base,
    emotion2vec_plus_base,
    emotion2vec_plus_large,
    emotion2vec_plus_seed,
    preset,
    tiny,
)
from emotion2vec.errors import ConfigError


def meta_model(config: ModelConfig) -> Emotion2vecModel:
    with torch.device("meta"):
        return Emotion2vecModel(config)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "total", "encoder"),
    [
        # the paper's 93.79M includes the pre-training decoder (reference 1.4)
        (emotion2vec_base, 93_790_988, 93_171_212),
        (emotion2vec_plus_seed, 93_178_133, 93_171_212),
        (emotion2vec_plus_base, 93_178_133, 93_171_212),
        (emotion2vec_plus_large, 162_140_185, 162_130_960),
    ],
)
def test_preset_parameter_counts(factory, total, encoder):
    model = meta_model(factory())
    assert next(model.parameters()).device.type == "meta"
    assert n_params(model) == total
    assert n_params(model.encoder) == encoder


def test_preset_parts():
    base = meta_model(emotion2vec_base())
    assert base.head is None and base.decoder is not None
    assert n_params(base.decoder) == 93_790_988 - 93_171_212
    plus = meta_model(emotion2vec_plus_base())
    assert plus.decoder is None and plus.head is not None
    assert n_params(plus.head) == 768 * 9 + 9
    large = meta_model(emotion2vec_plus_large())
    assert large.decoder is None
    assert n_params(large.head) == 1024 * 9 + 9


def test_preset_architectures():
    base = emotion2vec_base()
    e = base.encoder
    assert (e.embed_dim, e.num_heads, e.context_depth, e.depth, e.num_layers) == (768, 12, 4, 8, 12)
    assert e.conv_layers == OFFICIAL_CONV_LAYERS
    assert e.conv_layers == ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    assert (e.pos_conv_kernel, e.pos_conv_layers, e.pos_conv_groups) == (19, 5, 16)
    assert e.num_extra_tokens == 10 and e.mlp_ratio == 4.0 and e.norm_eps == 1e-5
    assert base.decoder == DecoderConfig(dim=384, kernel=7, layers=4, groups=16, input_dropout=0.1)
    assert base.labels == () and base.num_classes == 0
    assert base.normalize_waveform is True and base.sample_rate == 16000

    large = emotion2vec_plus_large()
    assert (large.encoder.embed_dim, large.encoder.num_heads) == (1024, 16)
    assert large.encoder.num_layers == 12
    assert large.labels == EMOTION_LABELS and large.num_classes == 9
    assert emotion2vec_plus_seed() == emotion2vec_plus_base()


def test_labels_order():
    assert EMOTION_LABELS == (
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


def test_tiny_is_a_few_million_parameters():
    count = n_params(meta_model(tiny()))
    assert 1_000_000 < count < 10_000_000
    cfg = tiny()
    assert cfg.encoder.frame_stride == 320 and cfg.encoder.receptive_field == 400


def test_preset_lookup():
    assert set(PRESETS) >= {
        "emotion2vec_base",
        "emotion2vec_plus_seed",
        "emotion2vec_plus_base",
        "emotion2vec_plus_large",
        "tiny",
    }
    for name, factory in PRESETS.items():
        assert preset(name) == factory()
    # a fresh object each time: mutating one must not change the preset
    a = preset("emotion2vec_base")
    a.encoder.depth = 1
    assert preset("emotion2vec_base").encoder.depth == 8
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*emotion2vec_base"):
        preset("nope")


# ------------------------------------------------------------------------------------------
# Conv arithmetic
# ------------------------------------------------------------------------------------------


def test_receptive_field_and_stride():
    e = EncoderConfig()
    assert e.receptive_field == 400
    assert e.frame_stride == 320
    assert e.conv_dim == 512
    other = EncoderConfig(conv_layers=((8, 4, 2), (16, 3, 3)))
    # field: 1 + 3*1 + 2*2 = 8; stride 6
    assert other.receptive_field == 8 and other.frame_stride == 6 and other.conv_dim == 16


# ------------------------------------------------------------------------------------------
# Serialisation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_to_dict_from_dict_round_trip(name):
    cfg = preset(name)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    via_json = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert via_json == cfg
    assert isinstance(via_json.encoder.conv_layers, tuple)
    assert all(isinstance(layer, tuple) for layer in via_json.encoder.conv_layers)
    assert isinstance(via_json.labels, tuple)


def test_round_trip_of_non_default_values(micro_config):
    cfg = micro_config(labels=("a", "unuse_b", "c"), dropout=0.25, layerdrop=0.0)
    cfg = dataclasses.replace(cfg, normalize_waveform=False)
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.encoder.dropout == 0.25 and back.labels == ("a", "unuse_b", "c")
    assert back.normalize_waveform is False
    no_decoder = dataclasses.replace(cfg, decoder=None)
    assert ModelConfig.from_dict(json.loads(json.dumps(no_decoder.to_dict()))).decoder is None


def test_to_dict_is_plain():
    d = emotion2vec_plus_large().to_dict()
    assert d["encoder"]["embed_dim"] == 1024
    assert d["decoder"] is None
    assert list(d["labels"]) == list(EMOTION_LABELS)
    json.dumps(d)  # must not raise
    assert set(d) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_from_dict_missing_keys_take_field_defaults():
    cfg = ModelConfig.from_dict({"encoder": {"embed_dim": 128, "num_heads": 8}})
    assert cfg.encoder.embed_dim == 128 and cfg.encoder.num_heads == 8
    assert cfg.encoder.depth == 8 and cfg.encoder.conv_layers == OFFICIAL_CONV_LAYERS
    assert cfg.labels == () and cfg.normalize_waveform is True


def test_from_dict_missing_decoder_takes_default():
    assert ModelConfig.from_dict({}) == ModelConfig()


@pytest.mark.parametrize(
    "data",
    [
        {"bogus": 1},
        {"encoder": {"bogus": 1}},
        {"decoder": {"bogus": 1}},
    ],
)
def test_from_dict_unknown_keys(data):
    with pytest.raises(ConfigError, match="bogus"):
        ModelConfig.from_dict(data)


def test_from_dict_validates():
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        ModelConfig.from_dict({"encoder": {"embed_dim": 100, "num_heads": 12}})


# ------------------------------------------------------------------------------------------
# validate()
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoder", "decoder", "match"),
    [
        (dict(embed_dim=770, num_heads=12, pos_conv_groups=1), {}, "not divisible by num_heads"),
        (dict(embed_dim=72, num_heads=12), {"groups": 8}, "pos_conv_groups"),
        (dict(pos_conv_kernel=18), {}, "pos_conv_kernel must be odd"),
        (dict(conv_layers=()), {}, "conv_layers must not be empty"),
        ({}, {"dim": 100}, "divisible by decoder groups"),
        (dict(embed_dim=768, pos_conv_groups=16), {"groups": 5, "dim": 385}, "decoder groups"),
        ({}, {"kernel": 6}, "decoder kernel must be odd"),
    ],
)
def test_validate_errors(encoder, decoder, match):
    cfg = ModelConfig(encoder=EncoderConfig(**encoder), decoder=DecoderConfig(**decoder))
    with pytest.raises(ConfigError, match=match):
        cfg.validate()
    # the model refuses the config as well, before building anything
    with pytest.raises(ConfigError, match=match):
        meta_model(cfg)


def test_validate_accepts_presets_and_ignores_absent_decoder():
    for factory in PRESETS.values():
        factory().validate()
    # an invalid decoder spec does not matter when there is no decoder
    ModelConfig(decoder=None).validate()
    with pytest.raises(ConfigError):
        ModelConfig(decoder=DecoderConfig(kernel=4)).validate()


def test_configs_are_keyword_only():
    with pytest.raises(TypeError):
        EncoderConfig(OFFICIAL_CONV_LAYERS)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ModelConfig(EncoderConfig())  # type: ignore[misc]
