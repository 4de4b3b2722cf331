"""Tests of emotion2vec.audio: decoding, mixing, resampling, validation, normalisation, frames."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from emotion2vec.audio import (
    AUDIO_EXTENSIONS,
    DEFAULT_CONV_LAYERS,
    MIN_SAMPLES,
    RESAMPLE_QUALITY,
    SAMPLE_RATE,
    AudioInfo,
    audio_info,
    frame_count,
    frame_counts,
    load_audio,
    normalize_batch,
    normalize_waveform,
    prepare_waveform,
    resampled_length,
)
from emotion2vec.errors import AudioError, Emotion2vecError


def sine(freq: float, sr: int, n: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


# ------------------------------------------------------------------------------------------
# Extensions and constants
# ------------------------------------------------------------------------------------------


def test_audio_extensions_cover_common_formats():
    for ext in (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".caf", ".w64"):
        assert ext in AUDIO_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in AUDIO_EXTENSIONS)
    assert (".mp3" in AUDIO_EXTENSIONS) == ("MP3" in sf.available_formats())
    # containers (m4a, mp4, ...) only when PyAV is there to decode them
    try:
        import av  # noqa: F401

        have_pyav = True
    except ImportError:
        have_pyav = False
    assert (".m4a" in AUDIO_EXTENSIONS) == have_pyav


def test_min_samples_is_the_receptive_field():
    assert frame_count(MIN_SAMPLES) == 1
    assert frame_count(MIN_SAMPLES - 1) == 0


# ------------------------------------------------------------------------------------------
# load_audio: decoding, scaling, mixing
# ------------------------------------------------------------------------------------------


def test_int16_wav_scaled_exactly(tmp_path):
    pcm = np.array([-32768, -1, 0, 1, 16384, 32767] * 100, dtype=np.int16)
    path = tmp_path / "a.wav"
    sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16")
    x = load_audio(path)
    assert x.dtype == np.float32 and x.shape == (600,)
    np.testing.assert_array_equal(x, pcm.astype(np.float64) / 32768)
    assert x.min() == -1.0 and x.max() < 1.0


def test_int32_wav_scaled_and_matches_array_path(tmp_path):
    rng = np.random.default_rng(0)
    pcm = rng.integers(-(2**31), 2**31, size=1000, dtype=np.int64).astype(np.int32)
    pcm[:2] = [-(2**31), 2**31 - 1]
    path = tmp_path / "a.wav"
    sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_32")
    x = load_audio(path)
    np.testing.assert_array_equal(x, (pcm.astype(np.float64) / 2**31).astype(np.float32))
    # Files and arrays go through the same scaling.
    np.testing.assert_array_equal(prepare_waveform(pcm, SAMPLE_RATE), x)


@pytest.mark.parametrize(
    ("fmt", "subtype", "ext", "tol"),
    [
        ("WAV", "FLOAT", "wav", 0.0),
        ("WAV", "PCM_24", "wav", 2**-23),
        ("FLAC", "PCM_16", "flac", 2**-15),
        ("OGG", "VORBIS", "ogg", 0.05),
    ],
)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_averaged_to_mono(tmp_path, fmt, subtype, ext, tol, channels):
    n = 4000
    # Each channel a different sine, so a wrong axis or a dropped channel shows.
    data = np.stack(
        [sine(200 * (c + 1), SAMPLE_RATE, n, amp=0.8 / channels) for c in range(channels)], 1
    )
    path = tmp_path / f"a.{ext}"
    sf.write(path, data, SAMPLE_RATE, format=fmt, subtype=subtype)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.shape == (n,)
    expected = data.mean(axis=1)
    if tol == 0.0:
        np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)
    else:
        # Lossy/quantised formats: compare with the mix of what the decoder returns.
        decoded, _ = sf.read(path, dtype="float32", always_2d=True)
        np.testing.assert_allclose(x, decoded.mean(axis=1), rtol=0, atol=1e-6)
        assert np.max(np.abs(x - expected)) <= tol * 4 + 1e-6
    info = audio_info(path)
    assert info == AudioInfo(SAMPLE_RATE, n, channels)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_resampling_keeps_length_and_frequency(tmp_path, sr, channels):
    n = int(sr * 1.25) + 7
    freq = 1000.0
    mono = sine(freq, sr, n)
    data = np.repeat(mono[:, None], channels, axis=1)
    path = tmp_path / "a.flac"
    sf.write(path, data, sr, subtype="PCM_16")
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - n * SAMPLE_RATE / sr) <= 1
    assert len(x) == resampled_length(n, sr, SAMPLE_RATE)
    info = audio_info(path)
    assert (info.sample_rate, info.frames, info.channels) == (sr, n, channels)
    assert info.duration == pytest.approx(n / sr)
    assert info.num_samples() == len(x)
    assert abs(peak_hz(x, SAMPLE_RATE) - freq) < 1.0
    # Amplitude survives too (away from the filter's edge effects).
    assert np.max(np.abs(x[1000:-1000])) == pytest.approx(0.5, abs=0.01)


def test_content_above_target_nyquist_is_removed(tmp_path):
    sr = 48000
    x = sine(440, sr, sr) + sine(12000, sr, sr)  # 12 kHz cannot exist at 16 kHz
    path = tmp_path / "a.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    y = load_audio(path)
    spec = np.abs(np.fft.rfft(y)) / len(y)
    freqs = np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)
    assert spec[np.argmin(np.abs(freqs - 440))] > 0.2
    assert spec[np.abs(freqs - 4000) < 50].max() < 1e-3  # no alias of 12 kHz at 4 kHz


def test_load_audio_custom_target_rate(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, sine(100, 16000, 16000), 16000)
    assert load_audio(path, sample_rate=8000).shape == (8000,)


@pytest.mark.parametrize("name", ["a.mp3", "a.opus"])
def test_compressed_formats_decode_when_supported(tmp_path, name):
    if name.endswith(".mp3") and ".mp3" not in AUDIO_EXTENSIONS:
        pytest.skip("libsndfile without MP3")
    if name.endswith(".opus") and ".opus" not in AUDIO_EXTENSIONS:
        pytest.skip("libsndfile without Opus")
    kw = {"format": "MP3"} if name.endswith(".mp3") else {"format": "OGG", "subtype": "OPUS"}
    path = tmp_path / name
    sf.write(path, sine(500, 48000, 48000), 48000, **kw)
    x = load_audio(path)
    assert abs(len(x) - 16000) < 400
    assert abs(peak_hz(x, SAMPLE_RATE) - 500) < 2


# ------------------------------------------------------------------------------------------
# load_audio: bad inputs
# ------------------------------------------------------------------------------------------


def assert_audio_error(excinfo, path, *fragments):
    err = excinfo.value
    assert isinstance(err, AudioError) and isinstance(err, Emotion2vecError)
    assert err.source == str(path)
    msg = str(err)
    assert msg.startswith(str(path))
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    for fn in (load_audio, audio_info):
        with pytest.raises(AudioError) as ei:
            fn(path)
        assert_audio_error(ei, path, "not found")


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError) as ei:
        load_audio(tmp_path)
    assert_audio_error(ei, tmp_path, "directory")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as ei:
        load_audio(path)
    assert_audio_error(ei, path, "0 bytes")


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    for fn in (load_audio, audio_info):
        with pytest.raises(AudioError) as ei:
            fn(path)
        assert_audio_error(ei, path, "cannot decode", "soundfile:", "ormat")
        assert isinstance(ei.value.__cause__, sf.SoundFileError)


def test_wav_with_no_samples(tmp_path):
    path = tmp_path / "nosamples.wav"
    sf.write(path, np.zeros((0, 2), np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError) as ei:
        load_audio(path)
    assert_audio_error(ei, path, "empty (0 samples)")


def test_too_short(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, sine(100, SAMPLE_RATE, MIN_SAMPLES - 1), SAMPLE_RATE)
    with pytest.raises(AudioError) as ei:
        load_audio(path)
    assert_audio_error(ei, path, "too short", "399 samples", "400 samples", "0.025 s")
    sf.write(path, sine(100, SAMPLE_RATE, MIN_SAMPLES), SAMPLE_RATE)
    assert load_audio(path).shape == (MIN_SAMPLES,)


def test_too_short_is_judged_after_resampling(tmp_path):
    path = tmp_path / "short8k.wav"
    sf.write(path, sine(100, 8000, 199), 8000)  # 398 samples at 16 kHz
    with pytest.raises(AudioError) as ei:
        load_audio(path)
    assert_audio_error(ei, path, "398 samples")
    sf.write(path, sine(100, 8000, 200), 8000)  # 400 samples at 16 kHz
    assert load_audio(path).shape == (400,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path, bad):
    x = sine(100, 8000, 4000)
    x[1234] = bad
    x[2000] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, np.stack([x, np.zeros_like(x)], 1), 8000, subtype="FLOAT")
    with pytest.raises(AudioError) as ei:
        load_audio(path)
    assert_audio_error(ei, path, "non-finite", "2 non-finite", "sample 1234")


# ------------------------------------------------------------------------------------------
# prepare_waveform
# ------------------------------------------------------------------------------------------


def test_prepare_float64_and_float32():
    x = np.random.default_rng(0).uniform(-1, 1, 1000)
    y = prepare_waveform(x, SAMPLE_RATE)
    assert y.dtype == np.float32 and y.shape == (1000,)
    np.testing.assert_array_equal(y, x.astype(np.float32))
    y32 = prepare_waveform(x.astype(np.float32), SAMPLE_RATE)
    np.testing.assert_array_equal(y32, y)


@pytest.mark.parametrize(
    ("dtype", "scale", "offset"),
    [(np.int8, 128, 0), (np.int16, 32768, 0), (np.int32, 2**31, 0), (np.uint8, 128, 128)],
)
def test_prepare_integer_scaling(dtype, scale, offset):
    info = np.iinfo(dtype)
    x = np.linspace(info.min, info.max, 1000).astype(dtype)
    y = prepare_waveform(x, SAMPLE_RATE)
    np.testing.assert_array_equal(y, ((x.astype(np.float64) - offset) / scale).astype(np.float32))
    assert y.min() == -1.0
    if dtype != np.int32:  # float32 rounds 2**31 - 1 up to exactly 1.0
        assert y.max() < 1.0


def test_prepare_uint8_matches_libsndfile(tmp_path):
    path = tmp_path / "u8.wav"
    x = np.arange(1000) % 256
    sf.write(path, (x - 128) / 128, SAMPLE_RATE, subtype="PCM_U8")
    np.testing.assert_array_equal(
        prepare_waveform(x.astype(np.uint8), SAMPLE_RATE), load_audio(path)
    )


def test_prepare_torch_tensors():
    x = torch.linspace(-1, 1, 1000)
    np.testing.assert_array_equal(prepare_waveform(x, SAMPLE_RATE), x.numpy())
    for dt in (torch.float16, torch.bfloat16, torch.float64):
        y = prepare_waveform(x.to(dt), SAMPLE_RATE)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, x.to(dt).float().numpy())
    i16 = torch.arange(-500, 500, dtype=torch.int16) * 60
    np.testing.assert_array_equal(
        prepare_waveform(i16, SAMPLE_RATE), prepare_waveform(i16.numpy(), SAMPLE_RATE)
    )
    xg = x.clone().requires_grad_(True)
    assert prepare_waveform(xg, SAMPLE_RATE).shape == (1000,)


def test_prepare_list_input():
    assert prepare_waveform([0.0] * 500, SAMPLE_RATE).shape == (500,)


def test_prepare_two_dimensional_layouts():
    rng = np.random.default_rng(0)
    cn = rng.uniform(-1, 1, (3, 2000)).astype(np.float32)  # torchaudio (channels, samples)
    a = prepare_waveform(cn, SAMPLE_RATE)
    b = prepare_waveform(cn.T, SAMPLE_RATE)  # soundfile (samples, channels)
    c = prepare_waveform(torch.from_numpy(cn), SAMPLE_RATE)
    assert a.shape == (2000,)
    np.testing.assert_allclose(a, cn.mean(axis=0), atol=1e-7, rtol=0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # A single channel in either layout.
    np.testing.assert_array_equal(prepare_waveform(cn[:1], SAMPLE_RATE), cn[0])
    np.testing.assert_array_equal(prepare_waveform(cn[:1].T, SAMPLE_RATE), cn[0])


def test_prepare_layout_errors():
    with pytest.raises(AudioError, match="ambiguous 2-D layout"):
        prepare_waveform(np.zeros((500, 500), np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"shape \(2, 1, 1000\)"):
        prepare_waveform(np.zeros((2, 1, 1000), np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="empty"):
        prepare_waveform(np.zeros(0, np.float32), SAMPLE_RATE)


def test_prepare_resamples():
    x = sine(1000, 44100, 44100)
    y = prepare_waveform(x, 44100)
    assert y.shape == (16000,)
    assert abs(peak_hz(y, SAMPLE_RATE) - 1000) < 1.0
    # Same numbers as the file path.
    y2 = prepare_waveform(x, 44100.0)
    np.testing.assert_array_equal(y, y2)


def test_prepare_matches_load_audio(tmp_path):
    x = np.stack([sine(300, 22050, 5000), sine(700, 22050, 5000)], 1)
    path = tmp_path / "a.wav"
    sf.write(path, x, 22050, subtype="FLOAT")
    np.testing.assert_array_equal(prepare_waveform(x, 22050), load_audio(path))


@pytest.mark.parametrize("rate", [None, 0, -16000, float("nan"), True, "16000"])
def test_prepare_requires_valid_sample_rate(rate):
    with pytest.raises(AudioError) as ei:
        prepare_waveform(np.zeros(1000, np.float32), rate, source="utt7")
    assert str(ei.value).startswith("utt7: ")
    assert "sample_rate" in str(ei.value)


def test_prepare_errors_name_the_source():
    with pytest.raises(AudioError, match=r"^utt1: audio too short: 399 samples"):
        prepare_waveform(np.zeros(399, np.float32), SAMPLE_RATE, source="utt1")
    x = np.zeros(1000, np.float32)
    x[5] = np.nan
    with pytest.raises(AudioError, match=r"^utt2: .*non-finite.*sample 5"):
        prepare_waveform(x, SAMPLE_RATE, source="utt2")
    with pytest.raises(AudioError, match=r"^<array>: unsupported dtype bool"):
        prepare_waveform(np.ones(1000, bool), SAMPLE_RATE)
    with pytest.raises(AudioError, match="complex"):
        prepare_waveform(torch.zeros(1000, dtype=torch.complex64), SAMPLE_RATE)
    with pytest.raises(AudioError, match="unsupported dtype"):
        prepare_waveform(np.zeros(1000, np.complex64), SAMPLE_RATE)


# ------------------------------------------------------------------------------------------
# normalisation
# ------------------------------------------------------------------------------------------


def test_normalize_waveform_is_reference_layer_norm():
    x = torch.randn(12345, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.1
    y = normalize_waveform(x)
    assert torch.equal(y, F.layer_norm(x, x.shape, eps=1e-5))
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert abs(y.mean().item()) < 1e-5
    # Unit variance up to eps: var(y) = v / (v + eps) with v the biased variance of x.
    v = x.double().var(unbiased=False).item()
    assert y.double().var(unbiased=False).item() == pytest.approx(v / (v + 1e-5), rel=1e-5)


def test_normalize_waveform_rejects_bad_input():
    with pytest.raises(ValueError):
        normalize_waveform(torch.zeros(2, 100))
    with pytest.raises(TypeError):
        normalize_waveform(torch.zeros(100, dtype=torch.int16))
    with pytest.raises(ValueError):
        normalize_waveform(torch.zeros(0))


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 3000), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_normalize_batch_equals_per_row(lengths, seed):
    g = torch.Generator().manual_seed(seed)
    n = max(lengths) + int(torch.randint(0, 50, (1,), generator=g))
    rows = [torch.randn(length, generator=g) * 0.2 + 0.05 for length in lengths]
    # Non-zero padding: it must not leak into any row's statistics.
    waves = torch.full((len(rows), n), 7.0)
    for i, r in enumerate(rows):
        waves[i, : len(r)] = r
    out = normalize_batch(waves, torch.tensor(lengths))
    assert out.shape == waves.shape and out.dtype == waves.dtype
    for i, r in enumerate(rows):
        assert torch.equal(out[i, : len(r)], normalize_waveform(r.clone()))
        assert torch.count_nonzero(out[i, len(r) :]) == 0


def test_normalize_batch_differs_from_padded_normalisation():
    # Guard against a vacuous test: normalising the padded row would give other numbers.
    r = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    waves = torch.zeros(1, 1500)
    waves[0, :1000] = r
    out = normalize_batch(waves, torch.tensor([1000]))
    assert not torch.allclose(out[0, :1000], normalize_waveform(waves[0])[:1000], atol=1e-3)


def test_normalize_batch_rejects_bad_lengths():
    w = torch.zeros(2, 10)
    with pytest.raises(ValueError):
        normalize_batch(w, torch.tensor([10, 0]))
    with pytest.raises(ValueError):
        normalize_batch(w, torch.tensor([11, 5]))
    with pytest.raises(ValueError):
        normalize_batch(w, torch.tensor([5]))
    with pytest.raises(TypeError):
        normalize_batch(w, torch.tensor([5.0, 5.0]))
    with pytest.raises(ValueError):
        normalize_batch(torch.zeros(10), torch.tensor([10]))


# ------------------------------------------------------------------------------------------
# frame arithmetic
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "frames"), [(1.0, 49), (3.7, 184), (10.0, 499), (30.0, 1499)])
def test_frame_count_known_values(seconds, frames):
    n = round(seconds * SAMPLE_RATE)
    assert frame_count(n) == frames
    assert frame_counts(torch.tensor([n])).tolist() == [frames]


def test_frame_count_small_and_invalid():
    assert frame_count(0) == 0
    assert frame_count(9) == 0
    with pytest.raises(ValueError):
        frame_count(-1)
    with pytest.raises(TypeError):
        frame_counts(torch.tensor([1.0]))
    with pytest.raises(ValueError):
        frame_count(100, [(1, 0, 1)])


def conv_stack_length(n: int, layers) -> int:
    """Output length of a real Conv1d stack (1 channel each, no padding)."""
    x = torch.zeros(1, 1, n)
    with torch.no_grad():
        for _, k, s in layers:
            if x.shape[-1] < k:
                return 0  # torch refuses inputs shorter than the kernel
            x = torch.nn.Conv1d(1, 1, k, stride=s, bias=False)(x)
    return x.shape[-1]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40000))
def test_frame_count_matches_official_conv_stack(n):
    assert frame_count(n) == conv_stack_length(n, DEFAULT_CONV_LAYERS)


layer = st.tuples(st.just(8), st.integers(1, 12), st.integers(1, 6))


@settings(max_examples=40, deadline=None)
@given(layers=st.lists(layer, min_size=1, max_size=5), n=st.integers(0, 5000))
def test_frame_count_custom_layers_match_conv_stack(layers, n):
    assert frame_count(n, layers) == conv_stack_length(n, layers)


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(0, 10**7), min_size=1, max_size=16))
def test_frame_counts_tensor_matches_scalar(lengths):
    got = frame_counts(torch.tensor(lengths, dtype=torch.int32))
    assert got.dtype == torch.int64
    assert got.tolist() == [frame_count(n) for n in lengths]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 100_000),
    orig=st.sampled_from([8000, 11025, 22050, 24000, 44100, 48000, 96000]),
)
def test_resampled_length_matches_soxr(n, orig):
    # What audio_info().num_samples() promises: the exact length load_audio will return.
    x = np.zeros(n, np.float32)
    out = soxr.resample(x, orig, SAMPLE_RATE, quality=RESAMPLE_QUALITY)
    assert resampled_length(n, orig, SAMPLE_RATE) == len(out)
    assert resampled_length(n, SAMPLE_RATE, SAMPLE_RATE) == n
