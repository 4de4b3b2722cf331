"""Manifest rows that are one channel and/or one time span of their file (EmoBox's channel,
start_time and end_time)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from model_factory import build_model

from emotion2vec.audio import load_audio
from emotion2vec.cli import EXIT_FAILED_INPUTS, EXIT_OK, main
from emotion2vec.errors import AudioError, DataError
from emotion2vec.sources import collect_sources


@pytest.fixture
def stereo(tmp_path):
    """3 s at 16 kHz: left channel = sample index / 1e5 (a ramp), right = minus that."""
    ramp = (np.arange(48000) / 1e5).astype(np.float32)
    path = tmp_path / "talk.wav"
    sf.write(path, np.stack([ramp, -ramp], axis=1), 16000, subtype="FLOAT")
    return path, ramp


def test_channel_and_span_are_cut_from_the_file(stereo):
    path, ramp = stereo
    left = load_audio(path, channel=1, start=1.0, end=2.5)
    assert np.allclose(left, ramp[16000:40000])
    right = load_audio(path, channel=2, start=0.5)
    assert np.allclose(right, -ramp[8000:])
    mixed = load_audio(path, end=1.0)  # channels averaged: the ramps cancel
    assert mixed.shape == (16000,) and np.abs(mixed).max() < 1e-6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channel=3), "has 2 channel"),
        (dict(start=5.0), "after the end"),
        (dict(start=2.0, end=1.0), "not after its start"),
        (dict(start=-1.0), "not a time >= 0"),
    ],
)
def test_impossible_spans_are_clear_failures(stereo, kwargs, message):
    with pytest.raises(AudioError, match=message):
        load_audio(stereo[0], **kwargs)


def test_manifest_columns_make_segments_with_their_own_keys(stereo, tmp_path):
    path, _ = stereo
    manifest = tmp_path / "segs.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "start_time", "end_time", "channel", "speaker"])
        w.writerow(["talk.wav", "0", "1.5", "1", "A"])
        w.writerow(["talk.wav", "1.5", "3", "2", "B"])
        w.writerow(["talk.wav", "", "", "", "whole"])
    sources = collect_sources([manifest])
    assert [s.key for s in sources] == ["talk@0-1.5#c1.wav", "talk@1.5-3#c2.wav", "talk.wav"]
    assert [(s.channel, s.start, s.end) for s in sources] == [
        (1, 0.0, 1.5),
        (2, 1.5, 3.0),
        (None, None, None),
    ]
    assert sources[0].ident.endswith("talk.wav@0-1.5#c1")
    jsonl = tmp_path / "segs.jsonl"
    jsonl.write_text(json.dumps({"path": "talk.wav", "start": 1, "end": 2}) + "\n")
    assert collect_sources([jsonl])[0].key == "talk@1-2.wav"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,start,end\ntalk.wav,2,1\n")
    with pytest.raises(DataError, match="not after start"):
        collect_sources([bad])
    bad.write_text("path,channel\ntalk.wav,0\n")
    with pytest.raises(DataError, match="1-based"):
        collect_sources([bad])


def test_predict_and_extract_on_segments(stereo, tmp_path):
    path, _ = stereo
    model = build_model(0, decoder=False)
    model.save_pretrained(tmp_path / "m")
    manifest = tmp_path / "segs.csv"
    manifest.write_text(
        "path,start,end,channel\ntalk.wav,0,1.5,1\ntalk.wav,1.5,3,2\ntalk.wav,9,10,1\n"
    )
    out = tmp_path / "s.csv"
    code = main(["predict", str(manifest), "-m", str(tmp_path / "m"), "-o", str(out), "-q"])
    assert code == EXIT_FAILED_INPUTS  # the third segment starts after the end of the file
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["talk.wav@0-1.5#c1", "talk.wav@1.5-3#c2"]
    assert [float(r["end"]) for r in rows] == [1.5, 1.5]  # each segment's own duration
    # each segment's scores are those of the segment cut out and run alone
    alone = model.predict(load_audio(path, channel=2, start=1.5, end=3.0), sample_rate=16000)
    assert float(rows[1]["score"]) == pytest.approx(alone.score, abs=1e-5)
    # resuming skips the finished segments
    assert (
        main(["predict", str(manifest), "-m", str(tmp_path / "m"), "-o", str(out), "-q"])
        == EXIT_FAILED_INPUTS
    )
    feats = tmp_path / "f"
    main(["extract", str(manifest), "-m", str(tmp_path / "m"), "-o", str(feats), "-q"])
    assert sorted(p.name for p in feats.glob("*.npy")) == ["talk@0-1.5#c1.npy", "talk@1.5-3#c2.npy"]
    assert EXIT_OK == 0
