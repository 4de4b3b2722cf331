"""Segments of a recording from the tools people run before emotion recognition.

Formats read (:func:`read_segments` tells them apart by suffix and content):

* **RTTM** (diarisation, NIST): ``SPEAKER <uri> <channel> <onset> <duration> <NA> <NA>
  <speaker> <NA> <NA>`` per line; other line types are ignored. One file may describe several
  recordings (``uri``, usually the file stem).
* **pyannote JSON**: ``pyannote.core.Annotation.for_json()`` (``{"pyannote": "Annotation",
  "uri": ..., "content": [{"segment": {"start", "end"}, "track", "label"}]}``) or a
  ``{"diarization": [{"start", "end", "speaker"}]}`` document (pyannoteAI's output).
* **WhisperX JSON**: ``{"segments": [{"start", "end", "text", "speaker"?}, ...]}``.
* **CSV / TSV / JSONL tables**: columns ``start``, ``end`` (seconds; ``start_time``/``end_time``
  and ``onset``/``offset`` read too), optional ``speaker``, ``text``, ``channel`` and ``file``
  (``path``/``uri``/``recording``: which recording the row belongs to).

Every reader returns :class:`Segment` lists keyed by recording name (``None`` when the format
does not say). :func:`segments_for` picks the segments of one audio file: the entries named by
its stem or file name, or the only recording of a file that names one recording (or none).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..jsonlines import json_objects

__all__ = ["SEGMENT_FORMATS", "Segment", "read_segments", "segments_for"]

#: What :func:`read_segments` reads.
SEGMENT_FORMATS: tuple[str, ...] = ("rttm", "pyannote", "whisperx", "table")


@dataclass(frozen=True)
class Segment:
    """One stretch of a recording, in seconds from its start."""

    start: float
    end: float
    speaker: str | None = None
    text: str | None = None
    channel: int | None = None
    """1-based channel (None: the channels are averaged)."""

    @property
    def duration(self) -> float:
        return self.end - self.start


def _number(value: Any, where: str, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(x):
        raise DataError(f"{where}: {what} must be finite, got {value!r}")
    return x


def _segment(where: str, start: Any, end: Any, **rest: Any) -> Segment:
    a, b = _number(start, where, "start"), _number(end, where, "end")
    if a < 0:
        raise DataError(f"{where}: start {a} is negative")
    if b <= a:
        raise DataError(f"{where}: end {b} is not after start {a}")
    speaker = rest.get("speaker")
    text = rest.get("text")
    channel = rest.get("channel")
    if channel is not None:
        try:
            channel = int(channel)
        except (TypeError, ValueError):
            raise DataError(f"{where}: channel must be an integer, got {channel!r}") from None
        if channel < 1:
            raise DataError(f"{where}: channel must be 1 or more, got {channel}")
    return Segment(
        a,
        b,
        None if speaker in (None, "") else str(speaker),
        None if text in (None, "") else str(text).strip(),
        channel,
    )


def read_rttm(path: Path) -> dict[str | None, list[Segment]]:
    """RTTM ``SPEAKER`` lines, keyed by ``uri``."""
    out: dict[str | None, list[Segment]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[0] != "SPEAKER":
                continue
            where = f"{path}:{number}"
            if len(fields) < 8:
                raise DataError(f"{where}: an RTTM SPEAKER line has at least 8 fields")
            onset = _number(fields[3], where, "onset")
            duration = _number(fields[4], where, "duration")
            channel = None if fields[2] in ("<NA>", "1") else fields[2]
            out.setdefault(fields[1], []).append(
                _segment(where, onset, onset + duration, speaker=fields[7], channel=channel)
            )
    return out


def _from_json(path: Path, doc: Any) -> tuple[str, dict[str | None, list[Segment]]]:
    if isinstance(doc, dict) and doc.get("pyannote") == "Annotation":
        rows = doc.get("content") or []
        segs = []
        for i, r in enumerate(rows):
            seg = r.get("segment") or {}
            segs.append(
                _segment(
                    f"{path}: content[{i}]",
                    seg.get("start"),
                    seg.get("end"),
                    speaker=r.get("label"),
                )
            )
        return "pyannote", {doc.get("uri"): segs}
    if isinstance(doc, dict) and isinstance(doc.get("diarization"), list):
        segs = [
            _segment(
                f"{path}: diarization[{i}]", r.get("start"), r.get("end"), speaker=r.get("speaker")
            )
            for i, r in enumerate(doc["diarization"])
        ]
        return "pyannote", {doc.get("uri"): segs}
    if isinstance(doc, dict) and isinstance(doc.get("segments"), list):
        segs = [
            _segment(
                f"{path}: segments[{i}]",
                r.get("start"),
                r.get("end"),
                speaker=r.get("speaker"),
                text=r.get("text"),
            )
            for i, r in enumerate(doc["segments"])
        ]
        return "whisperx", {None: segs}
    raise DataError(
        f"{path}: not a segment document: expected pyannote's Annotation JSON, a "
        '{"diarization": [...]} or a WhisperX {"segments": [...]} document'
    )


_START = ("start", "start_time", "onset")
_END = ("end", "end_time", "offset")
_FILE = ("file", "path", "uri", "recording")


def _pick(row: dict[str, Any], names: Sequence[str]) -> Any:
    for n in names:
        if n in row and row[n] not in (None, ""):
            return row[n]
    return None


def _table_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            return [row for _, row in json_objects(f, path)]
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))


def read_table(path: Path) -> dict[str | None, list[Segment]]:
    """A CSV / TSV / JSONL table of segments, keyed by its file column (None without one)."""
    rows = _table_rows(path)
    if rows and (_pick(rows[0], _START) is None and not any(k in rows[0] for k in _START)):
        raise DataError(f"{path}: no start column (one of {', '.join(_START)})")
    out: dict[str | None, list[Segment]] = {}
    for i, row in enumerate(rows, start=2 if path.suffix.lower() in (".csv", ".tsv") else 1):
        where = f"{path}:{i}"
        key = _pick(row, _FILE)
        out.setdefault(None if key is None else str(key), []).append(
            _segment(
                where,
                _pick(row, _START),
                _pick(row, _END),
                speaker=row.get("speaker"),
                text=row.get("text"),
                channel=row.get("channel") or None,
            )
        )
    return out


def read_segments(
    path: str | os.PathLike[str], format: str | None = None
) -> tuple[str, dict[str | None, list[Segment]]]:
    """``(format, {recording name or None: segments in time order})`` of a segment file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: segment file not found")
    suffix = path.suffix.lower()
    if format not in (None, *SEGMENT_FORMATS):
        raise DataError(f"unknown segment format {format!r}; use one of {SEGMENT_FORMATS}")
    try:
        if format == "rttm" or (format is None and suffix == ".rttm"):
            kind, found = "rttm", read_rttm(path)
        elif format in ("pyannote", "whisperx") or (format is None and suffix == ".json"):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise DataError(f"{path}: not valid JSON ({exc})") from None
            kind, found = _from_json(path, doc)
        elif format == "table" or suffix in (".csv", ".tsv", ".jsonl", ".ndjson"):
            kind, found = "table", read_table(path)
        else:
            raise DataError(
                f"{path}: cannot tell the segment format from {suffix!r}; name it .rttm, .json, "
                ".csv, .tsv or .jsonl"
            )
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    return kind, {k: sorted(v, key=lambda s: (s.start, s.end)) for k, v in found.items()}


def segments_for(
    audio: str | os.PathLike[str], found: dict[str | None, list[Segment]], source: object
) -> list[Segment]:
    """The segments of ``audio`` among a file's recordings: those named by its stem or file
    name; else those of the file's only recording."""
    audio = Path(audio)
    for name in (audio.stem, audio.name, str(audio)):
        if name in found:
            return found[name]
    if len(found) == 1:
        return next(iter(found.values()))
    named = sorted(k for k in found if k is not None)
    raise DataError(
        f"{source}: describes {len(found)} recordings ({', '.join(named[:5])}"
        f"{', ...' if len(named) > 5 else ''}), none named {audio.stem!r}"
    )
