"""One writer per output: an advisory lock next to the output, released when the process ends.

``fcntl.flock`` on ``<output>.lock``: the kernel drops the lock when its holder exits, however
it exits, so a killed run never blocks the next one. The lock file holds the holder's pid, host
and command line, which the refusal names.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import OutputConflictError, OutputError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, documented
    fcntl = None  # type: ignore[assignment]


class OutputLock:
    """Exclusive lock on ``lock_path`` for the lifetime of the context (or :meth:`release`).

    Raises :class:`OutputConflictError` naming the holder when another process holds it.
    """

    def __init__(self, lock_path: str | os.PathLike[str], what: str):
        self.path = Path(lock_path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        if fcntl is None:
            return self
        for _ in range(10):
            self._try_acquire()
            # the previous holder may have removed the file between our open and our lock:
            # only a lock on the file that is at the path counts
            try:
                same = os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                return self
            os.close(self._fd)
            self._fd = None
        raise OutputConflictError(f"{self.what}: could not take the lock {self.path}")

    def _try_acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the lock file ({exc.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
                holder = (
                    f" (process {info.get('pid')} on {info.get('host')}, started "
                    f"{info.get('started')}: {info.get('command')})"
                )
            except (OSError, ValueError):
                pass
            os.close(fd)
            raise OutputConflictError(
                f"{self.what} is being written by another run{holder}; wait for it to finish or "
                "choose another output"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)[:500],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                # removed while still held: a process that opened it meanwhile finds, after
                # locking, that it is no longer the file at the path, and retries
                self.path.unlink(missing_ok=True)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
