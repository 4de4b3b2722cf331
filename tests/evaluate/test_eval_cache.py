"""Feature cache: reuse, invalidation by audio and by weights, storage; log-mel / eGeMAPS."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from eval_fakes import make_corpus, micro_model, tone

from emotion2vec.errors import DataError, Emotion2vecError
from emotion2vec.evaluate.cache import (
    EgemapsExtractor,
    FeatureCache,
    LogMelExtractor,
    ModelFeatureExtractor,
    log_mel_spectrogram,
    mel_filterbank,
    model_fingerprint,
)
from emotion2vec.inference import extract


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    items, _ = make_corpus(tmp_path_factory.mktemp("corpus"), speakers=2, per_class=1)
    return items


@pytest.fixture(scope="module")
def model():
    return micro_model(0)


def test_second_run_extracts_nothing_and_returns_the_same_arrays(tmp_path, corpus, model):
    cache = FeatureCache(tmp_path / "cache")
    paths = [it.path for it in corpus]
    extractor = ModelFeatureExtractor(model, granularity="frame", dtype="float32")
    first = cache.get(extractor, paths, progress=False)
    assert first.computed == list(range(len(paths))) and first.reused == []
    second = cache.get(ModelFeatureExtractor(model, granularity="frame", dtype="float32"), paths)
    assert second.computed == [] and sorted(second.reused) == list(range(len(paths)))
    for a, b in zip(first.arrays, second.arrays, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    # the cached frames are the model's own features (batched extraction is padding-exact)
    alone = extract(model, paths[0], granularity="frame")
    np.testing.assert_allclose(second.arrays[0][0], alone, atol=1e-4, rtol=1e-4)
    meta = json.loads((tmp_path / "cache" / extractor.key() / "meta.json").read_text())
    assert meta["granularity"] == "frame" and meta["model"] == model_fingerprint(model)


def test_touching_one_file_recomputes_exactly_that_entry(tmp_path, corpus, model):
    cache = FeatureCache(tmp_path / "cache")
    paths = [it.path for it in corpus]
    extractor = ModelFeatureExtractor(model, granularity="utterance")
    cache.get(extractor, paths, progress=False)
    stat = os.stat(paths[3])
    os.utime(paths[3], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    again = cache.get(extractor, paths, progress=False)
    assert again.computed == [3]
    # the stale entry was replaced, not kept beside the new one
    entries = list((tmp_path / "cache" / extractor.key()).glob("*/*.npy"))
    assert len(entries) == len(paths)
    assert cache.get(extractor, paths, progress=False).computed == []


def test_rewritten_audio_gives_new_features(tmp_path, model):
    path = tmp_path / "a.wav"
    rng = np.random.default_rng(1)
    sf.write(path, tone(440.0, 0.4, rng), 16000)
    cache = FeatureCache(tmp_path / "cache")
    extractor = ModelFeatureExtractor(model, granularity="utterance")
    before = cache.get(extractor, [path]).arrays[0]
    sf.write(path, tone(2000.0, 0.6, rng), 16000)
    after = cache.get(extractor, [path])
    assert after.computed == [0]
    assert not np.allclose(before, after.arrays[0])


def test_changing_weights_invalidates_every_entry_of_that_model_only(tmp_path, corpus):
    cache = FeatureCache(tmp_path / "cache")
    paths = [it.path for it in corpus]
    a = micro_model(0)
    cache.get(ModelFeatureExtractor(a, granularity="utterance"), paths, progress=False)
    b = micro_model(0)
    with torch.no_grad():
        next(b.parameters()).add_(0.01)
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint(a) == model_fingerprint(micro_model(0))
    changed = cache.get(ModelFeatureExtractor(b, granularity="utterance"), paths, progress=False)
    assert changed.computed == list(range(len(paths)))
    back = cache.get(ModelFeatureExtractor(a, granularity="utterance"), paths, progress=False)
    assert back.computed == []


def test_layers_and_granularity_are_separate_entries(tmp_path, corpus, model):
    cache = FeatureCache(tmp_path / "cache")
    paths = [it.path for it in corpus][:3]
    frames = cache.get(
        ModelFeatureExtractor(model, granularity="frame", siblings=False), paths
    ).arrays
    utter = cache.get(ModelFeatureExtractor(model, granularity="utterance", layers="all"), paths)
    assert utter.computed == [0, 1, 2]
    assert frames[0].dtype == np.float16 and frames[0].ndim == 3 and frames[0].shape[0] == 1
    assert utter.arrays[0].shape == (4, 64)  # 1 + 3 blocks, D = 64
    # the last layer's mean matches the mean of the (float16) frames
    np.testing.assert_allclose(
        utter.arrays[0][-1], frames[0][0].astype(np.float32).mean(0), atol=2e-2
    )
    with pytest.raises(Emotion2vecError, match="out of range"):
        ModelFeatureExtractor(model, layers=[7])


def test_missing_audio_is_reported_and_others_are_kept(tmp_path, corpus, model):
    cache = FeatureCache(tmp_path / "cache")
    paths = [it.path for it in corpus][:2] + [str(tmp_path / "nope.wav")]
    with pytest.raises(DataError, match="nope.wav"):
        cache.get(ModelFeatureExtractor(model, granularity="utterance"), paths, progress=False)
    ok = cache.get(ModelFeatureExtractor(model, granularity="utterance"), paths[:2])
    assert ok.computed == []


def test_no_root_computes_without_writing(tmp_path, corpus, model):
    got = FeatureCache(None).get(LogMelExtractor(), [corpus[0].path])
    assert got.computed == [0] and got.arrays[0].shape == (160,)


# ------------------------------------------------------------------------------------------
# Classic baselines
# ------------------------------------------------------------------------------------------


def test_mel_filterbank_has_no_empty_band_and_peaks_at_one():
    bank = mel_filterbank(80, 512)
    assert bank.shape == (257, 80)
    assert bool((bank.max(dim=0).values > 0.2).all())
    assert float(bank.max()) <= 1.0 + 1e-6
    centres = bank.argmax(dim=0)
    assert bool((centres[1:] >= centres[:-1]).all())


def test_log_mel_of_a_sine_peaks_in_the_band_of_its_frequency():
    t = np.arange(16000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    logmel = log_mel_spectrogram(wave)
    assert logmel.shape == (1 + (16000 - 400) // 160, 80)
    mean = logmel.mean(0)
    bank = mel_filterbank(80, 512)
    bin_1k = round(1000 / 8000 * 256)
    assert int(mean.argmax()) == int(bank[bin_1k].argmax())
    # stationary signal: tiny spread over time in the peak band, large gap to far bands
    assert float(logmel[:, int(mean.argmax())].std()) < 0.05
    assert float(mean.max() - mean[-1]) > 10.0
    stats = LogMelExtractor().features(wave)
    assert stats.shape == (160,) and stats.dtype == np.float32
    np.testing.assert_allclose(stats[:80], mean.numpy(), rtol=1e-5, atol=1e-5)
    assert float(stats[80:].min()) >= 0.0


def test_log_mel_power_scales_by_a_constant():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(8000).astype(np.float32) * 0.1
    a, b = log_mel_spectrogram(wave), log_mel_spectrogram(2 * wave)
    np.testing.assert_allclose((b - a).numpy(), np.log(4.0), atol=1e-3)


def test_egemaps_functionals(tmp_path):
    pytest.importorskip("opensmile")
    path = tmp_path / "a.wav"
    sf.write(path, tone(220.0, 1.0, np.random.default_rng(0)), 16000)
    extractor = EgemapsExtractor()
    got = FeatureCache(tmp_path / "cache").get(extractor, [path])
    assert got.arrays[0].shape == (88,) and np.isfinite(got.arrays[0]).all()
    assert len(extractor.feature_names) == 88
    names = extractor.feature_names
    f0 = got.arrays[0][names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    assert abs(f0 - 12 * np.log2(220.0 / 27.5)) < 1.0  # 36 semitones above 27.5 Hz


def test_egemaps_without_opensmile_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "opensmile":
            raise ImportError("no")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(Emotion2vecError, match="pip install opensmile"):
        EgemapsExtractor()


def test_several_layers_are_averaged_for_utterance_embeddings(tmp_path, corpus, model):
    from emotion2vec.evaluate.tasks import utterance_embeddings

    items = corpus[:3]
    cache = FeatureCache(tmp_path / "cache")
    both = utterance_embeddings(items, model=model, layer=[1, -1], cache=cache)
    one = utterance_embeddings(items, model=model, layer=1, cache=cache)
    last = utterance_embeddings(items, model=model, cache=cache)
    assert both.shape == (3, 64)
    np.testing.assert_allclose(both, (one + last) / 2, atol=1e-5)


def test_one_frame_pass_also_fills_the_utterance_entries(tmp_path, corpus, model):
    paths = [it.path for it in corpus][:4]
    cache = FeatureCache(tmp_path / "cache")
    frames = cache.get(ModelFeatureExtractor(model, layers=[1], granularity="frame"), paths)
    assert frames.computed == [0, 1, 2, 3] and frames.arrays[0].shape[0] == 1
    same = cache.get(ModelFeatureExtractor(model, layers=[1], granularity="utterance"), paths)
    every = cache.get(ModelFeatureExtractor(model, layers="all", granularity="utterance"), paths)
    assert same.computed == [] and every.computed == []
    # and they equal what separate passes give
    alone = FeatureCache(None)
    plain = alone.get(ModelFeatureExtractor(model, layers="all", granularity="utterance"), paths)
    for a, b, c in zip(every.arrays, plain.arrays, same.arrays, strict=True):
        assert a.shape == (4, 64)
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(c[0], b[1], atol=1e-5)
    assert len(list((tmp_path / "cache").glob("*/meta.json"))) == 3
    # a pass without siblings writes only its own entries
    other = FeatureCache(tmp_path / "other")
    other.get(ModelFeatureExtractor(model, granularity="frame", siblings=False), paths)
    assert len(list((tmp_path / "other").glob("*/meta.json"))) == 1
