"""Atomic file writes: a reader (or a resumed run) never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], None], *, fsync: bool = False
) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    The temporary file is removed if ``write`` fails or the process is interrupted. ``fsync``
    also flushes the data to disk before the rename (for files that must survive a power cut).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Atomically write a UTF-8 text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Atomically write one ``.npy`` file."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, write)
