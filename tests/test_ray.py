"""The Ray engine: the same numbers, files and failure reports as the local jobs; retries after a
killed worker; resume. One local Ray instance (2 CPUs) is shared by the module."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from model_factory import build_model

ray = pytest.importorskip("ray")

from emotion2vec.cli import EXIT_FAILED_INPUTS, EXIT_USAGE, main  # noqa: E402
from emotion2vec.jobs import extract_files, predict_files, read_predictions  # noqa: E402
from emotion2vec.pipeline import load_model  # noqa: E402
from emotion2vec.scale import parquet  # noqa: E402
from emotion2vec.scale.ray_engine import FAULTS_ENV, extract_ray, predict_ray  # noqa: E402
from emotion2vec.sources import collect_sources  # noqa: E402

SHARED = Path(os.environ.get("EMOTION2VEC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
RAVDESS = SHARED / "data" / "ravdess_speech" / "audio"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    build_model(0, decoder=False).save_pretrained(root / "m")
    clips = root / "clips"
    clips.mkdir()
    real = sorted(RAVDESS.glob("Actor_0[12]/*.flac"))[::8][:12] if RAVDESS.is_dir() else []
    for f in real:
        shutil.copy(f, clips / f.name)
    rng = np.random.default_rng(0)
    for i in range(0 if real else 16):
        sf.write(clips / f"c{i}.wav", (0.1 * rng.standard_normal(5000 + 900 * i)), 16000)
    (clips / "broken.wav").write_bytes(b"RIFF not really audio")
    sf.write(clips / "tiny.wav", np.zeros(100, np.float32), 16000)  # shorter than one frame
    faults = root / "faults"
    faults.mkdir()
    # workers inherit the environment of the instance: the fault switch must be set before init
    os.environ[FAULTS_ENV] = str(faults)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield root
    ray.shutdown()
    os.environ.pop(FAULTS_ENV, None)


@pytest.fixture(scope="module")
def local(setup):
    """The single-process results: predictions and the extraction folder."""
    model = load_model(setup / "m")
    sources = collect_sources([setup / "clips"])
    preds, summary = predict_files(model, sources, progress=False)
    extract_files(model, sources, setup / "local_feats", progress=False)
    return {p.path: p for p in preds}, summary


def _failures(path: Path) -> set[tuple[str, str]]:
    with open(path, newline="") as f:
        return {(r["path"], r["reason"]) for r in csv.DictReader(f)}


def test_predict_equals_the_local_job_and_reports_bad_inputs_alike(setup, local):
    preds, local_summary = local
    assert len(local_summary.failures) == 2  # broken.wav and tiny.wav
    out = setup / "scores.csv"
    results, summary = predict_ray(
        str(setup / "m"), [setup / "clips"], out, progress=False, actors=1
    )
    assert {(f.path, f.reason) for f in summary.failures} == {
        (f.path, f.reason) for f in local_summary.failures
    }
    assert _failures(out.with_name("scores.csv.errors.csv")) == {
        (f.path, f.reason) for f in local_summary.failures
    }
    assert [r.path for r in results] == list(preds)  # input order
    for r in results:
        ref = preds[r.path].prediction
        assert r.prediction.label == ref.label
        assert max(abs(r.prediction.scores[k] - ref.scores[k]) for k in ref.scores) < 1e-5
    assert {row["path"] for row in read_predictions(out)} == set(preds)


def test_extract_writes_the_local_layout_and_resumes(setup, local):
    feats = setup / "ray_feats"
    summary = extract_ray(str(setup / "m"), [setup / "clips"], feats, progress=False, actors=1)
    ref = setup / "local_feats"
    npys = sorted(p.name for p in ref.glob("*.npy"))
    assert npys and sorted(p.name for p in feats.glob("*.npy")) == npys
    for name in npys:
        np.testing.assert_allclose(np.load(feats / name), np.load(ref / name), atol=1e-5)
    assert sorted((feats / "index.csv").read_text().splitlines()) == sorted(
        (ref / "index.csv").read_text().splitlines()
    )
    assert _failures(feats / "errors.csv") == _failures(ref / "errors.csv")
    assert summary.done == len(npys)

    # resume, across engines: a folder made by the local job is finished by the Ray engine,
    # which skips the existing files and redoes a removed one
    shutil.copytree(ref, setup / "resumed")
    (setup / "resumed" / npys[0]).unlink()
    more = extract_ray(
        str(setup / "m"), [setup / "clips"], setup / "resumed", progress=False, actors=1
    )
    assert (more.done, more.skipped, len(more.failures)) == (1, len(npys) - 1, 2)
    np.testing.assert_allclose(
        np.load(setup / "resumed" / npys[0]), np.load(ref / npys[0]), atol=1e-5
    )

    # (as after a local resume, files kept from before have frames -1 in the index)
    def listed(folder):
        return [line.split(",")[:3] for line in (folder / "index.csv").read_text().splitlines()]

    assert listed(setup / "resumed") == listed(ref)


def test_a_killed_model_worker_and_decoding_task_are_retried(setup, local):
    preds, _ = local
    faults = Path(os.environ[FAULTS_ENV])
    (faults / "model").touch()
    (faults / "decode").touch()
    out = setup / "after_crash.parquet"
    results, summary = predict_ray(
        str(setup / "m"), [setup / "clips"], out, progress=False, actors=1
    )
    assert not (faults / "model").exists() and not (faults / "decode").exists()  # they fired
    rows = parquet.read_rows(out)
    paths = [r["path"] for r in rows]
    assert sorted(paths) == sorted(preds) and len(set(paths)) == len(paths)  # none lost, no twice
    for row in rows:
        ref = preds[row["path"]].prediction.scores
        assert max(abs(row["scores"][k] - ref[k]) for k in ref) < 1e-5
    assert summary.done == len(preds) and len(summary.failures) == 2

    # resume: every row already in a part is skipped, nothing is written twice
    parts = parquet.parts(out)
    results, summary = predict_ray(
        str(setup / "m"), [setup / "clips"], out, progress=False, actors=1
    )
    assert (summary.skipped, summary.done, results) == (len(preds), 0, [])
    assert parquet.parts(out) == parts and len(parquet.read_rows(out)) == len(preds)


def test_the_command_line_engine_option(setup, local):
    preds, _ = local
    out = setup / "cli.parquet"
    argv = ["extract", str(setup / "clips"), "-m", str(setup / "m"), "-o", str(out), "-q"]
    assert main([*argv, "--engine", "ray", "--all-layers"]) == EXIT_FAILED_INPUTS
    rows = parquet.read_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(preds)
    key = Path(rows[0]["path"]).name
    ref = np.load((setup / "local_feats" / key).with_suffix(".npy"))
    emb = np.asarray(rows[0]["embedding"], np.float32)
    layers = load_model(setup / "m").config.encoder.num_layers + 1
    assert emb.shape[0] == layers and np.allclose(
        emb[-1], ref, atol=1e-5
    )  # all layers, last = default
    assert main([*argv, "--engine", "ray", "--shard", "0/2"]) == EXIT_USAGE
