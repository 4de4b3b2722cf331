"""The table files a batch job writes and reads back: ``errors.csv`` and the predictions
(CSV or JSONL). Kept apart from :mod:`emotion2vec.jobs` so that :mod:`emotion2vec.shards`, which
merges the shards' tables, sits below the jobs that use it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_text
from .errors import DataError


@dataclass
class Failure:
    """An input that could not be processed."""

    path: str
    reason: str


def write_errors(path: Path, failures: Sequence[Failure]) -> None:
    """``errors.csv`` (path, reason) when there are failures; removes a stale one otherwise."""
    if not failures:
        path.unlink(missing_ok=True)
        return
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "reason"])
    for f in failures:
        w.writerow([f.path, f.reason])
    write_text(path, buf.getvalue())


def write_predictions(path: Path, rows: list[dict], labels: Sequence[str]) -> None:
    """Write prediction rows (``FilePrediction.to_json`` dicts) as JSONL or CSV, atomically.

    CSV has one row per recording (segment ``all``) followed, for windowed recordings, by one row
    per window (segment 0, 1, ...), with the nine scores as columns.
    """
    names = [n for n in labels if not n.startswith("unuse")]
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_text(path, text)
        return
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "segment", "start", "end", "label", "score", *names])
    for r in rows:
        w.writerow(
            [r["path"], "all", 0.0, r["duration"], r["label"], f"{r['score']:.6f}"]
            + [f"{r['scores'].get(n, float('nan')):.6f}" for n in names]
        )
        for k, win in enumerate(r.get("windows", [])):
            w.writerow(
                [r["path"], k, win["start"], win["end"], win["label"], f"{win['score']:.6f}"]
                + [f"{win['scores'].get(n, float('nan')):.6f}" for n in names]
            )
    write_text(path, buf.getvalue())


def read_predictions(path: Path) -> list[dict]:
    """Rows of a file written by :func:`write_predictions` (to resume a run)."""
    try:
        if path.suffix.lower() == ".jsonl":
            with open(path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        rows: dict[str, dict] = {}
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fixed = {"path", "segment", "start", "end", "label", "score"}
            for rec in reader:
                scores = {k: float(v) for k, v in rec.items() if k not in fixed}
                entry = {
                    "label": rec["label"],
                    "score": float(rec["score"]),
                    "scores": scores,
                }
                if rec["segment"] == "all":
                    rows[rec["path"]] = {
                        "path": rec["path"],
                        "duration": float(rec["end"]),
                        **entry,
                        "windows": [],
                    }
                else:
                    rows[rec["path"]]["windows"].append(
                        {"start": float(rec["start"]), "end": float(rec["end"]), **entry}
                    )
        return list(rows.values())
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{path}: cannot read the existing predictions to resume ({exc}); pass --overwrite "
            "to start over"
        ) from None
