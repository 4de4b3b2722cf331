"""The FastAPI application of ``emotion2vec serve``: :func:`create_app`.

Endpoints: ``POST /predict``, ``POST /embed``, ``GET /health``, ``GET /metrics``, the
``/stream`` WebSocket, the web page at ``/`` and FastAPI's OpenAPI docs at ``/docs``. Every
model call goes through one :class:`~emotion2vec.serve.batcher.DynamicBatcher`; decoding runs
in worker threads. Errors are JSON ``{"error": {"code": ..., "message": ...}}`` with a 4xx/5xx
status, and the service keeps serving after any of them.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import time
from contextlib import asynccontextmanager
from importlib import resources

import numpy as np
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..audio import SAMPLE_RATE
from ..errors import AudioError, Emotion2vecError
from ..inference import scores_from_logits
from ..jobs import plan_windows
from ..labels import resolve
from ..version import __version__
from .batcher import BatcherClosed, DynamicBatcher, QueueFull, model_runner
from .metrics import CONTENT_TYPE, Metrics
from .settings import ServeSettings
from .streaming import run_stream
from .uploads import AudioTooLong, decode_upload

#: Paths counted by name in the metrics; any other path is counted as "other", so that
#: requests for made-up paths cannot grow the metrics without bound.
METRIC_PATHS = frozenset(
    {"/", "/predict", "/embed", "/health", "/metrics", "/stream", "/docs", "/openapi.json"}
)


class ServiceError(Exception):
    """An answer other than 200: HTTP status, a short machine-readable code, a message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class BodyTooLarge(Exception):
    """The request body went over ``max_upload_bytes`` while it was being read."""


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class Guard:
    """ASGI middleware: the body size cap (413 from Content-Length at once, or while a
    chunked body is read) and per-request metrics (status and latency by endpoint)."""

    def __init__(self, app, settings: ServeSettings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]
        path = scope["path"] if scope["path"] in METRIC_PATHS else "other"
        limit = self.settings.max_upload_bytes
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = _error(413, "too_large", _too_large(limit))
            await response(scope, receive, send)
            self.metrics.request(path, 413, time.perf_counter() - started)
            return
        seen = [0]

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        finally:
            self.metrics.request(path, status[0], time.perf_counter() - started)


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes (the service's max_upload_bytes)"


def create_app(model, settings: ServeSettings | None = None, *, model_name: str = "model"):
    """The service around ``model`` (an accelerated :class:`~emotion2vec.pipeline.Emotion2vec`)
    with ``settings``. ``app.state.batcher`` is started here and closed when the app's lifespan
    ends (or by the caller, when it drives the app without a lifespan)."""
    settings = settings or ServeSettings()
    metrics = Metrics()
    batcher = DynamicBatcher(
        model_runner(model),
        batch_seconds=settings.batch_seconds,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        metrics=metrics,
    )
    labels = list(model.labels) if model.head is not None else []

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # uvicorn has let in-flight requests finish; now finish what is queued and stop
        await asyncio.to_thread(batcher.close)

    app = FastAPI(
        title="emotion2vec",
        version=__version__,
        description="Speech emotion recognition and emotion2vec features, with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.metrics, app.state.settings = batcher, metrics, settings
    app.add_middleware(Guard, settings=settings, metrics=metrics)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        return _error(exc.status, exc.code, exc.message, exc.headers)

    def key_ok(headers, query) -> bool:
        if not settings.api_key:
            return True
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        given = given or headers.get("x-api-key", "") or query.get("api_key", "")
        return hmac.compare_digest(given.encode(), settings.api_key.encode())

    async def authorised(request: Request) -> None:
        if not key_ok(request.headers, request.query_params):
            raise ServiceError(
                401,
                "unauthorised",
                "an API key is needed: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                {"WWW-Authenticate": "Bearer"},
            )

    async def run_model(wave: np.ndarray, *, frames: bool = False):
        try:
            return await asyncio.wait_for(
                batcher.encode(wave, frames=frames), settings.request_timeout
            )
        except QueueFull as err:
            raise ServiceError(
                503, "busy", f"{err}; retry later", {"Retry-After": str(settings.retry_after)}
            ) from err
        except BatcherClosed as err:
            raise ServiceError(503, "shutting_down", str(err)) from err
        except TimeoutError as err:
            raise ServiceError(
                504, "timeout", f"no result within {settings.request_timeout:g} s"
            ) from err

    async def read_audio(request: Request) -> np.ndarray:
        """The request's audio: a multipart upload (field ``file``, else the first file) or the
        raw body; decoded in a worker thread."""
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                form = await request.form(max_files=1)
                uploads = [v for v in form.values() if hasattr(v, "read")]
                if not uploads:
                    raise ServiceError(400, "no_audio", "the form has no file field")
                upload = form.get("file") if hasattr(form.get("file"), "read") else uploads[0]
                data, filename = await upload.read(), upload.filename
            else:
                data, filename = await request.body(), request.query_params.get("filename")
        except BodyTooLarge as err:
            raise ServiceError(413, "too_large", _too_large(settings.max_upload_bytes)) from err
        try:
            return await run_in_threadpool(
                decode_upload, data, filename, settings.max_audio_seconds
            )
        except AudioTooLong as err:
            raise ServiceError(413, "audio_too_long", str(err)) from err
        except AudioError as err:
            raise ServiceError(400, _audio_code(err), str(err)) from err

    def subset_of(names: str | None):
        if names is None:
            return None
        try:
            return resolve(names, labels)
        except Emotion2vecError as err:
            raise ServiceError(400, "bad_labels", str(err)) from err

    def scored(encoded, subset) -> dict:
        pred = scores_from_logits(encoded.logits[None], labels, subset)[0]
        return {"label": pred.label, "score": pred.score, "scores": pred.scores}

    @app.post("/predict", dependencies=[Depends(authorised)])
    async def predict(
        request: Request,
        labels: str | None = None,
        window: float | None = None,
        hop: float | None = None,
    ):
        """Emotion of one audio file (multipart field ``file``, or the raw bytes as the body).

        ``labels``: score only these (comma-separated names or aliases). ``window`` / ``hop``
        (seconds): also the emotion of each window of the audio (``windows``)."""
        if model.head is None:
            raise ServiceError(
                400,
                "no_head",
                "this model has no emotion head: use /embed, or serve an "
                "emotion2vec_plus_* model or one fine-tuned with labels",
            )
        subset = subset_of(labels)
        spans = []
        if window is not None:
            if not window > 0 or (hop is not None and not hop > 0):
                raise ServiceError(400, "bad_window", "window and hop must be > 0 seconds")
        wave = await read_audio(request)
        if window is not None:
            try:
                spans = plan_windows(len(wave), window, hop)
            except Emotion2vecError as err:
                raise ServiceError(400, "bad_window", str(err)) from err
            if len(spans) > settings.max_windows:
                raise ServiceError(
                    400,
                    "too_many_windows",
                    f"{len(spans)} windows; at most {settings.max_windows} (use a longer hop)",
                )
        parts = [wave] + [wave[w.start : w.end] for w in spans]
        encoded = await asyncio.gather(*(run_model(p) for p in parts))
        body = {**scored(encoded[0], subset), "duration": len(wave) / SAMPLE_RATE}
        if window is not None:
            body["windows"] = [
                {"start": w.start / SAMPLE_RATE, "end": w.end / SAMPLE_RATE, **scored(e, subset)}
                for w, e in zip(spans, encoded[1:], strict=True)
            ]
        return body

    @app.post("/embed", dependencies=[Depends(authorised)])
    async def embed(request: Request, granularity: str = "utterance", format: str = "json"):
        """emotion2vec features of one audio file: ``granularity`` utterance (D,) or frame
        (T, D) at 50 Hz; ``format`` json or npy (a NumPy ``.npy`` file)."""
        if granularity not in ("utterance", "frame") or format not in ("json", "npy"):
            raise ServiceError(
                400, "bad_parameter", "granularity is utterance or frame; format is json or npy"
            )
        wave = await read_audio(request)
        encoded = await run_model(wave, frames=granularity == "frame")
        feats = (encoded.frames if granularity == "frame" else encoded.embedding).float().numpy()
        if format == "npy":
            buffer = io.BytesIO()
            np.save(buffer, feats)
            return Response(buffer.getvalue(), media_type="application/x-npy")
        return {
            "granularity": granularity,
            "shape": list(feats.shape),
            "duration": len(wave) / SAMPLE_RATE,
            "embedding": feats.tolist(),
        }

    @app.get("/health")
    async def health():
        """Liveness and what is served (no API key needed)."""
        return {
            "status": "ok",
            "model": model_name,
            "labels": labels,
            "queue": batcher.queue_length,
            "version": __version__,
        }

    @app.get("/metrics", dependencies=[Depends(authorised)])
    async def prometheus():
        """Counters and histograms in the Prometheus text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(resources.files(__package__).joinpath("page.html").read_text("utf-8"))

    @app.websocket("/stream")
    async def stream(ws: WebSocket):
        """Sliding-window emotion of a live PCM stream (see emotion2vec.serve.streaming)."""
        if not key_ok(ws.headers, ws.query_params):
            await ws.close(code=1008, reason="an API key is needed")
            return
        if model.head is None:
            await ws.close(code=1008, reason="this model has no emotion head")
            return
        await ws.accept()
        try:
            subset = (
                resolve(ws.query_params["labels"], labels) if "labels" in ws.query_params else None
            )
        except Emotion2vecError as err:
            await ws.send_json({"type": "error", "message": str(err)})
            await ws.close(code=1008)
            return
        await run_stream(ws, batcher, labels, subset, ws.query_params, settings.stream_max_window)

    return app


def _audio_code(err: AudioError) -> str:
    reason = err.reason
    if "empty" in reason:
        return "empty_audio"
    if "too short" in reason:
        return "audio_too_short"
    return "undecodable_audio"
