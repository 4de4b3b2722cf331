"""Sharded batch jobs: a deterministic, balanced partition, and merging shards into exactly the
unsharded outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from model_factory import build_model

from emotion2vec.cli import EXIT_OK, EXIT_USAGE, main
from emotion2vec.errors import ConfigError
from emotion2vec.shards import parse_shard, partition
from emotion2vec.sources import AudioSource


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    build_model(0, decoder=False).save_pretrained(root / "m")
    rng = np.random.default_rng(0)
    (root / "clips").mkdir()
    for i in range(9):
        wave = (0.1 * rng.standard_normal(6000 + 1500 * i)).astype(np.float32)
        sf.write(root / "clips" / f"c{i}.wav", wave, 16000)
    return root


def test_shard_specs_and_the_scheduler_environment():
    assert parse_shard(None) is None and parse_shard("2/4") == (2, 4)
    assert parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}) == (
        3,
        4,
    )
    assert parse_shard(
        "auto",
        {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"},
    ) == (3, 4)
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "1", "EMOTION2VEC_NUM_SHARDS": "3"}) == (
        1,
        3,
    )
    assert parse_shard("auto", {"RANK": "0", "WORLD_SIZE": "2"}) == (0, 2)
    for bad, message in (("4/4", "0 <= I < N"), ("x", "I/N"), ("auto", "no scheduler")):
        with pytest.raises(ConfigError, match=message):
            parse_shard(bad, {})
    with pytest.raises(ConfigError, match="EMOTION2VEC_NUM_SHARDS"):
        parse_shard("auto", {"JOB_COMPLETION_INDEX": "1"})


def test_partition_is_deterministic_balanced_and_complete():
    sources = [AudioSource(Path(f"/d/f{i:02d}.wav"), f"f{i:02d}.wav") for i in range(20)]
    durations = [float((7 * i) % 13 + 1) for i in range(20)]
    parts = partition(sources, 3, durations)
    assert sorted(i for p in parts for i in p) == list(range(20))
    loads = [sum(durations[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= max(durations)
    # the same partition whatever the input order
    shuffled = list(reversed(range(20)))
    parts2 = partition([sources[i] for i in shuffled], 3, [durations[i] for i in shuffled])
    assert [sorted(shuffled[i] for i in p) for p in parts2] == [sorted(p) for p in parts]


def test_merged_shards_equal_the_unsharded_run(setup):
    root, model, clips = setup, str(setup / "m"), str(setup / "clips")
    assert main(["predict", clips, "-m", model, "-o", str(root / "one.csv"), "-q"]) == EXIT_OK
    for i in range(3):
        assert (
            main(
                [
                    "predict",
                    clips,
                    "-m",
                    model,
                    "-o",
                    str(root / "sh.csv"),
                    "-q",
                    "--shard",
                    f"{i}/3",
                ]
            )
            == EXIT_OK
        )
    # a shard missing: merge refuses
    (root / "sh.shard-1-of-3.csv").rename(root / "aside.csv")
    assert main(["merge", str(root / "sh.csv")]) == EXIT_USAGE
    (root / "aside.csv").rename(root / "sh.shard-1-of-3.csv")
    assert main(["merge", str(root / "sh.csv")]) == EXIT_OK
    with open(root / "one.csv", newline="") as a, open(root / "sh.csv", newline="") as b:
        ra, rb = csv.reader(a), csv.reader(b)
        assert next(ra) == next(rb)  # the same columns
        one, merged = sorted(ra), sorted(rb)
    # the same rows; scores equal up to the float noise of other batch compositions
    assert [r[:5] for r in one] == [r[:5] for r in merged]
    for x, y in zip(one, merged, strict=True):
        assert np.allclose([float(v) for v in x[5:]], [float(v) for v in y[5:]], atol=2e-6)

    assert main(["extract", clips, "-m", model, "-o", str(root / "f1"), "-q"]) == EXIT_OK
    for i in range(2):
        assert (
            main(["extract", clips, "-m", model, "-o", str(root / "f2"), "-q", "--shard", f"{i}/2"])
            == EXIT_OK
        )
    assert main(["merge", str(root / "f2")]) == EXIT_OK
    for npy in (root / "f1").glob("*.npy"):
        assert np.allclose(np.load(npy), np.load(root / "f2" / npy.name), atol=1e-5)
    assert (root / "f1" / "index.csv").read_text().splitlines()[0] == (
        root / "f2" / "index.csv"
    ).read_text().splitlines()[0]
    assert sorted((root / "f1" / "index.csv").read_text().splitlines()) == sorted(
        (root / "f2" / "index.csv").read_text().splitlines()
    )


def test_merge_refuses_shards_of_different_models(setup, tmp_path):
    build_model(5, decoder=False).save_pretrained(tmp_path / "other")
    clips = str(setup / "clips")
    main(
        [
            "predict",
            clips,
            "-m",
            str(setup / "m"),
            "-o",
            str(tmp_path / "s.csv"),
            "-q",
            "--shard",
            "0/2",
        ]
    )
    main(
        [
            "predict",
            clips,
            "-m",
            str(tmp_path / "other"),
            "-o",
            str(tmp_path / "s.csv"),
            "-q",
            "--shard",
            "1/2",
        ]
    )
    assert main(["merge", str(tmp_path / "s.csv")]) == EXIT_USAGE
