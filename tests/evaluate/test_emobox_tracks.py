"""EmoBox's trained tracks (intra-corpus, cross-corpus) and the channel / span plumbing they
rely on (manifest columns, feature cache entries)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emotion2vec.errors import DataError
from emotion2vec.evaluate import emobox, emobox_probe
from emotion2vec.evaluate.cache import FeatureCache, LogMelExtractor
from emotion2vec.evaluate.heads import PaperHead
from emotion2vec.evaluate.manifest import check_unique, read_manifest, write_manifest
from emotion2vec.evaluate.probe import TrainConfig, train_head
from emotion2vec.sources import AudioSource

SR = 16000
TONES = {"Angry": 300.0, "Happy": 900.0, "Neutral": 2000.0, "Sad": 4500.0}
#: A reading that learns four tones in a few epochs (the published ones are slow on purpose).
QUICK = emobox_probe.IntraProtocol("quick", epochs=40, hidden=32, seed=3, lr=1e-2, warmup=1)


def tone(freq: float, seconds: float, rng) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def fake_corpus_with_spans(root: Path, audio: Path, per_class: int = 10) -> None:
    """A 2-fold EmoBox corpus whose utterances are channel 2 of stereo files (channel 1 is
    noise) or a time span of a longer file (the rest is another class's tone): only a reader
    that honours channel and start/end sees one tone per label."""
    rng = np.random.default_rng(0)
    data = root / "data" / "spans"
    rows = []
    names = list(TONES)
    for i in range(per_class * len(names)):
        emo = names[i % len(names)]
        other = names[(i + 1) % len(names)]
        if i % 2 == 0:
            stereo = np.stack([0.3 * rng.standard_normal(SR), tone(TONES[emo], 1.0, rng)], axis=1)
            name = f"stereo/u{i:03d}.wav"
            sf.write(_mk(audio / name), stereo, SR)
            rows.append(
                {"key": f"s-{i}", "wav": f"downloads/spans/{name}", "emo": emo, "channel": 2}
            )
        else:
            wave = np.concatenate([tone(TONES[other], 1.0, rng), tone(TONES[emo], 1.0, rng)])
            name = f"long/u{i:03d}.flac"
            sf.write(_mk(audio / name), wave, SR)
            rows.append(
                {
                    "key": f"s-{i}",
                    "wav": f"downloads/spans/{name}",
                    "emo": emo,
                    "channel": 1,
                    "start_time": 1.0,
                    "end_time": 2.0,
                }
            )
    (data / "fold_1").mkdir(parents=True)
    (data / "fold_2").mkdir(parents=True)
    (data / "spans.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "label_map.json").write_text(json.dumps({e: e for e in names}))
    half = len(rows) // 2
    for k, (train, test) in {1: (rows[half:], rows[:half]), 2: (rows[:half], rows[half:])}.items():
        for part, subset in (("train", train), ("test", test)):
            (data / f"fold_{k}" / f"spans_{part}_fold_{k}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in subset)
            )


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_validation_draw_is_emobox_random_split():
    keys = [f"k{i}" for i in range(37)]
    # EmoBox: random.seed(seed); idx = np.arange(n); random.shuffle(idx); first int(0.8 n) train
    random.seed(1993)
    idx = np.arange(len(keys))
    random.shuffle(idx)
    cut = int(len(keys) * 0.8)
    train, valid = emobox_probe.validation_draw(keys, 1993, 0.2)
    assert train == [keys[i] for i in idx[:cut]] and valid == [keys[i] for i in idx[cut:]]
    assert len(train) == 29 and set(train).isdisjoint(valid)
    assert emobox_probe.validation_draw(keys, 1234)[1] != valid


def test_warmup_decay_steps_like_speechbrain_after_the_first_epoch():
    # SpeechBrain's LinearWarmupScheduler(1.0, 2, 4).get_next_value() gives 0, .5, 1, .5, 0;
    # EmoBox calls it after each epoch, so epoch 1 runs at the optimiser's initial rate.
    config = TrainConfig.emobox(epochs=6, lr=1.0, warmup_decay=(2, 4))
    assert [config.epoch_lr(e) for e in range(6)] == [1.0, 0.0, 0.5, 1.0, 0.5, 0.0]
    recipe = emobox_probe.PROTOCOLS["recipe"].train_config()
    assert recipe.epoch_lr(11) == pytest.approx(1e-4) and recipe.epoch_lr(20) == pytest.approx(1e-5)
    head = PaperHead(3, 2, hidden=4)
    x = [np.ones((2, 3), np.float32) * i for i in range(8)]
    result = train_head(head, x, np.array([0, 1] * 4), config=config, keep="last")
    assert [h["lr"] for h in result.history] == [1.0, 0.0, 0.5, 1.0, 0.5, 0.0]


def test_manifest_spans_round_trip_and_uniqueness(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros((SR, 2), np.float32), SR)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label,channel,start_time,end_time\n"
        "a.wav,happy,2,0.0,0.5\n"
        "a.wav,sad,2,0.5,1.0\n"
        "a.wav,sad,1,,\n"
    )
    items = read_manifest(manifest)
    assert [(i.channel, i.start, i.end) for i in items] == [
        (2, 0.0, 0.5),
        (2, 0.5, 1.0),
        (1, None, None),
    ]
    assert items[0].extra == {} and items[0].ident.endswith("a.wav@0-0.5#c2")
    check_unique(items, manifest)  # three different parts of one file
    with pytest.raises(DataError, match=r"entries 1 and 4 list .*a\.wav@0-0\.5#c2 twice"):
        check_unique(items + [items[0]], manifest)
    back = read_manifest(write_manifest(items, tmp_path / "out.jsonl"))
    assert [(i.channel, i.start, i.end) for i in back] == [
        (2, 0.0, 0.5),
        (2, 0.5, 1.0),
        (1, None, None),
    ]
    for bad, match in (("0,,", "channel must be 1"), ("1,0.5,0.2", "must be after start")):
        (tmp_path / "bad.csv").write_text(f"path,channel,start,end\na.wav,{bad}\n")
        with pytest.raises(DataError, match=match):
            read_manifest(tmp_path / "bad.csv")
    # whole-file manifests are written exactly as before (no span columns)
    write_manifest([items[2].__class__(path=items[2].path)], tmp_path / "plain.csv")
    assert (tmp_path / "plain.csv").read_text().splitlines()[0] == (
        "path,label,value,speaker,session,dialogue,turn"
    )


def test_cache_entries_are_per_channel_and_span(tmp_path):
    rng = np.random.default_rng(1)
    stereo = np.stack([tone(300, 1.0, rng), tone(3000, 1.0, rng)], axis=1)
    sf.write(tmp_path / "st.wav", stereo, SR)
    cache = FeatureCache(tmp_path / "cache")
    path = tmp_path / "st.wav"
    items = [
        path,
        AudioSource(path, "x", channel=1),
        AudioSource(path, "x", channel=2),
        AudioSource(path, "x", channel=2, start=0.25, end=0.75),
    ]
    got = cache.get(LogMelExtractor(), items, progress=False)
    assert got.computed == [0, 1, 2, 3]
    arrays = got.arrays
    assert not np.allclose(arrays[1], arrays[2]) and not np.allclose(arrays[2], arrays[3])
    alone = LogMelExtractor().features(AudioSource(path, "x", channel=2).load())
    np.testing.assert_allclose(arrays[2], alone, rtol=1e-6)
    # whole files keep the entry name they always had: a hash of the absolute path
    key = LogMelExtractor().key()
    assert cache.entry_path(key, path) == cache.entry_path(key, AudioSource(path, "y"))
    assert len({cache.entry_path(key, i) for i in items}) == 4
    again = cache.get(LogMelExtractor(), items, progress=False)
    assert again.computed == [] and again.reused == [0, 1, 2, 3]


def test_intra_corpus_track_uses_channels_and_spans(tmp_path):
    fake_corpus_with_spans(tmp_path / "emobox", tmp_path / "audio")
    corpus = emobox.read_corpus(tmp_path / "emobox", "spans")
    found = emobox.map_audio(corpus.rows, tmp_path / "audio")
    assert found.report(len(corpus.rows)) == "40 listed, 40 found, 0 missing"
    result = emobox_probe.intra_corpus(
        corpus, found, LogMelExtractor(), protocols=[QUICK], baseline=True, progress=False
    )["quick"]
    assert result["classes"] == ["angry", "happy", "neutral", "sad"]
    for fold in result["folds"].values():
        assert (fold["train"], fold["valid"], fold["test"]) == (16, 4, 20)
        assert fold["validation"].startswith("random 0.2 of train, seed 3")
        assert len(fold["per_epoch_test_wa"]) == 40
        sel = fold["selected"]
        assert sel["last"]["epoch"] == 40
        assert sel["best_test"]["wa"] == max(fold["per_epoch_test_wa"])
        best_valid = fold["per_epoch_valid_wa"].index(max(fold["per_epoch_valid_wa"]))
        assert sel["best_valid"]["epoch"] == best_valid + 1
    # one tone per label only when channel 2 and the 1-2 s span are read
    assert result["mean"]["last"]["wa"] >= 0.9
    # seeded: the same reading gives the same scores, and the global RNG is left alone
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    again = emobox_probe.intra_corpus(
        corpus,
        found,
        LogMelExtractor(),
        protocols=[QUICK],
        folds=[1],
        baseline=True,
        progress=False,
    )["quick"]
    assert again["folds"]["fold1"] == result["folds"]["fold1"]
    assert torch.equal(torch.rand(1), expected)


def test_cross_corpus_pairs_the_sets_that_are_found(tmp_path):
    root = tmp_path / "emobox"
    (root / "data" / "track2").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name, layout in (("RAVDESS", "Actor_{i:02d}/r-{i}.wav"), ("SAVEE", "{emo}/s-{i}.wav")):
        rows = []
        for i in range(24):
            emo = list(TONES)[i % 4].lower()
            wav = layout.format(i=i, emo=emo)
            sf.write(_mk(tmp_path / name / Path(wav).name), tone(TONES[emo.title()], 0.5, rng), SR)
            rows.append({"wav_filename": wav, "label": emo, "speaker": str(i % 3)})
        (root / "data" / "track2" / f"{name}_selected_balenced.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )
    roots = {"RAVDESS": tmp_path / "RAVDESS", "SAVEE": tmp_path / "SAVEE"}
    result = emobox_probe.cross_corpus(
        root, roots, LogMelExtractor(), protocols=[QUICK], baseline=True, progress=False
    )
    assert result["sets"]["IEMOCAP"] == {"status": "not given"}
    assert result["sets"]["SAVEE"]["found"] == 24 and result["sets"]["SAVEE"]["status"] == "used"
    assert sorted(result["pairs"]["quick"]) == ["RAVDESS->SAVEE", "SAVEE->RAVDESS"]
    assert result["pairs"]["quick"]["RAVDESS->SAVEE"]["last"]["wa"] >= 0.9
    alone = emobox_probe.cross_corpus(
        root, {"RAVDESS": roots["RAVDESS"]}, LogMelExtractor(), protocols=[QUICK], baseline=True
    )
    assert alone["pairs"] == {} and "missing ['IEMOCAP', 'MELD', 'SAVEE']" in alone["note"]
    with pytest.raises(DataError, match="unknown track-2 set"):
        emobox_probe.cross_corpus(root, {"CREMA": tmp_path}, LogMelExtractor(), baseline=True)


def test_emobox_command_runs_the_trained_tracks(tmp_path, capsys):
    from emotion2vec.cli import main

    fake_corpus_with_spans(tmp_path / "emobox", tmp_path / "audio", per_class=5)
    common = ["--emobox-root", str(tmp_path / "emobox"), "--features", "logmel", "-q"]
    argv = [
        "emobox",
        "--track",
        "intra",
        "--corpus",
        "spans",
        "--audio-root",
        str(tmp_path / "audio"),
    ]
    assert (
        main([*argv, *common, "--readings", "recipe", "--folds", "2", "-o", str(tmp_path / "i")])
        == 0
    )
    doc = json.loads((tmp_path / "i" / "results.json").read_text())
    assert doc["track"] == "intra" and doc["features"] == "logmel"
    assert doc["audio"]["found"] == 20 and list(doc["results"]) == ["recipe"]
    recipe = doc["results"]["recipe"]
    assert list(recipe["folds"]) == ["fold2"] and recipe["protocol"]["epochs"] == 20
    assert len(recipe["folds"]["fold2"]["per_epoch_test_wa"]) == 20
    table = (tmp_path / "i" / "results.md").read_text()
    assert "| recipe | 20 | 256 | 1993 | best_valid |" in table
    # track 2 with one set found: the coverage report says what is missing
    (tmp_path / "emobox" / "data" / "track2").mkdir()
    (tmp_path / "emobox" / "data" / "track2" / "SAVEE_selected_balenced.jsonl").write_text(
        json.dumps({"wav_filename": "stereo/u000.wav", "label": "angry", "speaker": "1"}) + "\n"
    )
    cross = ["emobox", "--track", "cross", "--set-audio", f"savee={tmp_path / 'audio'}"]
    assert main([*cross, *common, "-o", str(tmp_path / "c")]) == 0
    doc = json.loads((tmp_path / "c" / "results.json").read_text())
    assert doc["results"]["sets"]["SAVEE"]["found"] == 1 and doc["results"]["pairs"] == {}
    assert "RAVDESS: not given" in capsys.readouterr().err
    # usage errors exit 2 with a message
    assert main(["emobox", "--track", "intra", *common, "-o", str(tmp_path / "x")]) == 2
    assert "needs --corpus and --audio-root" in capsys.readouterr().err
    assert main([*cross[:3], "--set-audio", "nonsense", *common, "-o", str(tmp_path / "x")]) == 2
