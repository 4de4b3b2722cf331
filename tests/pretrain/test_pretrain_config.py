"""PretrainConfig: paper defaults, JSON round trip, validation messages."""

from __future__ import annotations

import pytest

from emotion2vec.errors import ConfigError
from emotion2vec.pretrain import PretrainConfig


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


def test_a_config_stored_before_the_recipe_resumes_as_it_was_trained():
    old = PretrainConfig().to_dict()
    for section, key in (
        ("objective", "utterance_weighting"),
        ("objective", "utterance_reads_dropout"),
        ("optim", "adam"),
        ("optim", "decay_all"),
    ):
        del old[section][key]
    back = PretrainConfig.from_dict(old)
    assert (
        back.objective.utterance_weighting == "mean" and not back.objective.utterance_reads_dropout
    )
    assert back.optim.adam == "torch" and not back.optim.decay_all
    # a current config keeps its values
    assert PretrainConfig.from_dict(PretrainConfig().to_dict()).optim.adam == "fairseq"
