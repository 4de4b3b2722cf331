"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

Temporary files are named ``.<name>.<host>-<pid>.<random>.tmp`` next to their target (``host``:
a short hash of the machine's name), so that a later run can tell the leftovers of a killed
process (:func:`remove_stale_temporaries`) from the files of one still running, on this machine
or, on a shared file system, on another one (whose files it never touches). Finished files get the permissions of an ordinary new file (``0666`` less
the umask), not ``mkstemp``'s private ``0600``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

_TEMP = re.compile(r"^\..+\.([0-9a-f]{8})-(\d+)\.[A-Za-z0-9_]+\.tmp$")
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_prefix(name: str) -> str:
    """The prefix of this process's temporary files for a target called ``name``."""
    return f".{name}.{_HOST}-{os.getpid()}."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], None], *, fsync: bool = False
) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    The temporary file is removed if ``write`` fails or the process is interrupted. ``fsync``
    also flushes the data to disk before the rename (for files that must survive a power cut).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str], *, recursive: bool = False) -> int:
    """Delete the temporary files that killed processes of this machine left in ``folder``
    (those whose process no longer runs); returns how many. Files of live processes, and of
    other machines, are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    paths = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    for tmp in paths:
        m = _TEMP.match(tmp.name)
        if m is None or m.group(1) != _HOST or _alive(int(m.group(2))):
            continue
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Atomically write a UTF-8 text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Atomically write one ``.npy`` file."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, write)
