"""Emotion of a live stream over a sliding window (the ``/stream`` WebSocket).

Protocol (see docs/serving.md): the client connects to
``/stream?sample_rate=16000&window=3&hop=1&format=f32``, receives ``{"type": "ready", ...}``,
then sends binary messages of mono PCM samples, little-endian, ``f32`` (float32 in [-1, 1]) or
``s16`` (int16). Each time a window ends on the hop grid (ends at ``window``, ``window + hop``,
... samples) the server sends ``{"type": "window", "start": s, "end": s, "start_sample": i,
"end_sample": j, "label": ..., "score": ..., "scores": {...}, "skipped": k}``: the emotion of
samples [i, j) alone. The text message ``end`` asks for a last window over the final samples
(when some came after the last window) and ``{"type": "end", "samples": n}``; the server then
closes the connection.

Memory and latency stay bounded for streams of any length: only the last window + hop samples
are kept, and when the model falls behind, the windows it missed are skipped (counted in
``skipped``) so that the next answer is always about the newest audio.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from ..audio import MIN_SAMPLES, SAMPLE_RATE, prepare_waveform
from ..errors import Emotion2vecError
from ..inference import scores_from_logits
from .batcher import DynamicBatcher

#: Sample formats a stream may use: name -> little-endian numpy dtype.
FORMATS = {"f32": "<f4", "s16": "<i2"}


@dataclass
class Due:
    """One window to score: samples [start, end) of the stream (at its own rate)."""

    start: int
    end: int
    samples: np.ndarray
    skipped: int


class SlidingWindow:
    """The last ``window + hop`` samples of a stream and the window due next.

    window, hop: in samples of the stream's rate. Windows end at ``window + k * hop``.
    """

    def __init__(self, window: int, hop: int):
        if window <= 0 or hop <= 0:
            raise Emotion2vecError("window and hop must be positive")
        self.window, self.hop = window, hop
        self.buffer = np.zeros(0, dtype=np.float32)
        self.total = 0
        self.emitted_end = 0

    def push(self, samples: np.ndarray) -> None:
        """Append (N,) float32 samples, keeping only what a future window can need."""
        self.total += len(samples)
        keep = self.window + self.hop
        self.buffer = np.concatenate([self.buffer[-keep:], samples])[-keep:]

    def _cut(self, start: int, end: int) -> np.ndarray:
        offset = self.total - len(self.buffer)  # stream index of buffer[0]
        return self.buffer[start - offset : end - offset].copy()

    def due(self) -> Due | None:
        """The newest window on the grid not yet scored (earlier unscored ones are skipped)."""
        if self.total < self.window:
            return None
        end = self.window + (self.total - self.window) // self.hop * self.hop
        if end <= self.emitted_end:
            return None
        skipped = 0 if self.emitted_end == 0 else (end - self.emitted_end) // self.hop - 1
        self.emitted_end = end
        return Due(end - self.window, end, self._cut(end - self.window, end), skipped)

    def tail(self) -> Due | None:
        """At the end of the stream: the last (up to) window of samples, when some arrived
        after the last scored window."""
        if self.total <= self.emitted_end:
            return None
        start = max(0, self.total - self.window)
        end, self.emitted_end = self.total, self.total
        return Due(start, end, self._cut(start, end), 0)


def parse_stream_params(query, max_window: float) -> tuple[int, float, float, str]:
    """(sample_rate, window seconds, hop seconds, format) of a /stream query; ValueError with a
    message for the client when one is invalid."""
    try:
        rate = int(query.get("sample_rate", SAMPLE_RATE))
        window = float(query.get("window", 3.0))
        hop = float(query.get("hop", 1.0))
    except ValueError as err:
        raise ValueError(f"invalid stream parameter: {err}") from None
    fmt = query.get("format", "f32")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not 1000 <= rate <= 384000:
        raise ValueError(f"sample_rate must be between 1000 and 384000 Hz, got {rate}")
    if not MIN_SAMPLES / SAMPLE_RATE <= window <= max_window:
        raise ValueError(f"window must be between 0.025 and {max_window:g} s, got {window:g}")
    if not 0 < hop <= window:
        raise ValueError(f"hop must be > 0 and at most the window ({window:g} s), got {hop:g}")
    return rate, window, hop, fmt


def decode_chunk(data: bytes, fmt: str) -> np.ndarray:
    """One binary message -> float32 samples (int16 scaled by 1/32768, as for files)."""
    dtype = np.dtype(FORMATS[fmt])
    if len(data) % dtype.itemsize:
        raise ValueError(
            f"a {fmt} message must hold whole samples ({dtype.itemsize} bytes each), "
            f"got {len(data)} bytes"
        )
    samples = np.frombuffer(data, dtype=dtype)
    if fmt == "s16":
        return samples.astype(np.float32) / 32768.0
    samples = samples.astype(np.float32)
    if not np.isfinite(samples).all():
        raise ValueError("samples contain NaN or inf")
    return samples


async def run_stream(ws, batcher: DynamicBatcher, labels, subset, query, max_window: float):
    """Serve one accepted Starlette WebSocket until the client ends or leaves."""
    try:
        rate, window_s, hop_s, fmt = parse_stream_params(query, max_window)
    except ValueError as err:
        await ws.send_json({"type": "error", "message": str(err)})
        await ws.close(code=1008)
        return
    state = SlidingWindow(max(1, round(window_s * rate)), max(1, round(hop_s * rate)))
    await ws.send_json(
        {"type": "ready", "sample_rate": rate, "window": window_s, "hop": hop_s, "format": fmt}
    )
    arrived = asyncio.Event()
    finished: dict[str, object] = {}

    async def receive() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                finished["gone"] = True
                break
            if message.get("bytes") is not None:
                try:
                    state.push(decode_chunk(message["bytes"], fmt))
                except ValueError as err:
                    finished["error"] = str(err)
                    break
            elif (message.get("text") or "").strip().lower() in ("end", '{"type": "end"}'):
                finished["end"] = True
                break
            arrived.set()
        arrived.set()

    receiver = asyncio.create_task(receive())
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            if "gone" in finished:
                return
            if "error" in finished:
                await ws.send_json({"type": "error", "message": finished["error"]})
                await ws.close(code=1003)
                return
            due = state.due()
            if due is None and "end" in finished:
                due = state.tail()
            if due is not None:
                await ws.send_json(await _score(batcher, due, rate, labels, subset))
                arrived.set()  # more may be due already
            elif "end" in finished:
                await ws.send_json({"type": "end", "samples": state.total})
                await ws.close(code=1000)
                return
    finally:
        receiver.cancel()


async def _score(batcher, due: Due, rate: int, labels, subset) -> dict:
    base = {
        "start": due.start / rate,
        "end": due.end / rate,
        "start_sample": due.start,
        "end_sample": due.end,
        "skipped": due.skipped,
    }
    try:
        # resampling is off the event loop, like every other decode
        wave = await asyncio.to_thread(prepare_waveform, due.samples, rate, source="stream window")
    except Emotion2vecError as err:  # e.g. a final tail shorter than the model's minimum
        return {"type": "window", **base, "error": str(err)}
    try:
        encoded = await batcher.encode(wave)
    except Emotion2vecError as err:  # queue full, shutting down: this window is lost
        return {"type": "window", **base, "error": str(err)}
    pred = scores_from_logits(encoded.logits[None], labels, subset)[0]
    return {
        "type": "window",
        **base,
        "label": pred.label,
        "score": pred.score,
        "scores": pred.scores,
    }
