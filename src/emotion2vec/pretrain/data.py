"""Unlabeled audio for pre-training: the run's file index.

* :func:`build_index` reads every file's length from its header (no decoding); unreadable files
  are logged and left out, never fatal. A run stores its index (``RUN_DIR/data_index.tsv``) so a
  resumed run sees exactly the same files.
* The engine's :class:`~emotion2vec.training.batches.AudioBatches` turns the indexed files into
  numbered micro-batches (per-epoch plans, background decoding).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write
from ..audio import SAMPLE_RATE
from ..errors import AudioError, DataError
from ..sources import AudioSource, collect_sources
from ..training.batches import IndexedFile

log = logging.getLogger("emotion2vec.pretrain")


@dataclass
class DataIndex:
    """The files of a run and what was left out."""

    files: list[IndexedFile]
    """Usable files, in input order."""
    skipped: list[tuple[str, str]]
    """(path, reason) of unreadable files."""
    too_short: int = 0
    """Files shorter than ``min_samples``."""

    @property
    def hours(self) -> float:
        """Total audio of the usable files."""
        return sum(f.samples for f in self.files) / SAMPLE_RATE / 3600


def build_index(inputs: Sequence[str | Path], *, min_samples: int, workers: int = 4) -> DataIndex:
    """Lengths of the audio files under ``inputs`` (directories, files, manifests).

    Unreadable files (missing, empty, not audio) are logged and skipped; files shorter than
    ``min_samples`` are counted and skipped. Raises DataError when no file is usable.
    """
    if not inputs:
        raise DataError("no pre-training data: pass --data DIR|MANIFEST (one or more)")
    sources = collect_sources([str(p) for p in inputs])

    def probe(source: AudioSource) -> tuple[int, str | None]:
        try:
            return source.num_samples(SAMPLE_RATE), None
        except AudioError as exc:
            return 0, exc.reason
        except Exception as exc:  # noqa: BLE001 - one bad header must not end the run
            return 0, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max(1, workers)) as pool:
        probed = list(pool.map(probe, sources))
    files, skipped, short = [], [], 0
    for source, (samples, reason) in zip(sources, probed, strict=True):
        if reason is not None:
            log.warning("skipping unreadable audio %s: %s", source.ident, reason)
            skipped.append((source.ident, reason))
        elif samples < min_samples:
            short += 1
        else:
            files.append(
                IndexedFile(
                    str(source.path), int(samples), source.channel, source.start, source.end
                )
            )
    if not files:
        raise DataError(
            f"no usable audio in {', '.join(map(str, inputs))}: {len(skipped)} unreadable, "
            f"{short} shorter than min_samples={min_samples} ({min_samples / SAMPLE_RATE:.2f} s); "
            "lower --min-samples or check the paths"
        )
    return DataIndex(files, skipped, short)


#: Columns of a data index; the span columns only when some file is a channel or a span.
INDEX_COLUMNS = ("path", "samples")
SPAN_COLUMNS = ("channel", "start", "end")


def save_index(path: Path, index: DataIndex) -> None:
    """Write the usable files as ``path<TAB>samples[<TAB>channel<TAB>start<TAB>end]`` lines
    with a header (atomically)."""
    spans = any(
        f.channel is not None or f.start is not None or f.end is not None for f in index.files
    )

    def cell(value) -> str:
        return "" if value is None else repr(value) if isinstance(value, float) else str(value)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            w.writerow(INDEX_COLUMNS + (SPAN_COLUMNS if spans else ()))
            for item in index.files:
                row = [item.path, item.samples]
                if spans:
                    row += [cell(item.channel), cell(item.start), cell(item.end)]
                w.writerow(row)

    atomic_write(Path(path), write)


def load_index(path: Path) -> DataIndex:
    """Read a file written by :func:`save_index` (with or without the span columns)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the run's data index ({exc})") from None
    header = tuple(rows[0]) if rows else ()
    if header not in (INDEX_COLUMNS, INDEX_COLUMNS + SPAN_COLUMNS):
        raise DataError(f"{path}: not a data index (expected a 'path<TAB>samples' header)")
    try:
        files = []
        for row in rows[1:]:
            if len(row) != len(header):
                raise ValueError(f"{len(row)} fields, the header has {len(header)}")
            channel, start, end = row[2:] if len(row) == 5 else ["", "", ""]
            files.append(
                IndexedFile(
                    row[0],
                    int(row[1]),
                    int(channel) if channel else None,
                    float(start) if start else None,
                    float(end) if end else None,
                )
            )
    except ValueError as exc:
        raise DataError(f"{path}: malformed data index ({exc})") from None
    return DataIndex(files, [])
