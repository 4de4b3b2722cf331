"""Feature cache: extract features once per (model, layers, granularity), reuse them across
probes, and recompute only what changed.

Layout on disk::

    <cache_dir>/<extractor key>/meta.json            what the features are (human-readable)
    <cache_dir>/<extractor key>/<ab>/<path hash>-<audio hash>.npy

* The **extractor key** is a hash of everything that determines the numbers: for a model,
  :func:`model_fingerprint` (SHA-256 over every state-dict tensor's name, dtype, shape and
  bytes, plus the model config), the hidden-state indices, the granularity, the storage dtype
  and :data:`CACHE_FORMAT`; for the classic baselines, their parameters and library version.
  Changing the weights gives a new key, so every entry of the old model stays valid for it and
  every entry of the new model is computed afresh.
* The **entry name** is a hash of the audio's absolute path (with ``@start-end`` / ``#cN``
  appended when the item is a time span or one channel of its file, see
  :attr:`emotion2vec.sources.AudioSource.ident`) followed by a hash of the file's size and
  ``st_mtime_ns``. Touching or rewriting a file changes its name, so exactly that entry is
  recomputed (and the stale one deleted); nothing else is looked at. An entry is one ``.npy``
  file written atomically (temporary file + rename), so an interrupted extraction resumes
  where it stopped and concurrent readers never see half a file. ``<ab>`` (the first two hex
  digits of the path hash) shards the folder: 256 sub-folders keep listings short at 10k+
  utterances.

One model pass fills more than the entry asked for: a frame-level extraction also stores the
utterance means of its layers and of all layers, an utterance-level one those of all layers
(:meth:`ModelFeatureExtractor.siblings`), so the paper, logreg and SUPERB heads of one model
cost a single pass over the audio.

Array shapes (``L`` = number of requested layers):

* model, granularity ``"frame"``: ``(L, T, D)``, ``T`` frames at 50 Hz;
* model, granularity ``"utterance"``: ``(L, D)``, the model's own mean over valid frames;
* ``logmel``: ``(160,)`` = mean and std over frames of 80 log-mel bands;
* ``egemaps``: ``(88,)`` openSMILE eGeMAPSv02 functionals.

Precision: frame features are stored as **float16** by default (half the disk and memory of
float32; relative rounding error at most 2**-11 ~ 4.9e-4, far below probe-to-probe noise).
An utterance whose values do not fit float16 (|x| > 65504) is stored as float32. Pass
``dtype="float32"`` for bit-exact storage. Utterance-level and baseline features are always
float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from emotion2vec.atomic import save_npy, write_text
from emotion2vec.audio import SAMPLE_RATE
from emotion2vec.errors import AudioError, DataError, Emotion2vecError
from emotion2vec.jobs import run_model
from emotion2vec.model import Emotion2vecModel
from emotion2vec.sources import AudioSource

__all__ = [
    "CACHE_FORMAT",
    "CacheResult",
    "EgemapsExtractor",
    "FeatureCache",
    "FeatureExtractor",
    "LogMelExtractor",
    "ModelFeatureExtractor",
    "audio_fingerprint",
    "default_cache_dir",
    "log_mel_spectrogram",
    "mel_filterbank",
    "model_fingerprint",
]

#: Bumped whenever the stored arrays change meaning; part of every extractor key.
CACHE_FORMAT = "emotion2vec.features/1"

_FLOAT16_MAX = float(np.finfo(np.float16).max)


def default_cache_dir() -> Path:
    """``$EMOTION2VEC_CACHE/features`` or ``~/.cache/emotion2vec/features``."""
    root = os.environ.get("EMOTION2VEC_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "emotion2vec"
    return base / "features"


# --------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 (hex) over the model's state dict and config.

    Every tensor contributes its name, dtype, shape and raw bytes, in sorted name order; the
    config (``model.config.to_dict()`` when there is one) is hashed as sorted-key JSON. Cost:
    one pass over the weights (about a second for a 95M-parameter model), so compute it once
    per model and pass it around (:class:`ModelFeatureExtractor` does).
    """
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    state = model.state_dict()
    for name in sorted(state):
        value = state[name]
        if not isinstance(value, torch.Tensor):  # e.g. packed params of quantised layers
            digest.update(f"\0{name}\0{value!r}".encode())
            continue
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        if tensor.numel():
            # A uint8 view works for every dtype (numpy has no bfloat16) and copies nothing.
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def audio_fingerprint(path: str | os.PathLike[str]) -> str:
    """``"<size>-<mtime_ns>"`` of a file; raises AudioError if it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def _as_source(item: str | os.PathLike[str] | AudioSource) -> AudioSource:
    """A cache item as an :class:`AudioSource` with an absolute path (not resolved: a link's
    own path names its entry, as it always has)."""
    if isinstance(item, AudioSource):
        return AudioSource(
            Path(os.path.abspath(item.path)), item.key, item.channel, item.start, item.end
        )
    absolute = Path(os.path.abspath(os.fspath(item)))
    return AudioSource(absolute, absolute.name)


def _hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


# --------------------------------------------------------------------------------------
# Extractors
# --------------------------------------------------------------------------------------

OnResult = Callable[..., None]
OnFailure = Callable[[int, str], None]


class FeatureExtractor(ABC):
    """What to compute for an audio file; :class:`FeatureCache` decides when to compute it."""

    kind: str = "features"
    granularity: str = "utterance"

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """JSON-friendly description of everything that determines the output."""

    def key(self) -> str:
        """Folder name of this extractor's entries: ``<kind>-<24 hex digits>``."""
        text = json.dumps({"format": CACHE_FORMAT, **self.identity()}, sort_keys=True)
        return f"{self.kind}-{_hash(text, 24)}"

    @abstractmethod
    def compute(
        self,
        paths: Sequence[AudioSource],
        todo: Sequence[int],
        on_result: OnResult,
        on_failure: OnFailure,
        progress: bool | None,
    ) -> None:
        """Compute ``paths[i]`` (a file, or a channel / span of one) for i in ``todo``; call ``on_result(i, array)`` or
        ``on_failure(i, reason)`` for each. ``on_result`` also takes an optional third
        argument: ``[(sibling extractor, array), ...]`` computed by the same pass (see
        :meth:`ModelFeatureExtractor.siblings`), which the cache stores too."""


class ModelFeatureExtractor(FeatureExtractor):
    """Hidden states of an emotion2vec model, through the batched padding-exact job engine
    (:func:`emotion2vec.jobs.run_model`: background decoding, length-bucketed batches).

    Args:
        model: the (frozen) model; its fingerprint is computed once, here.
        layers: hidden-state indices (0 = input of the first block, i = output of block i),
            ``"all"`` for every one (SUPERB), or None for the last block.
        granularity: ``"frame"`` -> ``(L, T, D)`` per file, ``"utterance"`` -> ``(L, D)``.
        dtype: storage dtype of frame features, ``"float16"`` (default) or ``"float32"``.
        batch_seconds, workers: passed to the job engine.
        fingerprint: a precomputed :func:`model_fingerprint` (skips hashing the weights).
        siblings: also fill, from the same forward pass, the entries of
            :meth:`siblings` (utterance means of these layers and of all layers), so that
            the paper, logreg and SUPERB heads cost one extraction, not three.
    """

    kind = "emotion2vec"

    def __init__(
        self,
        model: Emotion2vecModel,
        *,
        layers: Sequence[int] | str | None = None,
        granularity: str = "frame",
        dtype: str = "float16",
        batch_seconds: float = 60.0,
        workers: int = 2,
        fingerprint: str | None = None,
        siblings: bool = True,
    ) -> None:
        if granularity not in ("frame", "utterance"):
            raise Emotion2vecError(
                f"granularity must be 'frame' or 'utterance', got {granularity!r}"
            )
        if dtype not in ("float16", "float32"):
            raise Emotion2vecError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
        total = model.config.encoder.num_layers
        if layers is None:
            chosen = [total]
        elif layers == "all":
            chosen = list(range(total + 1))
        elif isinstance(layers, str):
            raise Emotion2vecError(f"layers must be indices, 'all' or None, got {layers!r}")
        else:
            chosen = []
            for layer in layers:
                index = int(layer) if int(layer) >= 0 else total + 1 + int(layer)
                if not 0 <= index <= total:
                    raise Emotion2vecError(
                        f"layer {layer} out of range: this model has layers 0..{total}"
                    )
                chosen.append(index)
            if not chosen:
                raise Emotion2vecError("layers is empty")
        self.model = model
        self.layers: list[int] = chosen
        self.granularity = granularity
        self.dtype = dtype if granularity == "frame" else "float32"
        self.batch_seconds = batch_seconds
        self.workers = workers
        self.fingerprint = fingerprint or model_fingerprint(model)
        self.fill_siblings = siblings

    def identity(self) -> dict[str, Any]:
        """Model fingerprint, layers, granularity, dtype."""
        return {
            "kind": self.kind,
            "model": self.fingerprint,
            "layers": self.layers,
            "granularity": self.granularity,
            "dtype": self.dtype,
        }

    def _variant(self, layers: Sequence[int] | str) -> ModelFeatureExtractor:
        return ModelFeatureExtractor(
            self.model,
            layers=layers,
            granularity="utterance",
            batch_seconds=self.batch_seconds,
            workers=self.workers,
            fingerprint=self.fingerprint,
            siblings=False,
        )

    def siblings(self) -> list[ModelFeatureExtractor]:
        """Utterance-level extractors whose entries one pass of this one also gives: the
        same layers (when this one is frame-level) and all layers (unless this one is)."""
        if not self.fill_siblings:
            return []
        total = self.model.config.encoder.num_layers
        out = []
        if self.granularity == "frame":
            out.append(self._variant(self.layers))
        if self.layers != list(range(total + 1)):
            out.append(self._variant("all"))
        return out

    def compute(self, paths, todo, on_result, on_failure, progress) -> None:
        """Run the model over ``paths[i]`` (:class:`AudioSource` items), i in ``todo``."""
        sources = [
            AudioSource(s.path, f"{i}.wav", channel=s.channel, start=s.start, end=s.end)
            for i, s in enumerate(paths)
        ]
        position = {id(s): i for i, s in enumerate(sources)}
        total = self.model.config.encoder.num_layers
        siblings = self.siblings()
        frame = self.granularity == "frame"
        if siblings:
            # All hidden states come out of the same pass; the frames of the unused layers
            # are dropped file by file.
            layers: list[int] | None = list(range(total + 1))
            select = self.layers
        else:
            # The last block alone needs no hidden states: the encoder's frames are it.
            layers = None if self.layers == [total] else self.layers
            select = list(range(len(self.layers)))

        def done(result) -> None:
            i = position[id(result.source)]
            if frame:
                array = result.frame_features()[select]  # (L, T, D)
                if self.dtype == "float16" and float(np.abs(array).max()) <= _FLOAT16_MAX:
                    array = array.astype(np.float16)
            else:
                array = result.embedding[select]  # (L, D)
            extra = [
                (sib, np.ascontiguousarray(result.embedding[sib.layers], dtype=np.float32))
                for sib in siblings
            ]
            on_result(i, np.ascontiguousarray(array), extra)

        run_model(
            self.model,
            sources,
            todo=list(todo),
            on_result=done,
            on_failure=lambda source, reason: on_failure(position[id(source)], reason),
            layers=layers,
            keep_frames=frame,
            batch_seconds=self.batch_seconds,
            workers=self.workers,
            progress=progress,
        )


def _per_file(paths, todo, fn, on_result, on_failure, progress, desc: str) -> None:
    for i in tqdm(
        todo, desc=desc, unit="file", disable=(not progress) if progress is not None else None
    ):
        try:
            on_result(i, fn(paths[i].load()))
        except AudioError as exc:
            on_failure(i, exc.reason)


def mel_filterbank(
    n_mels: int = 80,
    n_fft: int = 512,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = 20.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, equally spaced on the HTK mel scale
    ``2595 log10(1 + f / 700)``, peak 1, evaluated at the FFT bin frequencies."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2}, got {f_min}, {f_max}")

    def to_mel(f):
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    lo, hi = (
        to_mel(torch.tensor(f_min, dtype=torch.float64)),
        to_mel(torch.tensor(f_max, dtype=torch.float64)),
    )
    edges = to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64))
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)[:, None]
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - left) / (center - left)
    falling = (right - bins) / (right - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


def log_mel_spectrogram(
    wave: np.ndarray | torch.Tensor,
    *,
    n_mels: int = 80,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = 20.0,
    floor: float = 1e-10,
) -> torch.Tensor:
    """(N,) float waveform -> (T, n_mels) natural-log mel power, 25 ms Hann windows every
    10 ms (no centring: frame t covers samples [t * hop, t * hop + win)), T >= 1."""
    x = torch.as_tensor(np.asarray(wave), dtype=torch.float32).reshape(-1)
    if x.numel() < win_length:
        x = torch.nn.functional.pad(x, (0, win_length - x.numel()))
    frames = x.unfold(0, win_length, hop_length) * torch.hann_window(win_length)  # (T, win)
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)  # (T, n_fft // 2 + 1)
    mel = power @ mel_filterbank(n_mels, n_fft, sample_rate, f_min)
    return torch.log(mel.clamp_min(floor))


class LogMelExtractor(FeatureExtractor):
    """Classic baseline: mean and standard deviation over frames of 80 log-mel bands,
    ``(2 * n_mels,)`` per file (means first). See :func:`log_mel_spectrogram`."""

    kind = "logmel"
    granularity = "utterance"

    def __init__(self, n_mels: int = 80) -> None:
        self.n_mels = n_mels

    def identity(self) -> dict[str, Any]:
        """Band count and the fixed STFT settings."""
        return {
            "kind": self.kind,
            "n_mels": self.n_mels,
            "n_fft": 512,
            "win": 400,
            "hop": 160,
            "f_min": 20.0,
            "scale": "htk",
        }

    def features(self, wave: np.ndarray) -> np.ndarray:
        """(N,) 16 kHz waveform -> (2 * n_mels,) float32."""
        logmel = log_mel_spectrogram(wave, n_mels=self.n_mels).double()
        std = logmel.std(dim=0, unbiased=False)
        return torch.cat([logmel.mean(dim=0), std]).float().numpy()

    def compute(self, paths, todo, on_result, on_failure, progress) -> None:
        """Decode each file and compute its statistics."""
        _per_file(paths, todo, self.features, on_result, on_failure, progress, "log-mel")


class EgemapsExtractor(FeatureExtractor):
    """Classic baseline: the 88 eGeMAPSv02 functionals of openSMILE (``opensmile`` package,
    ``pip install opensmile``), computed on our own 16 kHz mono decoding of each file."""

    kind = "egemaps"
    granularity = "utterance"

    def __init__(self) -> None:
        try:
            import opensmile
        except ImportError:
            raise Emotion2vecError(
                "eGeMAPS features need the opensmile package: pip install opensmile"
            ) from None
        self._opensmile = opensmile
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.Functionals,
        )

    def identity(self) -> dict[str, Any]:
        """Feature set and opensmile version."""
        return {
            "kind": self.kind,
            "feature_set": "eGeMAPSv02",
            "level": "functionals",
            "opensmile": getattr(self._opensmile, "__version__", "unknown"),
        }

    @property
    def feature_names(self) -> list[str]:
        """The 88 functional names, in array order."""
        return list(self._smile.feature_names)

    def features(self, wave: np.ndarray) -> np.ndarray:
        """(N,) 16 kHz waveform -> (88,) float32."""
        frame = self._smile.process_signal(wave, SAMPLE_RATE)
        return np.asarray(frame.values, dtype=np.float32).reshape(-1)

    def compute(self, paths, todo, on_result, on_failure, progress) -> None:
        """Decode each file and run openSMILE on it."""
        _per_file(paths, todo, self.features, on_result, on_failure, progress, "eGeMAPS")


# --------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------


@dataclass
class CacheResult:
    """Features of a list of files, and what had to be computed to get them."""

    arrays: list[np.ndarray]
    """One array per input path, in input order."""
    key: str
    """The extractor key (folder under the cache root)."""
    computed: list[int] = field(default_factory=list)
    """Indices extracted by this call."""
    reused: list[int] = field(default_factory=list)
    """Indices read from the cache."""
    seconds: float = 0.0
    """Wall time of the call."""


class FeatureCache:
    """Feature store keyed by extractor and audio fingerprint (see the module docstring).

    ``root=None`` keeps nothing on disk: every call computes everything.
    """

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root = Path(root) if root is not None else None

    def entry_path(self, extractor_key: str, item: str | os.PathLike[str] | AudioSource) -> Path:
        """Where the entry of ``item`` (a file, or a channel / span of one) lives now (depends
        on the file's size and mtime)."""
        if self.root is None:
            raise Emotion2vecError("this FeatureCache keeps nothing on disk (root=None)")
        source = _as_source(item)
        name = _hash(source.ident, 32)
        return (
            self.root
            / extractor_key
            / name[:2]
            / f"{name}-{_hash(audio_fingerprint(source.path), 16)}.npy"
        )

    def _write_meta(self, extractor: FeatureExtractor, key: str) -> None:
        meta = self.root / key / "meta.json"
        if meta.exists():
            return
        doc = {"format": CACHE_FORMAT, "key": key, **extractor.identity()}
        doc["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_text(meta, json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def get(
        self,
        extractor: FeatureExtractor,
        paths: Sequence[str | os.PathLike[str] | AudioSource],
        *,
        progress: bool | None = None,
    ) -> CacheResult:
        """Features of every path (or :class:`AudioSource`: a channel / time span of a
        file), computing only missing or stale entries.

        Raises:
            DataError: some files could not be decoded (all of them are listed; the others
                are cached, so a re-run after fixing them computes only those).
        """
        start = time.perf_counter()
        sources = [_as_source(p) for p in paths]
        names = [s.ident for s in sources]
        key = extractor.key()
        arrays: list[np.ndarray | None] = [None] * len(names)
        failures: dict[int, str] = {}
        entries: list[Path | None] = [None] * len(names)
        todo: list[int] = []
        reused: list[int] = []
        for i in range(len(names)):
            if self.root is None:
                todo.append(i)
                continue
            try:
                entry = self.entry_path(key, sources[i])
            except AudioError as exc:
                failures[i] = exc.reason
                continue
            entries[i] = entry
            if entry.is_file():
                try:
                    arrays[i] = np.load(entry, allow_pickle=False)
                    reused.append(i)
                    continue
                except (OSError, ValueError):
                    pass  # unreadable (disk trouble): recompute and overwrite
            todo.append(i)
        if self.root is not None and todo:
            self._write_meta(extractor, key)

        sibling_keys: dict[int, str] = {}

        def store(entry: Path, array: np.ndarray) -> None:
            save_npy(entry, array)
            stem = entry.name.split("-")[0]
            for stale in entry.parent.glob(f"{stem}-*.npy"):
                if stale != entry:
                    stale.unlink(missing_ok=True)

        def on_result(i: int, array: np.ndarray, byproducts=None) -> None:
            arrays[i] = array
            entry = entries[i]
            if entry is None:
                return
            store(entry, array)
            for sibling, extra in byproducts or ():
                sib_key = sibling_keys.get(id(sibling))
                if sib_key is None:
                    sib_key = sibling_keys[id(sibling)] = sibling.key()
                    self._write_meta(sibling, sib_key)
                sib_entry = self.entry_path(sib_key, sources[i])
                if not sib_entry.is_file():
                    store(sib_entry, extra)

        def on_failure(i: int, reason: str) -> None:
            failures[i] = reason

        if todo:
            extractor.compute(sources, todo, on_result, on_failure, progress)
        missing = [i for i, a in enumerate(arrays) if a is None and i not in failures]
        for i in missing:
            failures[i] = "no features were produced"
        if failures:
            shown = "\n".join(f"  {names[i]}: {failures[i]}" for i in sorted(failures)[:20])
            more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
            raise DataError(
                f"{len(failures)} of {len(names)} audio file(s) could not be featurised "
                f"({extractor.kind}); fix or remove them from the manifest:\n{shown}{more}"
            )
        return CacheResult(
            arrays=[a for a in arrays if a is not None],
            key=key,
            computed=sorted(todo),
            reused=reused,
            seconds=time.perf_counter() - start,
        )
