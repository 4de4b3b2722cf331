"""Manifest reading and writing, including the staged RAVDESS manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emotion2vec.errors import DataError
from emotion2vec.evaluate.folds import check_folds, predefined_folds
from emotion2vec.evaluate.manifest import LabeledItem, read_manifest, relabel, write_manifest


def _ravdess_dir() -> Path:
    env = os.environ.get("EMOTION2VEC_RAVDESS")
    if env:
        return Path(env)
    # tests/evaluate/<file> -> repository root is parents[2]; shared/ sits next to it.
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ravdess_speech"


def _items(tmp_path: Path) -> list[LabeledItem]:
    return [
        LabeledItem(
            path=str(tmp_path / "audio" / "a.wav"),
            label="angry",
            speaker="s1",
            session="Session1",
            dialogue_id="d1",
            turn=0,
            extra={"gender": "female", "note": 'comma, and "quote"'},
        ),
        LabeledItem(path=str(tmp_path / "audio" / "b.wav"), label=None, value=-1.25),
        LabeledItem(path="/elsewhere/c.flac", label="sad", extra={"only_here": 3}),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_round_trip(tmp_path, suffix):
    items = _items(tmp_path)
    target = write_manifest(items, tmp_path / f"m{suffix}")
    back = read_manifest(target)
    assert [b.path for b in back] == [i.path for i in items]
    for a, b in zip(items, back, strict=True):
        assert (a.label, a.value, a.speaker, a.session, a.dialogue_id, a.turn) == (
            b.label,
            b.value,
            b.speaker,
            b.session,
            b.dialogue_id,
            b.turn,
        )
    if suffix == ".jsonl":
        assert back[0].extra == items[0].extra
        assert back[2].extra == {"only_here": 3}  # JSON keeps types and omits nothing
    else:
        # CSV: extras are strings; a key missing in a row reads back as an empty cell.
        assert back[0].extra["note"] == 'comma, and "quote"'
        assert back[2].extra["only_here"] == "3"
        assert back[1].extra["gender"] == ""


def test_paths_written_relative_and_resolved(tmp_path):
    items = _items(tmp_path)
    target = write_manifest(items, tmp_path / "m.csv")
    first_data_line = target.read_text().splitlines()[1]
    assert first_data_line.startswith("audio/a.wav,")
    assert "/elsewhere/c.flac" in target.read_text()
    absolute = write_manifest(items, tmp_path / "abs.jsonl", relative=False)
    assert json.loads(absolute.read_text().splitlines()[0])["path"] == items[0].path
    # Moving manifest + audio together keeps paths valid.
    moved = tmp_path / "moved"
    moved.mkdir()
    os.replace(target, moved / "m.csv")
    assert read_manifest(moved / "m.csv")[0].path == str(moved / "audio" / "a.wav")
    # root= overrides the base folder.
    assert read_manifest(moved / "m.csv", root="/data")[0].path == "/data/audio/a.wav"


def test_numpy_values_are_written_plainly(tmp_path):
    import numpy as np

    item = LabeledItem(
        path="a.wav",
        value=np.float64(2.5),
        turn=3,
        extra={"n": np.int64(4), "x": np.float32(0.5), "v": np.arange(2)},
    )
    for suffix in (".csv", ".jsonl"):
        (back,) = read_manifest(write_manifest([item], tmp_path / f"np{suffix}"))
        assert back.value == 2.5
        assert str(back.extra["n"]) == "4" and float(back.extra["x"]) == 0.5
    with pytest.raises(DataError, match="cannot store a object"):
        write_manifest([LabeledItem(path="a.wav", extra={"o": object()})], tmp_path / "o.jsonl")


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "m.jsonl"
    write_manifest(_items(tmp_path), target)
    before = target.read_text()
    bad = [LabeledItem(path="x.wav", extra={"label": "clash"})]
    with pytest.raises(DataError, match="collides"):
        write_manifest(bad, target)
    with pytest.raises(DataError, match="non-finite"):
        write_manifest([LabeledItem(path="x.wav", extra={"v": float("nan")})], target)
    assert target.read_text() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.jsonl"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_malformed_rows_name_file_and_line(tmp_path):
    bad_value = _write(tmp_path / "v.csv", "path,label,value\na.wav,x,1.0\nb.wav,y,high\n")
    with pytest.raises(DataError, match=r"v\.csv:3: column 'value' must be a number"):
        read_manifest(bad_value)
    bad_turn = _write(tmp_path / "t.csv", "path,turn\na.wav,1\nb.wav,2.5\n")
    with pytest.raises(DataError, match=r"t\.csv:3: column 'turn' must be an integer"):
        read_manifest(bad_turn)
    short = _write(tmp_path / "s.csv", "path,label\na.wav,x\nb.wav\n")
    with pytest.raises(DataError, match=r"s\.csv:3: 1 fields but the header has 2"):
        read_manifest(short)
    no_path = _write(tmp_path / "n.csv", "path,label\n,x\n")
    with pytest.raises(DataError, match=r"n\.csv:2: empty 'path'"):
        read_manifest(no_path)
    missing_col = _write(tmp_path / "m.csv", "file,label\na.wav,x\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['path'\]"):
        read_manifest(missing_col)
    inf = _write(tmp_path / "i.csv", "path,value\na.wav,inf\n")
    with pytest.raises(DataError, match="finite"):
        read_manifest(inf)
    bad_json = _write(tmp_path / "b.jsonl", '{"path": "a.wav"}\n\n{"path": \n')
    with pytest.raises(DataError, match=r"b\.jsonl:3: not valid JSON"):
        read_manifest(bad_json)
    not_obj = _write(tmp_path / "o.jsonl", '["a.wav"]\n')
    with pytest.raises(DataError, match=r"o\.jsonl:1: expected a JSON object"):
        read_manifest(not_obj)
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="suffix"):
        read_manifest(_write(tmp_path / "x.txt", "path\na.wav\n"))
    with pytest.raises(DataError, match="empty file"):
        read_manifest(_write(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match="duplicated column"):
        read_manifest(_write(tmp_path / "d.csv", "path,label,label\na,b,c\n"))


def test_custom_columns(tmp_path):
    emobox = _write(
        tmp_path / "emobox.jsonl",
        json.dumps({"key": "k1", "wav": "w/a.wav", "emo": "Happy", "channel": 1}) + "\n",
    )
    (item,) = read_manifest(emobox, path_column="wav", label_column="emo", root="/corpus")
    assert item.path == "/corpus/w/a.wav" and item.label == "Happy"
    # EmoBox's channel is read as the item's channel (its span columns), not kept as extra.
    assert item.extra == {"key": "k1"} and item.channel == 1
    with pytest.raises(DataError, match=r"missing key|missing column"):
        read_manifest(emobox, session_column="fold")
    # A "session" column that is not the chosen session source is kept, renamed.
    both = _write(tmp_path / "both.csv", "path,session,fold\na.wav,S1,3\n")
    (item,) = read_manifest(both, session_column="fold")
    assert item.session == "3" and item.extra == {"orig_session": "S1"}
    # The same column may feed two fields.
    (item,) = read_manifest(both, speaker_column="session", session_column="session")
    assert item.speaker == item.session == "S1"


def test_bom_and_blank_lines(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffpath,label\r\na.wav,x\r\n\r\nb.wav,y\r\n".encode())
    items = read_manifest(path)
    assert [i.label for i in items] == ["x", "y"]


def test_relabel():
    items = [
        LabeledItem("a", label="exc"),
        LabeledItem("b", label="hap"),
        LabeledItem("c", label="fru"),
        LabeledItem("d", label="xxx"),
    ]
    out = relabel(items, {"exc": "happy", "hap": "happy", "xxx": None})
    assert [(i.path, i.label, i.extra["orig_label"]) for i in out] == [
        ("a", "happy", "exc"),
        ("b", "happy", "hap"),
    ]
    kept = relabel(items, {"exc": "happy"}, keep_unmapped=True)
    assert [i.label for i in kept] == ["happy", "hap", "fru", "xxx"]
    assert items[0].label == "exc" and items[0].extra == {}


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.builds(
            LabeledItem,
            path=st.from_regex(r"[a-z]{1,8}/[a-z0-9_]{1,8}\.wav", fullmatch=True),
            label=st.none() | _text.filter(lambda s: s.strip() == s and s != ""),
            value=st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64),
            speaker=st.none() | st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True),
            session=st.none() | st.from_regex(r"[A-Za-z0-9]{1,6}", fullmatch=True),
            dialogue_id=st.none() | st.from_regex(r"[a-z0-9_]{1,6}", fullmatch=True),
            turn=st.none() | st.integers(-5, 10**6),
            extra=st.dictionaries(st.sampled_from(["gender", "text", "x"]), _text, max_size=3),
        ),
        max_size=8,
    ),
    st.sampled_from([".csv", ".jsonl"]),
)
def test_round_trip_property(tmp_path_factory, items, suffix):
    folder = tmp_path_factory.mktemp("rt")
    back = read_manifest(write_manifest(items, folder / f"m{suffix}"))
    assert len(back) == len(items)
    for a, b in zip(items, back, strict=True):
        assert b.path == str(folder / a.path)
        assert (b.label, b.value, b.speaker, b.session, b.dialogue_id, b.turn) == (
            a.label,
            a.value,
            a.speaker,
            a.session,
            a.dialogue_id,
            a.turn,
        )
        if suffix == ".jsonl":
            assert b.extra == a.extra
        else:
            assert {k: v for k, v in b.extra.items() if k in a.extra} == a.extra


def test_real_ravdess_manifest():
    folder = _ravdess_dir()
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"staged RAVDESS manifest not found at {manifest} (set EMOTION2VEC_RAVDESS)")
    items = read_manifest(manifest, session_column="fold6_by_actor")
    assert len(items) == 1440
    assert len({i.speaker for i in items}) == 24
    assert {i.label for i in items} == {
        "neutral",
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    }
    assert all(i.path.startswith(str(folder)) for i in items)
    assert os.path.isfile(items[0].path)
    assert items[0].extra["gender"] in ("male", "female")
    sessions = {i.session for i in items}
    assert sessions == {"0", "1", "2", "3", "4", "5"}
    actor_folds: dict[str, set[str]] = {}
    for item in items:
        actor_folds.setdefault(item.speaker, set()).add(item.session)
    assert all(len(f) == 1 for f in actor_folds.values()), "an actor is in two folds"

    folds = predefined_folds(items)
    assert len(folds) == 6
    check_folds(folds, items)
    assert sorted(i for f in folds for i in f.test_idx.tolist()) == list(range(1440))
    # Without session_column the fold column is an ordinary extra field.
    plain = read_manifest(manifest)
    assert plain[0].session is None and "fold6_by_actor" in plain[0].extra


def test_ravdess_preparer_agrees_with_staged_manifest():
    folder = _ravdess_dir()
    if not (folder / "manifest.csv").is_file() or not (folder / "audio").is_dir():
        pytest.skip(f"staged RAVDESS data not found at {folder} (set EMOTION2VEC_RAVDESS)")
    from emotion2vec.evaluate.preparers import prepare_ravdess

    staged = {i.path: i for i in read_manifest(folder / "manifest.csv")}
    prepared = prepare_ravdess(folder / "audio")
    assert len(prepared) == 1440 and {i.path for i in prepared} == set(staged)
    renamed = {"disgust": "disgusted"}  # the staged file keeps RAVDESS's own name
    for item in prepared:
        ref = staged[item.path]
        assert item.label == renamed.get(ref.label, ref.label)
        assert item.speaker == ref.speaker
        assert item.extra["intensity"] == ref.extra["intensity"]
        assert item.extra["gender"] == ref.extra["gender"]
