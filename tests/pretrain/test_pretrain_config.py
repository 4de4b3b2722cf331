"""PretrainConfig: paper defaults, JSON round trip, validation messages."""

from __future__ import annotations

import pytest

from emotion2vec.errors import ConfigError
from emotion2vec.pretrain import PretrainConfig


def test_defaults_are_the_papers():
    c = PretrainConfig()
    assert (c.masking.mask_prob, c.masking.mask_length, c.masking.mask_type) == (0.5, 5, "spans")
    assert c.objective.clone_batch == 8 and c.objective.average_top_k_layers == 8
    assert c.objective.instance_norm_targets and c.objective.utterance_loss == "chunk"
    assert c.objective.utterance_alpha == 1.0 and c.objective.loss_scale is None
    assert (c.objective.ema_decay, c.objective.ema_end_decay) == (0.999, 0.99999)
    assert (c.objective.min_target_var, c.objective.min_pred_var) == (0.1, 0.01)
    assert c.optim.lr == 7.5e-5 and c.optim.warmup_fraction == 0.05
    assert (c.optim.weight_decay, c.optim.betas, c.optim.eps) == (0.01, (0.9, 0.98), 1e-6)
    assert (c.data.min_samples, c.data.max_samples, c.data.max_tokens) == (32000, 320000, 10**6)


def test_json_round_trip(tmp_path):
    c = PretrainConfig(preset="tiny", layerdrop=0.0)
    c.data.paths = ("a", "b")
    c.objective.chunk_pooling = "each"
    c.optim.betas = (0.8, 0.9)
    c.save(tmp_path / "c.json")
    back = PretrainConfig.load(tmp_path / "c.json")
    assert back == c


@pytest.mark.parametrize(
    "section, field, value, message",
    [
        ("masking", "mask_prob", 1.5, "mask_prob"),
        ("objective", "utterance_loss", "frames", "utterance_loss"),
        ("objective", "ema_decay", 0.9999999, "ema_decay"),
        ("optim", "update_freq", 0, "update_freq"),
        ("data", "max_samples", 1000, "max_samples"),
        ("run", "precision", "fp8", "precision"),
    ],
)
def test_validation_names_the_field(section, field, value, message):
    c = PretrainConfig()
    setattr(getattr(c, section), field, value)
    with pytest.raises(ConfigError, match=message):
        c.validate()


def test_unknown_keys_are_errors():
    with pytest.raises(ConfigError, match="unexpected keyword"):
        PretrainConfig.from_dict({"objective": {"cls_loss": 1.0}})
