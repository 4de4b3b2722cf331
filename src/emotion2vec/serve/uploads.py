"""Uploaded audio bytes -> a validated float32 16 kHz waveform, with the service's limits.

libsndfile formats (WAV, FLAC, OGG, MP3, ...) are decoded from memory; anything else goes
through a temporary file to :func:`emotion2vec.audio.load_audio`, which also reads containers
with PyAV when it is installed. Runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE, load_audio, prepare_waveform
from ..errors import AudioError


class AudioTooLong(AudioError):
    """The audio is longer than the service's ``max_audio_seconds``."""


def decode_upload(data: bytes, filename: str | None, max_seconds: float) -> np.ndarray:
    """Decode ``data`` (the bytes of an audio file) -> float32 mono 16 kHz (N,).

    Raises AudioError (empty, undecodable, too short, non-finite) or AudioTooLong. The duration
    is checked from the header before decoding where the format tells it.
    """
    name = filename or "upload"
    if not data:
        raise AudioError(name, "audio is empty (0 bytes)")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.SoundFileError, RuntimeError, TypeError):
        wave = _decode_via_file(data, name)
    else:
        if info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
            raise AudioTooLong(name, _too_long(info.frames / info.samplerate, max_seconds))
        try:
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, TypeError) as err:
            raise AudioError(name, f"cannot be decoded: {err}") from err
        wave = prepare_waveform(samples, rate, source=name)
    if len(wave) > max_seconds * SAMPLE_RATE:
        raise AudioTooLong(name, _too_long(len(wave) / SAMPLE_RATE, max_seconds))
    return wave


def _too_long(seconds: float, limit: float) -> str:
    return (
        f"audio is {seconds:.1f} s long; this service accepts at most {limit:g} s per request "
        "(cut it, or stream it to /stream)"
    )


def _decode_via_file(data: bytes, name: str) -> np.ndarray:
    suffix = Path(name).suffix if Path(name).suffix else ".bin"
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="emotion2vec-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            return load_audio(tmp)
        except AudioError as err:
            # name the upload, not the temporary file
            raise AudioError(name, err.reason) from err
    finally:
        os.unlink(tmp)
