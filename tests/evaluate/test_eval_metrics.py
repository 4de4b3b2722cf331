"""Metrics against scikit-learn on fixed and random cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emotion2vec.evaluate import metrics as M

sk = pytest.importorskip("sklearn.metrics")

LABELS = ["angry", "happy", "neutral", "sad"]


def _sk(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_known_case_by_hand():
    y_true = ["a", "a", "a", "a", "b", "b", "c", "c"]
    y_pred = ["a", "a", "a", "b", "b", "c", "c", "c"]
    out = M.classification_metrics(y_true, y_pred)
    assert out["wa"] == pytest.approx(6 / 8)
    # recalls: a 3/4, b 1/2, c 2/2
    assert out["ua"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert out["per_class_recall"] == pytest.approx({"a": 0.75, "b": 0.5, "c": 1.0})
    # F1: a 2*3/(8)=0.75... tp=3, fp=0, fn=1 -> 6/7; b tp=1 fp=1 fn=1 -> 2/4; c tp=2 fp=1 fn=0 -> 4/5
    f1 = {"a": 6 / 7, "b": 0.5, "c": 0.8}
    assert M.f1_per_class(y_true, y_pred) == pytest.approx(f1)
    assert out["macro_f1"] == pytest.approx(np.mean(list(f1.values())))
    assert out["weighted_f1"] == pytest.approx((4 * 6 / 7 + 2 * 0.5 + 2 * 0.8) / 8)
    np.testing.assert_array_equal(out["confusion"], [[3, 1, 0], [0, 1, 1], [0, 0, 2]])
    assert out["labels"] == ["a", "b", "c"] and out["n"] == 8


def _compare(y_true, y_pred):
    out = M.classification_metrics(y_true, y_pred)
    assert out["wa"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert out["ua"] == pytest.approx(_sk(sk.balanced_accuracy_score, y_true, y_pred))
    assert out["macro_f1"] == pytest.approx(_sk(sk.f1_score, y_true, y_pred, average="macro"))
    assert out["weighted_f1"] == pytest.approx(_sk(sk.f1_score, y_true, y_pred, average="weighted"))
    labels = sorted(set(y_true) | set(y_pred))
    np.testing.assert_array_equal(
        out["confusion"], _sk(sk.confusion_matrix, y_true, y_pred, labels=labels)
    )
    present = sorted(set(y_true))
    expected = _sk(sk.recall_score, y_true, y_pred, labels=present, average=None)
    got = [out["per_class_recall"][c] for c in present]
    np.testing.assert_allclose(got, expected)
    assert M.accuracy(y_true, y_pred) == pytest.approx(out["wa"])
    assert M.unweighted_accuracy(y_true, y_pred) == pytest.approx(out["ua"])
    assert M.macro_f1(y_true, y_pred) == pytest.approx(out["macro_f1"])
    assert M.weighted_f1(y_true, y_pred) == pytest.approx(out["weighted_f1"])


def test_fixed_cases_match_sklearn():
    cases = [
        (["a", "b", "c", "a"], ["a", "b", "c", "a"]),  # perfect
        (["a", "a", "b", "b"], ["b", "b", "a", "a"]),  # all wrong
        (["a", "a", "a", "b"], ["a", "a", "a", "a"]),  # a class never predicted
        (["a", "a", "b", "b"], ["a", "c", "b", "c"]),  # a class only predicted
        ([0, 1, 2, 2, 1, 0, 3], [0, 2, 2, 2, 1, 1, 3]),  # integers
        (["x"], ["x"]),
    ]
    for y_true, y_pred in cases:
        _compare(y_true, y_pred)


def test_random_cases_match_sklearn():
    rng = np.random.default_rng(0)
    pool = LABELS + ["fearful", "surprised"]
    for _ in range(60):
        k_true, k_pred = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        n = int(rng.integers(1, 200))
        y_true = rng.choice(pool[:k_true], size=n).tolist()
        y_pred = rng.choice(pool[:k_pred], size=n).tolist()
        _compare(y_true, y_pred)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60),
)
def test_property_matches_sklearn(pairs):
    y_true = [t for t, _ in pairs]
    y_pred = [p for _, p in pairs]
    _compare(y_true, y_pred)


def test_fixed_label_order_and_absent_class():
    y_true = ["sad", "sad", "angry"]
    y_pred = ["sad", "angry", "angry"]
    out = M.classification_metrics(y_true, y_pred, labels=LABELS)
    assert out["labels"] == LABELS
    np.testing.assert_array_equal(
        out["confusion"], sk.confusion_matrix(y_true, y_pred, labels=LABELS)
    )
    assert math.isnan(out["per_class_recall"]["happy"])
    # Absent classes do not dilute UA or macro-F1.
    assert out["ua"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    assert out["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"))
    with pytest.raises(ValueError, match="not in labels"):
        M.confusion_matrix(y_true, ["sad", "fearful", "angry"], labels=LABELS)
    with pytest.raises(ValueError, match="repeated"):
        M.confusion_matrix(y_true, y_pred, labels=["sad", "sad", "angry"])


def test_input_validation():
    with pytest.raises(ValueError, match="items"):
        M.accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        M.classification_metrics([], [])
    with pytest.raises(ValueError, match="1-D"):
        M.accuracy([[1]], [[1]])


def test_mean_std_and_aggregate():
    mean, std = M.mean_std([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8)
    assert std == pytest.approx(np.std([0.7, 0.8, 0.9], ddof=1))
    assert M.mean_std([0.7, 0.8, 0.9], ddof=0)[1] == pytest.approx(np.std([0.7, 0.8, 0.9]))
    assert math.isnan(M.mean_std([0.5])[1])
    with pytest.raises(ValueError):
        M.mean_std([])

    folds = [
        M.classification_metrics(["a", "b", "a"], ["a", "b", "b"]),
        M.classification_metrics(["a", "b"], ["a", "b"]),
    ]
    agg = M.aggregate_folds(folds)
    assert set(agg) == {"wa", "ua", "macro_f1", "weighted_f1", "n"}
    assert agg["wa"]["mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert agg["wa"]["std"] == pytest.approx(np.std([2 / 3, 1], ddof=1))
    assert agg["wa"]["n"] == 2
    assert set(M.aggregate_folds(folds, ["ua"])) == {"ua"}
    with pytest.raises(ValueError, match="missing"):
        M.aggregate_folds([{"wa": 1.0}, {"ua": 1.0}], ["wa"])


def _ccc_reference(t, p):
    t, p = np.asarray(t, float), np.asarray(p, float)
    cov = np.cov(t, p, ddof=0)[0, 1]
    return 2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)


def test_regression_known_and_random():
    t = [1.0, 2.0, 3.0, 4.0]
    assert M.ccc(t, t) == pytest.approx(1.0)
    assert M.pearson_r(t, t) == pytest.approx(1.0)
    assert M.mae(t, t) == 0.0
    shifted = [x + 1 for x in t]
    assert M.pearson_r(t, shifted) == pytest.approx(1.0)
    assert M.ccc(t, shifted) < 1.0  # CCC penalises the bias Pearson ignores
    assert M.ccc(t, shifted) == pytest.approx(_ccc_reference(t, shifted))
    assert M.mae(t, shifted) == pytest.approx(1.0)
    assert M.pearson_r(t, [-x for x in t]) == pytest.approx(-1.0)
    assert math.isnan(M.pearson_r(t, [2.0] * 4))
    assert math.isnan(M.ccc([2.0] * 3, [2.0] * 3))

    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(3, 100))
        a = rng.normal(size=n)
        b = 0.5 * a + rng.normal(size=n)
        assert M.pearson_r(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])
        assert M.ccc(a, b) == pytest.approx(_ccc_reference(a, b))
        assert M.mae(a, b) == pytest.approx(sk.mean_absolute_error(a, b))
    out = M.regression_metrics(a, b)
    assert set(out) == {"mae", "ccc", "pearson_r", "n"} and out["n"] == n
    with pytest.raises(ValueError, match="finite"):
        M.mae([1.0, float("nan")], [1.0, 2.0])


def test_binary_from_sign():
    t = [2.0, -1.0, 0.0, 0.4, -3.0, 0.0]
    p = [1.0, 0.5, -2.0, -0.1, 0.0, 3.0]  # pred 0 counts as negative
    out = M.binary_from_sign(t, p)
    assert out["n"] == 4
    truth = ["pos", "neg", "pos", "neg"]
    guess = ["pos", "pos", "neg", "neg"]
    assert out["acc2"] == pytest.approx(sk.accuracy_score(truth, guess))
    assert out["f1_weighted"] == pytest.approx(sk.f1_score(truth, guess, average="weighted"))
    assert out["f1_macro"] == pytest.approx(sk.f1_score(truth, guess, average="macro"))

    rng = np.random.default_rng(2)
    a = np.round(rng.uniform(-3, 3, size=300) * 2) / 2  # many exact zeros
    b = a + rng.normal(scale=1.5, size=300)
    keep = a != 0
    out = M.binary_from_sign(a, b)
    assert out["n"] == int(keep.sum())
    assert out["acc2"] == pytest.approx(sk.accuracy_score(a[keep] > 0, b[keep] > 0))
    assert out["f1_weighted"] == pytest.approx(
        sk.f1_score(a[keep] > 0, b[keep] > 0, average="weighted")
    )
    with pytest.raises(ValueError, match="zero"):
        M.binary_from_sign([0.0, 0.0], [1.0, -1.0])
