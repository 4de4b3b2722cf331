"""Reports of a probe run: ``results.json``, ``results.md`` and ``confusion.png``.

``results.json`` (format ``emotion2vec.results/1``) holds the protocol, task and head, per
fold the test metrics (with the confusion matrix, per-class recall, chosen epoch or ``C``,
split sizes, validation strategy and notes, test indices and predictions), the mean and
sample std across folds of every scalar metric, the confusion matrix summed over folds,
the training configuration, provenance (features, model fingerprint, manifest) and timing.
NaN (e.g. the std of a single fold) is written as ``null``.

``results.md`` is a table: one row per fold and a ``mean ± std`` row, in percent for the
classification metrics. ``confusion.png`` shows the summed confusion matrix with each row
normalised to 1 (recall per true class) and the raw counts in each cell.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotion2vec.atomic import atomic_write, write_text
from emotion2vec.evaluate.probe import ProbeResult

__all__ = [
    "RESULTS_FORMAT",
    "markdown_table",
    "plot_confusion",
    "result_to_dict",
    "write_report",
]

RESULTS_FORMAT = "emotion2vec.results/1"

_CLASSIFICATION_COLUMNS = ("wa", "ua", "macro_f1", "weighted_f1")
_REGRESSION_COLUMNS = ("mae", "ccc", "pearson_r", "acc2", "f1_weighted")


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy -> Python, NaN/inf -> None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def result_to_dict(result: ProbeResult) -> dict[str, Any]:
    """The JSON document of a result (see the module docstring)."""
    import torch

    from emotion2vec.version import __version__

    folds = []
    for f in result.folds:
        folds.append(
            {
                "name": f.name,
                "metrics": f.metrics,
                "n_train": f.n_train,
                "n_valid": f.n_valid,
                "n_test": f.n_test,
                "valid_strategy": f.valid_strategy,
                "notes": f.notes,
                "best_epoch": f.best_epoch,
                "valid_score": f.valid_score,
                "selected": f.selected,
                "seconds": f.seconds,
                "history": f.history,
                "test_idx": f.test_idx,
                "predictions": f.predictions,
            }
        )
    doc = {
        "format": RESULTS_FORMAT,
        "protocol": result.protocol,
        "task": result.task,
        "head": result.head,
        "kind": result.kind,
        "labels": result.labels,
        "summary": result.summary,
        "confusion": result.confusion,
        "folds": folds,
        "config": result.config,
        "info": result.info,
        "timing": result.timing,
        "environment": {
            "emotion2vec": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    return _clean(doc)


def _columns(result: ProbeResult) -> list[str]:
    base = _CLASSIFICATION_COLUMNS if result.kind == "classification" else _REGRESSION_COLUMNS
    return [c for c in base if c in result.summary]


def _fmt(kind: str, column: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "classification" or column in ("acc2", "f1_weighted"):
        return f"{100 * value:.2f}"
    return f"{value:.4f}"


def markdown_table(result: ProbeResult, *, title: str | None = None) -> str:
    """Per-fold rows and a mean ± std row (classification metrics in %)."""
    cols = _columns(result)
    names = {
        "wa": "WA %",
        "ua": "UA %",
        "macro_f1": "macro-F1 %",
        "weighted_f1": "weighted-F1 %",
        "mae": "MAE",
        "ccc": "CCC",
        "pearson_r": "r",
        "acc2": "Acc-2 %",
        "f1_weighted": "F1 %",
    }
    lines = []
    heading = title or f"{result.task} · {result.protocol} · head {result.head}"
    lines.append(f"### {heading}\n")
    lines.append("| fold | train | valid | test | " + " | ".join(names[c] for c in cols) + " |")
    lines.append("|---" * (4 + len(cols)) + "|")
    for f in result.folds:
        cells = [_fmt(result.kind, c, f.metrics.get(c)) for c in cols]
        lines.append(
            f"| {f.name} | {f.n_train} | {f.n_valid} | {f.n_test} | " + " | ".join(cells) + " |"
        )
    means = []
    for c in cols:
        m, s = result.summary[c]["mean"], result.summary[c]["std"]
        means.append(f"{_fmt(result.kind, c, m)} ± {_fmt(result.kind, c, s)}")
    lines.append(
        f"| **mean ± std** ({len(result.folds)} folds) | | | | " + " | ".join(means) + " |"
    )
    lines.append("")
    features = result.info.get("features", {})
    if features:
        what = features.get("kind", "?")
        if "layers" in features:
            what += f", layers {features['layers']}, {features.get('granularity')}"
        lines.append(f"Features: {what}. ")
    cfg = result.config
    if result.head != "logreg":
        lines.append(
            f"Training: {cfg.get('optimizer')} lr {cfg.get('lr')}, {cfg.get('epochs')} epochs, "
            f"batch {cfg.get('batch_size')}, best epoch by validation "
            f"{cfg.get('select_by') or ('wa' if result.kind == 'classification' else 'ccc')}, "
            f"seed {cfg.get('seed')}."
        )
    else:
        lines.append("Logistic regression on standardised embeddings, C chosen on validation.")
    lines.append(
        "The reported number is the mean over folds of each fold's metric; ± is the sample "
        "standard deviation across folds."
    )
    return "\n".join(lines) + "\n"


def plot_confusion(
    confusion: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "Confusion (rows normalised)",
) -> Path:
    """Write a PNG of ``confusion`` (rows true, columns predicted): colour = row-normalised
    share, text = share in % and the raw count."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    k = len(labels)
    size = max(4.0, 0.8 * k + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(k), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for r in range(k):
        for c in range(k):
            colour = "white" if share[r, c] > 0.6 else "black"
            ax.text(
                c,
                r,
                f"{100 * share[r, c]:.0f}%\n({int(matrix[r, c])})",
                ha="center",
                va="center",
                fontsize=8 if k > 6 else 9,
                color=colour,
            )
    fig.tight_layout()
    target = Path(path)
    atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return target


def write_report(
    result: ProbeResult,
    out_dir: str | os.PathLike[str],
    *,
    stem: str = "results",
    title: str | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and (classification) ``confusion.png`` under
    ``out_dir`` (created); every file atomically. Returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    doc = result_to_dict(result)
    paths["json"] = out / f"{stem}.json"
    write_text(paths["json"], json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    paths["markdown"] = out / f"{stem}.md"
    write_text(paths["markdown"], markdown_table(result, title=title))
    if result.kind == "classification" and result.confusion is not None and result.labels:
        paths["confusion"] = plot_confusion(
            result.confusion,
            result.labels,
            out / "confusion.png",
            title=f"{result.task} · {result.protocol} · {result.head} (summed over folds)",
        )
    return paths
