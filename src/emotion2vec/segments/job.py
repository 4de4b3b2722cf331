"""Many recordings, each with its segments: what ``emotion2vec predict --segments`` runs.

Segments come from one of (``segments=``):

* ``"vad"``: Silero VAD on each recording (speaker unknown);
* a segment file (RTTM, pyannote / WhisperX JSON, CSV / TSV / JSONL): each recording takes the
  entries named by its stem (RTTM ``uri``, a table's ``file`` column) or, when the file
  describes one recording, all of them;
* a folder: each recording takes ``<folder>/<stem>.<rttm|json|csv|tsv|jsonl>``;
* a mapping ``{recording path: [Segment, ...]}`` (the Python API).

A recording that fails (no segments for it, unreadable) is reported and the others go on; each
finished recording's files are written as soon as it is done.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, Emotion2vecError
from .outputs import write_recording
from .readers import Segment, read_segments, segments_for
from .recording import RecordingResult, analyse_recording
from .timeline import write_html_timeline, write_png_timeline
from .vad import VadConfig, detect_speech

__all__ = ["SEGMENT_SUFFIXES", "SegmentJob", "resolve_segments", "segment_recordings"]

#: Suffixes looked for in a segment folder, in this order.
SEGMENT_SUFFIXES: tuple[str, ...] = (".rttm", ".json", ".csv", ".tsv", ".jsonl")

TIMELINES: tuple[str, ...] = ("png", "html")


@dataclass
class SegmentJob:
    """What :func:`segment_recordings` did."""

    results: list[RecordingResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(recording, reason) for recordings that could not be processed."""
    written: dict[str, dict[str, Path]] = field(default_factory=dict)
    """recording -> its output files."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and all(not r.failures for r in self.results)


def resolve_segments(
    recording: Path,
    segments: str | os.PathLike[str] | Mapping[str, Sequence[Segment]],
    vad: VadConfig | None = None,
) -> tuple[list[Segment], str]:
    """The segments of one recording and where they came from (see the module notes)."""
    if isinstance(segments, Mapping):
        for key in (str(recording), recording.name, recording.stem):
            if key in segments:
                return list(segments[key]), "given"
        raise DataError(f"{recording}: no segments given for it")
    if str(segments) == "vad":
        return detect_speech(recording, vad), "vad"
    source = Path(segments)
    if source.is_dir():
        for suffix in SEGMENT_SUFFIXES:
            candidate = source / f"{recording.stem}{suffix}"
            if candidate.is_file():
                source = candidate
                break
        else:
            raise DataError(
                f"{recording}: no segment file {recording.stem}"
                f"{{{','.join(SEGMENT_SUFFIXES)}}} in {segments}"
            )
    kind, found = read_segments(source)
    return segments_for(recording, found, source), f"{kind}:{source}"


def segment_recordings(
    model,
    recordings: Sequence[str | os.PathLike[str]],
    segments: str | os.PathLike[str] | Mapping[str, Sequence[Segment]],
    output: str | os.PathLike[str] | None = None,
    *,
    labels: str | Sequence[str] | None = None,
    curve: bool = False,
    smooth_seconds: float = 0.5,
    timelines: Sequence[str] = (),
    vad: VadConfig | None = None,
    batch_seconds: float = 60.0,
    workers: int = 2,
    progress: bool | None = None,
) -> SegmentJob:
    """Emotion per segment of each recording; with ``output``, each recording's files
    (:func:`~emotion2vec.segments.outputs.write_recording`, plus ``timelines``: ``png``
    and/or ``html``) are written there as it finishes."""
    unknown = [t for t in timelines if t not in TIMELINES]
    if unknown:
        raise Emotion2vecError(f"unknown timeline(s) {unknown}; use {list(TIMELINES)}")
    if timelines and output is None:
        raise Emotion2vecError("timelines are files: pass an output folder")
    out = Path(output) if output is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stems = [Path(r).stem for r in recordings]
        twice = sorted({s for s in stems if stems.count(s) > 1})
        if twice:
            raise DataError(
                f"recordings share a file name ({', '.join(twice[:3])}): their outputs would "
                "overwrite each other in one folder; run them separately"
            )
    job = SegmentJob()
    start = time.perf_counter()
    for recording in map(Path, recordings):
        try:
            found, origin = resolve_segments(recording, segments, vad)
            if not found:
                raise DataError(f"{recording}: no segments ({origin})")
            result = analyse_recording(
                model,
                recording,
                found,
                labels=labels,
                curve=curve,
                smooth_seconds=smooth_seconds,
                batch_seconds=batch_seconds,
                workers=workers,
                progress=progress,
            )
        except Emotion2vecError as exc:
            job.failures.append((str(recording), str(exc)))
            continue
        job.results.append(result)
        if out is not None:
            written = write_recording(result, out, source=origin)
            if "png" in timelines:
                written["png"] = write_png_timeline(result, out / f"{recording.stem}.timeline.png")
            if "html" in timelines:
                written["html"] = write_html_timeline(
                    result, out / f"{recording.stem}.timeline.html"
                )
            job.written[str(recording)] = written
    job.seconds = time.perf_counter() - start
    return job
