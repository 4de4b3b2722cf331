"""Split a batch job over machines: deterministic shards, and merging their outputs.

``--shard I/N`` (I = 0 .. N-1) gives a process its part of the inputs: the inputs are ordered by
name, then assigned longest first to the shard with the least audio so far (durations from the
file headers), so every process computes the same partition without talking to the others and
the shards carry about equal audio. ``--shard auto`` reads I and N from the scheduler:

* SLURM job arrays: ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT`` (0-based ids, e.g.
  ``--array=0-7``; with other numbering, ``SLURM_ARRAY_TASK_MIN`` is subtracted);
* Kubernetes indexed jobs: ``JOB_COMPLETION_INDEX`` with ``EMOTION2VEC_NUM_SHARDS`` (the job's
  ``completions``, which Kubernetes does not put in the environment);
* torchrun and other launchers: ``RANK`` and ``WORLD_SIZE``.

Each shard writes its own files next to the shared output (``index.shard-I-of-N.csv``,
``scores.shard-I-of-N.csv``, ...), so shards never write the same file, and each resumes on its
own. ``emotion2vec merge`` (:func:`merge_extract` / :func:`merge_predict`) then checks that all N
shards are there, were made the same way and list no input twice, and writes the ordinary
outputs of an unsharded run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from .atomic import write_text
from .errors import ConfigError, DataError
from .job_outputs import Failure, read_predictions, write_errors, write_predictions
from .provenance import differences, read
from .sources import AudioSource, expected_samples

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec: str | None, environ=None) -> tuple[int, int] | None:
    """``"I/N"`` or ``"auto"`` -> (I, N); None -> None (no sharding)."""
    if spec is None:
        return None
    env = os.environ if environ is None else environ
    if spec.strip().lower() == "auto":
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        elif "JOB_COMPLETION_INDEX" in env:
            if "EMOTION2VEC_NUM_SHARDS" not in env:
                raise ConfigError(
                    "--shard auto in a Kubernetes indexed job needs EMOTION2VEC_NUM_SHARDS set "
                    "to the job's completions"
                )
            index = int(env["JOB_COMPLETION_INDEX"])
            count = int(env["EMOTION2VEC_NUM_SHARDS"])
        elif "RANK" in env and "WORLD_SIZE" in env:
            index, count = int(env["RANK"]), int(env["WORLD_SIZE"])
        else:
            raise ConfigError(
                "--shard auto found no scheduler in the environment (SLURM_ARRAY_TASK_ID + "
                "SLURM_ARRAY_TASK_COUNT, JOB_COMPLETION_INDEX + EMOTION2VEC_NUM_SHARDS, or RANK + "
                "WORLD_SIZE); pass --shard I/N"
            )
    else:
        m = _SPEC.match(spec)
        if m is None:
            raise ConfigError(f"--shard must be I/N (0 <= I < N) or auto, got {spec!r}")
        index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {index}/{count}: need 0 <= I < N")
    return index, count


def tag(shard: tuple[int, int]) -> str:
    """``shard-I-of-N``: the infix of a shard's files."""
    return f"shard-{shard[0]}-of-{shard[1]}"


def partition(
    sources: Sequence[AudioSource], count: int, durations: Sequence[float]
) -> list[list[int]]:
    """Indices of ``sources`` per shard: by name, longest first to the least-loaded shard
    (ties: the lowest shard); each shard's indices in name order."""
    order = sorted(range(len(sources)), key=lambda i: sources[i].ident)
    by_length = sorted(order, key=lambda i: -durations[i])
    loads = [0.0] * count
    parts: list[list[int]] = [[] for _ in range(count)]
    for i in by_length:
        k = min(range(count), key=lambda s: (loads[s], s))
        parts[k].append(i)
        loads[k] += max(durations[i], 0.0)
    rank = {i: r for r, i in enumerate(order)}
    return [sorted(p, key=rank.__getitem__) for p in parts]


def select(sources: Sequence[AudioSource], shard: tuple[int, int]) -> list[AudioSource]:
    """This shard's sources (durations read from the headers; unreadable files count 0 s and
    still go to a shard, which reports them)."""
    durations = []
    for s in sources:
        try:
            durations.append(expected_samples(s) / 16000)
        except Exception:  # noqa: BLE001 - the shard that gets it reports the failure
            durations.append(0.0)
    return [sources[i] for i in partition(sources, shard[1], durations)[shard[0]]]


def shard_path(path: Path, shard: tuple[int, int]) -> Path:
    """``scores.csv`` -> ``scores.shard-I-of-N.csv``."""
    return path.with_name(f"{path.stem}.{tag(shard)}{path.suffix}")


def _shard_files(pattern_dir: Path, stem: str, suffix: str) -> dict[tuple[int, int], Path]:
    found = {}
    rx = re.compile(rf"^{re.escape(stem)}\.shard-(\d+)-of-(\d+){re.escape(suffix)}$")
    for p in pattern_dir.iterdir() if pattern_dir.is_dir() else []:
        m = rx.match(p.name)
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    return found


def _complete(found: dict[tuple[int, int], Path], what: str) -> int:
    if not found:
        raise DataError(f"{what}: no shard outputs found (*.shard-I-of-N.*)")
    counts = {n for _, n in found}
    if len(counts) != 1:
        raise DataError(f"{what}: shards of different splits are mixed: {sorted(found)}")
    n = counts.pop()
    missing = [i for i in range(n) if (i, n) not in found]
    if missing:
        raise DataError(
            f"{what}: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing: run them (or "
            "let them finish) before merging"
        )
    return n


def _same_provenance(paths: list[Path], what: str) -> dict:
    records = [read(p) for p in paths]
    if any(r is None for r in records):
        raise DataError(f"{what}: a shard has no provenance record: {[str(p) for p in paths]}")
    for p, r in zip(paths[1:], records[1:], strict=True):
        diff = differences(records[0], r)
        if diff:
            raise DataError(
                f"{what}: {p.name} was made differently from {paths[0].name}: " + "; ".join(diff)
            )
    return records[0]


def merge_extract(output_dir: str | os.PathLike[str]) -> tuple[int, int]:
    """Merge the shards of an extraction folder into ``index.csv`` / ``errors.csv``; returns
    (outputs, failures). Raises DataError when shards are missing, mixed or overlap."""
    folder = Path(output_dir)
    found = _shard_files(folder, "index", ".csv")
    _complete(found, str(folder))
    provs = [folder / f"provenance.{tag(k)}.json" for k in sorted(found)]
    record = _same_provenance(provs, str(folder))
    rows, seen = [], {}
    for k in sorted(found):
        with open(found[k], newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["path"] in seen:
                    raise DataError(
                        f"{folder}: {row['path']} is in shard {seen[row['path']]} and shard "
                        f"{k[0]}/{k[1]}: the shards were made from different input lists"
                    )
                seen[row["path"]] = f"{k[0]}/{k[1]}"
                rows.append(row)
    failures = []
    for k in sorted(found):
        errors = folder / f"errors.{tag(k)}.csv"
        if errors.is_file():
            with open(errors, newline="", encoding="utf-8") as f:
                failures.extend(csv.DictReader(f))
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["path", "output", "duration_s", "frames"], lineterminator="\n")
    w.writeheader()
    w.writerows(sorted(rows, key=lambda r: r["path"]))
    write_text(folder / "index.csv", buf.getvalue())
    _write_failures(folder / "errors.csv", failures)
    write_text(folder / "provenance.json", json.dumps(record, indent=2) + "\n")
    return len(rows), len(failures)


def merge_predict(output: str | os.PathLike[str]) -> tuple[int, int]:
    """Merge ``<stem>.shard-I-of-N<suffix>`` score files into ``output``; returns (predictions,
    failures)."""
    out = Path(output)
    found = _shard_files(out.parent, out.stem, out.suffix)
    _complete(found, str(out))
    provs = [Path(str(found[k]) + ".provenance.json") for k in sorted(found)]
    record = _same_provenance(provs, str(out))
    rows, seen = [], {}
    for k in sorted(found):
        for row in read_predictions(found[k]):
            if row["path"] in seen:
                raise DataError(
                    f"{out}: {row['path']} is in shard {seen[row['path']]} and shard {k[0]}/{k[1]}"
                )
            seen[row["path"]] = f"{k[0]}/{k[1]}"
            rows.append(row)
    failures = []
    for k in sorted(found):
        errors = Path(str(found[k]) + ".errors.csv")
        if errors.is_file():
            with open(errors, newline="", encoding="utf-8") as f:
                failures.extend(csv.DictReader(f))
    rows.sort(key=lambda r: r["path"])
    write_predictions(out, rows, record.get("labels") or [])
    write_text(out.with_name(out.name + ".provenance.json"), json.dumps(record, indent=2) + "\n")
    _write_failures(out.with_name(out.name + ".errors.csv"), failures)
    return len(rows), len(failures)


def _write_failures(path: Path, failures: list[dict]) -> None:
    write_errors(path, [Failure(f["path"], f["reason"]) for f in failures])
