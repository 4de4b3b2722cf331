"""Scoring a subset of a model's labels (EmoBox's 4 classes on a 9-class head)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from model_factory import build_model

from emotion2vec.cli import main
from emotion2vec.config import EMOTION_LABELS
from emotion2vec.errors import ConfigError
from emotion2vec.inference import scores_from_logits
from emotion2vec.labels import canonical, resolve


def micro():
    return build_model(0, decoder=False)


def test_aliases_resolve_case_insensitively_in_the_requested_order():
    assert canonical("Surprise") == "surprised" and canonical("生气/angry") == "angry"
    idx = resolve("Neutral, Angry,SAD,hap", EMOTION_LABELS)
    assert [EMOTION_LABELS[i] for i in idx] == ["neutral", "angry", "sad", "happy"]
    assert resolve(["Fear", "Disgust"], EMOTION_LABELS) == [
        EMOTION_LABELS.index("fearful"),
        EMOTION_LABELS.index("disgusted"),
    ]


@pytest.mark.parametrize(
    "names, message", [("angry,calm", "'calm'"), ("angry,Anger", "twice"), (" , ", "at least one")]
)
def test_bad_label_requests_are_one_clear_error(names, message):
    with pytest.raises(ConfigError, match=message):
        resolve(names, EMOTION_LABELS)


def test_subset_scores_are_the_renormalised_full_scores():
    logits = torch.randn(5, len(EMOTION_LABELS), generator=torch.Generator().manual_seed(0))
    subset = resolve("angry,happy,neutral,sad", EMOTION_LABELS)
    full = scores_from_logits(logits, EMOTION_LABELS)
    part = scores_from_logits(logits, EMOTION_LABELS, subset)
    for f, p in zip(full, part, strict=True):
        assert list(p.scores) == ["angry", "happy", "neutral", "sad"]
        total = sum(f.scores[n] for n in p.scores)
        for n, v in p.scores.items():
            assert v == pytest.approx(f.scores[n] / total, rel=1e-5)
        assert p.label == max(p.scores, key=p.scores.get)
        assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-6)


def test_predict_api_and_cli_with_labels(tmp_path):
    model = micro()
    wave = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    pred = model.predict(wave, sample_rate=16000, labels=["Angry", "Sad"])
    assert set(pred.scores) == {"angry", "sad"} and pred.label in ("angry", "sad")
    model.save_pretrained(tmp_path / "m")
    sf.write(tmp_path / "a.wav", wave, 16000)
    out = tmp_path / "s.csv"
    argv = ["predict", str(tmp_path / "a.wav"), "-m", str(tmp_path / "m"), "-o", str(out), "-q"]
    assert main([*argv, "--labels", "angry,happy,neutral,sad"]) == 0
    with open(out, newline="") as f:
        header = next(csv.reader(f))
    assert header[-4:] == ["angry", "happy", "neutral", "sad"] and "fearful" not in header
    # resuming with another label set would mix columns: refused by the provenance check
    assert main([*argv, "--labels", "angry,sad"]) == 2
    assert main([*argv, "--labels", "angry,calm"]) == 2
