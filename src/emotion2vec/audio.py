"""Audio input: decoding, mono mix-down, resampling, validation and waveform normalisation.

This is the only module that decodes or resamples audio. Everything it returns is a float32
mono waveform at :data:`SAMPLE_RATE` that is long enough to give the model at least one frame,
so code downstream never has to re-check those properties.

Decoding uses soundfile (libsndfile); resampling uses soxr.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F

from .errors import AudioError
from .model.feature_extractor import frames_after

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEFAULT_CONV_LAYERS",
    "MIN_SAMPLES",
    "NORM_EPS",
    "RESAMPLE_QUALITY",
    "SAMPLE_RATE",
    "AudioInfo",
    "audio_info",
    "frame_count",
    "frame_counts",
    "load_audio",
    "normalize_batch",
    "normalize_waveform",
    "prepare_waveform",
    "resampled_length",
]

SAMPLE_RATE = 16000
"""Sample rate (Hz) every emotion2vec model was trained on."""

MIN_SAMPLES = 400
"""Receptive field of the conv feature extractor (25 ms at 16 kHz): shorter audio gives zero
frames, so it is rejected up front rather than producing an empty feature tensor."""

NORM_EPS = 1e-5
"""Epsilon of the per-utterance layer norm; the value the official models were trained with."""

RESAMPLE_QUALITY = "HQ"
# Why "HQ" rather than "VHQ": HQ is soxr's 20-bit preset (~120 dB stop-band rejection), already
# beyond the 16-bit sources of speech-emotion corpora, so VHQ (28-bit) would only change bits
# below the recordings' own noise floor while resampling more slowly. HQ is also librosa's
# default ("soxr_hq" since 0.10), which many reference pipelines resample with.

DEFAULT_CONV_LAYERS: tuple[tuple[int, int, int], ...] = (
    ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
)
"""(dim, kernel, stride) of each layer of the official conv feature extractor (wav2vec 2.0 /
data2vec / emotion2vec): total stride 320 samples (20 ms), receptive field 400 samples."""


def _available_extensions() -> frozenset[str]:
    # Only extensions that the *installed* libsndfile can decode: MP3 needs libsndfile >= 1.1 and
    # Opus >= 1.0.29, and a system libsndfile may be built without either. Formats libsndfile can
    # read but that are rarely audio in practice (.mat, .htk feature files, .raw without a header)
    # are left out so that scanning a dataset folder does not pick them up.
    formats = sf.available_formats()
    ext = {".wav", ".wave", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".aifc", ".au", ".snd"}
    ext |= {".caf", ".w64", ".rf64", ".sph", ".nist"}
    if "MP3" in formats:
        ext.add(".mp3")
    if "OGG" in formats and "OPUS" in sf.available_subtypes("OGG"):
        ext.add(".opus")
    return frozenset(ext)


#: Containers whose audio track is decoded with PyAV (``pip install 'emotion2vec[containers]'``):
#: the video and compressed formats of corpora such as MELD (.mp4), MEAD (.m4a), eNTERFACE and
#: MER2023 (.avi), EMNS (.webm).
CONTAINER_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4a", ".aac", ".avi", ".webm", ".mkv", ".mov", ".wma", ".wmv", ".mpg", ".mpeg"}
)


def _have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


AUDIO_EXTENSIONS: frozenset[str] = _available_extensions() | (
    CONTAINER_EXTENSIONS if _have_pyav() else frozenset()
)
"""Lower-case file extensions (with the dot, like ``Path.suffix``) of audio files that can be
decoded here: what the installed libsndfile reads, plus :data:`CONTAINER_EXTENSIONS` when PyAV is
installed. Used to find audio in directories; :func:`load_audio` detects the format from the
file's content and tries PyAV when libsndfile cannot read a file."""


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file, read without decoding the samples."""

    sample_rate: int
    """Native sample rate of the file (Hz)."""
    frames: int
    """Samples per channel at the native rate (exact for PCM formats; the decoder's count for
    compressed ones)."""
    channels: int
    """Number of channels."""

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate if self.sample_rate > 0 else 0.0

    def num_samples(self, sample_rate: int = SAMPLE_RATE) -> int:
        """Length :func:`load_audio` returns for this file at ``sample_rate``."""
        return resampled_length(self.frames, self.sample_rate, sample_rate)


def resampled_length(num_samples: int, orig_rate: float, target_rate: float) -> int:
    """Number of samples soxr produces when resampling ``num_samples`` from ``orig_rate``.

    soxr rounds ``num_samples * target_rate / orig_rate`` to the nearest integer (halves up);
    knowing it without decoding lets a batching plan sort and bucket files by exact length.
    """
    if orig_rate == target_rate:
        return int(num_samples)
    # Integer arithmetic when the rates are integral, so that e.g. 44100 -> 16000 has no float
    # rounding at exact halves.
    if float(orig_rate).is_integer() and float(target_rate).is_integer():
        num = 2 * int(num_samples) * int(target_rate) + int(orig_rate)
        return num // (2 * int(orig_rate))
    return math.floor(num_samples * target_rate / orig_rate + 0.5)


def _check_file(path: str | os.PathLike[str]) -> None:
    # libsndfile reports a missing file as "System error." and an empty one as "Format not
    # recognised."; checking first gives messages that say what is actually wrong.
    p = Path(path)
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError(path, "symbolic link loop") from None
        if p.is_symlink():
            raise AudioError(
                path, f"dangling symbolic link (its target {os.readlink(p)} is missing)"
            ) from None
        if isinstance(exc, PermissionError):
            raise AudioError(path, "permission denied") from None
        raise AudioError(path, "file not found") from None
    if p.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise AudioError(path, "permission denied (not readable)")


def _soundfile_reason(err: Exception) -> str:
    # LibsndfileError's str() repeats the path ("Error opening 'x.wav': ..."); our AudioError
    # already starts with the path, so keep only libsndfile's own message when there is one.
    msg = getattr(err, "error_string", None) or str(err)
    return f"cannot decode audio (soundfile: {msg.strip()})"


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read sample rate, length and channel count from the file header, without decoding.

    Raises :class:`~emotion2vec.errors.AudioError` if the file is missing or not readable.
    """
    _check_file(path)
    try:
        info = sf.info(os.fspath(path))
    except (sf.SoundFileError, RuntimeError, TypeError) as err:
        container = _container_info(path)
        if container is not None:
            return container
        raise AudioError(path, _soundfile_reason(err) + _pyav_hint(path)) from err
    return AudioInfo(
        sample_rate=int(info.samplerate), frames=int(info.frames), channels=info.channels
    )


def _pyav_hint(path) -> str:
    if Path(path).suffix.lower() in CONTAINER_EXTENSIONS and not _have_pyav():
        return "; for this container install PyAV: pip install 'emotion2vec[containers]'"
    return ""


def _with_audio_stream(path, read):
    """``read(container, stream, rate)`` on a container's first audio track through PyAV; None
    when PyAV is not installed or cannot read the file (the caller reports its own error)."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(os.fspath(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError(path, "the container has no audio track")
            return read(container, stream, int(stream.rate or stream.codec_context.sample_rate))
    except AudioError:
        raise
    except Exception:  # noqa: BLE001 - any PyAV failure: not readable as a container either
        return None


def _container_info(path) -> AudioInfo | None:
    """Header information of a container's first audio track (None: see _with_audio_stream)."""

    def read(container, stream, rate: int) -> AudioInfo:
        # the longest of what the stream and the container report (some containers, e.g.
        # AVI with PCM, count the stream's duration in packets)
        seconds = 0.0
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        if container.duration is not None:
            seconds = max(seconds, container.duration / 1_000_000)
        if stream.frames and rate:  # samples for PCM in AVI, packets (smaller) elsewhere
            seconds = max(seconds, stream.frames / rate)
        channels = int(stream.codec_context.channels or 1)
        return AudioInfo(sample_rate=rate, frames=int(round(seconds * rate)), channels=channels)

    return _with_audio_stream(path, read)


def _decode_container(path) -> tuple[np.ndarray, int] | None:
    """(frames, channels) float32 and the rate of a container's first audio track (None: see
    _with_audio_stream)."""

    def read(container, stream, rate: int) -> tuple[np.ndarray, int]:
        chunks = []
        for frame in container.decode(stream):
            # planar or packed, any sample format -> (channels, samples) float32
            arr = frame.to_ndarray()
            if arr.dtype.kind == "i":
                arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
            else:
                arr = arr.astype(np.float32, copy=False)
            if not frame.format.name.endswith("p"):  # packed: (1, samples * channels)
                arr = arr.reshape(-1, len(frame.layout.channels)).T
            chunks.append(arr)
        if not chunks:
            return np.zeros((0, 1), dtype=np.float32), rate
        return np.ascontiguousarray(np.concatenate(chunks, axis=1).T), rate

    return _with_audio_stream(path, read)


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    *,
    channel: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Decode an audio file to a validated float32 mono waveform at ``sample_rate``.

    Integer PCM of any width is scaled to [-1, 1) by libsndfile (int16 / 32768, int32 / 2**31,
    ...), channels are averaged (or ``channel``, 1-based, is taken alone), and the signal is
    resampled with soxr if the file's rate differs. ``start`` / ``end`` (seconds) cut a segment
    out of the file first (libsndfile formats are read from ``start`` only).

    Returns:
        float32 array of shape ``(N,)`` with ``N >= MIN_SAMPLES``.

    Raises:
        AudioError: file missing, empty, not decodable, with no samples, with NaN/inf values, or
            shorter than :data:`MIN_SAMPLES` after resampling. The message names the file.
    """
    _check_sample_rate(sample_rate, path, what="target sample_rate")
    _check_file(path)
    _check_span(path, start, end)
    try:
        data, file_rate = _read_soundfile(path, start, end)
    except (sf.SoundFileError, RuntimeError, TypeError) as err:
        decoded = _decode_container(path)
        if decoded is None:
            raise AudioError(path, _soundfile_reason(err) + _pyav_hint(path)) from err
        data, file_rate = decoded
        data = _cut(data, file_rate, start, end, path)
    if channel is not None:
        if not 1 <= channel <= data.shape[1]:
            raise AudioError(
                path, f"has {data.shape[1]} channel(s); channel {channel} was asked for"
            )
        data = data[:, channel - 1 : channel]
    return _finish(data, file_rate, sample_rate, path)


def _check_span(path, start: float | None, end: float | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise AudioError(path, f"segment {name} {value!r} is not a time >= 0")
    if start is not None and end is not None and end <= start:
        raise AudioError(path, f"segment end {end:g} s is not after its start {start:g} s")


def _read_soundfile(path, start: float | None, end: float | None) -> tuple[np.ndarray, int]:
    if start is None and end is None:
        data, rate = sf.read(os.fspath(path), dtype="float32", always_2d=True)
        return data, rate
    with sf.SoundFile(os.fspath(path)) as f:
        rate = f.samplerate
        first = int(round((start or 0.0) * rate))
        last = f.frames if end is None else min(f.frames, int(round(end * rate)))
        if first >= f.frames:
            raise AudioError(
                path, f"segment starts at {start:g} s, after the end ({f.frames / rate:.3f} s)"
            )
        f.seek(first)
        return f.read(max(0, last - first), dtype="float32", always_2d=True), rate


def _cut(data: np.ndarray, rate: int, start: float | None, end: float | None, path) -> np.ndarray:
    if start is None and end is None:
        return data
    first = int(round((start or 0.0) * rate))
    if first >= data.shape[0]:
        raise AudioError(
            path, f"segment starts at {start:g} s, after the end ({data.shape[0] / rate:.3f} s)"
        )
    last = data.shape[0] if end is None else min(data.shape[0], int(round(end * rate)))
    return data[first:last]


# --------------------------------------------------------------------------------------------
# In-memory arrays
# --------------------------------------------------------------------------------------------


def prepare_waveform(
    audio: np.ndarray | torch.Tensor | Sequence[float],
    sample_rate: float | None,
    *,
    source: str = "<array>",
    target_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Validate an in-memory waveform and bring it to float32 mono at ``target_rate``.

    Layout rule: a 1-D input is ``(samples,)``. A 2-D input is multi-channel and its *smaller*
    dimension is the channel axis, so both ``(channels, samples)`` (torchaudio) and
    ``(samples, channels)`` (soundfile) work; a square 2-D input, or any other rank, is an error.
    A batch of several utterances is not a multi-channel signal: pass utterances one by one.

    Integer dtypes are scaled by their range (int16 / 32768, int32 / 2**31, uint8 as offset
    binary (x - 128) / 128, ...); floating dtypes are taken as they are (expected in [-1, 1]) and
    cast to float32.

    Args:
        audio: numpy array, torch tensor (any device), or a sequence of numbers.
        sample_rate: sample rate of ``audio`` in Hz. Required: an array carries no rate.
        source: name used in error messages (e.g. an utterance id).
        target_rate: rate of the returned waveform.

    Returns:
        float32 array of shape ``(N,)`` with ``N >= MIN_SAMPLES``.

    Raises:
        AudioError: missing/invalid sample rate, unsupported dtype or layout, no samples,
            NaN/inf values, or too short after resampling.
    """
    if sample_rate is None:
        raise AudioError(
            source, "sample_rate is required for in-memory audio (e.g. sample_rate=16000)"
        )
    _check_sample_rate(sample_rate, source, what="sample_rate")
    _check_sample_rate(target_rate, source, what="target_rate")
    data = _to_float32(_to_numpy(audio, source), source)
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim == 2:
        rows, cols = data.shape
        if rows == cols:
            raise AudioError(
                source,
                f"ambiguous 2-D layout {tuple(data.shape)}: cannot tell channels from samples; "
                "pass a 1-D array or a (channels, samples) array with fewer channels than samples",
            )
        if rows < cols:
            data = data.T  # (channels, samples) -> (samples, channels)
    else:
        raise AudioError(
            source,
            f"expected a 1-D (samples,) or 2-D (channels, samples) array, got shape "
            f"{tuple(data.shape)}; for a batch, pass one utterance at a time",
        )
    return _finish(data, sample_rate, target_rate, source)


def _to_numpy(audio: Any, source: str) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        t = audio.detach()
        if t.is_complex():
            raise AudioError(source, f"complex dtype {t.dtype} is not a waveform")
        # numpy has no bfloat16, and half precision is widened here anyway.
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.cpu().numpy()
    try:
        return np.asarray(audio)
    except (TypeError, ValueError) as err:
        raise AudioError(
            source, f"cannot convert {type(audio).__name__} to an array: {err}"
        ) from err


def _to_float32(data: np.ndarray, source: str) -> np.ndarray:
    dt = data.dtype
    if dt == np.bool_ or dt.kind not in "iuf":
        raise AudioError(source, f"unsupported dtype {dt}: expected integer or floating samples")
    if dt.kind == "f":
        return data.astype(np.float32, copy=False)
    bits = dt.itemsize * 8
    # float64 for the division: exact for every int up to 32 bits, then one rounding to float32,
    # which is what libsndfile does for PCM files, so arrays and files give the same numbers.
    x = data.astype(np.float64)
    if dt.kind == "u":
        x -= 2.0 ** (bits - 1)  # unsigned PCM is offset binary: the midpoint is silence
    return (x / 2.0 ** (bits - 1)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Shared validation
# --------------------------------------------------------------------------------------------


def _check_sample_rate(rate: Any, source: object, *, what: str) -> None:
    ok = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool)
    if not ok or not math.isfinite(rate) or rate <= 0:
        raise AudioError(source, f"invalid {what} {rate!r}: expected a positive number of Hz")


def _finish(data: np.ndarray, orig_rate: float, target_rate: int, source: object) -> np.ndarray:
    """(frames, channels) float32 -> validated mono float32 (N,) at target_rate."""
    frames, channels = data.shape
    if frames == 0 or channels == 0:
        raise AudioError(source, "audio is empty (0 samples)")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        first = int(np.argmin(finite.reshape(-1))) // channels
        raise AudioError(
            source,
            f"contains {bad} non-finite value(s) (NaN/inf), the first at sample {first} "
            f"({first / orig_rate:.3f} s)",
        )
    # Mix down before resampling: both are linear, and one channel is cheaper to resample.
    # float64 accumulation so loud multi-channel float audio cannot overflow while summing.
    mono = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if orig_rate != target_rate:
        mono = soxr.resample(mono, float(orig_rate), float(target_rate), quality=RESAMPLE_QUALITY)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    n = mono.shape[0]
    if n < MIN_SAMPLES:
        raise AudioError(
            source,
            f"audio too short: {n} samples at {target_rate} Hz ({n / target_rate:.4f} s); "
            f"the model needs at least {MIN_SAMPLES} samples ({MIN_SAMPLES / target_rate:.3f} s)",
        )
    if not np.isfinite(mono).all():
        # Only reachable with float input near float32's limits, where mixing overflows.
        raise AudioError(source, "values overflow to inf after mixing/resampling")
    return mono


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


def normalize_waveform(x: torch.Tensor) -> torch.Tensor:
    """Per-utterance normalisation as the official emotion2vec / FunASR pipelines apply it.

    ``layer_norm`` over the whole utterance with ``eps=1e-5`` and no affine parameters: zero
    mean and unit (biased) variance. Using the same op, rather than the formula, keeps results
    bit-identical to the reference implementation.

    Args:
        x: floating tensor of shape ``(N,)``, ``N >= 1``; float32 for reference results.

    Returns:
        Tensor of shape ``(N,)``, same dtype and device.
    """
    if x.dim() != 1:
        raise ValueError(
            f"normalize_waveform expects a 1-D (N,) tensor, got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"normalize_waveform expects a floating tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError("normalize_waveform got an empty tensor")
    return F.layer_norm(x, x.shape, eps=NORM_EPS)


def normalize_batch(waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Normalise each row of a padded batch over its first ``lengths[i]`` samples only.

    Row ``i`` of the result is ``torch.equal`` to ``normalize_waveform(waves[i, :lengths[i]])``
    (computed on a fresh tensor) and is zero beyond ``lengths[i]``. Padding therefore never
    changes a row's statistics, which is what makes padded batches match single-file runs.

    Args:
        waves: floating tensor ``(B, N)``, rows right-padded.
        lengths: integer tensor ``(B,)`` with ``1 <= lengths[i] <= N``.

    Returns:
        Tensor ``(B, N)``, same dtype and device as ``waves``.
    """
    if waves.dim() != 2:
        raise ValueError(f"normalize_batch expects waves of shape (B, N), got {tuple(waves.shape)}")
    if not waves.is_floating_point():
        raise TypeError(f"normalize_batch expects a floating tensor, got {waves.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != waves.shape[0]:
        raise ValueError(f"lengths must have shape ({waves.shape[0]},), got {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.is_complex():
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    lens = lengths.tolist()
    n = waves.shape[1]
    if any(length < 1 or length > n for length in lens):
        raise ValueError(f"lengths must lie in [1, {n}], got {lens}")
    out = torch.zeros_like(waves)
    # One layer_norm per row instead of a masked mean/var: a masked reduction sums in a
    # different order and differs in the last bits. The slice is cloned so it is laid out like a
    # freshly allocated 1-D tensor: vectorised GPU kernels pick their code path (and summation
    # order) by pointer alignment, and a row starting mid-buffer may be misaligned.
    for i, length in enumerate(lens):
        row = waves[i, :length].clone()
        out[i, :length] = F.layer_norm(row, row.shape, eps=NORM_EPS)
    return out


# --------------------------------------------------------------------------------------------
# Frame arithmetic
# --------------------------------------------------------------------------------------------


def _layers(conv_layers: Sequence[tuple[int, int, int]] | None) -> Sequence[tuple[int, int, int]]:
    layers = DEFAULT_CONV_LAYERS if conv_layers is None else conv_layers
    for layer in layers:
        if len(layer) != 3 or layer[1] < 1 or layer[2] < 1:
            raise ValueError(f"conv layer must be (dim, kernel>=1, stride>=1), got {layer!r}")
    return layers


def frame_count(num_samples: int, conv_layers: Sequence[tuple[int, int, int]] | None = None) -> int:
    """Number of frames the conv feature extractor outputs for ``num_samples`` input samples.

    Each layer (no padding) maps ``L`` to ``floor((L - kernel) / stride) + 1``, or 0 when
    ``L < kernel``. With the default layers: 1 s -> 49, 10 s -> 499, 30 s -> 1499 frames, and
    :data:`MIN_SAMPLES` is the shortest input giving one frame.

    Args:
        num_samples: input length in samples (>= 0).
        conv_layers: ``(dim, kernel, stride)`` per layer; default :data:`DEFAULT_CONV_LAYERS`.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    return frames_after(int(num_samples), _layers(conv_layers))


def frame_counts(
    lengths: torch.Tensor, conv_layers: Sequence[tuple[int, int, int]] | None = None
) -> torch.Tensor:
    """Batched :func:`frame_count`: ``lengths`` ``(B,)`` integer -> frames ``(B,)`` int64.

    Integer arithmetic throughout, so it stays exact for any length (reference code computes
    the same formula in float32); runs on the tensor's device.
    """
    if lengths.is_floating_point() or lengths.is_complex():
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    out = lengths.to(torch.int64)
    if (out < 0).any():
        raise ValueError("lengths must be >= 0")
    return frames_after(out, _layers(conv_layers))
