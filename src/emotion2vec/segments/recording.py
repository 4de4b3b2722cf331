"""Emotion per segment, per speaker and over time for one recording.

Each segment is read from the file on its own (a channel and a time span, see
:class:`~emotion2vec.sources.AudioSource`) and goes through the batched, padding-exact job engine
(:func:`emotion2vec.jobs.run_model`) with the recording's other segments, so its scores are
those of the cut segment alone, and memory is bounded by the batch, not by the recording.

The per-speaker summary weights each segment by its duration: ``share`` is the fraction of the
speaker's time whose segment label is each emotion, ``mean`` the duration-weighted mean of the
segments' scores. The whole-recording row is the same over every segment.

**Frame-level curve** (``curve=True``). The emotion head is one linear layer applied to the mean
of the last block's frames, so the mean of the head's per-frame logits *is* the utterance's
logits. The curve applies the head to every frame (50 Hz), averages the logits over a centred
window of ``smooth_seconds`` inside the segment, then takes the softmax. This is an
extrapolation: the head was trained on utterance means, never on single frames or short
windows, and each frame already sees its whole segment through self-attention. Read it as
where in a segment the utterance-level evidence sits, not as a calibrated per-instant emotion.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import SAMPLE_RATE, audio_info
from ..errors import Emotion2vecError
from ..inference import Prediction, scored_indices
from ..jobs import NON_FINITE_SCORES, FileResult, JobSummary, file_prediction, run_model
from ..sources import AudioSource
from .readers import Segment

__all__ = ["FRAME_SECONDS", "RecordingResult", "SegmentResult", "analyse_recording"]

#: Time between two frames of the model (one per 320 samples at 16 kHz).
FRAME_SECONDS = 320 / SAMPLE_RATE

#: The speaker name of the whole-recording summary row.
ALL = "(recording)"


@dataclass
class SegmentResult:
    """One segment's emotion."""

    segment: Segment
    prediction: Prediction
    curve: np.ndarray | None = None
    """(T, C) smoothed per-frame probabilities (``curve=True``), frame t at
    ``segment.start + t * FRAME_SECONDS``."""


@dataclass
class RecordingResult:
    """A recording's segments, per-speaker summaries and failures."""

    path: Path
    labels: list[str]
    """The scored labels, in score order."""
    segments: list[SegmentResult]
    """In time order; failed segments are left out (see ``failures``)."""
    failures: list[tuple[Segment, str]] = field(default_factory=list)
    duration: float | None = None
    """Length of the recording in seconds, when known."""

    def speakers(self) -> list[str]:
        """Speakers in order of first appearance (``"?"`` for segments without one)."""
        seen: dict[str, None] = {}
        for s in self.segments:
            seen.setdefault(s.segment.speaker or "?", None)
        return list(seen)

    def summary(self) -> list[dict[str, Any]]:
        """One row per speaker, then the whole recording (speaker :data:`ALL`): segments,
        seconds, share of the speech time, top label, per-label time share and mean scores."""
        rows = []
        total = sum(s.segment.duration for s in self.segments)
        groups = {
            sp: [s for s in self.segments if (s.segment.speaker or "?") == sp]
            for sp in self.speakers()
        }
        groups[ALL] = list(self.segments)
        for speaker, members in groups.items():
            seconds = sum(s.segment.duration for s in members)
            weights = np.array([s.segment.duration for s in members], dtype=np.float64)
            scores = np.array(
                [[s.prediction.scores[n] for n in self.labels] for s in members], dtype=np.float64
            ).reshape(len(members), len(self.labels))
            mean = (
                (weights @ scores) / seconds if seconds > 0 else np.full(len(self.labels), np.nan)
            )
            share = {
                n: sum(s.segment.duration for s in members if s.prediction.label == n) / seconds
                if seconds > 0
                else float("nan")
                for n in self.labels
            }
            rows.append(
                {
                    "speaker": speaker,
                    "segments": len(members),
                    "seconds": seconds,
                    "speech_share": seconds / total if total > 0 else float("nan"),
                    "label": self.labels[int(np.nanargmax(mean))] if seconds > 0 else None,
                    "share": share,
                    "mean": dict(zip(self.labels, mean.tolist(), strict=True)),
                }
            )
        return rows


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over axis 0 with a window of ``width`` frames, shrinking at the
    edges (each output is the mean of the frames that exist)."""
    if width <= 1 or len(x) <= 1:
        return x
    half = width // 2
    csum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])
    idx = np.arange(len(x))
    lo = np.clip(idx - half, 0, len(x))
    hi = np.clip(idx + half + 1, 0, len(x))
    return ((csum[hi] - csum[lo]) / (hi - lo)[:, None]).astype(np.float32)


def analyse_recording(
    model,
    path: str | os.PathLike[str],
    segments: Sequence[Segment],
    *,
    labels: str | Sequence[str] | None = None,
    curve: bool = False,
    smooth_seconds: float = 0.5,
    batch_seconds: float = 60.0,
    workers: int = 2,
    progress: bool | None = None,
) -> RecordingResult:
    """Emotion of each segment of ``path`` (see the module notes).

    ``labels``: score only these labels (names or aliases, as in
    :func:`emotion2vec.inference.predict`). A segment that cannot be read or is too short for
    the model is reported in ``failures``; the others are kept.
    """
    if model.head is None:
        raise Emotion2vecError(
            "this model has no emotion head: use an emotion2vec_plus_* model or a fine-tuned one"
        )
    if smooth_seconds < 0:
        raise Emotion2vecError(f"smooth_seconds must not be negative, got {smooth_seconds}")
    subset = None
    if labels is not None:
        from ..labels import resolve

        subset = resolve(labels, model.labels)
    path = Path(path)
    sources = [
        AudioSource(path, f"{i}", channel=s.channel, start=s.start, end=s.end)
        for i, s in enumerate(segments)
    ]
    results: list[SegmentResult | None] = [None] * len(sources)
    failures: list[tuple[Segment, str]] = []
    device = next(model.parameters()).device
    width = max(1, round(smooth_seconds / FRAME_SECONDS))

    keep = scored_indices(model.labels, subset)

    def on_result(r: FileResult) -> None:
        i = int(r.source.key)
        scored = file_prediction(model, r, subset)  # the head, as predict applies it
        if scored is None:
            failures.append((segments[i], NON_FINITE_SCORES))
            return
        frame_probs = None
        if curve:
            with torch.inference_mode():
                frames = torch.from_numpy(r.frame_features()[-1]).to(device).float()  # (T, D)
                per_frame = model.head(frames)[:, keep].cpu().numpy()
            smoothed = torch.from_numpy(moving_average(per_frame, width))
            frame_probs = torch.softmax(smoothed, dim=-1).numpy()
        results[i] = SegmentResult(segments[i], scored.prediction, frame_probs)

    def on_failure(source: AudioSource, reason: str) -> None:
        failures.append((segments[int(source.key)], reason))

    run_model(
        model,
        sources,
        todo=range(len(sources)),
        on_result=on_result,
        on_failure=on_failure,
        keep_frames=curve,
        batch_seconds=batch_seconds,
        workers=workers,
        progress=progress,
        summary=JobSummary(total=len(sources)),
    )
    failures.sort(key=lambda f: (f[0].start, f[0].end))
    try:
        duration = audio_info(path).num_samples() / SAMPLE_RATE
    except Emotion2vecError:
        duration = None
    return RecordingResult(
        path=path,
        labels=[model.labels[i] for i in keep],
        segments=[r for r in results if r is not None],
        failures=failures,
        duration=duration,
    )
