"""Parity with FunASR's own emotion2vec implementation (tests/fixtures/funasr_parity).

The fixture holds a micro model with random weights in the two published layouts (a plus model
folder and a fairseq emotion2vec_base.pt) and FunASR's outputs for four inputs, computed one
utterance at a time. Our model must reproduce them within 1e-4, alone and in one padded batch.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import emotion2vec
from emotion2vec.config import EMOTION_LABELS
from emotion2vec.inference import encode, scores_from_logits

ATOL = 1e-4
SR = 16000


@pytest.fixture(scope="module")
def meta(fixture_dir):
    return json.loads((fixture_dir / "meta.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def inputs(fixture_dir) -> dict[str, np.ndarray]:
    """The four inputs exactly as FunASR got them: int16 / 32768 as float32."""
    with np.load(fixture_dir / "inputs.npz") as data:
        return {k: data[k].astype(np.float32) / np.float32(32768.0) for k in data.files}


@pytest.fixture(scope="module")
def reference(fixture_dir) -> dict[str, np.ndarray]:
    with np.load(fixture_dir / "reference.npz") as data:
        return {k: data[k] for k in data.files}


def load_quietly(path):
    """load_model, failing on any warning it emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = emotion2vec.load_model(path)
    assert [str(w.message) for w in caught] == []
    return model


@pytest.fixture(scope="module")
def plus(fixture_dir):
    return load_quietly(fixture_dir / "plus")


@pytest.fixture(scope="module")
def fairseq(fixture_dir):
    return load_quietly(fixture_dir / "emotion2vec_base.pt")


def scores_vector(pred) -> np.ndarray:
    assert tuple(pred.scores) == EMOTION_LABELS
    return np.array([pred.scores[k] for k in EMOTION_LABELS], dtype=np.float32)


def max_abs(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def test_fixture_is_what_the_tests_expect(meta, inputs, reference):
    assert set(inputs) == {"wav_1000ms", "wav_3700ms", "wav_10000ms", "wav_30000ms"}
    for name, wave in inputs.items():
        assert wave.dtype == np.float32
        assert len(wave) == meta["inputs"][name]["samples"]
        frames = meta["inputs"][name]["frames"]
        assert reference[f"frame__{name}"].shape == (frames, 64)
        assert reference[f"utterance__{name}"].shape == (64,)
        assert reference[f"scores__{name}"].shape == (9,)
    assert {meta["inputs"][n]["frames"] for n in inputs} == {49, 184, 499, 1499}


def test_loaded_configs(plus, fairseq, meta):
    arch = meta["arch"]
    for model in (plus, fairseq):
        e = model.config.encoder
        assert e.embed_dim == arch["embed_dim"] and e.num_heads == arch["num_heads"]
        assert e.context_depth == arch["prenet_depth"] and e.depth == arch["depth"]
        assert [list(layer) for layer in e.conv_layers] == arch["conv_layers"]
        assert e.pos_conv_kernel == 19 and e.pos_conv_groups == 16
        assert model.config.normalize_waveform is True
        assert not model.training
    assert plus.labels == EMOTION_LABELS and plus.decoder is None
    assert fairseq.labels == () and fairseq.head is None
    assert fairseq.config.decoder.dim == arch["decoder_dim"]
    # same backbone in both files
    a, b = plus.encoder.state_dict(), fairseq.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the fixture's negative ALiBi scale arrived unchanged (the clamp happens at run time)
    assert float(plus.encoder.alibi_scale.detach()[1]) == pytest.approx(-0.5)


@pytest.mark.parametrize("which", ["plus", "fairseq"])
@pytest.mark.parametrize("name", ["wav_1000ms", "wav_3700ms", "wav_10000ms", "wav_30000ms"])
def test_one_at_a_time(request, which, name, inputs, reference):
    model = request.getfixturevalue(which)
    wave = inputs[name]
    frame = model.extract(wave, sample_rate=SR, granularity="frame")
    utt = model.extract(wave, sample_rate=SR, granularity="utterance")
    assert frame.shape == reference[f"frame__{name}"].shape
    assert max_abs(frame, reference[f"frame__{name}"]) <= ATOL
    assert max_abs(utt, reference[f"utterance__{name}"]) <= ATOL
    if which == "plus":
        pred = model.predict(wave, sample_rate=SR)
        assert max_abs(scores_vector(pred), reference[f"scores__{name}"]) <= ATOL
        ref_scores = reference[f"scores__{name}"]
        assert pred.label == EMOTION_LABELS[int(np.argmax(ref_scores))]


def test_one_padded_batch(plus, inputs, reference):
    """The four inputs in one padded batch (inference.encode: what extract/predict run per batch)."""
    names = list(inputs)
    frames, pooled, logits = encode(plus, [inputs[n] for n in names])
    assert frames[0].shape[0] == 1 and pooled.shape == (4, 1, 64)
    preds = scores_from_logits(logits, plus.labels)
    frames = [f[0].numpy() for f in frames]
    utts = pooled[:, 0].numpy()
    for name, frame, utt, pred in zip(names, frames, utts, preds, strict=True):
        assert frame.shape == reference[f"frame__{name}"].shape
        assert max_abs(frame, reference[f"frame__{name}"]) <= ATOL, name
        assert max_abs(utt, reference[f"utterance__{name}"]) <= ATOL, name
        assert max_abs(scores_vector(pred), reference[f"scores__{name}"]) <= ATOL, name


def test_one_padded_batch_fairseq(fairseq, inputs, reference):
    """Through the public API: extract on a list with a budget that fits all four."""
    names = list(inputs)
    frames = fairseq.extract(
        [inputs[n] for n in names], sample_rate=SR, granularity="frame", batch_seconds=1e4
    )
    for name, frame in zip(names, frames, strict=True):
        assert max_abs(frame, reference[f"frame__{name}"]) <= ATOL, name
        assert max_abs(frame.mean(0), reference[f"utterance__{name}"]) <= ATOL, name


def test_reference_is_sensitive(plus, inputs, reference):
    """The tolerance is meaningful: a small change of one weight breaks parity."""
    wave = inputs["wav_3700ms"]
    with torch.no_grad():
        saved = plus.encoder.blocks[1].norm2.bias.clone()
        plus.encoder.blocks[1].norm2.bias.add_(0.01)
        try:
            frame = plus.extract(wave, sample_rate=SR, granularity="frame")
        finally:
            plus.encoder.blocks[1].norm2.bias.copy_(saved)
    assert max_abs(frame, reference["frame__wav_3700ms"]) > 10 * ATOL
    # and the restored model is back within tolerance
    frame = plus.extract(wave, sample_rate=SR, granularity="frame")
    assert max_abs(frame, reference["frame__wav_3700ms"]) <= ATOL
