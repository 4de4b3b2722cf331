"""A clean stop on SIGINT/SIGTERM: finish the current update, checkpoint, then return."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from .logfile import LOGGER

log = logging.getLogger(LOGGER)


class StopRequest:
    """SIGINT/SIGTERM ask for a clean stop at the next update boundary (a second SIGINT
    interrupts at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        """The signal handler: the first signal asks for a stop, a second SIGINT aborts."""
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "stop requested: finishing this update and writing a checkpoint "
            "(resume with --resume; press Ctrl-C again to abort now)"
        )

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
