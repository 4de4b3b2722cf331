"""EmoBox metadata on a user's own copy of a corpus, and the zero-shot track."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from model_factory import build_model

from emotion2vec.cli import main
from emotion2vec.config import EMOTION_LABELS
from emotion2vec.evaluate import emobox

SHARED = Path(os.environ.get("EMOTION2VEC_SHARED", Path(__file__).resolve().parents[3] / "shared"))
EMOS = ["Angry", "Happy", "Neutral", "Sad", "Calm", "Surprised"]


def fake_emobox(root: Path, audio: Path, n: int = 12) -> None:
    """A 2-fold EmoBox tree listing n files, and the user's copy as FLAC in another layout."""
    data = root / "data" / "toy"
    (data / "fold_1").mkdir(parents=True)
    (data / "fold_2").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        wav = f"downloads/toy/Audio_All/Actor_{i % 3:02d}/utt-{i:03d}.wav"
        rows.append({"key": f"toy-{i}", "wav": wav, "emo": EMOS[i % len(EMOS)], "channel": 1})
        target = audio / f"actor_{i % 3:02d}" / f"utt-{i:03d}.flac"  # other case, other extension
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
    (data / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "label_map.json").write_text(
        json.dumps({e: ("Surprise" if e == "Surprised" else e) for e in EMOS})
    )
    for k, (train, test) in {
        1: (rows[n // 2 :], rows[: n // 2]),
        2: (rows[: n // 2], rows[n // 2 :]),
    }.items():
        for part, subset in (("train", train), ("test", test)):
            (data / f"fold_{k}" / f"toy_{part}_fold_{k}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in subset)
            )


def test_metadata_and_folds_are_read_as_published(tmp_path):
    fake_emobox(tmp_path / "emobox", tmp_path / "audio")
    corpus = emobox.read_corpus(tmp_path / "emobox", "toy")
    assert len(corpus.rows) == 12 and sorted(corpus.folds) == [1, 2]
    assert corpus.rows["toy-5"].label == "surprised"  # label_map "Surprise" -> our label
    sets = emobox.evaluation_sets(corpus)
    assert len(sets["fold1"]) == 6 and len(sets["all_folds"]) == 12


def test_audio_is_found_by_path_tail_and_stem_with_a_report(tmp_path):
    fake_emobox(tmp_path / "emobox", tmp_path / "audio")
    corpus = emobox.read_corpus(tmp_path / "emobox", "toy")
    (tmp_path / "audio" / "actor_00" / "utt-000.flac").unlink()  # missing
    dup = tmp_path / "audio" / "elsewhere" / "utt-001.wav"  # same stem, no shared folder: loses
    dup.parent.mkdir()
    sf.write(dup, np.zeros(8000, dtype=np.float32), 16000)
    twin = tmp_path / "audio" / "x" / "utt-002.wav"
    twin.parent.mkdir()
    sf.write(twin, np.zeros(8000, dtype=np.float32), 16000)
    twin2 = tmp_path / "audio" / "y" / "utt-002.wav"  # two equally good candidates: ambiguous
    twin2.parent.mkdir()
    sf.write(twin2, np.zeros(8000, dtype=np.float32), 16000)
    (tmp_path / "audio" / "actor_02" / "utt-002.flac").unlink()
    found = emobox.map_audio(corpus.rows, tmp_path / "audio")
    assert found.missing == ["toy-0"]
    assert found.found["toy-1"].parent.name == "actor_01"  # the shared folder name wins
    assert set(found.ambiguous) == {"toy-2"}
    assert found.report(12) == "12 listed, 10 found, 1 missing, 1 ambiguous"


def test_zero_shot_readings_masked_and_kept(tmp_path):
    fake_emobox(tmp_path / "emobox", tmp_path / "audio")
    corpus = emobox.read_corpus(tmp_path / "emobox", "toy")
    found = emobox.map_audio(corpus.rows, tmp_path / "audio")
    scores = {}
    for key, row in corpus.rows.items():
        s = {n: 0.0 for n in EMOTION_LABELS}
        s["unknown"] = 0.5  # the head's favourite is outside the four...
        s[row.label if row.label in emobox.PRIMARY else "angry"] = 0.4  # ...then the truth
        scores[key] = s
    res = emobox.zero_shot(corpus, found, scores)["all_folds"]
    # 8 of the 12 rows are primary (Calm and Surprised are not)
    assert res["masked"]["n"] == 8 and res["masked"]["wa"] == 1.0 and res["masked"]["ua"] == 1.0
    assert res["kept"]["wa"] == 0.0 and res["kept"]["outside_primary"] == 8
    assert res["masked"]["macro_f1"] == 1.0 and res["kept"]["macro_f1"] == 0.0


def test_emobox_command_end_to_end(tmp_path, capsys):
    fake_emobox(tmp_path / "emobox", tmp_path / "audio")
    build_model(0, decoder=False).save_pretrained(tmp_path / "m")
    argv = [
        "emobox",
        "--emobox-root",
        str(tmp_path / "emobox"),
        "--corpus",
        "toy",
        "--audio-root",
        str(tmp_path / "audio"),
        "--model",
        str(tmp_path / "m"),
        "--out",
        str(tmp_path / "r"),
        "-q",
    ]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    assert doc["audio"]["listed"] == 12 and doc["audio"]["found"] == 12
    for set_name in ("fold1", "all_folds"):
        for reading in ("masked", "kept"):
            m = doc["results"][set_name][reading]
            assert 0.0 <= m["wa"] <= 1.0 and m["n"] > 0
    assert doc["results"]["all_folds"]["masked"]["n"] == 8
    assert "| all_folds | masked | 8 |" in (tmp_path / "r" / "results.md").read_text()
    assert "12 listed, 12 found, 0 missing" in capsys.readouterr().err


@pytest.mark.skipif(
    not (SHARED / "data" / "emobox" / "data" / "ravdess").is_dir(),
    reason="shared EmoBox metadata absent",
)
@pytest.mark.skipif(
    not (SHARED / "data" / "ravdess_speech" / "audio").is_dir(), reason="RAVDESS absent"
)
def test_the_published_ravdess_metadata_maps_onto_our_copy():
    corpus = emobox.read_corpus(SHARED / "data" / "emobox", "ravdess")
    found = emobox.map_audio(corpus.rows, SHARED / "data" / "ravdess_speech" / "audio")
    assert found.report(len(corpus.rows)) == "1440 listed, 1440 found, 0 missing"
    assert len(emobox.evaluation_sets(corpus)["fold1"]) == 240


def test_published_numbers_are_found_by_emobox_folder_names_and_shown():
    from emotion2vec.evaluate.emobox_published import PUBLISHED, published

    folders = "aesdd ased asvpesd cafe casia cremad emns emodb emovdb emovo emozionalmente "
    folders += "enterface esd iemocap jlcorpus m3ed mead meld mer2023 mesd msppodcast oreau "
    folders += "pavoque polish ravdess resd savee shemo subesco tess turevdb urdu"
    assert len(folders.split()) == len(PUBLISHED) == 32
    assert all(published(name) for name in folders.split())
    assert published("ravdess")["emotion2vec_plus_large"] == {"ua": 86.0, "wa": 83.9, "f1": 85.0}
    assert published("toy") is None
    table = emobox.markdown("ravdess", "1 listed", {"fold1": {"n": 0}}, "m")
    assert "| emotion2vec_plus_large | 83.9 | 86.0 | 85.0 |" in table
    assert "Published" not in emobox.markdown("toy", "1 listed", {"fold1": {"n": 0}}, "m")
