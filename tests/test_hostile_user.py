"""Batch jobs under everyday mistakes and hostile use: nothing lost, mixed or silently corrupt.

Each test is one scenario of issue 16, run end to end through the command line on small random
models; before the fix each of them lost or mixed results, crashed, or succeeded wrongly.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from model_factory import build_model

from emotion2vec.cli import EXIT_FAILED_INPUTS, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, main
from emotion2vec.config import EMOTION_LABELS


def micro(seed: int):
    """A micro model with the 9-class head (tests/conftest.py's)."""
    return build_model(seed, decoder=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    micro(0).save_pretrained(root / "a")
    micro(1).save_pretrained(root / "b")
    return root / "a", root / "b"


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        sf.write(
            folder / f"c{i}.wav",
            (0.1 * rng.standard_normal(8000 + 1600 * i)).astype(np.float32),
            16000,
        )
    return folder


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_with_another_model_into_the_same_csv_is_refused(models, clips, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["predict", str(clips), "-m", str(models[0]), "-o", str(out), "-q"]) == EXIT_OK
    first = out.read_text()
    assert main(["predict", str(clips), "-m", str(models[1]), "-o", str(out), "-q"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "model weights" in err and "--overwrite" in err and err.count("\n") == 1
    assert out.read_text() == first  # nothing mixed in
    # the same model resumes (nothing to do), --overwrite replaces
    assert main(["predict", str(clips), "-m", str(models[0]), "-o", str(out), "-q"]) == EXIT_OK
    assert (
        main(["predict", str(clips), "-m", str(models[1]), "-o", str(out), "-q", "--overwrite"])
        == EXIT_OK
    )
    prov = json.loads((tmp_path / "scores.csv.provenance.json").read_text())
    assert prov["model"] == str(models[1]) and prov["labels"] == list(EMOTION_LABELS)


def test_extract_with_another_granularity_or_model_is_refused(models, clips, tmp_path, capsys):
    feats = tmp_path / "feats"
    assert main(["extract", str(clips), "-m", str(models[0]), "-o", str(feats), "-q"]) == EXIT_OK
    before = {p.name: p.read_bytes() for p in feats.glob("*.npy")}
    for extra in (["--granularity", "frame"], ["-m", str(models[1])], ["--layer", "0"]):
        argv = ["extract", str(clips), "-m", str(models[0]), "-o", str(feats), "-q", *extra]
        assert main(argv) == EXIT_USAGE
        assert "made differently" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in feats.glob("*.npy")} == before
    prov = json.loads((feats / "provenance.json").read_text())
    assert prov["granularity"] == "utterance" and len(prov["model_sha256"]) == 64


def test_outputs_without_provenance_are_not_resumed_into(models, clips, tmp_path, capsys):
    feats = tmp_path / "feats"
    feats.mkdir()
    np.save(feats / "c0.npy", np.zeros(3))  # someone else's file where ours would go
    assert main(["extract", str(clips), "-m", str(models[0]), "-o", str(feats), "-q"]) == EXIT_USAGE
    assert "no provenance.json" in capsys.readouterr().err


def _predict_worker(args):
    model, clips, out = args
    return main(["predict", str(clips), "-m", str(model), "-o", str(out), "-q", "--workers", "1"])


def test_two_processes_on_one_output_never_lose_rows(models, clips, tmp_path):
    out = tmp_path / "scores.csv"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        codes = pool.map(_predict_worker, [(models[0], clips, out)] * 2)
    # one run wrote everything, or the second refused (the lock named the holder) and wrote none
    assert sorted(codes) in ([EXIT_OK, EXIT_OK], [EXIT_OK, EXIT_USAGE])
    got = rows(out)
    assert sorted(r["path"] for r in got) == sorted(str(p.resolve()) for p in clips.glob("*.wav"))


def test_a_held_output_is_refused_naming_the_holder(models, clips, tmp_path, capsys):
    from emotion2vec.locking import OutputLock

    out = tmp_path / "scores.csv"
    with OutputLock(tmp_path / "scores.csv.lock", what=str(out)):
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "emotion2vec",
                "predict",
                str(clips),
                "-m",
                str(models[0]),
                "-o",
                str(out),
                "-q",
            ],
            capture_output=True,
            text=True,
        )
    assert code.returncode == EXIT_USAGE
    assert "being written by another run" in code.stderr and f"process {os.getpid()}" in code.stderr
    assert not out.exists()


def test_unwritable_output_fails_before_any_work(models, clips, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert (
        main(["extract", str(clips), "-m", str(models[0]), "-o", str(blocker / "feats"), "-q"])
        == EXIT_OUTPUT
    )
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err
    assert (
        main(["predict", str(clips), "-m", str(models[0]), "-o", str(blocker / "x.csv"), "-q"])
        == EXIT_OUTPUT
    )
    (tmp_path / "out.csv").mkdir()
    assert (
        main(["predict", str(clips), "-m", str(models[0]), "-o", str(tmp_path / "out.csv"), "-q"])
        == EXIT_OUTPUT
    )
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_fails_before_any_work(models, clips, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert (
            main(["extract", str(clips), "-m", str(models[0]), "-o", str(ro / "f"), "-q"])
            == EXIT_OUTPUT
        )
    finally:
        ro.chmod(0o700)


def test_full_disk_mid_run_keeps_finished_work(models, clips, tmp_path, capsys, monkeypatch):
    import emotion2vec.jobs as jobs

    real = jobs.save_npy
    calls = {"n": 0}

    def flaky(path, array):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(path, array)

    monkeypatch.setattr(jobs, "save_npy", flaky)
    feats = tmp_path / "feats"
    code = main(
        [
            "extract",
            str(clips),
            "-m",
            str(models[0]),
            "-o",
            str(feats),
            "-q",
            "--batch-seconds",
            "0.6",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_OUTPUT and "No space left on device" in err and "kept" in err
    assert len(list(feats.glob("*.npy"))) == 2
    monkeypatch.setattr(jobs, "save_npy", real)
    assert main(["extract", str(clips), "-m", str(models[0]), "-o", str(feats), "-q"]) == EXIT_OK
    assert len(list(feats.glob("*.npy"))) == 4


def test_predict_journal_survives_a_crash(models, clips, tmp_path, monkeypatch):
    import emotion2vec.jobs as jobs

    out = tmp_path / "scores.jsonl"
    real = jobs.write_predictions
    state = {"calls": 0}

    def crash_at_final_save(path, rows_, labels):
        state["calls"] += 1
        raise KeyboardInterrupt  # the process dies before the output is written

    monkeypatch.setattr(jobs, "write_predictions", crash_at_final_save)
    with pytest.raises(KeyboardInterrupt):
        jobs.predict_files(micro(0), jobs_sources(clips), output=out, batch_seconds=0.6)
    journal = tmp_path / "scores.jsonl.partial.jsonl"
    assert len(jobs.read_journal(journal)) == 4  # every finished prediction was journaled
    monkeypatch.setattr(jobs, "write_predictions", real)
    model = micro(0)
    results, summary = jobs.predict_files(model, jobs_sources(clips), output=out)
    assert summary.skipped == 4 and summary.done == 0  # resumed from the journal
    assert len(out.read_text().splitlines()) == 4 and not journal.exists()


def jobs_sources(folder):
    from emotion2vec.sources import collect_sources

    return collect_sources([folder])


def test_nan_weights_are_refused_at_load(tmp_path, capsys, clips):
    model = micro(0)
    with torch.no_grad():
        model.encoder.blocks[0].mlp.fc1.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")
    assert main(["predict", str(clips), "-m", str(tmp_path / "nan"), "-q"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "non-finite weights" in err and "encoder.blocks.0.mlp.fc1.weight" in err


def test_non_finite_output_is_a_failed_input(models, clips, tmp_path, capsys):
    loud = clips / "loud.wav"
    sf.write(loud, np.full(16000, 1e38, dtype=np.float32), 16000, subtype="FLOAT")
    out = tmp_path / "s.csv"
    code = main(["predict", str(clips), "-m", str(models[0]), "-o", str(out), "-q"])
    assert code == EXIT_FAILED_INPUTS
    failed = rows(tmp_path / "s.csv.errors.csv")
    assert [Path(r["path"]).name for r in failed] == ["loud.wav"]
    assert "non-finite" in failed[0]["reason"] or "NaN" in failed[0]["reason"]
    assert len(rows(out)) == 4


def test_predicting_into_the_input_manifest_is_refused(models, clips, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"path": str(p)}) + "\n" for p in sorted(clips.glob("*.wav")))
    )
    before = manifest.read_text()
    for extra in ([], ["--overwrite"]):
        code = main(
            ["predict", str(manifest), "-m", str(models[0]), "-o", str(manifest), "-q", *extra]
        )
        assert code == EXIT_OUTPUT
        assert "is one of the inputs" in capsys.readouterr().err
    assert manifest.read_text() == before


def test_symlink_loops_and_dangling_links_fail_only_themselves(models, clips, tmp_path, capsys):
    (clips / "loop_a.wav").symlink_to(clips / "loop_b.wav")
    (clips / "loop_b.wav").symlink_to(clips / "loop_a.wav")
    (clips / "gone.wav").symlink_to(tmp_path / "missing.wav")
    out = tmp_path / "s.csv"
    code = main(
        ["predict", str(clips), str(clips / "gone.wav"), "-m", str(models[0]), "-o", str(out), "-q"]
    )
    assert code == EXIT_FAILED_INPUTS
    reasons = {Path(r["path"]).name: r["reason"] for r in rows(tmp_path / "s.csv.errors.csv")}
    assert (
        "symbolic link loop" in reasons["loop_a.wav"]
        and "symbolic link loop" in reasons["loop_b.wav"]
    )
    assert "dangling symbolic link" in reasons["gone.wav"]
    assert len(rows(out)) == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--threads", "-1"], "--threads: must be >= 1"),
        (["--batch-seconds", "nan"], "--batch-seconds: must be a finite number"),
        (["--batch-seconds", "0"], "--batch-seconds: must be a finite number"),
        (["--window-seconds", "10", "--hop-seconds", "0"], "--hop-seconds: must be a finite"),
        (["--window-seconds", "10", "--hop-seconds", "20"], "must not exceed --window-seconds"),
        (["--hop-seconds", "2"], "--hop-seconds needs --window-seconds"),
        (["--workers", "0"], "--workers: must be >= 1"),
        (["--thread", "2"], "unrecognized option --thread; did you mean --threads?"),
    ],
)
def test_bad_options_get_one_line(models, clips, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(clips), "-m", str(models[0]), *argv])
    assert exc.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_mistyped_option_is_not_reported_as_a_missing_required_one(models, clips, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["extract", str(clips), "-m", str(models[0]), "--output-dri", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert "did you mean --output?" in err and "required" not in err


def test_outputs_honour_the_umask(models, clips, tmp_path):
    old = os.umask(0o002)
    try:
        assert (
            main(["extract", str(clips), "-m", str(models[0]), "-o", str(tmp_path / "f"), "-q"])
            == EXIT_OK
        )
        assert (
            main(["predict", str(clips), "-m", str(models[0]), "-o", str(tmp_path / "s.csv"), "-q"])
            == EXIT_OK
        )
    finally:
        os.umask(old)
    for path in [*(tmp_path / "f").glob("*.npy"), tmp_path / "f" / "index.csv", tmp_path / "s.csv"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path


def test_temporaries_of_killed_runs_are_cleaned_up(models, clips, tmp_path):
    from emotion2vec.atomic import temporary_prefix

    feats = tmp_path / "f"
    feats.mkdir()
    code = "from emotion2vec.atomic import temporary_prefix as t; print(t('c0.npy'))"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    stale = feats / f"{dead.stdout.strip()}abc123.tmp"  # a process that has ended
    stale.write_bytes(b"half")
    mine = feats / f"{temporary_prefix('c1.npy')}abc123.tmp"  # a live process's file stays
    mine.write_bytes(b"half")
    other_host = feats / ".c2.npy.0badc0de-1.abc123.tmp"  # another machine's (shared disk)
    other_host.write_bytes(b"half")
    assert main(["extract", str(clips), "-m", str(models[0]), "-o", str(feats), "-q"]) == EXIT_OK
    assert not stale.exists() and mine.exists() and other_host.exists()


def _manifest(path: Path, rows_: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "session"])
        w.writerows(rows_)
    return path


@pytest.mark.parametrize(
    "entries, message",
    [
        ([("c0.wav", "angry", "1"), ("c0.wav", "angry", "1")], "entries 1 and 2 list"),
        ([("c0.wav", "angry", "1"), ("c0.wav", "sad", "1")], "with two labels ('angry' and 'sad')"),
        ([("c0.wav", "angry", "1"), ("c0.wav", "angry", "2")], "train/test leakage"),
    ],
)
def test_probe_refuses_duplicate_and_leaking_manifests(
    clips, tmp_path, capsys, models, entries, message
):
    rows_ = [(str(clips / p), lab, ses) for p, lab, ses in entries]
    rows_ += [(str(clips / "c1.wav"), "sad", "1"), (str(clips / "c2.wav"), "sad", "2")]
    manifest = _manifest(tmp_path / "m.csv", rows_)
    code = main(
        [
            "probe",
            "--manifest",
            str(manifest),
            "--model",
            str(models[0]),
            "--out",
            str(tmp_path / "p"),
            "--protocol",
            "predefined",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and message in err and "Traceback" not in err


def test_binary_manifest_is_one_line(tmp_path, capsys, models):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"path,label\n\x00\x01\x02\xff\xfe")
    code = main(
        [
            "probe",
            "--manifest",
            str(manifest),
            "--model",
            str(models[0]),
            "--output",
            str(tmp_path / "p"),
            "--protocol",
            "predefined",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "not a text manifest" in err and err.count("\n") == 1
    latin = tmp_path / "l.csv"
    latin.write_bytes("path,label\ncaf\xe9.wav,angry\n".encode("latin-1"))
    assert (
        main(
            [
                "probe",
                "--manifest",
                str(latin),
                "--model",
                str(models[0]),
                "--out",
                str(tmp_path / "p"),
                "--protocol",
                "predefined",
            ]
        )
        == EXIT_USAGE
    )
    assert "not a UTF-8 text manifest" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"embed_dim": 65536, "num_heads": 16}, "encoder.embed_dim = 65536 is outside"),
        ({"depth": 100000}, "encoder.depth = 100000 is outside"),
        ({"conv_layers": [[8192, 4096, 5]] * 40}, "billion parameters"),
        ({"num_heads": "12"}, "must be a number"),
    ],
)
def test_crafted_config_is_refused_before_allocating(tmp_path, capsys, clips, change, message):
    import resource

    folder = tmp_path / "crafted"
    micro(0).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["encoder"].update(change)
    (folder / "config.json").write_text(json.dumps(config))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["predict", str(clips), "-m", str(folder), "-q"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    # nothing big was allocated on the way to the error (ru_maxrss is in KiB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 20 KiB file system (root only: mount -t tmpfs); skipped where it cannot be made."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the simulated full disk test covers this")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20k", "tmpfs", str(mnt)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_really_full_disk_stops_cleanly_and_resumes(models, clips, tiny_tmpfs, capsys):
    feats = tiny_tmpfs / "feats"
    argv = [
        "extract",
        str(clips),
        "-m",
        str(models[0]),
        "-o",
        str(feats),
        "-q",
        "--granularity",
        "frame",
        "--batch-seconds",
        "0.6",
    ]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_OUTPUT, err
    assert "No space left on device" in err or "no space left on the device" in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    kept = sorted(p.name for p in feats.glob("*.npy"))
    assert 0 < len(kept) < 4
    for p in feats.glob("*.npy"):
        assert np.load(p).shape[1] == 64  # every kept file is whole (D = 64)
    assert not list(feats.glob(".*.tmp"))  # no half-written temporaries left behind
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_tmpfs)], check=True)
    assert main(argv) == EXIT_OK
    assert len(list(feats.glob("*.npy"))) == 4
