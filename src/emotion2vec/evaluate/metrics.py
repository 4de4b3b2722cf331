"""Metrics for emotion classification and for dimensional / sentiment regression.

Definitions (numerically equal to the scikit-learn functions named, which the tests check):

* **WA** (weighted accuracy) = overall accuracy, ``accuracy_score``.
* **UA** (unweighted accuracy) = mean per-class recall over the classes present in
  ``y_true``, ``balanced_accuracy_score``. A class only ever predicted does not count.
* **macro-F1** (EmoBox's "F1") = unweighted mean of per-class F1 over the classes present in
  ``y_true`` or ``y_pred``, ``f1_score(average="macro")``; a class with no true and no
  predicted item cannot occur, and F1 = 2TP / (2TP + FP + FN).
* **weighted-F1** (emotion2vec's "WF1") = per-class F1 weighted by true support,
  ``f1_score(average="weighted")``.
* Confusion matrix: rows are true labels, columns predictions, in a fixed label order.
* Across folds: mean and **sample** standard deviation (``ddof=1``), because folds are a
  sample of possible splits; it is NaN for a single fold.
* Regression: MAE, Pearson r and Lin's concordance correlation coefficient (CCC, computed
  with population moments); binary accuracy / F1 from the sign with items whose true value
  is exactly zero removed (the CMU-MOSI/MOSEI "non-zero" protocol; a prediction of 0 counts
  as negative).

Labels may be strings or integers (not a mix). Everything is plain numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "aggregate_folds",
    "binary_from_sign",
    "ccc",
    "classification_metrics",
    "confusion_matrix",
    "f1_per_class",
    "macro_f1",
    "mae",
    "mean_std",
    "pearson_r",
    "per_class_recall",
    "regression_metrics",
    "unweighted_accuracy",
    "weighted_f1",
]


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------


def _pair(y_true: Sequence[Any], y_pred: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D, got shapes {t.shape} and {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} items but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("metrics of an empty set are undefined")
    return t, p


def _encode(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None
) -> tuple[list[Any], np.ndarray]:
    """Class list and confusion matrix (rows true, columns predicted)."""
    t, p = _pair(y_true, y_pred)
    try:
        present = np.unique(np.concatenate([t, p]))
    except TypeError:
        raise ValueError("labels must all be of one kind (all strings or all numbers)") from None
    if labels is None:
        classes = present.tolist()
    else:
        classes = list(labels)
        if len(set(classes)) != len(classes):
            raise ValueError(f"labels has repeated entries: {classes}")
        unknown = sorted(set(present.tolist()) - set(classes), key=str)
        if unknown:
            raise ValueError(f"labels {unknown} occur in y_true/y_pred but not in labels={classes}")
    position = {c: i for i, c in enumerate(classes)}
    ti = np.fromiter((position[v] for v in t.tolist()), dtype=np.int64, count=t.size)
    pi = np.fromiter((position[v] for v in p.tolist()), dtype=np.int64, count=p.size)
    k = len(classes)
    matrix = np.bincount(ti * k + pi, minlength=k * k).reshape(k, k)
    return classes, matrix


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall (NaN where no true item), F1 (0 where undefined), true support."""
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        denom = support + predicted  # = 2TP + FP + FN
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
    return recall, f1, support


def confusion_matrix(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> np.ndarray:
    """(K, K) int64 counts, rows = true, columns = predicted, in ``labels`` order (default:
    sorted union of both). Raises ValueError for a label outside ``labels``."""
    return _encode(y_true, y_pred, labels)[1]


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """WA: fraction of items predicted correctly."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def per_class_recall(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> dict[Any, float]:
    """Recall of each class in ``labels`` order; NaN for a class with no true item."""
    classes, matrix = _encode(y_true, y_pred, labels)
    recall, _, _ = _per_class(matrix)
    return {c: float(r) for c, r in zip(classes, recall, strict=True)}


def unweighted_accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """UA: mean recall over the classes present in ``y_true``."""
    _, matrix = _encode(y_true, y_pred, None)
    recall, _, support = _per_class(matrix)
    return float(np.mean(recall[support > 0]))


def f1_per_class(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> dict[Any, float]:
    """F1 of each class in ``labels`` order (0 for a class never true nor predicted)."""
    classes, matrix = _encode(y_true, y_pred, labels)
    _, f1, _ = _per_class(matrix)
    return {c: float(v) for c, v in zip(classes, f1, strict=True)}


def _macro(matrix: np.ndarray) -> float:
    _, f1, support = _per_class(matrix)
    present = (support + matrix.sum(axis=0)) > 0
    return float(np.mean(f1[present]))


def _weighted(matrix: np.ndarray) -> float:
    _, f1, support = _per_class(matrix)
    return float(np.sum(f1 * support) / np.sum(support))


def macro_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Mean per-class F1 over the classes in ``y_true`` or ``y_pred``."""
    return _macro(_encode(y_true, y_pred, None)[1])


def weighted_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Per-class F1 averaged with the true support as weights."""
    return _weighted(_encode(y_true, y_pred, None)[1])


def classification_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> dict[str, Any]:
    """All classification metrics at once.

    Returns a dict with ``wa``, ``ua``, ``macro_f1``, ``weighted_f1`` (floats in [0, 1]),
    ``n`` (items), ``labels`` (the class order), ``per_class_recall`` (label -> recall,
    NaN if absent from ``y_true``) and ``confusion`` ((K, K) int64 array in ``labels``
    order). ``labels`` fixes the order (and may list classes absent from this fold) so that
    confusion matrices of several folds can be summed.
    """
    classes, matrix = _encode(y_true, y_pred, labels)
    recall, _, support = _per_class(matrix)
    n = int(matrix.sum())
    return {
        "wa": float(np.trace(matrix) / n),
        "ua": float(np.mean(recall[support > 0])),
        "macro_f1": _macro(matrix),
        "weighted_f1": _weighted(matrix),
        "n": n,
        "labels": classes,
        "per_class_recall": {c: float(r) for c, r in zip(classes, recall, strict=True)},
        "confusion": matrix,
    }


# --------------------------------------------------------------------------------------
# Across folds
# --------------------------------------------------------------------------------------


def mean_std(values: Sequence[float], *, ddof: int = 1) -> tuple[float, float]:
    """Mean and standard deviation (sample, ``ddof=1``, by default; NaN for one value)."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("mean_std of no values")
    mean = float(np.mean(arr))
    if arr.size <= ddof:
        return mean, math.nan
    return mean, float(np.std(arr, ddof=ddof))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def aggregate_folds(
    results: Sequence[Mapping[str, Any]],
    keys: Sequence[str] | None = None,
    *,
    ddof: int = 1,
) -> dict[str, dict[str, float]]:
    """Mean and std across folds of each scalar metric.

    Args:
        results: one metrics dict per fold (e.g. from :func:`classification_metrics`).
        keys: metrics to aggregate; default every key whose value is a number in all folds
            (``n`` included, other non-scalars such as ``confusion`` skipped).

    Returns:
        ``{key: {"mean": m, "std": s, "n": folds}}``. The reported number of a protocol
        is the mean over folds of each fold's metric (as in the emotion2vec paper), not a
        metric of the pooled predictions.
    """
    if not results:
        raise ValueError("aggregate_folds of no results")
    if keys is None:
        keys = [k for k in results[0] if all(k in r and _is_number(r[k]) for r in results)]
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        missing = [i for i, r in enumerate(results) if key not in r or not _is_number(r[key])]
        if missing:
            raise ValueError(f"metric {key!r} is missing or not a number in fold(s) {missing}")
        mean, std = mean_std([float(r[key]) for r in results], ddof=ddof)
        out[key] = {"mean": mean, "std": std, "n": len(results)}
    return out


# --------------------------------------------------------------------------------------
# Regression and sentiment
# --------------------------------------------------------------------------------------


def _float_pair(y_true: Sequence[float], y_pred: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t, p = _pair(y_true, y_pred)
    t = t.astype(np.float64)
    p = p.astype(np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError("regression targets and predictions must be finite")
    return t, p


def mae(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Mean absolute error."""
    t, p = _float_pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def pearson_r(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant."""
    t, p = _float_pair(y_true, y_pred)
    dt, dp = t - t.mean(), p - p.mean()
    denom = math.sqrt(float(np.sum(dt * dt)) * float(np.sum(dp * dp)))
    if denom == 0.0:
        return math.nan
    return float(np.clip(np.sum(dt * dp) / denom, -1.0, 1.0))


def ccc(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Lin's concordance correlation coefficient,
    ``2 cov(t, p) / (var t + var p + (mean t - mean p)^2)`` with population moments;
    NaN when both sides are the same constant."""
    t, p = _float_pair(y_true, y_pred)
    mt, mp = t.mean(), p.mean()
    cov = float(np.mean((t - mt) * (p - mp)))
    denom = float(t.var() + p.var() + (mt - mp) ** 2)
    if denom == 0.0:
        return math.nan
    return 2.0 * cov / denom


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """``mae``, ``ccc``, ``pearson_r`` and ``n``."""
    return {
        "mae": mae(y_true, y_pred),
        "ccc": ccc(y_true, y_pred),
        "pearson_r": pearson_r(y_true, y_pred),
        "n": len(y_true),
    }


def binary_from_sign(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """Binary sentiment metrics from signs, with zero-valued (neutral) targets removed.

    Positive means ``> 0``: a prediction of exactly 0 counts as negative. Returns
    ``acc2`` (accuracy), ``f1_weighted`` (support-weighted F1 over the two classes, the
    figure MOSI/MOSEI papers report as F1), ``f1_macro`` and ``n`` (items kept).
    """
    t, p = _float_pair(y_true, y_pred)
    keep = t != 0.0
    if not np.any(keep):
        raise ValueError("every target is zero: binary sentiment metrics are undefined")
    truth = np.where(t[keep] > 0, "positive", "negative")
    guess = np.where(p[keep] > 0, "positive", "negative")
    _, matrix = _encode(truth, guess, ["negative", "positive"])
    return {
        "acc2": float(np.trace(matrix) / matrix.sum()),
        "f1_weighted": _weighted(matrix),
        "f1_macro": _macro(matrix),
        "n": int(keep.sum()),
    }
