"""Batch jobs and the command line: outputs, windows, bad inputs, resume."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emotion2vec import Emotion2vecModel
from emotion2vec.cli import main
from emotion2vec.config import EMOTION_LABELS, EncoderConfig, ModelConfig
from emotion2vec.jobs import extract_files, plan_windows, predict_files, run_model
from emotion2vec.sources import collect_sources

MICRO_CONV = ((64, 10, 5),) + ((64, 3, 2),) * 4 + ((64, 2, 2),) * 2


def micro_model(labels=EMOTION_LABELS, seed=0) -> Emotion2vecModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        encoder=EncoderConfig(
            conv_layers=MICRO_CONV, embed_dim=64, num_heads=4, context_depth=1, depth=2
        ),
        decoder=None,
        labels=labels,
    )
    return Emotion2vecModel(cfg).eval()


@pytest.fixture(scope="module")
def model():
    return micro_model()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, model):
    d = tmp_path_factory.mktemp("model")
    model.save_pretrained(d)
    return d


def tone(seconds, sr=16000, freq=220.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


@pytest.fixture
def corpus(tmp_path):
    """A folder with good files (several formats/rates) and bad ones."""
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    (root / "spk2").mkdir()
    sf.write(root / "spk1" / "a.wav", tone(1.0, seed=1), 16000, subtype="PCM_16")
    sf.write(root / "spk1" / "b.flac", tone(2.5, 44100, seed=2), 44100)
    stereo = np.stack([tone(1.7, 22050, seed=3), tone(1.7, 22050, 330, seed=4)], axis=1)
    sf.write(root / "spk2" / "c.wav", stereo, 22050, subtype="PCM_24")
    sf.write(root / "spk2" / "d.ogg", tone(3.0, seed=5), 16000)
    (root / "spk2" / "corrupt.wav").write_bytes(b"RIFF not really a wav file")
    sf.write(root / "spk2" / "short.wav", tone(0.01), 16000)
    (root / "spk2" / "empty.wav").write_bytes(b"")
    nan = tone(1.0)
    nan[100] = np.nan
    sf.write(root / "spk2" / "nan.wav", nan, 16000, subtype="FLOAT")
    return root


GOOD = {"spk1/a.wav", "spk1/b.flac", "spk2/c.wav", "spk2/d.ogg"}
BAD = {"spk2/corrupt.wav", "spk2/short.wav", "spk2/empty.wav", "spk2/nan.wav"}


def test_plan_windows_tiles_the_frame_grid():
    n = 16000 * 75 + 123
    windows = plan_windows(n, 30.0, 25.0)
    total = (n - 400) // 320 + 1
    assert windows[0].keep[0] == 0 and windows[-1].keep[1] == total
    for w0, w1 in zip(windows, windows[1:], strict=False):
        assert w0.keep[1] == w1.keep[0]
        assert w1.start % 320 == 0 and w1.start - w0.start == 25 * 16000
    for w in windows:
        frames = (w.end - w.start - 400) // 320 + 1
        assert w.first_frame <= w.keep[0] and w.keep[1] <= w.first_frame + frames
    assert plan_windows(16000 * 10, 30.0, 25.0) == plan_windows(16000 * 10, None, None)
    with pytest.raises(Exception, match="hop"):
        plan_windows(n, 30.0, 30.0)


def test_plan_windows_counts_frames_with_the_model_arithmetic():
    """plan_windows takes its frame counts from frames_after of the conv stack, which for the
    published stack equals the closed form (n - 400) // 320 + 1 (0 below 400 samples), and it
    follows another stack (stride 6, receptive field 8) where that closed form would be wrong."""
    from emotion2vec.audio import DEFAULT_CONV_LAYERS
    from emotion2vec.model.feature_extractor import frames_after

    for n in [*range(0, 2000), 16000 * 30 + 7, 16000 * 600 + 319]:
        assert frames_after(n, DEFAULT_CONV_LAYERS) == (0 if n < 400 else (n - 400) // 320 + 1)
    small = ((4, 2, 2), (4, 4, 3))  # stride 6, receptive field 2 + (4 - 1) * 2 = 8
    windows = plan_windows(6000, 0.1, 0.05, conv_layers=small, sample_rate=1000)
    assert windows[-1].keep[1] == frames_after(6000, small) == (6000 - 8) // 6 + 1
    assert all(w.start % 6 == 0 for w in windows) and len(windows) > 1


def test_windowed_frames_match_whole_file_away_from_window_edges(model):
    wave = tone(40.0, seed=7)
    (src,) = collect_sources([_write(wave)])
    whole = model.extract(wave, sample_rate=16000, granularity="frame")
    got = {}

    run_model(
        model,
        [src],
        todo=[0],
        on_result=lambda r: got.setdefault("r", r),
        on_failure=lambda s, reason: pytest.fail(reason),
        keep_frames=True,
        window_seconds=15.0,
        hop_seconds=10.0,
        progress=False,
    )
    frames = got["r"].frame_features()[0]
    assert frames.shape == whole.shape  # stitched on the whole-file grid
    # Deep inside the first window the context is identical except for attention span.
    assert np.abs(frames[:200] - whole[:200]).max() < 0.5
    assert np.corrcoef(frames.ravel(), whole.ravel())[0, 1] > 0.9


def _write(wave, sr=16000):
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    sf.write(path, wave, sr)
    return path


def test_extract_folder_good_and_bad_inputs_and_resume(model, corpus, tmp_path):
    out = tmp_path / "feats"
    sources = collect_sources([corpus])
    summary = extract_files(model, sources, out, granularity="frame", progress=False)
    assert summary.done == len(GOOD) and len(summary.failures) == len(BAD)
    failed = {Path(f.path).relative_to(corpus).as_posix(): f.reason for f in summary.failures}
    assert set(failed) == BAD
    assert "decode" in failed["spk2/corrupt.wav"]
    assert "short" in failed["spk2/short.wav"]
    assert "empty" in failed["spk2/empty.wav"]
    assert "NaN" in failed["spk2/nan.wav"] or "finite" in failed["spk2/nan.wav"]
    with open(out / "errors.csv", newline="") as f:
        assert {Path(r["path"]).name for r in csv.DictReader(f)} == {Path(b).name for b in BAD}

    # outputs mirror the input tree and equal the one-at-a-time API
    for key in GOOD:
        arr = np.load(out / Path(key).with_suffix(".npy"))
        ref = model.extract(corpus / key, granularity="frame")
        assert arr.shape == ref.shape and np.abs(arr - ref).max() < 1e-4
    with open(out / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(GOOD)
    row = next(r for r in rows if r["output"] == "spk1/a.npy")
    assert int(row["frames"]) == 49 and abs(float(row["duration_s"]) - 1.0) < 1e-3

    # a re-run skips finished work and does not touch the files
    stamp = (out / "spk1" / "a.npy").stat().st_mtime_ns
    again = extract_files(model, sources, out, granularity="frame", progress=False)
    assert again.done == 0 and again.skipped == len(GOOD)
    assert (out / "spk1" / "a.npy").stat().st_mtime_ns == stamp
    redo = extract_files(model, sources, out, granularity="frame", overwrite=True, progress=False)
    assert redo.done == len(GOOD)
    assert not list(out.rglob("*.tmp"))


def test_extract_resumes_after_interrupt(model, corpus, tmp_path, monkeypatch):
    import emotion2vec.jobs as jobs

    out = tmp_path / "feats"
    sources = collect_sources([corpus])
    real_save = jobs.save_npy
    calls = {"n": 0}

    def flaky_save(path, array):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_save(path, array)

    monkeypatch.setattr(jobs, "save_npy", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        extract_files(model, sources, out, progress=False)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert len(written) == 2
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(jobs, "save_npy", real_save)
    resumed = extract_files(model, sources, out, progress=False)
    assert resumed.skipped == 2 and resumed.done == len(GOOD) - 2


def test_all_layers_and_layer_outputs(model, corpus, tmp_path):
    sources = [s for s in collect_sources([corpus]) if s.key in GOOD]
    extract_files(model, sources, tmp_path / "all", all_layers=True, progress=False)
    extract_files(model, sources, tmp_path / "l1", layer=1, progress=False)
    both = np.load(tmp_path / "all" / "spk1" / "a.npy")
    assert both.shape == (model.config.encoder.num_layers + 1, 64)
    one = np.load(tmp_path / "l1" / "spk1" / "a.npy")
    assert np.abs(both[1] - one).max() < 1e-5


def test_predict_files_csv_jsonl_and_resume(model, corpus, tmp_path):
    sources = collect_sources([corpus])
    out = tmp_path / "scores.csv"
    results, summary = predict_files(model, sources, output=out, progress=False)
    assert summary.done == len(GOOD) and len(summary.failures) == len(BAD)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(GOOD)
    for r in rows:
        scores = [float(r[n]) for n in EMOTION_LABELS]
        assert abs(sum(scores) - 1) < 1e-4 and r["label"] == EMOTION_LABELS[int(np.argmax(scores))]
    ref = model.predict(corpus / "spk1" / "a.wav")
    got = next(r for r in results if r.path.endswith("a.wav")).prediction
    assert max(abs(ref.scores[k] - got.scores[k]) for k in ref.scores) < 1e-5
    assert (tmp_path / "scores.csv.errors.csv").exists()

    again, s2 = predict_files(model, sources, output=out, progress=False)
    assert s2.skipped == len(GOOD) and s2.done == 0 and not again

    jl = tmp_path / "scores.jsonl"
    predict_files(model, sources[:2], output=jl, progress=False)
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert len(lines) == 2 and set(lines[0]["scores"]) == set(EMOTION_LABELS)


def test_predict_over_time_with_windows(model, tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(70.0, seed=9), 16000)
    results, _ = predict_files(
        model, collect_sources([path]), window_seconds=30, hop_seconds=25, progress=False
    )
    (r,) = results
    assert [(s, e) for s, e, _ in r.windows] == [(0.0, 30.0), (25.0, 55.0), (50.0, 70.0)]
    assert abs(sum(r.prediction.scores.values()) - 1) < 1e-5


def test_cli_predict_extract_convert(model_dir, corpus, tmp_path, capsys):
    code = main(["predict", str(corpus / "spk1"), "--model", str(model_dir), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "a.wav" in printed and "b.flac" in printed and "emotion" in printed

    code = main(["predict", str(corpus), "--model", str(model_dir), "--quiet"])
    assert code == 1  # some inputs failed
    err = capsys.readouterr().err
    assert "corrupt.wav" in err and "failed" in err

    out = tmp_path / "feats"
    code = main(["extract", str(corpus / "spk1"), "-m", str(model_dir), "-o", str(out), "--quiet"])
    assert code == 0 and (out / "a.npy").exists() and (out / "b.npy").exists()

    conv = tmp_path / "converted"
    assert main(["convert", str(model_dir), str(conv)]) == 0
    assert (conv / "model.safetensors").exists() and (conv / "config.json").exists()

    code = main(["predict", str(corpus / "spk1"), "--model", str(tmp_path / "nope")])
    assert code == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_quantize_int8_extracts_close_to_exact(model_dir, corpus, tmp_path, monkeypatch):
    from emotion2vec.fast import int8 as int8_mod

    # the uncompiled int8 path (the compiled one is tested in tests/test_int8.py)
    monkeypatch.setattr(int8_mod._Compiled, "failed", True)
    exact, fast = tmp_path / "exact", tmp_path / "fast"
    args = ["extract", str(corpus / "spk1"), "-m", str(model_dir), "--quiet", "-o"]
    assert main([*args, str(exact)]) == 0
    assert main([*args, str(fast), "--quantize", "int8"]) == 0
    for name in ("a.npy", "b.npy"):
        e, f = np.load(exact / name), np.load(fast / name)
        cosine = float(np.dot(e, f) / (np.linalg.norm(e) * np.linalg.norm(f)))
        assert 0.99 < cosine < 1.0 - 1e-9


def test_cli_quantize_int8_refuses_an_accelerator(model_dir, corpus, tmp_path, capsys):
    args = ["extract", str(corpus / "spk1"), "-m", str(model_dir), "-o", str(tmp_path / "o")]
    assert main([*args, "--quantize", "int8", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--quantize int8 is deprecated; use --precision int8" in err
    assert "--precision int8 is a CPU mode" in err
    assert not (tmp_path / "o").exists()


def test_predict_without_head_is_a_clear_error(tmp_path, capsys):
    headless = micro_model(labels=())
    headless.save_pretrained(tmp_path / "m")
    sf.write(tmp_path / "x.wav", tone(1.0), 16000)
    code = main(["predict", str(tmp_path / "x.wav"), "--model", str(tmp_path / "m")])
    assert code == 2
    assert "no emotion head" in capsys.readouterr().err


def test_model_failure_on_one_input_fails_only_that_input(model, corpus, tmp_path, monkeypatch):
    import emotion2vec.jobs as jobs

    real = jobs.encode
    culprit = len(tone(2.5, 44100, seed=2)) * 16000 // 44100  # spk1/b.flac after resampling

    def flaky(m, waves, **kw):
        if any(abs(len(w) - culprit) <= 1 for w in waves):
            raise RuntimeError("out of memory (simulated)")
        return real(m, waves, **kw)

    monkeypatch.setattr(jobs, "encode", flaky)
    sources = [s for s in collect_sources([corpus]) if s.key in GOOD]
    summary = extract_files(model, sources, tmp_path / "out", progress=False)
    assert [Path(f.path).name for f in summary.failures] == ["b.flac"]
    assert "out of memory" in summary.failures[0].reason
    assert summary.done == len(GOOD) - 1
    assert {p.name for p in (tmp_path / "out").rglob("*.npy")} == {"a.npy", "c.npy", "d.npy"}


def test_bad_window_options_are_a_usage_error(model, corpus, tmp_path):
    with pytest.raises(Exception, match="hop"):
        extract_files(
            model,
            collect_sources([corpus]),
            tmp_path / "out",
            window_seconds=10,
            hop_seconds=10,
            progress=False,
        )
