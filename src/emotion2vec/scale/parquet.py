"""Parquet output of the Ray engine: a folder of ``part-NNNNN.parquet`` files.

The driver appends finished rows and writes them as a new part every so often; each part is
written to a temporary file and renamed into place, so a folder never holds a half-written part
and a re-run reads back the ``path`` column of the parts to skip what is done. Columns:
``key``, ``path`` (the input, as in score files), ``duration`` and then, for ``predict``,
``label``, ``score``, ``scores`` (a struct of one probability per label) and, with windows,
``windows`` (JSON); for ``extract``, ``frames`` and ``embedding`` (float32 lists, nested as the
``.npy`` array would be: (D,), (T, D), (L, D) or (L, T, D)).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError

_PART = re.compile(r"^part-(\d+)\.parquet$")


def parts(folder: Path) -> list[Path]:
    """The part files of ``folder`` in write order."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PART.match(p.name))]
    return [p for _, p in sorted(found)]


def done_paths(folder: Path) -> set[str]:
    """The ``path`` of every row already written in ``folder``."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in parts(folder):
        try:
            done.update(pq.read_table(part, columns=["path"]).column("path").to_pylist())
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
            raise DataError(
                f"{part}: cannot read this part to resume ({exc}); pass --overwrite to start over"
            ) from None
    return done


def read_rows(folder: Path) -> list[dict]:
    """Every row of every part (for tests and small outputs)."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for part in parts(folder):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


class PartWriter:
    """Collects rows and writes them as the next part of ``folder`` on :meth:`flush`."""

    def __init__(self, folder: Path, embedding_ndim: int | None = None):
        self.folder = folder
        self.embedding_ndim = embedding_ndim
        self.rows: list[dict] = []
        existing = parts(folder)
        self._next = int(_PART.match(existing[-1].name).group(1)) + 1 if existing else 0

    def add(self, row: dict) -> None:
        """Queue one row (``embedding``, when present, a numpy array)."""
        self.rows.append(row)

    def flush(self) -> Path | None:
        """Write the queued rows as one new part; None when there were none."""
        if not self.rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {k: [r[k] for r in self.rows] for k in self.rows[0]}
        if "embedding" in columns:
            kind = pa.float32()
            for _ in range(self.embedding_ndim or 1):
                kind = pa.list_(kind)
            columns["embedding"] = pa.array(
                [np.asarray(a, dtype=np.float32).tolist() for a in columns["embedding"]], kind
            )
        table = pa.table(columns)
        path = self.folder / f"part-{self._next:05d}.parquet"
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        self._next += 1
        self.rows = []
        return path
