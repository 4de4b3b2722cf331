"""The limits and knobs of ``emotion2vec serve``, one dataclass with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

#: Environment variable read for the API key when ``--api-key`` is not given.
API_KEY_ENV = "EMOTION2VEC_API_KEY"


@dataclass
class ServeSettings:
    """Limits of the service. Sizes in bytes, durations in seconds unless the name says ms."""

    batch_seconds: float = 60.0
    """Padded audio seconds per model batch (longest input x batch size)."""
    max_wait_ms: float = 10.0
    """How long the first request of a batch waits for others to join it."""
    max_queue: int = 64
    """Requests (or windows) waiting for the model; beyond it the service answers 503."""
    max_upload_bytes: int = 50 * 1024 * 1024
    """Largest request body (an upload, raw audio bytes); larger ones get 413."""
    max_audio_seconds: float = 60.0
    """Longest decoded audio accepted by /predict and /embed (413 beyond)."""
    request_timeout: float = 120.0
    """Seconds a request may wait for its result (queue + model) before a 504."""
    stream_max_window: float = 30.0
    """Longest window a /stream client may ask for."""
    max_windows: int = 200
    """Most windows one /predict request may ask for (``window`` / ``hop``)."""
    api_key: str | None = None
    """When set, every endpoint but /health and the page needs ``Authorization: Bearer KEY``
    or ``X-API-Key: KEY``."""
    retry_after: int = 1
    """Seconds suggested in the Retry-After header of a 503."""

    def __post_init__(self) -> None:
        positive = {
            "batch_seconds": self.batch_seconds,
            "max_queue": self.max_queue,
            "max_upload_bytes": self.max_upload_bytes,
            "max_audio_seconds": self.max_audio_seconds,
            "request_timeout": self.request_timeout,
            "stream_max_window": self.stream_max_window,
            "max_windows": self.max_windows,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"serve setting {name} must be > 0, got {value!r}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"serve setting max_wait_ms must be >= 0, got {self.max_wait_ms!r}")
