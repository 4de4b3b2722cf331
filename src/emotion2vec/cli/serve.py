"""``emotion2vec serve``: a shim over :func:`emotion2vec.serve.create_app` and uvicorn.

emotion2vec serve --model my_model/ --port 8000
"""

from __future__ import annotations

import argparse
import os

from ..argtypes import positive_int, positive_seconds
from ..errors import ConfigError
from . import options
from .exit_codes import EXIT_OK


def add_parsers(sub) -> None:
    """Register ``serve``."""
    from ..serve.settings import API_KEY_ENV, ServeSettings

    d = ServeSettings()
    p = sub.add_parser(
        "serve",
        help="run an HTTP emotion service (batching, streaming, a web page)",
        description="Serve the model over HTTP: POST /predict and /embed, the /stream WebSocket, "
        "GET /health and /metrics, a web page at / and the OpenAPI docs at /docs. Concurrent "
        "requests are batched; each gets exactly what it would get alone. Needs "
        "pip install 'emotion2vec[serve]'.",
    )
    options.add_model(p)
    options.add_device(p)
    options.add_threads(p)
    options.add_precision(p)
    options.add_batch_seconds(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for all)",
    )
    p.add_argument(
        "--port", type=positive_int, default=8000, help="TCP port to listen on (default: 8000)"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=d.max_wait_ms,
        metavar="MS",
        help=f"how long a request waits for others to share its batch (default: {d.max_wait_ms:g})",
    )
    p.add_argument(
        "--max-queue",
        type=positive_int,
        default=d.max_queue,
        metavar="N",
        help=f"inputs allowed to wait for the model; beyond, 503 (default: {d.max_queue})",
    )
    p.add_argument(
        "--max-upload-mb",
        type=positive_seconds,
        default=d.max_upload_bytes / 2**20,
        metavar="MB",
        help=f"largest request body in MiB; beyond, 413 (default: {d.max_upload_bytes >> 20})",
    )
    p.add_argument(
        "--max-audio-seconds",
        type=positive_seconds,
        default=d.max_audio_seconds,
        metavar="S",
        help="longest audio per /predict or /embed request; beyond, 413 "
        f"(default: {d.max_audio_seconds:g})",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=d.request_timeout,
        metavar="S",
        help="seconds a request may wait for its result before a 504; also the grace period "
        f"for in-flight requests at shutdown (default: {d.request_timeout:g})",
    )
    p.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help=f"require this key (Authorization: Bearer KEY or X-API-Key: KEY) on every endpoint "
        f"but /health and the page; default: ${API_KEY_ENV} when set, else no key",
    )
    p.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (default: info)",
    )
    p.set_defaults(run=serve, interrupted="stopped")


def settings_from(args: argparse.Namespace):
    """The :class:`~emotion2vec.serve.ServeSettings` the options ask for."""
    from ..serve.settings import API_KEY_ENV, ServeSettings

    return ServeSettings(
        batch_seconds=args.batch_seconds,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_audio_seconds=args.max_audio_seconds,
        request_timeout=args.timeout,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
    )


def serve(args: argparse.Namespace) -> int:
    """``emotion2vec serve``."""
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as err:
        raise ConfigError(
            f"emotion2vec serve needs FastAPI and uvicorn ({err.name} is missing): "
            "pip install 'emotion2vec[serve]'"
        ) from err
    from .infer import load

    settings = settings_from(args)
    model = load(args)
    app = create_app(model, settings, model_name=options.model_name(args))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=int(settings.request_timeout),
    )
    return EXIT_OK
