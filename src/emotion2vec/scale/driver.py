"""The Ray engine's driver side: the output, what is already done, and writing results as they
stream in. The checks before any work (output location, lock, provenance, collisions) and the
files written are the local jobs' (:mod:`emotion2vec.jobs`), so outputs are interchangeable."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import provenance
from ..atomic import remove_stale_temporaries
from ..errors import Emotion2vecError
from ..jobs import (
    Failure,
    FilePrediction,
    JobSummary,
    index_row_existing,
    merge_rows,
    output_paths,
    prepare_output_dir,
    prepare_output_file,
    read_journal,
    read_predictions,
    scored_labels,
    write_errors,
    write_index,
    write_predictions,
)
from ..locking import OutputLock
from ..sources import AudioSource
from . import parquet

#: Rows per Parquet part (a part is also written every ``save_every`` seconds).
PART_ROWS = 5000


class Job:
    """One run: the output (kind, paths), the inputs to do, and what finished."""

    def __init__(self, sources: Sequence[AudioSource], mode: str, save_every: float):
        self.sources = list(sources)
        self.mode = mode
        self.save_every = save_every
        self.summary = JobSummary(total=len(sources))
        self.results: list[FilePrediction] = []
        self.todo: list[int] = list(range(len(sources)))
        self.kind = "none"  # "none" | "scores" | "npy" | "parquet"
        self.out: Path | None = None
        self.npy_dir: Path | None = None
        self.layers: list[int] | None = None
        self.subset: list[int] | None = None
        self.labels: list[str] = []
        self.granularity = "utterance"
        self.all_layers = False
        self.previous: list[dict] = []  # score rows of earlier runs
        self.index_rows: dict[int, tuple] = {}
        self.writer: parquet.PartWriter | None = None
        self.lock: OutputLock | None = None

    @classmethod
    def open(
        cls,
        model,
        sources: Sequence[AudioSource],
        output,
        *,
        mode: str,
        granularity: str,
        layer: int | None,
        all_layers: bool,
        labels,
        window_seconds: float | None,
        hop_seconds: float | None,
        overwrite: bool,
        model_name: str | None,
        protected: Sequence,
        save_every: float,
    ) -> Job:
        """Check the output, take its lock, check the provenance, read what is done."""
        from ..inference import layer_indices

        job = cls(sources, mode, save_every)
        job.granularity, job.all_layers = granularity, all_layers
        out = Path(output) if output is not None else None
        parquet_out = out is not None and out.suffix.lower() == ".parquet"
        if mode == "predict":
            if model.head is None:
                raise Emotion2vecError(
                    "this model has no emotion head (emotion2vec_base is a feature extractor): "
                    "use extract, an emotion2vec_plus_* model, or a fine-tuned model"
                )
            if labels is not None:
                from ..labels import resolve

                job.subset = resolve(labels, model.labels)
            job.labels = scored_labels(model.labels, job.subset)
            settings = dict(labels=job.labels)
        else:
            if out is None:
                raise Emotion2vecError("extract needs an output folder")
            job.layers = layer_indices(model, layer, all_layers)
            settings = dict(granularity=granularity, layers=job.layers)
        settings.update(window_seconds=window_seconds, hop_seconds=hop_seconds)
        record = provenance.make(model, mode, model_name=model_name, **settings)
        if out is None:
            return job
        job.out = out
        if parquet_out:
            job.kind = "parquet"
            prepare_output_dir(out)
            prov, lock, has = (
                out / "provenance.json",
                out / ".emotion2vec.lock",
                bool(parquet.parts(out)),
            )
        elif mode == "predict":
            if out.suffix.lower() not in (".csv", ".jsonl"):
                raise Emotion2vecError(f"{out}: output must end in .csv, .jsonl or .parquet")
            job.kind = "scores"
            prepare_output_file(out, sources, protected)
            journal = out.with_name(out.name + ".partial.jsonl")
            prov = out.with_name(out.name + ".provenance.json")
            lock = out.with_name(out.name + ".lock")
            has = out.exists() or journal.exists()
        else:
            job.kind = "npy"
            outs = output_paths(sources, out)
            prepare_output_dir(out)
            job.npy_dir = out
            prov, lock = out / "provenance.json", out / ".emotion2vec.lock"
            has = (out / "index.csv").exists() or any(o.exists() for o in outs)
        job.lock = OutputLock(lock, what=str(out)).acquire()
        try:
            remove_stale_temporaries(
                out if out.is_dir() else out.parent, recursive=job.kind == "npy"
            )
            provenance.check_resume(
                prov, record, what=str(out), has_outputs=has, overwrite=overwrite
            )
            job._read_done(overwrite)
        except BaseException:
            job.lock.release()
            raise
        return job

    def _read_done(self, overwrite: bool) -> None:
        out = self.out
        assert out is not None
        if self.kind == "parquet":
            if overwrite:
                for part in parquet.parts(out):
                    part.unlink()
            done = parquet.done_paths(out)
            self.todo = [i for i, s in enumerate(self.sources) if s.ident not in done]
            ndim = 1 + (self.granularity == "frame") + bool(self.all_layers)
            self.writer = parquet.PartWriter(out, ndim if self.mode == "extract" else None)
        elif self.kind == "scores":
            journal = out.with_name(out.name + ".partial.jsonl")
            if overwrite:
                journal.unlink(missing_ok=True)
            else:
                rows = read_predictions(out) if out.exists() else []
                self.previous = merge_rows(rows, read_journal(journal))
            done = {row["path"] for row in self.previous}
            self.todo = [i for i, s in enumerate(self.sources) if s.ident not in done]
        else:
            self.todo = []
            for i, dest in enumerate(output_paths(self.sources, out)):
                if dest.exists() and not overwrite:
                    self.index_rows[i] = index_row_existing(
                        self.sources[i], dest, out, self.granularity
                    )
                else:
                    self.todo.append(i)
        self.summary.skipped = len(self.sources) - len(self.todo)

    def __enter__(self) -> Job:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.summary.wall_seconds = time.perf_counter() - self._start
            self.save()
            self.results.sort(key=lambda r: self._order.get(r.path, 0))
        finally:
            if self.lock is not None:
                self.lock.release()

    @property
    def _order(self) -> dict[str, int]:
        return {s.ident: i for i, s in enumerate(self.sources)}

    def consume(self, rows: Iterable[dict], *, progress: bool | None) -> None:
        """Take the pipeline's result rows as they arrive; save every ``save_every`` seconds."""
        bar = tqdm(
            total=len(self.todo),
            unit="file",
            disable=(not progress) if progress is not None else None,
            dynamic_ncols=True,
        )
        last = time.perf_counter()
        try:
            for row in rows:
                self._take(row)
                bar.update(1)
                if time.perf_counter() - last > self.save_every:
                    self.save()
                    last = time.perf_counter()
        finally:
            bar.close()

    def _take(self, row: dict) -> None:
        i = int(row["row"])
        source = self.sources[i]
        if row["error"]:
            self.summary.failures.append(Failure(source.ident, str(row["error"])))
            return
        self.summary.done += 1
        self.summary.audio_seconds += float(row["duration"])
        payload = bytes(row["payload"])
        base = {"key": source.key, "path": source.ident, "duration": float(row["duration"])}
        if self.mode == "predict":
            pred = json.loads(payload)
            self.results.append(_prediction(pred))
            if self.kind == "parquet":
                entry = {**base, "label": pred["label"], "score": pred["score"]}
                entry["scores"] = pred["scores"]
                if pred["windows"]:
                    entry["windows"] = json.dumps(pred["windows"])
                self.writer.add(entry)
        elif self.kind == "npy":
            dest = self.npy_dir / Path(source.key).with_suffix(".npy")
            self.index_rows[i] = (
                source.ident,
                dest.relative_to(self.npy_dir).as_posix(),
                float(row["duration"]),
                int(row["frames"]),
            )
        else:
            import io

            arr = np.load(io.BytesIO(payload))
            self.writer.add({**base, "frames": int(row["frames"]), "embedding": arr})
        if self.writer is not None and len(self.writer.rows) >= PART_ROWS:
            self.writer.flush()

    def save(self) -> None:
        """Write everything finished so far (atomically) and this run's failures."""
        failures = sorted(self.summary.failures, key=lambda f: self._order.get(f.path, 0))
        if self.kind == "scores":
            rows = self.previous + [r.to_json() for r in self.results]
            write_predictions(self.out, rows, self.labels)
            self.out.with_name(self.out.name + ".partial.jsonl").unlink(missing_ok=True)
            write_errors(self.out.with_name(self.out.name + ".errors.csv"), failures)
        elif self.kind == "npy":
            write_index(
                self.out / "index.csv", [self.index_rows[i] for i in sorted(self.index_rows)]
            )
            write_errors(self.out / "errors.csv", failures)
        elif self.kind == "parquet":
            self.writer.flush()
            write_errors(self.out / "errors.csv", failures)


def _prediction(row: dict) -> FilePrediction:
    from ..inference import Prediction

    def one(d: dict) -> Prediction:
        return Prediction(d["label"], d["score"], d["scores"])

    windows = [(w["start"], w["end"], one(w)) for w in row["windows"]]
    return FilePrediction(row["path"], row["duration"], one(row), windows)
