"""The run's text log (``RUN_DIR/train.log``) and the engine's logger.

The engine's own modules log to :data:`LOGGER` ("emotion2vec.training"); a run attaches its log
file (and the command line its console handler) to that logger and to its objective's own
("emotion2vec.pretrain", "emotion2vec.finetune"), so one file holds both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

#: Name of the logger of the engine's modules (trainer, batches).
LOGGER = "emotion2vec.training"


def _loggers(loggers: logging.Logger | Sequence[logging.Logger]) -> list[logging.Logger]:
    return [loggers] if isinstance(loggers, logging.Logger) else list(loggers)


def add_file_log(
    loggers: logging.Logger | Sequence[logging.Logger], path: Path, enabled: bool
) -> logging.Handler | None:
    """Also write the INFO lines of ``loggers`` (one or several) to ``path`` (the run's text
    log) when ``enabled`` (rank 0); undo with :func:`remove_file_log`."""
    loggers = _loggers(loggers)
    for logger in loggers:
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    if not enabled:
        return None
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for logger in loggers:
        logger.addHandler(handler)
    return handler


def remove_file_log(
    loggers: logging.Logger | Sequence[logging.Logger], handler: logging.Handler | None
) -> None:
    """Detach (from each of ``loggers``) and close a handler of :func:`add_file_log`."""
    if handler is not None:
        for logger in _loggers(loggers):
            logger.removeHandler(handler)
        handler.close()
