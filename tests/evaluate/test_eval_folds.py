"""Protocol folds: speaker separation, coverage, determinism, fallbacks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from emotion2vec.errors import DataError
from emotion2vec.evaluate.folds import (
    Fold,
    check_folds,
    leave_one_session_out,
    leave_one_speaker_out,
    load_folds,
    predefined_folds,
    predefined_split,
    save_folds,
    speaker_kfold,
)
from emotion2vec.evaluate.manifest import LabeledItem


def corpus(spec: list[tuple[str, str, int]], labels=("angry", "happy", "neutral", "sad")):
    """Items from (speaker, session, count) triples; labels cycle."""
    items = []
    for speaker, session, count in spec:
        for j in range(count):
            items.append(
                LabeledItem(
                    path=f"/c/{speaker}/{j}.wav",
                    label=labels[(len(items) + j) % len(labels)],
                    speaker=speaker,
                    session=session,
                )
            )
    return items


def iemocap_like():
    spec = []
    for s in range(1, 6):
        spec += [(f"Ses0{s}F", f"Session{s}", 20 + s), (f"Ses0{s}M", f"Session{s}", 18 + 2 * s)]
    return corpus(spec)


@st.composite
def corpora(draw, min_speakers=2):
    n_speakers = draw(st.integers(min_speakers, 9))
    n_sessions = draw(st.integers(2, 4))
    spec = []
    sessions_used = set()
    for i in range(n_speakers):
        session = draw(st.integers(0, n_sessions - 1))
        sessions_used.add(session)
        spec.append((f"spk{i}", f"S{session}", draw(st.integers(1, 7))))
    n_labels = draw(st.integers(1, 4))
    return corpus(spec, labels=("a", "b", "c", "d")[:n_labels])


def assert_speaker_separated(folds, items):
    speakers = [i.speaker for i in items]
    for fold in folds:
        parts = {
            "train": {speakers[i] for i in fold.train_idx},
            "valid": {speakers[i] for i in fold.valid_idx},
            "test": {speakers[i] for i in fold.test_idx},
        }
        assert not parts["train"] & parts["test"]
        assert not parts["valid"] & parts["test"]
        if fold.valid_strategy == "speakers":
            assert not parts["train"] & parts["valid"]
        else:
            assert fold.valid_strategy in ("utterances_fallback", "none")
        everything = np.concatenate([fold.train_idx, fold.valid_idx, fold.test_idx])
        assert sorted(everything.tolist()) == list(range(len(items)))
        assert fold.train_idx.dtype == np.int64


def assert_tested_once(folds, items):
    tested = np.concatenate([f.test_idx for f in folds])
    assert sorted(tested.tolist()) == list(range(len(items)))


def same(a: list[Fold], b: list[Fold]) -> bool:
    return all(
        x.name == y.name
        and np.array_equal(x.train_idx, y.train_idx)
        and np.array_equal(x.valid_idx, y.valid_idx)
        and np.array_equal(x.test_idx, y.test_idx)
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=60, deadline=None)
@given(corpora(), st.integers(0, 2**16))
def test_loso_properties(items, seed):
    assume(len({i.session for i in items}) >= 2)
    folds = leave_one_session_out(items, seed=seed)
    assert {f.protocol for f in folds} == {"leave_one_session_out"}
    assert len(folds) == len({i.session for i in items})
    assert_tested_once(folds, items)
    assert_speaker_separated(folds, items)
    check_folds(folds, items)
    for fold in folds:
        assert len({items[i].session for i in fold.test_idx}) == 1
    assert same(folds, leave_one_session_out(items, seed=seed))


@settings(max_examples=60, deadline=None)
@given(corpora(), st.integers(0, 2**16), st.sampled_from([None, 1, 2]))
def test_lospko_properties(items, seed, valid_speakers):
    folds = leave_one_speaker_out(items, seed=seed, valid_speakers=valid_speakers)
    assert len(folds) == len({i.speaker for i in items})
    assert_tested_once(folds, items)
    assert_speaker_separated(folds, items)
    check_folds(folds, items)
    for fold in folds:
        assert len({items[i].speaker for i in fold.test_idx}) == 1
        if fold.valid_strategy == "speakers" and valid_speakers is not None:
            n_train_speakers = len({items[i].speaker for i in fold.train_idx}) + len(
                {items[i].speaker for i in fold.valid_idx}
            )
            expected = min(valid_speakers, n_train_speakers - 1)
            assert len({items[i].speaker for i in fold.valid_idx}) == expected
    assert same(folds, leave_one_speaker_out(items, seed=seed, valid_speakers=valid_speakers))


@settings(max_examples=60, deadline=None)
@given(corpora(), st.integers(2, 5), st.integers(0, 2**16))
def test_speaker_kfold_properties(items, k, seed):
    n_speakers = len({i.speaker for i in items})
    assume(k <= n_speakers)
    folds = speaker_kfold(items, k, seed=seed)
    assert [f.name for f in folds] == [f"fold{i}" for i in range(1, k + 1)]
    assert_tested_once(folds, items)
    assert_speaker_separated(folds, items)
    check_folds(folds, items)
    # Greedy balancing: fold sizes differ by at most the largest speaker's count.
    sizes = [len(f.test_idx) for f in folds]
    biggest = max(Counter(i.speaker for i in items).values())
    assert max(sizes) - min(sizes) <= biggest
    assert same(folds, speaker_kfold(items, k, seed=seed))


def test_iemocap_like_loso():
    items = iemocap_like()
    folds = leave_one_session_out(items, seed=42)
    assert [f.name for f in folds] == [f"Session{s}" for s in range(1, 6)]
    for fold in folds:
        assert fold.valid_strategy == "speakers"
        # 8 training speakers * 0.2 -> 2 validation speakers.
        assert len({items[i].speaker for i in fold.valid_idx}) == 2
        assert "validation speakers" in fold.notes[-1]
    check_folds(folds, items)
    different = leave_one_session_out(items, seed=43)
    assert not same(folds, different)


def test_fold_validation_does_not_depend_on_other_folds():
    items = iemocap_like()
    a = {f.name: f for f in speaker_kfold(items, 5, seed=3)}
    b = {f.name: f for f in speaker_kfold(items, 5, seed=3)}
    assert all(np.array_equal(a[n].valid_idx, b[n].valid_idx) for n in a)


def test_single_training_speaker_falls_back_and_says_so():
    items = corpus([("A", "S1", 10), ("B", "S2", 10)])
    folds = leave_one_session_out(items, seed=0)
    for fold in folds:
        assert fold.valid_strategy == "utterances_fallback"
        assert "only one training speaker" in fold.notes[0]
        assert len(fold.valid_idx) == 2  # 20% of 10, drawn per label
        train_labels = {items[i].label for i in fold.train_idx}
        assert train_labels == {items[i].label for i in range(len(items)) if i not in fold.test_idx}
    check_folds(folds, items)


def test_unknown_training_speakers_fall_back():
    items = corpus([("A", "S1", 5), ("B", "S2", 5)])
    for item in items[:5]:
        item.speaker = None
    (fold,) = predefined_folds(items, valid_fraction=0.4)[1:]
    assert fold.valid_strategy == "utterances_fallback"
    assert "unknown" in fold.notes[0]


def test_valid_modes():
    items = iemocap_like()
    none = leave_one_session_out(items, valid="none")
    assert all(f.valid_idx.size == 0 and f.valid_strategy == "none" for f in none)
    zero = leave_one_session_out(items, valid_fraction=0.0)
    assert all(f.valid_idx.size == 0 for f in zero)
    utt = leave_one_session_out(items, valid="utterances", seed=42)
    for fold in utt:
        assert fold.valid_strategy == "utterances"
        n_rest = len(items) - len(fold.test_idx)
        assert abs(len(fold.valid_idx) - 0.2 * n_rest) <= 4  # rounding per label
        # train and validation share speakers by design; never with test
        speakers = [i.speaker for i in items]
        assert {speakers[i] for i in fold.valid_idx} & {speakers[i] for i in fold.train_idx}
        assert not {speakers[i] for i in fold.valid_idx} & {speakers[i] for i in fold.test_idx}
    check_folds(utt, items)
    one = leave_one_speaker_out(items, valid_speakers=1)
    assert all(len({items[i].speaker for i in f.valid_idx}) == 1 for f in one)
    assert len(one) == 10
    with pytest.raises(ValueError, match="valid must be"):
        leave_one_session_out(items, valid="test")
    with pytest.raises(ValueError, match="valid_fraction"):
        leave_one_session_out(items, valid_fraction=1.0)
    with pytest.raises(ValueError, match="seed"):
        leave_one_session_out(items, seed=-1)


def test_protocol_errors():
    items = corpus([("A", "S1", 3), ("A", "S2", 3), ("B", "S2", 2)])
    with pytest.raises(DataError, match="speaker.*A.*appear both in test fold"):
        leave_one_session_out(items)
    folds = predefined_folds(items, allow_speaker_overlap=True)
    assert "shared between test and train" in folds[0].notes[0]
    with pytest.raises(DataError, match="speaker"):
        check_folds(folds, items)
    check_folds(folds, items, allow_speaker_overlap=True)
    no_session = corpus([("A", "S1", 2), ("B", "S2", 2)])
    no_session[1].session = None
    with pytest.raises(DataError, match="no session"):
        leave_one_session_out(no_session)
    with pytest.raises(DataError, match="at least 2 groups"):
        leave_one_session_out(corpus([("A", "S1", 2), ("B", "S1", 2)]))
    with pytest.raises(DataError, match="k must be"):
        speaker_kfold(corpus([("A", "S1", 2), ("B", "S2", 2)]), 3)
    no_speaker = corpus([("A", "S1", 2), ("B", "S2", 2)])
    no_speaker[0].speaker = None
    with pytest.raises(DataError, match="no speaker"):
        speaker_kfold(no_speaker, 2)


def test_predefined_folds_by_extra_key():
    items = corpus([(f"Actor_{a:02d}", None, 3) for a in range(1, 13)])
    for item in items:
        item.extra["fold6_by_actor"] = str((int(item.speaker[-2:]) - 1) // 2)
    folds = predefined_folds(items, by="fold6_by_actor", seed=1)
    assert [f.name for f in folds] == [str(i) for i in range(6)]
    assert_tested_once(folds, items)
    check_folds(folds, items)
    assert all(f.protocol == "predefined_folds" for f in folds)


def test_predefined_split():
    items = corpus(
        [("A", "train", 4), ("B", "train", 4), ("C", "Train", 4), ("D", "dev", 3), ("E", "test", 3)]
    )
    (fold,) = predefined_split(items)
    assert (len(fold.train_idx), len(fold.valid_idx), len(fold.test_idx)) == (12, 3, 3)
    assert fold.valid_strategy == "predefined" and fold.protocol == "predefined_split"
    # Without a dev part validation comes from training speakers.
    no_dev = [i for i in items if i.session != "dev"]
    (fold,) = predefined_split(no_dev, seed=0)
    assert fold.valid_strategy == "speakers"
    assert len({no_dev[i].speaker for i in fold.valid_idx}) == 1
    check_folds([fold], no_dev)
    odd = corpus([("A", "fit", 2), ("B", "heldout", 2)])
    with pytest.raises(DataError, match="unknown split name"):
        predefined_split(odd)
    (fold,) = predefined_split(odd, roles={"fit": "train", "heldout": "test"}, valid="none")
    assert len(fold.test_idx) == 2
    shared = corpus([("A", "train", 2), ("A", "test", 2)])
    with pytest.raises(DataError, match="allow_speaker_overlap"):
        predefined_split(shared, valid="none")
    (fold,) = predefined_split(shared, valid="none", allow_speaker_overlap=True)
    assert "shared between train and test" in fold.notes[0]
    with pytest.raises(DataError, match="needs both"):
        predefined_split(corpus([("A", "train", 2)]))


def test_save_and_load(tmp_path):
    items = iemocap_like()
    folds = leave_one_session_out(items, seed=7)
    path = save_folds(folds, tmp_path / "folds" / "loso.json", items=items)
    back = load_folds(path, items=items)
    assert same(folds, back)
    assert [(f.protocol, f.valid_strategy, f.notes) for f in back] == [
        (f.protocol, f.valid_strategy, f.notes) for f in folds
    ]
    with pytest.raises(DataError, match="another manifest"):
        load_folds(path, items=items[:-1])
    with pytest.raises(DataError, match="not found"):
        load_folds(tmp_path / "absent.json")
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not an emotion2vec folds file"):
        load_folds(tmp_path / "x.json")
    assert "Session1" in repr(folds[0])
