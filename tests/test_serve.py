"""``emotion2vec serve``: batched answers equal alone ones, errors leave the service serving,
back-pressure, API keys, the sliding-window stream, metrics, graceful shutdown, the web page in
a real browser."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from model_factory import build_model  # noqa: E402

from emotion2vec.cli import build_parser  # noqa: E402
from emotion2vec.cli.serve import settings_from  # noqa: E402
from emotion2vec.serve import API_KEY_ENV, ServeSettings, create_app  # noqa: E402
from emotion2vec.serve.batcher import DynamicBatcher, model_runner  # noqa: E402
from emotion2vec.serve.metrics import parse  # noqa: E402
from emotion2vec.serve.streaming import SlidingWindow  # noqa: E402

SR = 16000
TOL = 1e-4
SHARED = Path(os.environ.get("EMOTION2VEC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
RAVDESS = SHARED / "data" / "ravdess_speech" / "audio"


@pytest.fixture(scope="module")
def model():
    return build_model(0, decoder=False)


def noise(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def wav_bytes(wave: np.ndarray, rate: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def close_enough(answer: dict, expected) -> None:
    assert answer["label"] == expected.label
    assert set(answer["scores"]) == set(expected.scores)
    for name, p in expected.scores.items():
        assert abs(answer["scores"][name] - p) < TOL, name


class Gate:
    """A batch runner that blocks until released: holds the model thread busy on purpose."""

    def __init__(self, run):
        self.run, self.entered, self.release = run, threading.Event(), threading.Event()

    def __call__(self, waves, frames):
        self.entered.set()
        assert self.release.wait(30)
        return self.run(waves, frames)


def make_app(model, **settings):
    return create_app(model, ServeSettings(**settings), model_name="micro")


async def _client_calls(app, calls):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await calls(client)


def call(app, calls):
    """Run ``await calls(client)`` against ``app`` in-process, closing its batcher after."""
    try:
        return asyncio.run(_client_calls(app, calls))
    finally:
        app.state.batcher.close()


# ------------------------------------------------------------------------------------------
# Batching
# ------------------------------------------------------------------------------------------


def test_the_batcher_answers_concurrent_inputs_as_alone_in_shared_batches(model):
    waves = [noise(2000 + 1700 * i, i) for i in range(12)]
    batcher = DynamicBatcher(model_runner(model), max_wait_ms=200, batch_seconds=30)

    async def all_at_once():
        return await asyncio.gather(*(batcher.encode(w, frames=True) for w in waves))

    try:
        results = asyncio.run(all_at_once())
    finally:
        batcher.close()
    for wave, got in zip(waves, results, strict=True):
        alone = model.predict(wave, sample_rate=SR)
        probs = np.exp(got.logits.numpy() - got.logits.numpy().max())
        probs = dict(zip(model.labels, probs / probs.sum(), strict=True))
        assert max(abs(probs[k] - v) for k, v in alone.scores.items()) < TOL
        np.testing.assert_allclose(got.embedding, model.extract(wave, sample_rate=SR), atol=TOL)
        frames = model.extract(wave, sample_rate=SR, granularity="frame")
        np.testing.assert_allclose(got.frames, frames, atol=TOL)
    sizes = batcher.metrics.batch_size
    assert sizes.sum == 12 and sizes.count < 12  # batches of more than one formed


def test_the_batcher_keeps_batches_within_the_padded_budget(model):
    seen = []

    def run(waves, frames):
        seen.append([len(w) for w in waves])
        return model_runner(model)(waves, frames)

    batcher = DynamicBatcher(run, max_wait_ms=300, batch_seconds=1.0)
    futures = [batcher.submit(noise(6000, i)) for i in range(7)]
    for f in futures:
        f.result(30)
    batcher.close()
    assert sum(len(b) for b in seen) == 7
    assert all(max(b) * len(b) <= SR for b in seen) and max(len(b) for b in seen) == 2


def test_http_requests_in_flight_together_get_their_alone_answers(model, tmp_path):
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], noise(3000 + 1100 * i, 10 + i), SR, subtype="FLOAT")
    app = make_app(model, max_wait_ms=200)

    async def calls(client):
        answers = await asyncio.gather(
            *(client.post("/predict", files={"file": (p.name, p.read_bytes())}) for p in paths)
        )
        await client.get("/made-up/path")
        return answers, await client.get("/metrics")

    answers, metrics = call(app, calls)
    for path, answer in zip(paths, answers, strict=True):
        assert answer.status_code == 200, answer.text
        close_enough(answer.json(), model.predict(path))
        assert answer.json()["duration"] == pytest.approx(sf.info(path).frames / SR)
    values = parse(metrics.text)
    assert values['emotion2vec_requests_total{endpoint="/predict",status="200"}'] == 12
    assert values['emotion2vec_requests_total{endpoint="other",status="404"}'] == 1
    assert values["emotion2vec_batch_size_sum"] == 12
    assert values["emotion2vec_batch_size_count"] < 12
    assert (
        values['emotion2vec_batch_size_bucket{le="+Inf"}'] == values["emotion2vec_batch_size_count"]
    )
    assert values["emotion2vec_audio_seconds_total"] == pytest.approx(
        sum(sf.info(p).frames for p in paths) / SR
    )
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_windows_labels_and_embeddings_match_the_library(model):
    wave = noise(24000, 3)
    body = wav_bytes(wave)
    app = make_app(model)

    async def calls(client):
        return (
            await client.post("/predict?window=0.5&hop=0.4&labels=angry,Sad", content=body),
            await client.post("/embed", content=body),
            await client.post("/embed?granularity=frame&format=npy", content=body),
        )

    windows, utterance, frames = call(app, calls)
    answer = windows.json()
    close_enough(answer, model.predict(wave, sample_rate=SR, labels="angry,Sad"))
    assert list(answer["scores"]) == ["angry", "sad"]
    assert len(answer["windows"]) >= 3
    for w in answer["windows"]:
        piece = wave[round(w["start"] * SR) : round(w["end"] * SR)]
        close_enough(w, model.predict(piece, sample_rate=SR, labels="angry,sad"))
    assert answer["windows"][-1]["end"] == pytest.approx(1.5)
    np.testing.assert_allclose(
        utterance.json()["embedding"], model.extract(wave, sample_rate=SR), atol=TOL
    )
    np.testing.assert_allclose(
        np.load(io.BytesIO(frames.content)),
        model.extract(wave, sample_rate=SR, granularity="frame"),
        atol=TOL,
    )


# ------------------------------------------------------------------------------------------
# Limits and errors
# ------------------------------------------------------------------------------------------


def test_bad_requests_get_json_4xx_and_the_service_keeps_serving(model):
    good = noise(12000, 5)
    expected = model.predict(good, sample_rate=SR)
    app = make_app(model, max_upload_bytes=200_000, max_audio_seconds=2.0)
    bad = [
        ({"content": b""}, 400, "empty_audio"),
        ({"content": b"this is not audio" * 20}, 400, "undecodable_audio"),
        ({"content": wav_bytes(noise(200, 1))}, 400, "audio_too_short"),
        ({"content": wav_bytes(noise(3 * SR, 1))}, 413, "audio_too_long"),
        ({"content": b"\0" * 300_000}, 413, "too_large"),
        ({"files": {"other": (None, "text")}}, 400, "no_audio"),
        ({"content": wav_bytes(good), "params": {"labels": "joyful"}}, 400, "bad_labels"),
        (
            {"content": wav_bytes(good), "params": {"window": "0.5", "hop": "0.49"}},
            400,
            "bad_window",
        ),
    ]

    async def calls(client):
        out = []
        for kwargs, status, code in bad:
            answer = await client.post("/predict", **kwargs)
            after = await client.post("/predict", content=wav_bytes(good))
            out.append((answer, status, code, after))
        return out

    for answer, status, code, after in call(app, calls):
        assert answer.status_code == status, (code, answer.text)
        assert answer.json()["error"]["code"] == code and answer.json()["error"]["message"]
        assert after.status_code == 200
        close_enough(after.json(), expected)


def test_a_body_streamed_past_the_cap_is_refused(model):
    app = make_app(model, max_upload_bytes=50_000)

    async def chunks():
        for _ in range(10):
            yield b"\0" * 10_000

    async def calls(client):
        return await client.post("/predict", content=chunks()), await client.get("/health")

    refused, health = call(app, calls)
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"
    assert health.status_code == 200


def test_a_full_queue_answers_503_with_retry_after(model):
    app = make_app(model, max_queue=1, max_wait_ms=0)
    gate = Gate(app.state.batcher.run_batch)
    app.state.batcher.run_batch = gate
    body = wav_bytes(noise(4000, 2))

    async def calls(client):
        first = asyncio.create_task(client.post("/predict", content=body))
        await asyncio.to_thread(gate.entered.wait, 30)  # the model thread is busy with it
        second = asyncio.create_task(client.post("/predict", content=body))
        while app.state.batcher.queue_length < 1:
            await asyncio.sleep(0.01)
        third = await client.post("/predict", content=body)
        gate.release.set()
        return third, await first, await second

    full, first, second = call(app, calls)
    assert full.status_code == 503 and full.headers["retry-after"] == "1"
    assert full.json()["error"]["code"] == "busy"
    assert first.status_code == second.status_code == 200


def test_a_request_waiting_too_long_gets_504_and_is_dropped(model):
    app = make_app(model, request_timeout=0.3, max_wait_ms=0)
    gate = Gate(app.state.batcher.run_batch)
    app.state.batcher.run_batch = gate
    body = wav_bytes(noise(4000, 2))

    async def calls(client):
        answer = await client.post("/predict", content=body)
        gate.release.set()
        return answer, await client.post("/predict", content=body)

    late, next_one = call(app, calls)
    assert late.status_code == 504 and late.json()["error"]["code"] == "timeout"
    assert next_one.status_code == 200


def test_the_api_key_guards_everything_but_health_and_the_page(model):
    app = make_app(model, api_key="s3cret")
    body = wav_bytes(noise(4000, 2))

    async def calls(client):
        return {
            "none": await client.post("/predict", content=body),
            "wrong": await client.post("/predict", content=body, headers={"X-API-Key": "nope"}),
            "bearer": await client.post(
                "/predict", content=body, headers={"Authorization": "Bearer s3cret"}
            ),
            "x-api-key": await client.post("/embed", content=body, headers={"X-API-Key": "s3cret"}),
            "metrics": await client.get("/metrics"),
            "health": await client.get("/health"),
            "page": await client.get("/"),
        }

    got = call(app, calls)
    assert got["none"].status_code == got["wrong"].status_code == got["metrics"].status_code == 401
    assert got["none"].json()["error"]["code"] == "unauthorised"
    assert got["bearer"].status_code == got["x-api-key"].status_code == 200
    assert got["health"].json()["status"] == "ok" and got["page"].status_code == 200


def test_the_command_line_builds_the_settings(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    args = build_parser().parse_args(
        ["serve", "--model", "m/", "--max-queue", "3", "--max-upload-mb", "2", "--timeout", "9"]
    )
    settings = settings_from(args)
    assert (settings.max_queue, settings.max_upload_bytes, settings.request_timeout) == (
        3,
        2 * 2**20,
        9.0,
    )
    assert settings.api_key == "from-env"
    args = build_parser().parse_args(["serve", "--api-key", "given"])
    assert settings_from(args).api_key == "given" and args.host == "127.0.0.1"


# ------------------------------------------------------------------------------------------
# Streaming
# ------------------------------------------------------------------------------------------


def test_the_sliding_window_keeps_bounded_memory_and_the_grid():
    state = SlidingWindow(window=1000, hop=300)
    stream = np.arange(100_000, dtype=np.float32)
    ends = []
    for start in range(0, len(stream), 170):
        state.push(stream[start : start + 170])
        assert len(state.buffer) <= 1300
        if (due := state.due()) is not None:
            np.testing.assert_array_equal(due.samples, stream[due.start : due.end])
            ends.append(due.end)
    assert ends[0] == 1000 and all((e - 1000) % 300 == 0 for e in ends)
    assert len(ends) == (100_000 - 1000) // 300 + 1  # none skipped when kept up with
    state.push(stream[:50])
    tail = state.tail()
    assert (tail.start, tail.end) == (100_050 - 1000, 100_050) and state.tail() is None
    # falling behind: the windows in between are skipped, the newest one is scored
    state = SlidingWindow(window=1000, hop=300)
    state.push(stream[:1000])
    assert state.due().end == 1000
    state.push(stream[1000:2000])
    due = state.due()
    assert (due.end, due.skipped) == (1900, 2)


@pytest.mark.parametrize("fmt", ["s16", "f32"])
def test_the_stream_scores_each_window_as_alone(model, fmt):
    from fastapi.testclient import TestClient

    rate = 8000
    signal = noise(int(2.3 * rate), 7).clip(-1, 1)
    if fmt == "s16":
        pcm = (signal * 32767).astype("<i2")
        heard = pcm.astype(np.float32) / 32768
    else:
        pcm, heard = signal.astype("<f4"), signal
    data = pcm.tobytes()
    step = 1234 * pcm.itemsize
    app = make_app(model)
    messages = []
    with TestClient(app) as client:
        url = f"/stream?sample_rate={rate}&window=0.5&hop=0.25&format={fmt}&labels=angry,happy,sad"
        with client.websocket_connect(url) as ws:
            assert ws.receive_json()["type"] == "ready"
            for i in range(0, len(data), step):
                ws.send_bytes(data[i : i + step])
            ws.send_text("end")
            while (message := ws.receive_json())["type"] != "end":
                messages.append(message)
        assert message["samples"] == len(signal)
        assert client.get("/health").status_code == 200
    assert len(messages) >= 2
    for m in messages:
        piece = heard[m["start_sample"] : m["end_sample"]]
        close_enough(m, model.predict(piece, sample_rate=rate, labels="angry,happy,sad"))
        assert m["end_sample"] - m["start_sample"] == min(4000, m["end_sample"])
    assert messages[-1]["end_sample"] == len(signal)  # the tail after the last full window


def test_a_stream_with_bad_parameters_or_data_gets_an_error_message(model):
    from fastapi.testclient import TestClient

    with TestClient(make_app(model)) as client:
        with client.websocket_connect("/stream?window=0.5&hop=2") as ws:
            assert "hop" in ws.receive_json()["message"]
        with client.websocket_connect("/stream?format=s16") as ws:
            ws.receive_json()
            ws.send_bytes(b"\0\0\0")  # not whole int16 samples
            assert ws.receive_json()["type"] == "error"


# ------------------------------------------------------------------------------------------
# A real server: graceful shutdown, and the web page in Chromium
# ------------------------------------------------------------------------------------------


class LiveServer:
    """uvicorn on 127.0.0.1 on a free port in a background thread."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=20)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def __exit__(self, *exc):
        self.stop()


def test_shutdown_finishes_the_requests_in_flight(model):
    app = make_app(model, max_wait_ms=0)
    gate = Gate(app.state.batcher.run_batch)
    app.state.batcher.run_batch = gate
    wave = noise(4000, 4)
    answers = []
    with LiveServer(app) as live:
        request = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{live.url}/predict", content=wav_bytes(wave), timeout=30)
            )
        )
        request.start()
        assert gate.entered.wait(30)
        live.server.should_exit = True  # what SIGTERM does
        time.sleep(0.3)
        gate.release.set()
        request.join(30)
    assert not live.thread.is_alive()
    assert answers[0].status_code == 200
    close_enough(answers[0].json(), model.predict(wave, sample_rate=SR))


def _chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


class DevTools:
    """Just enough of the Chrome DevTools protocol: numbered commands over a WebSocket."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    def __call__(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=20))
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]

    def evaluate(self, expression: str):
        return self("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get(
            "value"
        )


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed")
def test_the_page_shows_the_label_of_an_uploaded_file_in_chromium(model, tmp_path):
    connect = pytest.importorskip("websockets.sync.client").connect
    clips = sorted(RAVDESS.glob("Actor_01/*.flac"))[:1] if RAVDESS.is_dir() else []
    if clips:
        clip = clips[0]
    else:
        clip = tmp_path / "synthetic.wav"
        sf.write(clip, noise(2 * SR, 9), SR)
    expected = model.predict(clip)
    profile = tmp_path / "profile"
    with LiveServer(make_app(model)) as live:
        browser = subprocess.Popen(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 15
            while not (port_file.exists() and port_file.read_text().strip()):
                assert time.monotonic() < deadline and browser.poll() is None, "no DevTools port"
                time.sleep(0.05)
            port = port_file.read_text().split()[0]
            pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            target = next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"]
            with connect(target, max_size=2**24) as ws:
                shown = _upload_on_the_page(DevTools(ws), f"{live.url}/", clip)
        finally:
            browser.terminate()
            browser.wait(10)
    state, label, windows, rows = shown
    assert state == "done" and label == expected.label
    assert int(windows) >= 2 and rows == len(expected.scores)


def _upload_on_the_page(tools: DevTools, url: str, clip: Path):
    """Open the page, put ``clip`` into its file input, wait for the answer; what it shows."""
    tools("Page.enable")
    tools("Page.navigate", url=url)
    deadline = time.monotonic() + 10
    while tools.evaluate("document.body && document.body.dataset.state") != "ready":
        assert time.monotonic() < deadline, "the page did not load"
        time.sleep(0.05)
    root = tools("DOM.getDocument")["root"]["nodeId"]
    node = tools("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    tools("DOM.setFileInputFiles", nodeId=node, files=[str(clip)])
    deadline = time.monotonic() + 15
    while tools.evaluate("document.body.dataset.state") not in ("done", "error"):
        assert time.monotonic() < deadline, "no result on the page"
        time.sleep(0.05)
    return tools.evaluate(
        "[document.body.dataset.state, document.getElementById('label').textContent,"
        " document.getElementById('chart').dataset.windows,"
        " document.getElementById('scores').rows.length]"
    )
