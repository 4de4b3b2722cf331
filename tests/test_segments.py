"""Emotion in recordings: segment readers, per-segment exactness, speaker summaries, the VAD,
the frame curve, the outputs and the timelines (PNG, HTML in a real headless browser)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from model_factory import build_model

from emotion2vec.errors import DataError
from emotion2vec.model.feature_extractor import frames_after
from emotion2vec.segments import (
    Segment,
    analyse_recording,
    detect_speech,
    read_segments,
    segments_for,
    write_html_timeline,
    write_png_timeline,
    write_recording,
)
from emotion2vec.segments.recording import FRAME_SECONDS, moving_average

SR = 16000
SHARED = Path(os.environ.get("EMOTION2VEC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
RAVDESS = SHARED / "data" / "ravdess_speech"
SILENCE = 1.0


def _clips() -> list[tuple[str, np.ndarray]]:
    """Four clips, two actors (speakers A and B); RAVDESS when present, else synthetic."""
    if (RAVDESS / "audio").is_dir():
        names = [
            "Actor_01/03-01-05-01-01-01-01.flac",
            "Actor_02/03-01-03-01-01-01-02.flac",
            "Actor_01/03-01-04-01-02-01-01.flac",
            "Actor_02/03-01-01-01-01-02-02.flac",
        ]
        return [
            ("A" if "Actor_01" in n else "B", sf.read(RAVDESS / "audio" / n, dtype="float32")[0])
            for n in names
        ]
    rng = np.random.default_rng(0)
    out = []
    for i, f in enumerate((220.0, 330.0, 440.0, 550.0)):
        t = np.arange(int(1.6 * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        out.append(("AB"[i % 2], (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)))
    return out


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    """A recording of four clips separated by 1 s of silence, with an RTTM and a WhisperX
    JSON describing it; returns (path, clips, segments)."""
    folder = tmp_path_factory.mktemp("conversation")
    clips = _clips()
    pieces, segments, t = [np.zeros(int(SILENCE * SR), np.float32)], [], SILENCE
    for speaker, wave in clips:
        pieces += [wave, np.zeros(int(SILENCE * SR), np.float32)]
        segments.append(Segment(t, t + len(wave) / SR, speaker))
        t += len(wave) / SR + SILENCE
    path = folder / "meeting.wav"
    sf.write(path, np.concatenate(pieces), SR, subtype="FLOAT")
    (folder / "meeting.rttm").write_text(
        "".join(
            f"SPEAKER meeting 1 {s.start:.6f} {s.duration:.6f} <NA> <NA> {s.speaker} <NA> <NA>\n"
            for s in segments
        )
        + "SPEAKER other 1 0.0 1.0 <NA> <NA> C <NA> <NA>\n"
    )
    (folder / "meeting.json").write_text(
        json.dumps(
            {
                "segments": [
                    {"start": s.start, "end": s.end, "text": f"utterance {i}", "speaker": s.speaker}
                    for i, s in enumerate(segments)
                ],
                "language": "en",
            }
        )
    )
    return path, clips, segments


@pytest.fixture(scope="module")
def model():
    return build_model(5, decoder=False)


def test_readers_agree_on_the_conversation(conversation, tmp_path):
    path, _, segments = conversation
    kind, rttm = read_segments(path.with_suffix(".rttm"))
    assert kind == "rttm" and sorted(k for k in rttm) == ["meeting", "other"]
    from_rttm = segments_for(path, rttm, "rttm")
    kind, whisper = read_segments(path.with_suffix(".json"))
    assert kind == "whisperx"
    from_json = segments_for(path, whisper, "json")
    assert [s.speaker for s in from_rttm] == [s.speaker for s in segments]
    assert [s.start for s in from_rttm] == pytest.approx([s.start for s in segments], abs=1e-5)
    for a, b in zip(from_rttm, from_json, strict=True):
        assert (
            abs(a.start - b.start) < 1e-5 and abs(a.end - b.end) < 1e-5 and a.speaker == b.speaker
        )
    assert from_json[2].text == "utterance 2" and from_rttm[0].text is None
    # pyannote's Annotation JSON and a CSV table
    (tmp_path / "p.json").write_text(
        json.dumps(
            {
                "pyannote": "Annotation",
                "uri": "meeting",
                "modality": "speaker",
                "content": [
                    {"segment": {"start": 2.0, "end": 3.5}, "track": "A", "label": "SPK_1"},
                    {"segment": {"start": 0.5, "end": 1.0}, "track": "B", "label": "SPK_0"},
                ],
            }
        )
    )
    kind, found = read_segments(tmp_path / "p.json")
    assert kind == "pyannote" and [s.speaker for s in found["meeting"]] == ["SPK_0", "SPK_1"]
    (tmp_path / "t.csv").write_text("start_time,end_time,speaker,text\n0.5,1.25,x,hi\n")
    kind, found = read_segments(tmp_path / "t.csv")
    assert kind == "table" and found[None] == [Segment(0.5, 1.25, "x", "hi")]


def test_bad_segment_files_name_the_file_and_line(tmp_path):
    (tmp_path / "a.rttm").write_text("SPEAKER rec 1 2.0 -1.0 <NA> <NA> A <NA> <NA>\n")
    with pytest.raises(DataError, match=r"a\.rttm:1: end 1\.0 is not after start 2\.0"):
        read_segments(tmp_path / "a.rttm")
    (tmp_path / "b.json").write_text('{"words": []}')
    with pytest.raises(DataError, match=r"b\.json: not a segment document"):
        read_segments(tmp_path / "b.json")
    (tmp_path / "c.csv").write_text("begin,stop\n1,2\n")
    with pytest.raises(DataError, match="no start column"):
        read_segments(tmp_path / "c.csv")
    (tmp_path / "two.rttm").write_text(
        "SPEAKER x 1 0 1 <NA> <NA> A <NA> <NA>\nSPEAKER y 1 0 1 <NA> <NA> A <NA> <NA>\n"
    )
    _, found = read_segments(tmp_path / "two.rttm")
    with pytest.raises(DataError, match="describes 2 recordings .* none named 'meeting'"):
        segments_for(tmp_path / "meeting.wav", found, "two.rttm")


def test_each_segment_scores_as_the_cut_segment_alone(conversation, model):
    path, clips, segments = conversation
    result = analyse_recording(model, path, segments, progress=False)
    assert [s.segment for s in result.segments] == segments and not result.failures
    alone = model.predict([wave for _, wave in clips], sample_rate=SR)
    for got, want in zip(result.segments, alone, strict=True):
        assert got.prediction.label == want.label
        diff = max(abs(got.prediction.scores[n] - want.scores[n]) for n in want.scores)
        assert diff < 1e-4
    # speaker summaries: durations, shares and duration-weighted means
    rows = {r["speaker"]: r for r in result.summary()}
    assert set(rows) == {"A", "B", "(recording)"}
    a = [s for s in result.segments if s.segment.speaker == "A"]
    seconds = sum(s.segment.duration for s in a)
    assert rows["A"]["segments"] == 2 and rows["A"]["seconds"] == pytest.approx(seconds)
    weighted = sum(s.segment.duration * s.prediction.scores["happy"] for s in a) / seconds
    assert rows["A"]["mean"]["happy"] == pytest.approx(weighted)
    assert sum(rows["A"]["share"].values()) == pytest.approx(1.0)
    assert rows["(recording)"]["segments"] == 4
    assert rows["A"]["speech_share"] + rows["B"]["speech_share"] == pytest.approx(1.0)


def test_label_subsets_and_the_frame_curve(conversation, model):
    path, _, segments = conversation
    result = analyse_recording(
        model, path, segments, labels="angry,happy,neutral,sad", curve=True, smooth_seconds=0.0
    )
    assert result.labels == ["angry", "happy", "neutral", "sad"]
    seg = result.segments[0]
    frames = frames_after(round(segments[0].duration * SR), model.config.encoder.conv_layers)
    assert seg.curve.shape == (frames, 4)
    np.testing.assert_allclose(seg.curve.sum(axis=1), 1.0, atol=1e-5)
    # the head is linear: the mean of per-frame logits is the utterance's logits
    logits = np.log(seg.curve)
    mean_logits = (logits - logits.mean(axis=1, keepdims=True)).mean(axis=0)
    utter = np.log([seg.prediction.scores[n] for n in result.labels])
    np.testing.assert_allclose(mean_logits, utter - utter.mean(), atol=1e-3)
    # smoothing is a centred moving average with shrinking edges
    x = np.arange(10, dtype=np.float32)[:, None]
    np.testing.assert_allclose(moving_average(x, 3)[:, 0], [0.5, 1, 2, 3, 4, 5, 6, 7, 8, 8.5])


def test_outputs_are_written_with_failures_kept(conversation, model, tmp_path):
    path, _, segments = conversation
    too_short = Segment(0.1, 0.101, "A")
    result = analyse_recording(model, path, [*segments, too_short], curve=True)
    assert len(result.segments) == 4 and result.failures[0][0] == too_short
    written = write_recording(result, tmp_path, source="rttm")
    rows = list(csv.DictReader(open(written["segments"])))
    assert len(rows) == 5 and rows[-1]["error"] and not rows[0]["error"]
    assert float(rows[0]["start"]) == pytest.approx(segments[0].start, abs=1e-5)
    speakers = list(csv.DictReader(open(written["speakers"])))
    assert [r["speaker"] for r in speakers] == ["A", "B", "(recording)"]
    doc = json.loads(written["json"].read_text())
    assert doc["segment_source"] == "rttm" and len(doc["segments"]) == 4 and len(doc["failed"]) == 1
    curve = list(csv.DictReader(open(written["curve"])))
    assert len(curve) == sum(len(s.curve) for s in result.segments)
    assert float(curve[1]["time"]) - float(curve[0]["time"]) == pytest.approx(
        FRAME_SECONDS, abs=1e-3
    )


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="silero-vad absent")
def test_the_vad_finds_the_clips(conversation):
    path, _, segments = conversation
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        found = detect_speech(path)
        assert torch.get_num_threads() == 2  # importing silero_vad sets 1; that is undone
    finally:
        torch.set_num_threads(threads)
    if not (RAVDESS / "audio").is_dir():
        pytest.skip("synthetic tones are not speech; the VAD check needs RAVDESS")
    # every clip is covered by a detected segment that starts near it (RAVDESS clips begin and
    # end with some silence of their own, so detected speech sits inside the clip)
    for s in segments:
        overlap = [f for f in found if f.start < s.end and f.end > s.start]
        assert overlap, f"no speech found in {s}"
        assert all(s.start - 0.1 <= f.start and f.end <= s.end + 0.1 for f in overlap)


def test_png_timeline(conversation, model, tmp_path):
    path, _, segments = conversation
    result = analyse_recording(model, path, segments)
    png = write_png_timeline(result, tmp_path / "t.png")
    import matplotlib.image as mpimg

    image = mpimg.imread(png)
    assert image.shape[0] > 200 and image.shape[1] > 600
    # the colour of every label appears (stacked bars and legend)
    from emotion2vec.segments.timeline import colours

    pixels = (image[..., :3] * 255).round().astype(int).reshape(-1, 3)
    present = {tuple(p) for p in pixels[:: max(1, len(pixels) // 200000)]}
    for name, hexcolour in colours(result.labels).items():
        rgb = tuple(int(hexcolour[i : i + 2], 16) for i in (1, 3, 5))
        assert any(max(abs(a - b) for a, b in zip(rgb, p, strict=True)) <= 3 for p in present), name


def _chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed")
def test_html_timeline_in_a_real_headless_browser(conversation, model, tmp_path):
    path, _, segments = conversation
    result = analyse_recording(model, path, segments, curve=True)
    page = write_html_timeline(result, tmp_path / "t.html")
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and 'src="data:audio/' in text
    browser = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*browser, "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-ready="1"' in dom  # the script ran to the end
    assert (
        dom.count('class="lane"') == 2 and 'data-speaker="A"' in dom and 'data-speaker="B"' in dom
    )
    assert dom.count('class="segment"') == 4
    assert dom.count('class="legend-item"') == len(result.labels)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            *browser,
            "--virtual-time-budget=3000",
            "--window-size=1200,500",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    import matplotlib.image as mpimg

    pixels = (mpimg.imread(shot)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    from emotion2vec.segments.timeline import colours

    seen = {tuple(p) for p in pixels}
    found = [
        name
        for name, hexcolour in colours(result.labels).items()
        if tuple(int(hexcolour[i : i + 2], 16) for i in (1, 3, 5)) in seen
    ]
    assert len(found) >= len(result.labels) - 1, found  # lanes and legend are drawn


def test_predict_segments_from_the_cli(conversation, model, tmp_path, capsys):
    from emotion2vec.cli import main

    path, _, segments = conversation
    model.save_pretrained(tmp_path / "m")
    lonely = tmp_path / "lonely.wav"
    sf.write(lonely, np.zeros(SR, np.float32), SR)
    out = tmp_path / "out"
    argv = ["predict", str(path), str(lonely), "--model", str(tmp_path / "m"), "--device", "cpu"]
    code = main(
        [
            *argv,
            "--segments",
            str(path.with_suffix(".rttm")),
            "--timeline",
            "png,html",
            "--frame-curve",
            "-o",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    # lonely.wav is not in the RTTM: it fails alone, the meeting's files are written
    assert code == 1 and "none named 'lonely'" in captured.err
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "meeting.curve.csv",
        "meeting.emotion.json",
        "meeting.segments.csv",
        "meeting.speakers.csv",
        "meeting.timeline.html",
        "meeting.timeline.png",
    ]
    doc = json.loads((out / "meeting.emotion.json").read_text())
    direct = analyse_recording(model, path, segments)
    assert [s["label"] for s in doc["segments"]] == [s.prediction.label for s in direct.segments]
    assert "(recording)" in captured.out and "4 segment(s)" in captured.out
    # a folder of per-recording segment files, WhisperX this time, with a label subset
    folder = tmp_path / "segs"
    folder.mkdir()
    shutil.copy(path.with_suffix(".json"), folder / "meeting.json")
    assert (
        main(
            [
                *argv[:2],
                *argv[3:],
                "--segments",
                str(folder),
                "--labels",
                "angry,happy,neutral,sad",
                "-o",
                str(tmp_path / "o2"),
                "-q",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "o2" / "meeting.segments.csv")))
    assert rows[2]["text"] == "utterance 2" and "angry" in rows[0] and "fearful" not in rows[0]
    # options that make no sense here are usage errors
    assert (
        main([*argv[:2], *argv[3:], "--segments", "vad", "--window-seconds", "5", "-o", "x"]) == 2
    )
    assert main([*argv[:2], *argv[3:], "--timeline", "png"]) == 2
