"""Exception types of the library.

Every error names the file (or object) it is about and, where there is one, the fix.
"""

from __future__ import annotations


class Emotion2vecError(Exception):
    """Base class of all errors raised by emotion2vec."""


class AudioError(Emotion2vecError):
    """An audio input could not be read or is unusable (empty, too short, non-finite...)."""

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class CheckpointError(Emotion2vecError):
    """A checkpoint is missing, unsafe, or does not match the model it should load into."""


class ConfigError(Emotion2vecError):
    """A configuration value is invalid."""


class DataError(Emotion2vecError):
    """A manifest or dataset is malformed."""


class OutputError(Emotion2vecError):
    """An output location cannot be written (missing permission, full disk, a file where a
    folder is needed, an input named as the output). Work finished before it is kept."""


class MismatchError(Emotion2vecError):
    """A result failed its check against the reference (an exported ONNX graph whose outputs
    differ from PyTorch's beyond the tolerance)."""


class OutputConflictError(Emotion2vecError):
    """An existing output was made by something else (another model, granularity, window or
    label set), or another process is writing it: resuming would mix results."""
