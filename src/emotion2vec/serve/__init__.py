"""``emotion2vec serve``: an HTTP / WebSocket emotion service with dynamic batching.

    from emotion2vec.serve import ServeSettings, create_app
    app = create_app(model, ServeSettings(max_wait_ms=5))   # any ASGI server runs it

Modules: :mod:`.settings` (limits), :mod:`.batcher` (requests -> padded batches, one model
thread), :mod:`.uploads` (bytes -> waveform), :mod:`.streaming` (the sliding-window WebSocket),
:mod:`.metrics` (Prometheus text), :mod:`.app` (the FastAPI app), ``page.html`` (the web page).
FastAPI is imported by :mod:`.app` only, so the batcher works without the ``serve`` extra.
"""

from __future__ import annotations

from .settings import API_KEY_ENV, ServeSettings

__all__ = ["API_KEY_ENV", "ServeSettings", "create_app"]


def create_app(model, settings: ServeSettings | None = None, *, model_name: str = "model"):
    """The FastAPI app: see :func:`emotion2vec.serve.app.create_app`."""
    from .app import create_app as create

    return create(model, settings, model_name=model_name)
