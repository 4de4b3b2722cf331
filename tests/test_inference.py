"""Tests of emotion2vec.inference: extract / predict on files, arrays and tensors, layer
selection, batching (padded batches equal one-at-a-time runs) and the batch planner."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emotion2vec import Prediction
from emotion2vec.audio import frame_count, normalize_waveform
from emotion2vec.config import EMOTION_LABELS
from emotion2vec.errors import AudioError, Emotion2vecError
from emotion2vec.inference import (
    encode,
    extract,
    pad_batch,
    plan_batches,
    predict,
    scores_from_logits,
)

SR = 16000
D = 64
N_LAYERS = 3  # micro model: 1 context + 2 main blocks


@pytest.fixture(scope="module")
def waves(make_wave) -> list[np.ndarray]:
    """Mixed lengths 1-30 s, and the shortest usable input (400 samples)."""
    sizes = [16000, 400, 480000, 112_345]
    return [make_wave(n, seed=i) for i, n in enumerate(sizes)]


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767).astype(np.int16)


# ------------------------------------------------------------------------------------------
# extract: shapes, single vs list, layers
# ------------------------------------------------------------------------------------------


def test_extract_shapes(plus_model, make_wave):
    wave = make_wave(24000, 1)
    t = frame_count(24000)
    utt = plus_model.extract(wave, sample_rate=SR)
    assert isinstance(utt, np.ndarray) and utt.dtype == np.float32
    assert utt.shape == (D,)
    frame = plus_model.extract(wave, sample_rate=SR, granularity="frame")
    assert frame.shape == (t, D)
    assert np.allclose(frame.mean(0), utt, atol=1e-5)
    all_u = plus_model.extract(wave, sample_rate=SR, all_layers=True)
    assert all_u.shape == (N_LAYERS + 1, D)
    all_f = plus_model.extract(wave, sample_rate=SR, granularity="frame", all_layers=True)
    assert all_f.shape == (N_LAYERS + 1, t, D)
    assert np.allclose(all_f[-1], frame, atol=1e-6)
    assert np.allclose(all_u[-1], utt, atol=1e-6)
    assert np.allclose(all_f.mean(1), all_u, atol=1e-5)


def test_extract_matches_the_model_forward(plus_model, make_wave):
    wave = make_wave(20000, 2)
    with torch.no_grad():
        out, emb, _ = plus_model(normalize_waveform(torch.from_numpy(wave))[None])
    frame = plus_model.extract(wave, sample_rate=SR, granularity="frame")
    assert np.allclose(frame, out.frames[0].numpy(), atol=1e-6)
    assert np.allclose(plus_model.extract(wave, sample_rate=SR), emb[0].numpy(), atol=1e-6)


def test_layer_selection(plus_model, make_wave):
    wave = make_wave(20000, 3)
    all_f = plus_model.extract(wave, sample_rate=SR, granularity="frame", all_layers=True)
    last = plus_model.extract(wave, sample_rate=SR, granularity="frame")
    for layer in range(N_LAYERS + 1):
        got = plus_model.extract(wave, sample_rate=SR, granularity="frame", layer=layer)
        assert got.shape == last.shape
        assert np.allclose(got, all_f[layer], atol=1e-6)
        neg = plus_model.extract(
            wave, sample_rate=SR, granularity="frame", layer=layer - N_LAYERS - 1
        )
        assert np.allclose(neg, got, atol=1e-6)
    assert np.allclose(
        plus_model.extract(wave, sample_rate=SR, layer=-1), all_f[-1].mean(0), atol=1e-5
    )
    zero = plus_model.extract(wave, sample_rate=SR, granularity="frame", layer=0)
    assert np.abs(zero - last).max() > 1e-2


@pytest.mark.parametrize("layer", [N_LAYERS + 1, 100, -(N_LAYERS + 2)])
def test_layer_out_of_range(plus_model, make_wave, layer):
    with pytest.raises(Emotion2vecError, match=f"layer {layer} out of range.*0..{N_LAYERS}"):
        plus_model.extract(make_wave(8000), sample_rate=SR, layer=layer)


def test_bad_granularity(plus_model, make_wave):
    with pytest.raises(Emotion2vecError, match="granularity"):
        plus_model.extract(make_wave(8000), sample_rate=SR, granularity="word")


def test_list_in_list_out(plus_model, make_wave):
    a, b = make_wave(8000, 1), make_wave(17000, 2)
    out = plus_model.extract([a, b], sample_rate=SR, granularity="frame")
    assert isinstance(out, list) and len(out) == 2
    assert out[0].shape == (frame_count(8000), D) and out[1].shape == (frame_count(17000), D)
    single = plus_model.extract([a], sample_rate=SR)
    assert isinstance(single, list) and len(single) == 1 and single[0].shape == (D,)
    assert plus_model.extract((a, b), sample_rate=SR)[1].shape == (D,)
    assert plus_model.extract([], sample_rate=SR) == []
    # the method is the module function
    assert np.array_equal(extract(plus_model, a, SR), plus_model.extract(a, sample_rate=SR))
    preds = plus_model.predict([a, b], sample_rate=SR)
    assert isinstance(preds, list) and len(preds) == 2
    assert all(isinstance(p, Prediction) for p in preds)
    assert isinstance(plus_model.predict(a, sample_rate=SR), Prediction)


def test_unsupported_input_type(plus_model):
    with pytest.raises(Emotion2vecError, match="unsupported audio input"):
        plus_model.extract([{"wave": 1}], sample_rate=SR)


def test_array_needs_sample_rate(plus_model, make_wave):
    with pytest.raises(AudioError, match="sample_rate is required"):
        plus_model.extract(make_wave(8000))


# ------------------------------------------------------------------------------------------
# Files, arrays and tensors give the same features
# ------------------------------------------------------------------------------------------


def test_paths_arrays_and_tensors_agree(plus_model, make_wave, tmp_path):
    pcm = to_pcm16(make_wave(30000, 4))
    path = tmp_path / "a.wav"
    sf.write(path, pcm, SR, subtype="PCM_16")
    from_path = plus_model.extract(path, granularity="frame")
    from_str = plus_model.extract(str(path), granularity="frame")
    from_int = plus_model.extract(pcm, sample_rate=SR, granularity="frame")
    from_float = plus_model.extract(
        pcm.astype(np.float32) / 32768, sample_rate=SR, granularity="frame"
    )
    from_tensor = plus_model.extract(torch.from_numpy(pcm), sample_rate=SR, granularity="frame")
    for other in (from_str, from_int, from_float, from_tensor):
        assert np.array_equal(other, from_path)


def test_stereo_44k_file_and_array_agree(plus_model, make_wave, tmp_path):
    rate = 44100
    left, right = make_wave(2 * rate, 5, sample_rate=rate), make_wave(2 * rate, 6, sample_rate=rate)
    pcm = to_pcm16(np.stack([left, right], axis=1) * 0.8)  # (samples, 2)
    path = tmp_path / "stereo.wav"
    sf.write(path, pcm, rate, subtype="PCM_16")
    mixed = list(
        plus_model.extract(
            [path, pcm, torch.from_numpy(pcm.T.copy())], sample_rate=rate, granularity="frame"
        )
    )
    assert mixed[0].shape == (frame_count(2 * SR), D)
    assert np.allclose(mixed[1], mixed[0], atol=1e-6)
    assert np.allclose(mixed[2], mixed[0], atol=1e-6)
    # predictions agree too, and the file's mono mix is used (not one channel)
    p_file = plus_model.predict(path)
    p_arr = plus_model.predict(pcm, sample_rate=rate)
    assert p_file.label == p_arr.label
    assert np.allclose(list(p_file.scores.values()), list(p_arr.scores.values()), atol=1e-6)
    left_only = plus_model.extract(pcm[:, 0], sample_rate=rate, granularity="frame")
    assert np.abs(left_only - mixed[0]).max() > 1e-3


def test_paths_and_arrays_in_one_list(plus_model, make_wave, tmp_path):
    waves = [make_wave(16000, 7), make_wave(26000, 8)]
    sf.write(tmp_path / "x.wav", waves[0], SR, subtype="FLOAT")
    out = plus_model.extract([tmp_path / "x.wav", waves[1]], sample_rate=SR)
    assert np.allclose(out[0], plus_model.extract(waves[0], sample_rate=SR), atol=1e-6)
    assert np.allclose(out[1], plus_model.extract(waves[1], sample_rate=SR), atol=1e-6)


# ------------------------------------------------------------------------------------------
# predict
# ------------------------------------------------------------------------------------------


def test_predict_without_head(base_model, make_wave):
    with pytest.raises(Emotion2vecError, match="no emotion head"):
        base_model.predict(make_wave(8000), sample_rate=SR)
    with pytest.raises(Emotion2vecError, match="no emotion head"):
        predict(base_model, [make_wave(8000)], sample_rate=SR)
    # extraction works on it
    assert base_model.extract(make_wave(8000), sample_rate=SR).shape == (D,)


def test_prediction_scores(plus_model, make_wave):
    wave = make_wave(32000, 9)
    pred = plus_model.predict(wave, sample_rate=SR)
    assert tuple(pred.scores) == EMOTION_LABELS
    assert sum(pred.scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert all(0.0 <= v <= 1.0 for v in pred.scores.values())
    assert pred.label == max(pred.scores, key=pred.scores.get)
    assert pred.score == pred.scores[pred.label]
    with torch.no_grad():
        _, _, logits = plus_model(normalize_waveform(torch.from_numpy(wave))[None])
    want = torch.softmax(logits[0].double(), 0).numpy()
    assert np.allclose(list(pred.scores.values()), want, atol=1e-6)


def test_scores_from_logits():
    logits = torch.tensor([[0.0, 2.0, 1.0, 5.0], [3.0, 0.0, 0.0, 0.0]])
    preds = scores_from_logits(logits, ["a", "unuse_b", "c", "unused"])
    assert list(preds[0].scores) == ["a", "c"]
    assert preds[0].label == "c"
    e = np.exp([0.0, 1.0])
    assert preds[0].scores["c"] == pytest.approx(e[1] / e.sum())
    assert preds[1].label == "a"


# ------------------------------------------------------------------------------------------
# Batching
# ------------------------------------------------------------------------------------------


def test_batched_equals_one_at_a_time(plus_model, waves):
    batched = plus_model.extract(waves, sample_rate=SR, granularity="frame", batch_seconds=1e4)
    alone = plus_model.extract(waves, sample_rate=SR, granularity="frame", batch_seconds=1e-3)
    for a, b, w in zip(batched, alone, waves, strict=True):
        assert a.shape == b.shape == (frame_count(len(w)), D)
        assert np.abs(a - b).max() <= 1e-4
    # predictions of the padded batch (utterance mean of valid frames -> head -> softmax) equal
    # those computed from each input's own frames
    preds = plus_model.predict(waves, sample_rate=SR, batch_seconds=1e4)
    for pred, frames in zip(preds, alone, strict=True):
        with torch.no_grad():
            logits = plus_model.head(torch.from_numpy(frames.mean(0))[None])
        want = torch.softmax(logits[0].double(), 0).numpy()
        assert np.abs(np.array(list(pred.scores.values())) - want).max() <= 1e-4
        assert pred.label == EMOTION_LABELS[int(np.argmax(want))]


def test_batched_utterance_embeddings(plus_model, make_wave):
    ws = [make_wave(n, seed=n) for n in (16000, 400, 70000, 33333)]
    batched = plus_model.extract(ws, sample_rate=SR, batch_seconds=1e4)
    for w, b in zip(ws, batched, strict=True):
        assert np.abs(b - plus_model.extract(w, sample_rate=SR)).max() <= 1e-4


def test_batched_all_layers_equal_one_at_a_time(plus_model, waves):
    short = [waves[0], waves[1], waves[3]]
    batched = plus_model.extract(
        short, sample_rate=SR, granularity="frame", all_layers=True, batch_seconds=1e4
    )
    for w, b in zip(short, batched, strict=True):
        alone = plus_model.extract(w, sample_rate=SR, granularity="frame", all_layers=True)
        assert b.shape == alone.shape == (N_LAYERS + 1, frame_count(len(w)), D)
        assert np.abs(b - alone).max() <= 1e-4


def test_batches_follow_the_plan(plus_model, make_wave, monkeypatch):
    import emotion2vec.inference as inference_mod

    waves = [make_wave(n, seed=n) for n in (16000, 400, 64000, 30000, 8000, 50000)]
    sizes = []
    real = inference_mod.encode

    def spy(model, batch, **kwargs):
        sizes.append(sorted(len(w) for w in batch))
        return real(model, batch, **kwargs)

    monkeypatch.setattr(inference_mod, "encode", spy)
    plus_model.extract(waves, sample_rate=SR, batch_seconds=1e4)
    assert len(sizes) == 1 and len(sizes[0]) == len(waves)
    sizes.clear()
    plus_model.extract(waves, sample_rate=SR, batch_seconds=1e-3)
    assert len(sizes) == len(waves) and all(len(s) == 1 for s in sizes)
    sizes.clear()
    plus_model.extract(waves, sample_rate=SR, batch_seconds=8.0)
    assert 1 < len(sizes) < len(waves)
    budget = 8 * SR
    for batch in sizes:
        assert len(batch) == 1 or max(batch) * len(batch) <= budget


def test_encode_returns_trimmed_frames(plus_model, make_wave):
    ws = [make_wave(16000, 1), make_wave(8000, 2)]
    frames, pooled, logits = encode(plus_model, ws)
    assert [f.shape for f in frames] == [(1, 49, D), (1, frame_count(8000), D)]
    assert pooled.shape == (2, 1, D) and logits.shape == (2, 9)
    frames, pooled, _ = encode(plus_model, ws, layers=[0, 3])
    assert frames[1].shape == (2, frame_count(8000), D) and pooled.shape == (2, 2, D)


def test_pad_batch():
    batch, lengths = pad_batch([np.ones(3, np.float32), torch.full((5,), 2.0)])
    assert batch.shape == (2, 5) and batch.dtype == torch.float32
    assert lengths.tolist() == [3, 5]
    assert batch[0].tolist() == [1, 1, 1, 0, 0] and batch[1].tolist() == [2] * 5


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=2_000_000), max_size=40),
    max_samples=st.integers(min_value=1, max_value=5_000_000),
)
def test_plan_batches_properties(lengths, max_samples):
    batches = plan_batches(lengths, max_samples)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert all(b for b in batches)
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) == 1 or longest * len(b) <= max_samples


def test_plan_batches_examples():
    assert plan_batches([], 100) == []
    assert plan_batches([10, 50, 20], 1000) == [[1, 2, 0]]
    assert plan_batches([10, 50, 20], 1) == [[1], [2], [0]]
    assert plan_batches([30, 30, 30], 60) == [[0, 1], [2]]


def test_fill_batches_is_the_one_length_bucketing():
    from emotion2vec.inference import fill_batches, plan_batches

    sizes = [5, 1, 3, 3, 9, 2]
    # longest first (inference): budget 9 -> [9], [5], [3, 3, 2] (3 x 3 = 9), [1]
    assert plan_batches(sizes, 9) == [[4], [0], [2, 3, 5], [1]]
    # shortest first with a count limit (training epochs): the new index is the longest
    assert fill_batches([1, 5, 2, 3, 0, 4], sizes, 9, max_count=2) == [[1, 5], [2, 3], [0], [4]]
    assert fill_batches([1, 5, 2, 3, 0, 4], sizes, 9) == [[1, 5, 2], [3], [0], [4]]
