"""Audio tracks of video and compressed containers (mp4, m4a, avi, webm, mkv) through PyAV."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from emotion2vec.audio import AUDIO_EXTENSIONS, audio_info, load_audio
from emotion2vec.errors import AudioError
from emotion2vec.sources import collect_sources

av = pytest.importorskip("av")


def tones(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 330 * t)]).astype(
        np.float32
    )


def write(path, codec: str, rate: int, seconds: float = 1.0, video: bool = False) -> np.ndarray:
    x = tones(rate, seconds)
    out = av.open(str(path), "w")
    if video:  # a video track first, as in real recordings
        vs = out.add_stream("mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
    st = out.add_stream(codec, rate=rate, layout="stereo")
    fmt = "s16" if codec.startswith("pcm_s16") else "fltp"
    data = (x.T.reshape(1, -1) * 32767).astype(np.int16) if fmt == "s16" else x
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
    frame.sample_rate = rate
    if video:
        img = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for pkt in vs.encode(img):
            out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    for pkt in st.encode(frame):
        out.mux(pkt)
    for pkt in st.encode(None):
        out.mux(pkt)
    out.close()
    return soxr.resample(x.mean(axis=0), rate, 16000)


@pytest.mark.parametrize(
    "name, codec, rate, video",
    [
        ("clip.mp4", "aac", 44100, True),  # MELD
        ("clip.m4a", "aac", 48000, False),  # MEAD
        ("clip.avi", "pcm_s16le", 48000, True),  # eNTERFACE, MER2023
        ("clip.webm", "libopus", 48000, False),  # EMNS
        ("clip.mkv", "libopus", 48000, False),
    ],
)
def test_container_audio_is_decoded_mixed_and_resampled(tmp_path, name, codec, rate, video):
    path = tmp_path / name
    expected = write(path, codec, rate, video=video)
    got = load_audio(path)
    assert abs(len(got) - len(expected)) < 0.06 * 16000  # codec priming/padding only
    # align on the best lag (lossy codecs delay) and compare the waveforms
    n = min(len(got), len(expected)) - 2000
    best = max(np.corrcoef(got[lag : lag + n], expected[:n])[0, 1] for lag in range(0, 1800, 8))
    assert best > 0.98, best
    # a channel and a span of a container (EmoBox rows carry them)
    part = load_audio(path, channel=2, start=0.2, end=0.7)
    assert abs(len(part) - 8000) <= 2
    info = audio_info(path)
    assert info.sample_rate == rate and abs(info.frames / rate - 1.0) < 0.08
    assert path.suffix in AUDIO_EXTENSIONS
    assert [s.key for s in collect_sources([tmp_path])] == [name]


def test_a_container_without_audio_is_one_clear_failure(tmp_path):
    path = tmp_path / "silent_film.mp4"
    out = av.open(str(path), "w")
    vs = out.add_stream("mpeg4", rate=25)
    vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
    for pkt in vs.encode(
        av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
    ):
        out.mux(pkt)
    for pkt in vs.encode(None):
        out.mux(pkt)
    out.close()
    with pytest.raises(AudioError, match="no audio track"):
        load_audio(path)


def test_without_pyav_the_error_says_what_to_install(tmp_path, monkeypatch):
    import emotion2vec.audio as audio

    path = tmp_path / "clip.m4a"
    write(path, "aac", 48000)
    monkeypatch.setattr(audio, "_decode_container", lambda p: None)
    monkeypatch.setattr(audio, "_have_pyav", lambda: False)
    with pytest.raises(AudioError, match=r"emotion2vec\[containers\]"):
        load_audio(path)
