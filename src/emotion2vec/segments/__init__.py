"""Emotion in real recordings: segments from diarisation / ASR tools or a voice-activity
detector, emotion per segment, per speaker and over time, and timelines to look at.

* :mod:`.readers`: RTTM, pyannote JSON, WhisperX JSON, CSV/TSV/JSONL tables -> :class:`Segment`;
* :mod:`.vad`: Silero VAD (``pip install 'emotion2vec[segments]'``);
* :mod:`.recording`: :func:`analyse_recording` (segment scores, speaker summaries, frame curve);
* :mod:`.outputs`: the CSV / JSON files; :mod:`.timeline`: the PNG and the HTML page;
* :mod:`.job`: many recordings with their segments (``emotion2vec predict --segments``).
"""

from .job import SegmentJob, resolve_segments, segment_recordings
from .outputs import output_paths, write_recording
from .readers import SEGMENT_FORMATS, Segment, read_segments, segments_for
from .recording import RecordingResult, SegmentResult, analyse_recording
from .timeline import write_html_timeline, write_png_timeline
from .vad import VadConfig, detect_speech

__all__ = [
    "SEGMENT_FORMATS",
    "RecordingResult",
    "Segment",
    "SegmentJob",
    "SegmentResult",
    "VadConfig",
    "analyse_recording",
    "detect_speech",
    "output_paths",
    "read_segments",
    "resolve_segments",
    "segment_recordings",
    "segments_for",
    "write_html_timeline",
    "write_png_timeline",
    "write_recording",
]
