"""Voice activity detection with Silero VAD (the ``silero-vad`` package ships its model files:
nothing is downloaded at run time). Install with ``pip install 'emotion2vec[segments]'``.

The recording is read in blocks (:data:`BLOCK_SECONDS`), so memory does not grow with its
length; the VAD sees 512-sample windows at 16 kHz in order, with its recurrent state carried
across blocks, and its per-window speech probabilities are turned into segments by Silero's own
``get_speech_timestamps_from_probs`` (threshold, minimum speech and silence, padding).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import SAMPLE_RATE, audio_info, load_audio
from ..errors import Emotion2vecError
from .readers import Segment

__all__ = ["BLOCK_SECONDS", "VadConfig", "detect_speech"]

#: Seconds of audio decoded at a time.
BLOCK_SECONDS = 60.0
_WINDOW = 512  # samples per VAD step at 16 kHz (Silero's only window at this rate)


@dataclass(frozen=True)
class VadConfig:
    """Silero's options, with its defaults except a longer minimum speech and silence, so that
    segments are utterance-like (emotion heads were trained on utterances of 1-20 s)."""

    threshold: float = 0.5
    """Speech probability above which a window is speech."""
    min_speech_seconds: float = 0.5
    """Shorter speech is dropped."""
    min_silence_seconds: float = 0.3
    """Shorter pauses do not split a segment."""
    max_speech_seconds: float = 20.0
    """Longer speech is split (at a pause when there is one)."""
    pad_seconds: float = 0.03
    """Added on both sides of each segment."""


def _silero():
    try:
        threads = torch.get_num_threads()
        from silero_vad import get_speech_timestamps_from_probs, load_silero_vad

        model = load_silero_vad()
    except ImportError:
        raise Emotion2vecError(
            "voice activity detection needs the silero-vad package: "
            "pip install 'emotion2vec[segments]' (or pass segments from a file)"
        ) from None
    finally:
        # importing silero_vad sets torch's thread count to 1 for the whole process
        torch.set_num_threads(threads)
    return model, get_speech_timestamps_from_probs


def speech_probabilities(
    path: str | os.PathLike[str], model, *, channel: int | None = None
) -> tuple[list[float], int]:
    """Per-window speech probabilities of a recording and its length in samples (16 kHz)."""
    info = audio_info(path)
    seconds = info.num_samples() / SAMPLE_RATE
    model.reset_states()
    probs: list[float] = []
    carry = np.zeros(0, dtype=np.float32)
    total = 0
    start = 0.0
    with torch.inference_mode():
        while start < seconds:
            end = min(seconds, start + BLOCK_SECONDS)
            if end - start < 0.05:
                break
            wave = load_audio(path, channel=channel, start=start, end=end)
            total += len(wave)
            block = np.concatenate([carry, wave])
            usable = len(block) // _WINDOW * _WINDOW
            windows = torch.from_numpy(block[:usable].copy()).view(-1, _WINDOW)
            for w in windows:
                probs.append(float(model(w[None], SAMPLE_RATE)))
            carry = block[usable:]
            start = end
        if len(carry):
            last = torch.from_numpy(np.pad(carry, (0, _WINDOW - len(carry))))
            probs.append(float(model(last[None], SAMPLE_RATE)))
    return probs, total


def detect_speech(
    path: str | os.PathLike[str],
    config: VadConfig | None = None,
    *,
    channel: int | None = None,
) -> list[Segment]:
    """Speech segments of a recording (seconds), in time order, speaker unknown."""
    config = config or VadConfig()
    model, to_segments = _silero()
    probs, total = speech_probabilities(Path(path), model, channel=channel)
    stamps = to_segments(
        probs,
        sampling_rate=SAMPLE_RATE,
        threshold=config.threshold,
        min_speech_duration_ms=int(config.min_speech_seconds * 1000),
        max_speech_duration_s=config.max_speech_seconds,
        min_silence_duration_ms=int(config.min_silence_seconds * 1000),
        speech_pad_ms=int(config.pad_seconds * 1000),
        audio_length_samples=total,
    )
    return [
        Segment(s["start"] / SAMPLE_RATE, min(s["end"], total) / SAMPLE_RATE, channel=channel)
        for s in stamps
        if s["end"] > s["start"]
    ]
