"""A recording's results on disk, each file written atomically:

* ``<stem>.segments.csv``: one row per segment (file, speaker, start, end, duration, text,
  label, score, one column per label), then failed segments with their reason;
* ``<stem>.speakers.csv``: one row per speaker and one for the whole recording (segments,
  seconds, speech share, top label, ``share_<label>`` time shares, ``mean_<label>`` scores);
* ``<stem>.emotion.json``: all of the above in one document;
* ``<stem>.curve.csv`` (with a frame curve): time, speaker, segment index and the smoothed
  probabilities, one row per frame (50 Hz).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import write_text
from .recording import FRAME_SECONDS, RecordingResult

__all__ = ["output_paths", "write_recording"]


def output_paths(out_dir: Path, recording: Path) -> dict[str, Path]:
    """Where :func:`write_recording` puts each output of ``recording``."""
    stem = recording.stem
    return {
        "segments": out_dir / f"{stem}.segments.csv",
        "speakers": out_dir / f"{stem}.speakers.csv",
        "json": out_dir / f"{stem}.emotion.json",
        "curve": out_dir / f"{stem}.curve.csv",
        "png": out_dir / f"{stem}.timeline.png",
        "html": out_dir / f"{stem}.timeline.html",
    }


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow(
            ["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row]
        )
    return buf.getvalue()


def _finite(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def recording_document(result: RecordingResult, source: str | None = None) -> dict[str, Any]:
    """Everything about one recording as a JSON-ready dict."""
    return {
        "format": "emotion2vec.segments/1",
        "file": str(result.path),
        "duration": result.duration,
        "segment_source": source,
        "labels": result.labels,
        "segments": [
            {
                "start": s.segment.start,
                "end": s.segment.end,
                "speaker": s.segment.speaker,
                "text": s.segment.text,
                "channel": s.segment.channel,
                "label": s.prediction.label,
                "score": s.prediction.score,
                "scores": s.prediction.scores,
            }
            for s in result.segments
        ],
        "failed": [
            {"start": seg.start, "end": seg.end, "speaker": seg.speaker, "reason": reason}
            for seg, reason in result.failures
        ],
        "speakers": [
            {
                **{k: _finite(v) if isinstance(v, float) else v for k, v in row.items()},
                "share": {k: _finite(v) for k, v in row["share"].items()},
                "mean": {k: _finite(v) for k, v in row["mean"].items()},
            }
            for row in result.summary()
        ],
    }


def write_recording(
    result: RecordingResult, out_dir: Path, *, source: str | None = None
) -> dict[str, Path]:
    """Write the segment, speaker, JSON and (when computed) curve files; returns them."""
    paths = output_paths(out_dir, result.path)
    labels = result.labels
    rows: list[list[Any]] = [
        ["file", "speaker", "start", "end", "duration", "text", "label", "score", *labels, "error"]
    ]
    for s in result.segments:
        seg, p = s.segment, s.prediction
        rows.append(
            [
                str(result.path),
                seg.speaker,
                seg.start,
                seg.end,
                seg.duration,
                seg.text,
                p.label,
                p.score,
                *(p.scores[n] for n in labels),
                None,
            ]
        )
    for seg, reason in result.failures:
        rows.append(
            [str(result.path), seg.speaker, seg.start, seg.end, seg.duration, seg.text, None, None]
            + [None] * len(labels)
            + [reason]
        )
    written = {"segments": write_text(paths["segments"], _csv(rows))}

    summary = result.summary()
    srows: list[list[Any]] = [
        ["speaker", "segments", "seconds", "speech_share", "label"]
        + [f"share_{n}" for n in labels]
        + [f"mean_{n}" for n in labels]
    ]
    for row in summary:
        srows.append(
            [row["speaker"], row["segments"], row["seconds"], row["speech_share"], row["label"]]
            + [row["share"][n] for n in labels]
            + [row["mean"][n] for n in labels]
        )
    written["speakers"] = write_text(paths["speakers"], _csv(srows))
    doc = recording_document(result, source)
    written["json"] = write_text(paths["json"], json.dumps(doc, indent=1, allow_nan=False) + "\n")
    if any(s.curve is not None for s in result.segments):
        crows: list[list[Any]] = [["time", "speaker", "segment", *labels]]
        for index, s in enumerate(result.segments):
            if s.curve is None:
                continue
            for t, probs in enumerate(s.curve):
                crows.append(
                    [round(s.segment.start + t * FRAME_SECONDS, 3), s.segment.speaker, index]
                    + [float(x) for x in probs]
                )
        written["curve"] = write_text(paths["curve"], _csv(crows))
    return written
