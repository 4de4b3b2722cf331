"""Dynamic batching: concurrent requests share padded model batches.

Requests put 16 kHz waveforms into one queue; a single model thread takes the oldest waiting
inputs as soon as they fill :attr:`batch_seconds` of padded audio (longest x count) or the first
of them has waited ``max_wait_ms``, runs them as one padded batch with
:func:`emotion2vec.inference.encode` and hands each request its own row. Padding never changes a
result (see :mod:`emotion2vec.inference`), so a request gets exactly what it would get alone.

The event loop never runs the model: :meth:`DynamicBatcher.encode` awaits a future that the
model thread completes. Nothing here knows about HTTP, so it is tested on its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..errors import Emotion2vecError
from ..inference import encode
from .metrics import Metrics


class QueueFull(Emotion2vecError):
    """More inputs are waiting for the model than the service allows: retry later."""


class BatcherClosed(Emotion2vecError):
    """The service is shutting down and takes no new inputs."""


@dataclass
class Encoded:
    """The model's outputs for one input."""

    embedding: torch.Tensor
    """(D,) utterance embedding (mean of the last block's frames)."""
    logits: torch.Tensor | None
    """(C,) emotion head logits, None for a model without a head."""
    frames: torch.Tensor | None = None
    """(T, D) frame features of the last block, when asked for."""


#: ``run(waves, want_frames) -> one Encoded per wave``: what the model thread calls per batch.
BatchRunner = Callable[[Sequence[np.ndarray], Sequence[bool]], list[Encoded]]


def model_runner(model) -> BatchRunner:
    """The batch runner of a model: one padded :func:`~emotion2vec.inference.encode` call."""

    def run(waves: Sequence[np.ndarray], want_frames: Sequence[bool]) -> list[Encoded]:
        frames, pooled, logits = encode(model, waves)
        return [
            Encoded(
                embedding=pooled[i, 0].clone(),
                logits=None if logits is None else logits[i].clone(),
                # a copy, so that one request's frames do not keep the whole batch alive
                frames=frames[i][0].clone() if want else None,
            )
            for i, want in enumerate(want_frames)
        ]

    return run


@dataclass
class _Job:
    wave: np.ndarray
    want_frames: bool
    future: Future
    arrived: float


class DynamicBatcher:
    """Gathers inputs into padded batches run by one model thread.

    batch_seconds: padded audio (longest input x inputs) per batch at 16 kHz; an input longer
    than that runs alone. max_wait_ms: how long the oldest waiting input waits for company.
    max_queue: inputs allowed to wait; :meth:`submit` raises :class:`QueueFull` beyond it.
    """

    def __init__(
        self,
        run_batch: BatchRunner,
        *,
        batch_seconds: float = 60.0,
        max_wait_ms: float = 10.0,
        max_queue: int = 64,
        metrics: Metrics | None = None,
    ):
        self.run_batch = run_batch
        self.budget = int(batch_seconds * SAMPLE_RATE)
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self._pending: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="emotion2vec-model", daemon=True)
        self._thread.start()

    # -- the request side (any thread) ---------------------------------------------------------

    @property
    def queue_length(self) -> int:
        """Inputs waiting for the model (not counting the batch being run)."""
        return len(self._pending)

    def submit(self, wave: np.ndarray, *, frames: bool = False) -> Future:
        """Queue one float32 16 kHz waveform (N,); the future gives its :class:`Encoded`."""
        with self._cond:
            if self._closing:
                raise BatcherClosed("the service is shutting down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} inputs are waiting for the model")
            job = _Job(np.asarray(wave, dtype=np.float32), frames, Future(), time.monotonic())
            self._pending.append(job)
            self.metrics.queue_length = len(self._pending)
            self._cond.notify()
        return job.future

    async def encode(self, wave: np.ndarray, *, frames: bool = False) -> Encoded:
        """:meth:`submit` for the event loop: awaits the result without blocking the loop
        (cancelling the await drops the input if it has not run yet)."""
        return await asyncio.wrap_future(self.submit(wave, frames=frames))

    def close(self, timeout: float | None = None) -> None:
        """Take no new inputs, finish the waiting ones, stop the model thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- the model thread ----------------------------------------------------------------------

    def _fitting(self) -> int:
        """How many of the oldest waiting inputs fit in one batch (at least one)."""
        longest, count = 0, 0
        for job in self._pending:
            longest = max(longest, len(job.wave))
            if count and longest * (count + 1) > self.budget:
                break
            count += 1
        return count

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None  # closing, and nothing left to finish
            deadline = self._pending[0].arrived + self.max_wait
            while not self._closing and self._fitting() == len(self._pending):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._pending.popleft() for _ in range(self._fitting())]
            self.metrics.queue_length = len(self._pending)
        # a request that gave up (timeout, client gone) cancelled its future: skip it
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:
                continue
            waves = [job.wave for job in batch]
            try:
                results = self.run_batch(waves, [job.want_frames for job in batch])
            except Exception as exc:  # one failed batch must not stop the service
                for job in batch:
                    job.future.set_exception(exc)
                continue
            lengths = [len(w) for w in waves]
            self.metrics.batch(
                len(batch),
                max(lengths) * len(batch) / SAMPLE_RATE,
                sum(lengths) / SAMPLE_RATE,
            )
            for job, result in zip(batch, results, strict=True):
                job.future.set_result(result)
