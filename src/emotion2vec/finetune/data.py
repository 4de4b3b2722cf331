"""Labeled audio for fine-tuning: the pre-training batch pipeline with labels attached.

Training batches come from the engine's :class:`emotion2vec.training.batches.AudioBatches` (length-bucketed
micro-batches, reshuffled every epoch, numbered globally, decoded ahead in threads, each random
choice derived from (seed, epoch, file), so a resumed run sees the same batches). A transform in
the worker threads attaches each batch's label ids. Fine-tuning pads (``crop_to_shortest`` off
by default): the model is padding-exact, so a padded row trains on what it would give alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..errors import AudioError, DataError
from ..evaluate.manifest import LabeledItem, check_unique, read_manifest
from ..training.batches import AudioBatches, Batch, IndexedFile
from ..training.config import DataConfig

log = logging.getLogger("emotion2vec.finetune")


@dataclass
class LabeledBatch(Batch):
    """A micro-batch of waveforms with their class ids."""

    labels: torch.Tensor | None = None
    """(B,) int64 class ids (index into the label set)."""

    def to(self, device: torch.device | str) -> LabeledBatch:
        """The batch with its tensors on ``device``."""
        moved = super().to(device)
        return replace(moved, labels=None if self.labels is None else self.labels.to(device))


@dataclass
class LabeledSet:
    """Usable items of a manifest with their class ids."""

    files: list[IndexedFile]
    """Audio paths and lengths (16 kHz samples)."""
    label_ids: np.ndarray
    """(N,) class id of each file."""
    skipped: list[tuple[str, str]]
    """(path, reason) of items left out."""

    def class_counts(self, num_classes: int) -> np.ndarray:
        """(C,) items per class."""
        return np.bincount(self.label_ids, minlength=num_classes)


def read_items(
    path: str | Path, *, path_column: str | None = None, label_column: str | None = None
) -> list[LabeledItem]:
    """The labeled items of a manifest (items without a label are dropped)."""
    items = read_manifest(path, path_column=path_column, label_column=label_column)
    check_unique(items, path)
    labeled = [it for it in items if it.label is not None]
    if not labeled:
        raise DataError(f"{path}: no labeled items (is the label column right?)")
    return labeled


def label_set(items: Sequence[LabeledItem]) -> tuple[str, ...]:
    """The sorted distinct labels of ``items``."""
    return tuple(sorted({str(it.label) for it in items}))


def index_items(
    items: Sequence[LabeledItem],
    labels: Sequence[str],
    *,
    min_samples: int = 400,
    workers: int = 4,
) -> LabeledSet:
    """Lengths (from headers) and class ids of ``items``; unreadable, too short and
    out-of-label-set items are logged and left out. Raises DataError when none is left."""
    lookup = {name: i for i, name in enumerate(labels)}

    def probe(item: LabeledItem) -> tuple[int, str | None]:
        if item.label not in lookup:
            return 0, f"label {item.label!r} not in the label set"
        try:
            n = item.source().num_samples(SAMPLE_RATE)
        except AudioError as exc:
            return 0, exc.reason
        except Exception as exc:  # noqa: BLE001 - one bad header must not end the run
            return 0, f"{type(exc).__name__}: {exc}"
        if n < min_samples:
            return 0, f"shorter than {min_samples} samples"
        return n, None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        probed = list(pool.map(probe, items))
    files, ids, skipped = [], [], []
    for item, (n, reason) in zip(items, probed, strict=True):
        if reason is not None:
            skipped.append((item.ident, reason))
        else:
            files.append(IndexedFile(item.path, n, item.channel, item.start, item.end))
            ids.append(lookup[item.label])
    if skipped:
        reasons = Counter(r.split(" not in")[0] if "not in" in r else r for _, r in skipped)
        log.warning("left out %d items: %s", len(skipped), dict(reasons))
    if not files:
        raise DataError("no usable labeled items (check paths, labels and --labels)")
    return LabeledSet(files, np.asarray(ids, dtype=np.int64), skipped)


class LabeledBatches:
    """Training micro-batches with labels: an :class:`AudioBatches` whose batches carry the
    class ids of their files. Implements the engine's ``BatchSource``."""

    def __init__(self, data: LabeledSet, config: DataConfig, *, seed: int, normalize: bool):
        self.data = data
        self.audio = AudioBatches(
            data.files, config, seed=seed, normalize=normalize, transform=self._attach
        )

    def _attach(self, batch: Batch) -> LabeledBatch:
        ids = self.data.label_ids[batch.files] if batch.files else np.zeros(1, dtype=np.int64)
        fields = {f: getattr(batch, f) for f in Batch.__dataclass_fields__}
        return LabeledBatch(**fields, labels=torch.from_numpy(np.asarray(ids, dtype=np.int64)))

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches in one pass over the data."""
        return self.audio.batches_per_epoch

    def epoch_of(self, index: int) -> float:
        """Fractional epoch of micro-batch ``index``."""
        return self.audio.epoch_of(index)

    def iterate(self, indices):
        """Batches for ``indices``, decoded ahead in background threads."""
        return self.audio.iterate(indices)

    def load(self, index: int) -> LabeledBatch:
        """Micro-batch number ``index`` (deterministic)."""
        return self.audio.load(index)


def load_waves(files: Sequence[IndexedFile], workers: int = 4) -> list[np.ndarray | None]:
    """Decode files (16 kHz mono float32, not normalised); None for a file that fails."""

    def decode(f: IndexedFile) -> np.ndarray | None:
        try:
            return f.source().load()
        except Exception as exc:  # noqa: BLE001 - a bad validation file is skipped
            log.warning("skipping validation audio %s: %s", f.ident, exc)
            return None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(decode, files))
