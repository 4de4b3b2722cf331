"""Service metrics in the Prometheus text exposition format (version 0.0.4), written by hand so
that the service needs no metrics dependency.

Counters and histograms are updated from the event loop and from the model thread, hence the
lock.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict

#: Upper bounds (seconds) of the request latency histogram.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Upper bounds of the batch size histogram (inputs per model batch).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
#: Upper bounds (seconds) of the padded audio per batch histogram.
BATCH_AUDIO_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""

    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    body = ",".join(f'{k}="{escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _number(x: float) -> str:
    if math.isinf(x):
        return "+Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class Histogram:
    """Cumulative buckets, sum and count of observed values."""

    def __init__(self, buckets: tuple[float, ...]):
        self.bounds = tuple(buckets) + (math.inf,)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{le="{_number(bound)}"}} {running}')
        out.append(f"{name}_sum {_number(self.sum)}")
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """What ``GET /metrics`` reports: requests and errors by endpoint and status, request
    latency, model batch sizes and padded seconds, audio seconds processed, queue length."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.errors: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_SIZE_BUCKETS)
        self.batch_audio = Histogram(BATCH_AUDIO_BUCKETS)
        self.audio_seconds = 0.0
        self.queue_length = 0

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """One finished HTTP request (or WebSocket stream) and its latency."""
        with self._lock:
            self.requests[(("endpoint", endpoint), ("status", str(status)))] += 1
            if status >= 400:
                self.errors[(("endpoint", endpoint), ("status", str(status)))] += 1
            self.latency.observe(seconds)

    def batch(self, size: int, padded_seconds: float, audio_seconds: float) -> None:
        """One model batch: inputs, padded seconds (longest x size), valid audio seconds."""
        with self._lock:
            self.batch_size.observe(size)
            self.batch_audio.observe(padded_seconds)
            self.audio_seconds += audio_seconds

    def render(self) -> str:
        """The exposition text."""
        with self._lock:
            out = [
                "# HELP emotion2vec_requests_total Requests answered, by endpoint and status.",
                "# TYPE emotion2vec_requests_total counter",
            ]
            out += [f"emotion2vec_requests_total{_labels(k)} {v}" for k, v in self.requests.items()]
            out += [
                "# HELP emotion2vec_errors_total Requests answered with a 4xx or 5xx status.",
                "# TYPE emotion2vec_errors_total counter",
            ]
            out += [f"emotion2vec_errors_total{_labels(k)} {v}" for k, v in self.errors.items()]
            for name, help_, hist in (
                ("emotion2vec_request_seconds", "Request latency in seconds.", self.latency),
                ("emotion2vec_batch_size", "Inputs per model batch.", self.batch_size),
                (
                    "emotion2vec_batch_padded_seconds",
                    "Padded audio seconds per model batch.",
                    self.batch_audio,
                ),
            ):
                out += [f"# HELP {name} {help_}", f"# TYPE {name} histogram", *hist.lines(name)]
            out += [
                "# HELP emotion2vec_audio_seconds_total Audio seconds run through the model.",
                "# TYPE emotion2vec_audio_seconds_total counter",
                f"emotion2vec_audio_seconds_total {_number(self.audio_seconds)}",
                "# HELP emotion2vec_queue_length Inputs waiting for the model.",
                "# TYPE emotion2vec_queue_length gauge",
                f"emotion2vec_queue_length {self.queue_length}",
            ]
        return "\n".join(out) + "\n"


def parse(text: str) -> dict[str, float]:
    """Exposition text -> {``name{labels}``: value} (comments skipped); raises ValueError on a
    malformed line. Used by the tests and the load benchmark."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if not key:
            raise ValueError(f"malformed metrics line: {line!r}")
        values[key] = float(value)
    return values
