"""Audio files as numbered micro-batches: per-epoch batch plans and background decoding.

* :class:`EpochPlan` groups files of similar length into micro-batches of at most
  ``max_tokens`` padded samples (fairseq's ``batch_by_size`` on lengths capped at
  ``max_samples``), in a new random order every epoch. Micro-batches are numbered globally
  across epochs: micro-batch ``g`` is batch ``g % n`` of epoch ``g // n``. A training run's data
  position is one integer, the next ``g``.
* :class:`AudioBatches` turns a micro-batch number into waveforms: decode, normalise the whole
  file (as fairseq does, before cropping), crop at a random offset (to ``max_samples``, and with
  ``crop_to_shortest`` to the batch's shortest), pad. Every random choice derives from
  (seed, epoch, file), so micro-batch ``g`` is the same whichever process loads it, in which
  thread, and after any resume. Decoding runs in background threads ahead of training.

Pre-training feeds it the run's file index (:mod:`emotion2vec.pretrain.data`), fine-tuning the
files of a labeled manifest (:mod:`emotion2vec.finetune.data`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..audio import SAMPLE_RATE, normalize_waveform
from ..errors import AudioError, DataError
from ..inference import fill_batches
from ..sources import AudioSource
from .config import DataConfig
from .logfile import LOGGER

log = logging.getLogger(LOGGER)


@dataclass(frozen=True)
class IndexedFile:
    """One usable audio file."""

    path: str
    """Absolute path."""
    samples: int
    """Length at 16 kHz, from the header (of the span, for a span)."""
    channel: int | None = None
    """1-based channel taken alone (None: channels averaged)."""
    start: float | None = None
    """Start of the span in seconds (None: the beginning)."""
    end: float | None = None
    """End of the span in seconds (None: the end of the file)."""

    @property
    def ident(self) -> str:
        """The path, with ``@start-end`` / ``#cN`` for a span or a channel (as in outputs)."""
        return self.source().ident

    def source(self) -> AudioSource:
        """This file (or span) for the audio layer."""
        return AudioSource.span(self.path, self.channel, self.start, self.end)


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])


class EpochPlan:
    """Micro-batches of file ids per epoch, reshuffled every epoch, numbered across epochs."""

    def __init__(self, lengths: Sequence[int], config: DataConfig, seed: int):
        self.sizes = np.minimum(np.asarray(lengths, dtype=np.int64), config.max_samples)
        self.config = config
        self.seed = seed
        self._cache: dict[int, list[list[int]]] = {}
        self._lock = threading.Lock()
        self.batches_per_epoch = len(self.epoch(0))

    def _group(self, order: np.ndarray) -> list[list[int]]:
        """The shared length bucketing (:func:`emotion2vec.inference.fill_batches`) over
        ``order``. Unlike inference's :func:`~emotion2vec.inference.plan_batches` (longest
        first, ties in input order, no count limit, batches kept in that order), an epoch walks
        the capped lengths shortest first with random tie-breaks, limits the count to
        ``max_batch_size`` and shuffles the batches (fairseq's ``batch_by_size`` then epoch
        shuffle), so that pre-training sees the official recipe's batches."""
        return fill_batches(
            order.tolist(), self.sizes, self.config.max_tokens, self.config.max_batch_size
        )

    def epoch(self, epoch: int) -> list[list[int]]:
        """The micro-batches of ``epoch`` (file ids), in training order."""
        with self._lock:
            if epoch not in self._cache:
                rng = _rng(self.seed, epoch, 0)
                order = np.lexsort((rng.random(len(self.sizes)), self.sizes))
                batches = self._group(order)
                perm = rng.permutation(len(batches))
                if len(self._cache) > 2:
                    self._cache.pop(min(self._cache))
                self._cache[epoch] = [batches[j] for j in perm]
            return self._cache[epoch]

    def locate(self, index: int) -> tuple[int, list[int]]:
        """Global micro-batch number -> (epoch, file ids)."""
        epoch, pos = divmod(int(index), self.batches_per_epoch)
        return epoch, self.epoch(epoch)[pos]


@dataclass
class Batch:
    """One micro-batch of waveforms."""

    index: int
    """Global micro-batch number (also the key of its random seed)."""
    waves: torch.Tensor
    """(B, N) float32, normalised, zero-padded."""
    lengths: torch.Tensor
    """(B,) valid samples per row."""
    files: list[int]
    """Ids (index positions) of the files in the batch."""
    mask: torch.Tensor | None = None
    """(B * clone_batch, T) precomputed student mask, True = masked (or None)."""
    file_samples: torch.Tensor | None = None
    """(B,) samples of each whole decoded file before cropping (the authors' block masks are
    drawn over the whole file, then cropped with the batch); None: the rows are whole files."""
    weight: float = 1.0
    """0 for a placeholder whose files all failed to decode: it runs (every process must step
    together) but contributes nothing."""

    @property
    def audio_seconds(self) -> float:
        """Valid audio in the batch, in seconds (0 for a placeholder)."""
        return float(self.lengths.sum()) / SAMPLE_RATE * self.weight

    def to(self, device: torch.device | str) -> Batch:
        """The batch with its tensors on ``device``."""
        return replace(
            self,
            waves=self.waves.to(device, non_blocking=True),
            lengths=self.lengths.to(device),
            mask=None if self.mask is None else self.mask.to(device),
            file_samples=self.file_samples,
        )


class AudioBatches:
    """Loads micro-batches by global number; ``iterate`` decodes ahead in background threads.

    ``transform`` (e.g. mask precomputation) runs on each batch in the worker thread.
    """

    def __init__(
        self,
        files: Sequence[IndexedFile],
        config: DataConfig,
        *,
        seed: int,
        normalize: bool = True,
        transform: Callable[[Batch], Batch] | None = None,
    ):
        if not files:
            raise DataError("no audio files to train on")
        self.files = list(files)
        self.config = config
        self.seed = seed
        self.normalize = normalize
        self.transform = transform
        self.plan = EpochPlan([f.samples for f in self.files], config, seed)
        self._failed: dict[int, str] = {}
        self._lock = threading.Lock()

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches in one pass over the data."""
        return self.plan.batches_per_epoch

    def epoch_of(self, index: int) -> float:
        """Fractional epoch of micro-batch ``index``."""
        return index / self.batches_per_epoch

    def _decode(self, file_id: int) -> np.ndarray | None:
        with self._lock:
            if file_id in self._failed:
                return None
        path = self.files[file_id].ident
        try:
            wave = self.files[file_id].source().load()
        except Exception as exc:  # noqa: BLE001 - a bad file is skipped, never fatal
            reason = exc.reason if isinstance(exc, AudioError) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                first = file_id not in self._failed
                self._failed[file_id] = reason
            if first:
                log.warning("skipping audio that failed to decode: %s: %s", path, reason)
            return None
        if self.normalize:
            wave = normalize_waveform(torch.from_numpy(wave)).numpy()
        return wave

    def load(self, index: int) -> Batch:
        """Micro-batch number ``index`` (deterministic)."""
        epoch, ids = self.plan.locate(index)
        decoded = [(i, w) for i in ids if (w := self._decode(i)) is not None]
        if not decoded:
            n = self.config.min_samples
            batch = Batch(index, torch.zeros(1, n), torch.tensor([n]), [], weight=0.0)
        else:
            cap = self.config.max_samples
            lengths = [min(len(w), cap) for _, w in decoded]
            if self.config.crop_to_shortest:
                lengths = [min(lengths)] * len(lengths)
            waves = torch.zeros(len(decoded), max(lengths))
            for row, ((file_id, wave), n) in enumerate(zip(decoded, lengths, strict=True)):
                start = int(_rng(self.seed, epoch, file_id, 1).integers(0, len(wave) - n + 1))
                waves[row, :n] = torch.from_numpy(wave[start : start + n])
            batch = Batch(
                index,
                waves,
                torch.tensor(lengths),
                [i for i, _ in decoded],
                file_samples=torch.tensor([len(w) for _, w in decoded]),
            )
        return self.transform(batch) if self.transform is not None else batch

    def iterate(self, indices: Iterable[int]) -> Iterator[Batch]:
        """Batches for ``indices`` (possibly endless), in order, up to ``prefetch`` decoded ahead."""
        source = iter(indices)
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="e2v-data") as pool:
            pending: deque = deque()

            def submit() -> None:
                index = next(source, None)
                if index is not None:
                    pending.append(pool.submit(self.load, index))

            for _ in range(self.config.prefetch):
                submit()
            try:
                while pending:
                    future = pending.popleft()
                    submit()
                    yield future.result()
            finally:
                for future in pending:
                    future.cancel()

    @property
    def failed(self) -> dict[int, str]:
        """Files that failed to decode so far (id -> reason)."""
        with self._lock:
            return dict(self._failed)
