"""Report files: JSON (strict, NaN -> null), Markdown table, confusion PNG."""

from __future__ import annotations

import json

import numpy as np

from emotion2vec.evaluate.folds import Fold
from emotion2vec.evaluate.probe import run_probe
from emotion2vec.evaluate.report import markdown_table, plot_confusion, write_report


def synthetic(kind: str):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    if kind == "classification":
        targets = ["hi" if v > 0 else "lo" for v in x[:, 0]]
    else:
        targets = list(x[:, 0] * 2.0)
    idx = np.arange(40)
    folds = [Fold("only", "custom", idx[:25], idx[25:30], idx[30:])]
    return run_probe(list(x), targets, folds, head="logreg", kind=kind, progress=False)


def test_single_fold_classification_report(tmp_path):
    result = synthetic("classification")
    paths = write_report(result, tmp_path / "r")
    assert set(paths) == {"json", "markdown", "confusion"}
    doc = json.loads(paths["json"].read_text())  # strict JSON: no NaN tokens
    assert doc["format"] == "emotion2vec.results/1"
    assert doc["summary"]["wa"]["std"] is None  # one fold: std undefined
    assert doc["summary"]["wa"]["mean"] == doc["folds"][0]["metrics"]["wa"]
    assert doc["folds"][0]["metrics"]["confusion"] == doc["confusion"]
    assert doc["environment"]["torch"]
    assert "NaN" not in paths["json"].read_text()
    table = paths["markdown"].read_text()
    assert "± –" in table and "| only | 25 | 5 | 10 |" in table
    assert paths["confusion"].stat().st_size > 5000


def test_regression_report_has_no_confusion(tmp_path):
    result = synthetic("regression")
    paths = write_report(result, tmp_path)
    assert set(paths) == {"json", "markdown"}
    doc = json.loads(paths["json"].read_text())
    assert doc["kind"] == "regression" and doc["confusion"] is None
    assert "CCC" in markdown_table(result) and "MAE" in markdown_table(result)


def test_confusion_png_with_many_classes(tmp_path):
    labels = [f"class_{i}" for i in range(9)]
    matrix = np.random.default_rng(0).integers(0, 30, size=(9, 9))
    matrix[3] = 0  # a class absent from the test data
    path = plot_confusion(matrix, labels, tmp_path / "c.png")
    assert path.stat().st_size > 20_000
