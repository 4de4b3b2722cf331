"""Pre-training data: index, bad files, epoch plans, crops, determinism, background loading."""

from __future__ import annotations

import logging

import pytest
import torch
from pretrain_helpers import write_corpus

from emotion2vec.errors import DataError
from emotion2vec.pretrain.data import build_index, load_index, save_index
from emotion2vec.training import AudioBatches, DataConfig
from emotion2vec.training.batches import EpochPlan


def test_index_skips_and_logs_bad_files(tmp_path, caplog):
    root = tmp_path / "c"
    write_corpus(root, [16000, 20000, 4000])
    (root / "broken.wav").write_bytes(b"RIFF....not audio")
    (root / "empty.flac").write_bytes(b"")
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"{root / 'utt000.wav'}\n{tmp_path / 'missing.wav'}\n")
    with caplog.at_level(logging.WARNING, logger="emotion2vec.pretrain"):
        index = build_index([root, manifest], min_samples=8000)
    assert [p.split("/")[-1] for p, _ in index.skipped] == [
        "broken.wav",
        "empty.flac",
        "missing.wav",
    ]
    assert index.too_short == 1  # the 4000-sample file
    assert [f.samples for f in index.files] == [16000, 20000]  # utt000 listed twice: kept once
    text = caplog.text
    assert "broken.wav" in text and "empty.flac" in text and "missing.wav" in text
    save_index(tmp_path / "index.tsv", index)
    assert load_index(tmp_path / "index.tsv").files == index.files


def test_index_without_usable_files_is_an_error(tmp_path):
    root = tmp_path / "c"
    write_corpus(root, [4000])
    with pytest.raises(DataError, match="min_samples=8000"):
        build_index([root], min_samples=8000)


def test_epoch_plan_covers_every_file_once_under_the_budget():
    lengths = [16000 + 997 * (i % 13) for i in range(50)] + [400_000]
    config = DataConfig(max_samples=320_000, max_tokens=100_000, min_samples=400)
    plan = EpochPlan(lengths, config, seed=3)
    for epoch in range(3):
        batches = plan.epoch(epoch)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for b in batches:
            longest = max(min(lengths[i], 320_000) for i in b)
            assert longest * len(b) <= 100_000 or len(b) == 1
        assert len(batches) == plan.batches_per_epoch
    assert plan.epoch(0) != plan.epoch(1)  # reshuffled
    assert EpochPlan(lengths, config, seed=3).epoch(1) == plan.epoch(1)  # deterministic
    epoch, ids = plan.locate(plan.batches_per_epoch + 2)
    assert epoch == 1 and ids == plan.epoch(1)[2]


def test_crops_padding_and_determinism(tmp_path):
    paths = write_corpus(tmp_path / "c", [12000, 24000, 40000])
    index = build_index([tmp_path / "c"], min_samples=8000)
    config = DataConfig(min_samples=8000, max_samples=20000, max_tokens=10**6, workers=2)
    source = AudioBatches(index.files, config, seed=1)
    batch = source.load(0)
    # one batch of three, cropped to the shortest (12000), no padding
    assert batch.waves.shape == (3, 12000) and batch.lengths.tolist() == [12000] * 3
    again = AudioBatches(index.files, config, seed=1).load(0)
    assert torch.equal(batch.waves, again.waves)
    other_epoch = source.load(source.batches_per_epoch)  # same files, new random crops
    assert not torch.equal(batch.waves, other_epoch.waves)
    # rows are normalised over the whole file before cropping, so a crop is ~ zero-mean
    assert float(batch.waves.abs().mean()) > 0.1

    padded = AudioBatches(
        index.files, DataConfig(**{**config.__dict__, "crop_to_shortest": False}), seed=1
    )
    b = padded.load(0)
    assert sorted(b.lengths.tolist()) == [12000, 20000, 20000]  # capped at max_samples
    assert b.waves.shape[1] == 20000
    short = b.lengths.tolist().index(12000)
    assert bool((b.waves[short, 12000:] == 0).all())
    assert paths  # written


def test_iterate_prefetches_in_order_and_matches_load(corpus):
    index = build_index([corpus], min_samples=8000)
    config = DataConfig(
        min_samples=8000, max_samples=16000, max_tokens=40000, workers=2, prefetch=3
    )
    source = AudioBatches(index.files, config, seed=2)
    wanted = [5, 0, 7, 7, 1]
    got = list(source.iterate(wanted))
    assert [b.index for b in got] == wanted
    for b in got:
        assert torch.equal(b.waves, source.load(b.index).waves)


def test_decode_failure_is_skipped_and_an_empty_batch_becomes_a_placeholder(tmp_path, caplog):
    write_corpus(tmp_path / "c", [16000, 16000])
    index = build_index([tmp_path / "c"], min_samples=8000)
    # corrupt the files after indexing: the header was fine, decoding now fails
    for f in index.files:
        with open(f.path, "r+b") as fh:
            fh.write(b"XXXX")
    config = DataConfig(min_samples=8000, max_samples=16000, max_tokens=10**6)
    source = AudioBatches(index.files, config, seed=0)
    with caplog.at_level(logging.WARNING, logger="emotion2vec.pretrain"):
        batch = source.load(0)
    assert batch.weight == 0.0 and batch.files == [] and batch.audio_seconds == 0.0
    assert "failed to decode" in caplog.text and len(source.failed) == 2


def test_manifest_channels_and_spans_reach_the_batches(tmp_path):
    import numpy as np
    import soundfile as sf

    from emotion2vec.audio import load_audio, normalize_waveform

    rng = np.random.default_rng(4)
    stereo = rng.standard_normal((48000, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "talk.wav", stereo, 16000)
    manifest = tmp_path / "spans.csv"
    manifest.write_text("path,channel,start,end\ntalk.wav,2,0.5,1.5\ntalk.wav,1,1.0,3.0\n")
    index = build_index([manifest], min_samples=8000)
    assert [(f.channel, f.start, f.end, f.samples) for f in index.files] == [
        (2, 0.5, 1.5, 16000),
        (1, 1.0, 3.0, 32000),
    ]
    save_index(tmp_path / "index.tsv", index)
    assert load_index(tmp_path / "index.tsv").files == index.files
    config = DataConfig(min_samples=8000, max_samples=10**6, max_tokens=10**7, workers=1)
    batch = AudioBatches(
        index.files, DataConfig(**{**config.__dict__, "crop_to_shortest": False}), seed=0
    ).load(0)
    for row, file_id in enumerate(batch.files):
        f = index.files[file_id]
        want = normalize_waveform(
            torch.from_numpy(load_audio(f.path, channel=f.channel, start=f.start, end=f.end))
        )
        n = int(batch.lengths[row])
        assert n == f.samples and torch.allclose(batch.waves[row, :n], want, atol=1e-6)


def test_old_two_column_indexes_still_load(tmp_path):
    (tmp_path / "old.tsv").write_text("path\tsamples\n/a.wav\t16000\n")
    (f,) = load_index(tmp_path / "old.tsv").files
    assert (f.path, f.samples, f.channel, f.start, f.end) == ("/a.wav", 16000, None, None, None)
