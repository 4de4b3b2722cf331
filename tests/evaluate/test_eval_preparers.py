"""Preparers on small fake trees laid out like each corpus (placeholder audio files)."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion2vec.errors import DataError
from emotion2vec.evaluate import preparers as P
from emotion2vec.evaluate.folds import check_folds, leave_one_session_out, predefined_split


def make(root: Path, *relpaths: str) -> Path:
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def by_rel(items, root: Path) -> dict[str, P.LabeledItem]:
    return {Path(i.path).relative_to(root).as_posix(): i for i in items}


# --------------------------------------------------------------------------------------
# IEMOCAP
# --------------------------------------------------------------------------------------

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def _eval_lines(rows) -> str:
    out = [HEADER]
    for start, end, turn, emo in rows:
        out.append(f"[{start:.4f} - {end:.4f}]\t{turn}\t{emo}\t[2.5000, 3.0000, 3.5000]\n")
        out.append("C-E1:\tNeutral;\t()\nA-E2:\tval 3; act 2; dom  2;\t()\n\n")
    return "".join(out)


IEMOCAP_TREE = {
    1: {
        # Rows deliberately not in time order: turn positions come from start times.
        "Ses01F_impro01": [
            (14.8872, 18.0175, "Ses01F_impro01_F001", "fru"),
            (6.2901, 8.2357, "Ses01F_impro01_F000", "neu"),
            (10.0100, 11.3925, "Ses01F_impro01_M000", "exc"),
            (19.2900, 20.7875, "Ses01F_impro01_M001", "xxx"),
            (21.0000, 22.5000, "Ses01F_impro01_F002", "ang"),
        ],
        "Ses01M_script01_1": [
            (1.0, 2.0, "Ses01M_script01_1_F000", "hap"),
            (3.0, 4.0, "Ses01M_script01_1_M000", "sad"),
            (5.0, 6.0, "Ses01M_script01_1_M001", "sur"),
        ],
    },
    2: {
        "Ses02F_impro02": [
            (0.5, 1.5, "Ses02F_impro02_M000", "neu"),
            (2.0, 3.0, "Ses02F_impro02_F000", "sad"),
            (3.5, 4.0, "Ses02F_impro02_M001", "oth"),
            (4.5, 5.0, "Ses02F_impro02_F001", "exc"),
        ],
    },
}


def build_iemocap(tmp_path: Path, *, skip_wav: str | None = None) -> Path:
    base = tmp_path / "IEMOCAP_full_release"
    for session, dialogs in IEMOCAP_TREE.items():
        sdir = base / f"Session{session}"
        eval_dir = sdir / "dialog" / "EmoEvaluation"
        (eval_dir / "Categorical").mkdir(parents=True)
        (eval_dir / "Categorical" / "x_cat.txt").write_text("not a label file\n")
        for dialog, rows in dialogs.items():
            (eval_dir / f"{dialog}.txt").write_text(_eval_lines(rows))
            (eval_dir / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 mac junk")
            for _, _, turn, _ in rows:
                if turn != skip_wav:
                    make(sdir / "sentences" / "wav" / dialog, f"{turn}.wav")
    return tmp_path


def test_iemocap_four_class_mapping_and_exclusion(tmp_path):
    root = build_iemocap(tmp_path)
    items = P.prepare_iemocap(root)
    names = {Path(i.path).stem: i for i in items}
    assert set(names) == {
        "Ses01F_impro01_F000",
        "Ses01F_impro01_M000",
        "Ses01F_impro01_F002",
        "Ses01M_script01_1_F000",
        "Ses01M_script01_1_M000",
        "Ses02F_impro02_M000",
        "Ses02F_impro02_F000",
        "Ses02F_impro02_F001",
    }  # fru, xxx, sur, oth dropped
    assert Counter(i.label for i in items) == {"happy": 3, "neutral": 2, "sad": 2, "angry": 1}
    exc = names["Ses01F_impro01_M000"]
    assert exc.label == "happy" and exc.extra["orig_label"] == "exc"
    # Speaker: the turn's own gender letter, not the dialogue's.
    assert exc.speaker == "Ses01M" and exc.extra["gender"] == "male"
    assert names["Ses02F_impro02_M000"].speaker == "Ses02M"
    assert names["Ses01M_script01_1_F000"].speaker == "Ses01F"
    assert {i.session for i in items} == {"Session1", "Session2"}
    # Turn positions by start time among all labelled turns (xxx/fru included).
    assert names["Ses01F_impro01_F000"].turn == 0
    assert exc.turn == 1
    assert names["Ses01F_impro01_F002"].turn == 4
    assert exc.dialogue_id == "Ses01F_impro01"
    assert exc.extra["valence"] == 2.5 and exc.extra["activation"] == 3.0
    assert exc.extra["dominance"] == 3.5
    assert exc.extra["start"] == pytest.approx(10.01)
    assert exc.extra["dialogue_type"] == "impro"
    assert names["Ses01M_script01_1_M000"].extra["dialogue_type"] == "script"
    assert Path(exc.path).is_file()

    # Root may be IEMOCAP_full_release itself.
    assert len(P.prepare_iemocap(root / "IEMOCAP_full_release")) == 8
    # Other label sets.
    assert len(P.prepare_iemocap(root, label_set="4class_no_exc")) == 6
    every = P.prepare_iemocap(root, label_set="all")
    assert len(every) == 11 and "excited" in {i.label for i in every}
    assert "xxx" not in {i.extra["orig_label"] for i in every}
    only2 = P.prepare_iemocap(root, sessions=[2])
    assert {i.session for i in only2} == {"Session2"} and len(only2) == 3

    folds = leave_one_session_out(items)
    assert [f.name for f in folds] == ["Session1", "Session2"]
    check_folds(folds, items)


def test_iemocap_errors(tmp_path):
    with pytest.raises(DataError, match="EmoEvaluation"):
        P.prepare_iemocap(make(tmp_path / "empty", "x.txt"))
    with pytest.raises(DataError, match="label_set"):
        P.prepare_iemocap(tmp_path, label_set="5class")
    root = build_iemocap(tmp_path / "a", skip_wav="Ses01F_impro01_F002")
    with pytest.raises(DataError, match=r"1 labelled utterance\(s\) have no audio.*skip_missing"):
        P.prepare_iemocap(root)
    with pytest.warns(UserWarning, match="left out 1"):
        assert len(P.prepare_iemocap(root, skip_missing=True)) == 7
    with pytest.raises(DataError, match="Session7"):
        P.prepare_iemocap(root, sessions=[7])
    # Malformed label line: names file and line.
    root = build_iemocap(tmp_path / "b")
    bad = root / "IEMOCAP_full_release/Session2/dialog/EmoEvaluation/Ses02F_impro02.txt"
    bad.write_text(HEADER + "[1.0 - 2.0]\tSes02F_impro02_F000\tneu\n")
    with pytest.raises(DataError, match=r"Ses02F_impro02\.txt:3: malformed label line"):
        P.prepare_iemocap(root)
    bad.write_text(HEADER + "[1.0 - 2.0]\tSes01F_impro02_F000\tneu\t[1, 2, 3]\n")
    with pytest.raises(DataError, match="does not belong to Session2"):
        P.prepare_iemocap(root)


# --------------------------------------------------------------------------------------
# RAVDESS
# --------------------------------------------------------------------------------------


def test_ravdess_speech_song_and_codes(tmp_path):
    root = make(
        tmp_path,
        "Actor_01/03-01-05-01-01-01-01.wav",
        "Actor_01/03-01-01-01-02-02-01.wav",
        "Actor_02/03-01-07-02-02-02-02.wav",
        "Actor_02/03-02-03-01-01-01-02.wav",
        "Actor_02/03-02-06-02-01-02-02.flac",
        "README.txt",
    )
    speech = by_rel(P.prepare_ravdess(root), root)
    assert set(speech) == {
        "Actor_01/03-01-05-01-01-01-01.wav",
        "Actor_01/03-01-01-01-02-02-01.wav",
        "Actor_02/03-01-07-02-02-02-02.wav",
    }
    angry = speech["Actor_01/03-01-05-01-01-01-01.wav"]
    assert (angry.label, angry.speaker, angry.session) == ("angry", "Actor_01", None)
    assert angry.extra["gender"] == "male" and angry.extra["intensity"] == "normal"
    disgust = speech["Actor_02/03-01-07-02-02-02-02.wav"]
    assert disgust.label == "disgusted" and disgust.extra["orig_label"] == "07"
    assert disgust.extra["gender"] == "female" and disgust.extra["intensity"] == "strong"
    assert disgust.extra["statement"] == "02" and disgust.extra["repetition"] == "02"
    song = P.prepare_ravdess_song(root)
    assert [i.label for i in song] == ["happy", "fearful"]
    assert {i.extra["vocal_channel"] for i in song} == {"song"}
    assert len(P.prepare_ravdess(root, channel="both")) == 5
    assert len(P.prepare("ravdess-song", root)) == 2

    make(root, "Actor_03/03-01-09-01-01-01-03.wav")
    with pytest.raises(DataError, match="emotion code 09"):
        P.prepare_ravdess(root)


def test_ravdess_channel_checked_and_empty(tmp_path):
    with pytest.raises(DataError, match="channel"):
        P.prepare_ravdess(tmp_path, channel="video")
    with pytest.raises(DataError, match="no audio files"):
        P.prepare_ravdess(make(tmp_path, "notes.txt"))
    only_song = make(tmp_path / "s", "Actor_01/03-02-01-01-01-01-01.wav")
    with pytest.raises(DataError, match="no utterance selected"):
        P.prepare_ravdess(only_song)


# --------------------------------------------------------------------------------------
# Corpora labelled by file names
# --------------------------------------------------------------------------------------

# name -> (files to create, {relpath: (label, speaker, session, orig_label)}, a bad file)
CASES = {
    "emodb": (
        ["wav/03a01Fa.wav", "wav/08b02Wb.wav", "wav/16a05Lc.wav", "lablaut/03a01Fa.lab"],
        {
            "wav/03a01Fa.wav": ("happy", "03", None, "F"),
            "wav/08b02Wb.wav": ("angry", "08", None, "W"),
            "wav/16a05Lc.wav": ("boredom", "16", None, "L"),
        },
        "wav/03a01Xa.wav",
    ),
    "crema_d": (
        ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1091_IEO_HAP_HI.wav", "README.md"],
        {
            "AudioWAV/1001_DFA_ANG_XX.wav": ("angry", "1001", None, "ANG"),
            "AudioWAV/1091_IEO_HAP_HI.wav": ("happy", "1091", None, "HAP"),
        },
        "AudioWAV/1001_DFA_JOY_XX.wav",
    ),
    "tess": (
        [
            "TESS/OAF_angry/OAF_back_angry.wav",
            "TESS/YAF_pleasant_surprised/YAF_bath_ps.wav",
            "TESS/YAF_fear/YAF_back_fear.wav",
            "TESS/OAF_disgust/OAF_search_disgust.wav",
        ],
        {
            "TESS/OAF_angry/OAF_back_angry.wav": ("angry", "OAF", None, "angry"),
            "TESS/YAF_pleasant_surprised/YAF_bath_ps.wav": ("surprised", "YAF", None, "ps"),
            "TESS/YAF_fear/YAF_back_fear.wav": ("fearful", "YAF", None, "fear"),
            "TESS/OAF_disgust/OAF_search_disgust.wav": ("disgusted", "OAF", None, "disgust"),
        },
        "TESS/MAF_back_angry.wav",
    ),
    "savee": (
        [
            "AudioData/DC/a01.wav",
            "AudioData/JE/sa15.wav",
            "AudioData/KL/su02.wav",
            "AudioData/JK/n30.wav",
        ],
        {
            "AudioData/DC/a01.wav": ("angry", "DC", None, "a"),
            "AudioData/JE/sa15.wav": ("sad", "JE", None, "sa"),
            "AudioData/KL/su02.wav": ("surprised", "KL", None, "su"),
            "AudioData/JK/n30.wav": ("neutral", "JK", None, "n"),
        },
        "AudioData/XX/a01.wav",
    ),
    "emovo": (
        ["EMOVO/f1/dis-f1-b1.wav", "EMOVO/m3/gio-m3-l4.wav", "EMOVO/f2/neu-f2-n5.wav"],
        {
            "EMOVO/f1/dis-f1-b1.wav": ("disgusted", "f1", None, "dis"),
            "EMOVO/m3/gio-m3-l4.wav": ("happy", "m3", None, "gio"),
            "EMOVO/f2/neu-f2-n5.wav": ("neutral", "f2", None, "neu"),
        },
        "EMOVO/f1/col-f1-b1.wav",
    ),
    "casia": (
        ["liuchanhg/angry/201.wav", "wangzhe/surprise/201.wav", "ZhaoZuoxiang/fear/250.wav"],
        {
            "liuchanhg/angry/201.wav": ("angry", "liuchanhg", None, "angry"),
            "wangzhe/surprise/201.wav": ("surprised", "wangzhe", None, "surprise"),
            "ZhaoZuoxiang/fear/250.wav": ("fearful", "ZhaoZuoxiang", None, "fear"),
        },
        "wangzhe/bored/201.wav",
    ),
    "subesco": (
        ["SUBESCO/F_02_MONIKA_S_1_NEUTRAL_5.wav", "SUBESCO/M_10_RAFI_S_10_SURPRISE_1.wav"],
        {
            "SUBESCO/F_02_MONIKA_S_1_NEUTRAL_5.wav": ("neutral", "F_02", None, "NEUTRAL"),
            "SUBESCO/M_10_RAFI_S_10_SURPRISE_1.wav": ("surprised", "M_10", None, "SURPRISE"),
        },
        "SUBESCO/F_02_MONIKA_S_1_BORED_5.wav",
    ),
    "urdu": (
        ["Angry/SM1_F1_A01.wav", "Sad/SF3_F12_S07.wav", "Happy/SM20_F4_H10.wav"],
        {
            "Angry/SM1_F1_A01.wav": ("angry", "SM1", None, "A"),
            "Sad/SF3_F12_S07.wav": ("sad", "SF3", None, "S"),
            "Happy/SM20_F4_H10.wav": ("happy", "SM20", None, "H"),
        },
        "Sad/XX_F12_S07.wav",
    ),
    "shemo": (
        ["female/F01A01.wav", "male/M23W05.wav", "male/M02F11.wav"],
        {
            "female/F01A01.wav": ("angry", "F01", None, "A"),
            "male/M23W05.wav": ("surprised", "M23", None, "W"),
            "male/M02F11.wav": ("fearful", "M02", None, "F"),
        },
        "male/M23X05.wav",
    ),
    "aesdd": (
        ["anger/a01 (1).wav", "sadness/s12 (5).wav", "fear/f03 (2)b.wav"],
        {
            "anger/a01 (1).wav": ("angry", "1", None, "a"),
            "sadness/s12 (5).wav": ("sad", "5", None, "s"),
            "fear/f03 (2)b.wav": ("fearful", "2", None, "f"),
        },
        "anger/a01.wav",
    ),
    "cafe": (
        ["Colère/Faible/01-C-1-1.wav", "Neutre/02-N-3.wav", "Joie/Fort/12-J-2-6.wav"],
        {
            "Colère/Faible/01-C-1-1.wav": ("angry", "01", None, "C"),
            "Neutre/02-N-3.wav": ("neutral", "02", None, "N"),
            "Joie/Fort/12-J-2-6.wav": ("happy", "12", None, "J"),
        },
        "Joie/Fort/12-X-2-6.wav",
    ),
    "esd": (
        [
            "0001/Angry/train/0001_000351.wav",
            "0015/Surprise/test/0015_001701.wav",
            "0020/Neutral/evaluation/0020_000001.wav",
            "0001/0001.txt",
        ],
        {
            "0001/Angry/train/0001_000351.wav": ("angry", "0001", "train", "Angry"),
            "0015/Surprise/test/0015_001701.wav": ("surprised", "0015", "test", "Surprise"),
            "0020/Neutral/evaluation/0020_000001.wav": ("neutral", "0020", "evaluation", "Neutral"),
        },
        "0001/Bored/train/0001_000001.wav",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_file_name_corpora(tmp_path, name):
    files, expected, bad = CASES[name]
    root = make(tmp_path / name, *files)
    items = P.prepare(name, root)
    got = by_rel(items, root)
    assert set(got) == set(expected)
    for rel, (label, speaker, session, orig) in expected.items():
        item = got[rel]
        assert (item.label, item.speaker, item.session) == (label, speaker, session), rel
        assert item.extra["orig_label"] == orig
        assert Path(item.path).is_absolute() and Path(item.path).is_file()
    assert [i.path for i in items] == sorted(i.path for i in items)
    # Hidden files and macOS debris are ignored.
    make(root, f"__MACOSX/._{Path(files[0]).name}", f".hidden/{Path(files[0]).name}")
    assert len(P.prepare(name, root)) == len(expected)
    # A file that breaks the naming scheme is an error that names it.
    make(root, bad)
    with pytest.raises(DataError, match=Path(bad).name.replace("(", r"\(").replace(")", r"\)")):
        P.prepare(name, root)


@pytest.mark.parametrize("name", sorted(CASES))
def test_wrong_root_says_what_was_expected(tmp_path, name):
    with pytest.raises(DataError, match="expected"):
        P.prepare(name, tmp_path / "does-not-exist")
    with pytest.raises(DataError, match="no audio files"):
        P.prepare(name, make(tmp_path / "x", "notes.txt"))


def test_extra_metadata(tmp_path):
    root = make(tmp_path, "wav/03a01Fa.wav", "wav/13a05Tb.wav")
    low, high = P.prepare_emodb(root)
    assert (low.extra["gender"], high.extra["gender"]) == ("male", "female")
    assert low.extra["text"] == "a01" and low.extra["version"] == "a"
    cafe = P.prepare_cafe(make(tmp_path / "c", "Neutre/02-N-3.wav", "Peur/Fort/03-P-2-4.wav"))
    assert {i.label: (i.extra.get("intensity"), i.extra["sentence"]) for i in cafe} == {
        "neutral": (None, "3"),
        "fearful": ("high", "4"),
    }
    crema = P.prepare_crema_d(make(tmp_path / "cr", "AudioWAV/1001_DFA_ANG_LO.wav"))
    assert crema[0].extra == {"orig_label": "ANG", "sentence": "DFA", "level": "low"}


def test_savee_flat_layout_and_duplicates(tmp_path):
    root = make(tmp_path, "ALL/DC_a01.wav", "ALL/JK_sa03.wav", "ALL/KL_su15.wav")
    items = P.prepare_savee(root)
    assert [(i.speaker, i.label) for i in items] == [
        ("DC", "angry"),
        ("JK", "sad"),
        ("KL", "surprised"),
    ]
    make(root, "AudioData/DC/a01.wav")  # same utterance in the other layout
    with pytest.raises(DataError, match="appears twice"):
        P.prepare_savee(root)


def test_real_audio_is_not_decoded_but_works(tmp_path):
    path = tmp_path / "wav" / "03a01Fa.wav"
    path.parent.mkdir()
    sf.write(path, np.zeros(160, dtype=np.float32), 16000)
    (item,) = P.prepare_emodb(tmp_path)
    assert sf.info(item.path).frames == 160


# --------------------------------------------------------------------------------------
# MELD
# --------------------------------------------------------------------------------------

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def _meld_rows(rows) -> str:
    lines = [MELD_HEADER]
    for n, (text, speaker, emo, sent, dia, utt) in enumerate(rows, start=1):
        lines.append(
            f'{n},"{text}",{speaker},{emo},{sent},{dia},{utt},3,7,"00:14:38,127","00:14:40,378"\n'
        )
    return "".join(lines)


def build_meld(tmp_path: Path, *, encoding: str = "utf-8") -> Path:
    root = tmp_path / "MELD.Raw"
    root.mkdir(parents=True)
    tables = {
        "train": [
            ("Oh my God, he’s lost it.", "Monica", "surprise", "negative", 0, 0),
            ("Hi!", "Joey", "joy", "positive", 0, 1),
            ("Okay.", "Ross", "neutral", "neutral", 1, 0),
            ("broken clip", "Ross", "anger", "negative", 125, 3),
        ],
        "dev": [
            ("No!", "Rachel", "anger", "negative", 0, 0),
            ("missing video", "Rachel", "sadness", "negative", 110, 7),
        ],
        "test": [
            ("Ew.", "Phoebe", "disgust", "negative", 0, 0),
            ("Eek", "Chandler", "fear", "negative", 0, 1),
        ],
    }
    folders = {
        "train": "train_splits",
        "dev": "dev_splits_complete",
        "test": "output_repeated_splits_test",
    }
    for split, rows in tables.items():
        (root / f"{split}_sent_emo.csv").write_text(_meld_rows(rows), encoding=encoding)
        for *_, dia, utt in rows:
            if (split, dia, utt) != ("dev", 110, 7):
                make(root / folders[split], f"dia{dia}_utt{utt}.wav")
        make(root / folders[split], "dia999_utt0.mp4")
    return tmp_path


def test_meld(tmp_path):
    root = build_meld(tmp_path)
    items = P.prepare_meld(root)  # the folder containing MELD.Raw works too
    assert len(items) == 6  # known-bad train dia125_utt3 and dev dia110_utt7 dropped
    assert Counter(i.session for i in items) == {"train": 3, "dev": 1, "test": 2}
    first = next(
        i for i in items if i.session == "train" and i.turn == 0 and i.dialogue_id == "train_dia0"
    )
    assert first.label == "surprised" and first.extra["orig_label"] == "surprise"
    assert first.speaker == "Monica" and first.extra["sentiment"] == "negative"
    assert first.extra["text"] == "Oh my God, he’s lost it."
    assert first.extra["start_time"] == "00:14:38,127"
    assert {i.label for i in items} == {
        "surprised",
        "happy",
        "neutral",
        "angry",
        "disgusted",
        "fearful",
    }
    # Dialogue ids restart per split, so they carry the split.
    assert {i.dialogue_id for i in items if i.turn == 0} >= {"train_dia0", "dev_dia0", "test_dia0"}
    sentiment = P.prepare("MELD", root, target="sentiment")
    assert Counter(i.label for i in sentiment) == {"negative": 4, "positive": 1, "neutral": 1}
    with pytest.warns(UserWarning, match="dia110_utt7"):
        assert len(P.prepare_meld(root, drop_known_bad=False, skip_missing=True)) == 7
    assert len(P.prepare_meld(root / "MELD.Raw", splits=["test"])) == 2

    (fold,) = predefined_split(items, allow_speaker_overlap=True)
    assert (len(fold.train_idx), len(fold.valid_idx), len(fold.test_idx)) == (3, 1, 2)
    assert fold.valid_strategy == "predefined"


def test_meld_errors_and_encoding(tmp_path):
    root = build_meld(tmp_path / "a")
    with pytest.raises(DataError, match="have no audio"):
        P.prepare_meld(root, drop_known_bad=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        P.prepare_meld(root, drop_known_bad=False, skip_missing=True)
    assert any("dia110_utt7" in str(w.message) for w in caught)
    with pytest.raises(DataError, match="unknown split"):
        P.prepare_meld(root, splits=["validation"])
    with pytest.raises(DataError, match="target"):
        P.prepare_meld(root, target="arousal")
    table = root / "MELD.Raw" / "dev_sent_emo.csv"
    table.write_text(MELD_HEADER + '1,"x",A,happy,positive,0,0,1,1,a,b\n')
    with pytest.raises(DataError, match=r"dev_sent_emo\.csv:2: unknown emotion 'happy'"):
        P.prepare_meld(root)
    table.write_text("Utterance,Speaker\nx,A\n")
    with pytest.raises(DataError, match="missing column"):
        P.prepare_meld(root)
    with pytest.raises(DataError, match="dev_sent_emo.csv"):
        P.prepare_meld(make(tmp_path / "b", "train_sent_emo.csv"))
    # Excel-saved cp1252 tables are read too.
    cp = build_meld(tmp_path / "c", encoding="cp1252")
    texts = {i.extra["text"] for i in P.prepare_meld(cp)}
    assert "Oh my God, he’s lost it." in texts


# --------------------------------------------------------------------------------------
# CMU-MOSI / MOSEI
# --------------------------------------------------------------------------------------


def build_cmu(
    tmp_path: Path, rows, audio_dir="wav", header="segment,start,end,sentiment,split"
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    lines = [header] + [",".join(map(str, r)) for r in rows]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    for row in rows:
        make(tmp_path / audio_dir, f"{row[0]}.wav")
    return tmp_path


MOSI_ROWS = [
    ("03bSnISJMiM_1", 0.0, 3.1, 2.4, "train"),
    ("03bSnISJMiM_2", 3.1, 5.0, -1.2, "train"),
    ("03bSnISJMiM_3", 5.0, 7.0, 0.0, "train"),
    ("0h-zjBukYpk_1", 0.0, 2.0, -3.0, "test"),
    ("1DmNV9C1hbY_2", 2.0, 4.0, 0.6, "valid"),
]


def test_mosi(tmp_path):
    root = build_cmu(tmp_path / "mosi", MOSI_ROWS)
    items = P.prepare_mosi(root)
    assert len(items) == 4  # the zero-valued segment is dropped
    got = {Path(i.path).stem: i for i in items}
    seg = got["03bSnISJMiM_1"]
    assert (seg.label, seg.value, seg.speaker, seg.session) == (
        "positive",
        2.4,
        "03bSnISJMiM",
        "train",
    )
    assert seg.extra == {"video": "03bSnISJMiM", "start": 0.0, "end": 3.1}
    assert (
        got["0h-zjBukYpk_1"].label == "negative" and got["0h-zjBukYpk_1"].speaker == "0h-zjBukYpk"
    )
    kept = P.prepare("cmu-mosi", root, zero="neutral")
    assert Counter(i.label for i in kept) == {"positive": 2, "negative": 2, "neutral": 1}
    (fold,) = predefined_split(items)
    assert len(fold.test_idx) == 1 and fold.valid_strategy == "predefined"


def test_mosei_layout_options_and_errors(tmp_path):
    rows = [("vid_a_0", 1.5), ("vid_a_1", -0.5), ("vid-b_0", 0.0)]
    root = build_cmu(
        tmp_path / "mosei", rows, audio_dir="Audio/WAV_16000/Segmented", header="id,label"
    )
    items = P.prepare_mosei(root)
    assert [(i.speaker, i.label, i.session) for i in items] == [
        ("vid_a", "positive", None),
        ("vid_a", "negative", None),
    ]
    with pytest.raises(DataError, match="not found"):
        P.prepare_mosei(root, audio_dir="nowhere")
    with pytest.raises(DataError, match="zero"):
        P.prepare_mosei(root, zero="keep")
    bad = build_cmu(tmp_path / "bad", [("s_1", 3.5)], header="segment,sentiment")
    with pytest.raises(DataError, match=r"labels\.csv:2: sentiment 3\.5 outside \[-3, 3\]"):
        P.prepare_mosi(bad)
    nocol = build_cmu(tmp_path / "nocol", [("s_1", 1.0)], header="segment,polarity")
    with pytest.raises(DataError, match="no value column"):
        P.prepare_mosi(nocol)
    noaudio = build_cmu(tmp_path / "noaudio", [("s_1", 1.0)], header="segment,sentiment")
    (noaudio / "wav" / "s_1.wav").unlink()
    with pytest.raises(DataError, match="have no audio"):
        P.prepare_mosi(noaudio)
    with pytest.raises(DataError, match="labels.csv"):
        P.prepare_mosi(make(tmp_path / "none", "wav/x.wav"))


def test_dispatch():
    assert set(P.PREPARERS) >= {
        "iemocap",
        "ravdess",
        "ravdess_song",
        "emodb",
        "crema_d",
        "tess",
        "savee",
        "emovo",
        "casia",
        "meld",
        "mosi",
        "mosei",
    }
    with pytest.raises(DataError, match="unknown corpus 'nope'"):
        P.prepare("nope", ".")
