"""Batch jobs over many files: feature extraction and emotion prediction.

What a job guarantees:

* decoding runs in background threads, ahead of the model, so compute does not wait on I/O;
* files are batched by length under a budget of audio seconds, and padding changes nothing
  (see :mod:`emotion2vec.inference`);
* long recordings are optionally cut into overlapping windows (``window_seconds`` /
  ``hop_seconds``); frame features are stitched back at frame precision;
* a bad input is reported with its path and reason and never stops the others; an input whose
  outputs are not finite is a failed input;
* output locations are checked before any input is decoded (creatable, writable, not an input);
* every output file is written atomically with ordinary permissions; ``predict`` journals each
  result as it finishes, so a crash loses at most the batch in flight; a write failure stops the
  run with :class:`~emotion2vec.errors.OutputError` and keeps everything finished;
* every output records what made it (:mod:`emotion2vec.provenance`); a re-run resumes (skips
  finished inputs) only into an output made the same way, and one process writes an output at a
  time (:mod:`emotion2vec.locking`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import provenance, shards
from .atomic import remove_stale_temporaries, save_npy, write_text
from .audio import DEFAULT_CONV_LAYERS, SAMPLE_RATE
from .config import conv_receptive_field, conv_stride
from .errors import AudioError, DataError, Emotion2vecError, OutputError
from .inference import (
    Prediction,
    encode,
    layer_indices,
    plan_batches,
    scored_indices,
    scores_from_logits,
)
from .job_outputs import Failure, read_predictions, write_errors, write_predictions
from .locking import OutputLock
from .model import Emotion2vecModel
from .model.feature_extractor import frames_after
from .sources import AudioSource, expected_samples

# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


@dataclass
class JobSummary:
    """What a job did."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no input failed."""
        return not self.failures

    def describe(self) -> str:
        """One human-readable paragraph."""
        speed = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0
        lines = [
            f"{self.done} done, {self.skipped} skipped (output exists), {len(self.failures)} failed "
            f"of {self.total} inputs; {self.audio_seconds / 3600:.3f} h of audio in "
            f"{self.wall_seconds:.1f} s ({speed:.1f}x real time)"
        ]
        for failure in self.failures:
            lines.append(f"  FAILED {failure.path}: {failure.reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One window of a recording: samples [start, end) and the global frames it contributes."""

    start: int
    end: int
    first_frame: int
    """Global index of this window's frame 0 (= start / frame stride)."""
    keep: tuple[int, int]
    """Global frames [a, b) taken from this window when stitching."""


def plan_windows(
    num_samples: int,
    window_seconds: float | None,
    hop_seconds: float | None,
    *,
    conv_layers: Sequence[tuple[int, int, int]] = DEFAULT_CONV_LAYERS,
    sample_rate: int = SAMPLE_RATE,
) -> list[Window]:
    """Cut a recording into overlapping windows whose frames tile the whole-file frame grid.

    Windows start at multiples of the frame stride, so window frame j is global frame
    start/stride + j exactly. Each global frame is taken from the window where it lies farthest
    from an edge (the boundary is the middle of each overlap). Without a window, or for a
    recording no longer than one window, there is one window covering everything.
    ``conv_layers``: the model's ``(dim, kernel, stride)`` conv stack (frame counts are
    :func:`~emotion2vec.model.feature_extractor.frames_after` of it).
    """
    stride, receptive_field = conv_stride(conv_layers), conv_receptive_field(conv_layers)

    def frames(n: int) -> int:
        return frames_after(n, conv_layers)

    total = frames(num_samples)
    if window_seconds is None or num_samples <= window_seconds * sample_rate:
        return [Window(0, num_samples, 0, (0, total))]
    window = max(receptive_field, int(round(window_seconds * sample_rate / stride)) * stride)
    hop_s = hop_seconds if hop_seconds is not None else window_seconds * 5 / 6
    hop = max(stride, int(round(hop_s * sample_rate / stride)) * stride)
    if window - hop < receptive_field:
        raise Emotion2vecError(
            f"hop ({hop / sample_rate:.3f} s) must be shorter than the window "
            f"({window / sample_rate:.3f} s) by at least {receptive_field / sample_rate:.3f} s "
            "so that every frame is inside some window"
        )
    starts = [0]
    while starts[-1] + window < num_samples:
        starts.append(starts[-1] + hop)
    spans = [(s, min(s + window, num_samples)) for s in starts]
    bounds = [0]
    for (s0, e0), (s1, _) in zip(spans, spans[1:], strict=False):
        end_prev = s0 // stride + frames(e0 - s0)
        bounds.append((s1 // stride + end_prev) // 2)
    bounds.append(total)
    return [Window(s, e, s // stride, (bounds[i], bounds[i + 1])) for i, (s, e) in enumerate(spans)]


# --------------------------------------------------------------------------------------------
# Decoding ahead of the model
# --------------------------------------------------------------------------------------------


@dataclass
class _Item:
    index: int
    source: AudioSource
    samples: int  # expected length from the header (exact for PCM)


def _probe(sources: Sequence[AudioSource], indices: Sequence[int], workers: int):
    """Header lengths of the inputs (no decoding); failures are returned, not raised."""

    def one(i: int):
        try:
            return i, expected_samples(sources[i]), None
        except AudioError as exc:
            return i, 0, exc.reason
        except Exception as exc:  # noqa: BLE001 - one bad header must not end the job
            return i, 0, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, indices))


def _group(items: list[_Item], budget: int, window: int | None) -> list[list[_Item]]:
    """Batches of similar length under ``budget`` padded samples (longest first)."""
    items = sorted(items, key=lambda it: it.samples, reverse=True)
    groups: list[list[_Item]] = []
    current: list[_Item] = []
    for it in items:
        cost = min(it.samples, window) if window else it.samples
        longest = (
            (min(current[0].samples, window) if window else current[0].samples) if current else cost
        )
        if current and longest * (len(current) + 1) > budget:
            groups.append(current)
            current = []
        current.append(it)
        if window and it.samples > window:
            groups.append(current)  # a long recording's windows make their own batches
            current = []
    if current:
        groups.append(current)
    return groups


def _decoded(
    groups: list[list[_Item]], workers: int, prefetch: int
) -> Iterator[list[tuple[_Item, np.ndarray | None, str | None]]]:
    """Yield each group with its decoded waveforms, decoding up to ``prefetch`` groups ahead."""

    def load(item: _Item):
        try:
            return item.source.load(), None
        except AudioError as exc:
            return None, exc.reason
        except Exception as exc:  # noqa: BLE001
            return None, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending: deque[tuple[list[_Item], list[Future]]] = deque()
        queue = iter(groups)

        def submit_next() -> None:
            group = next(queue, None)
            if group is not None:
                pending.append((group, [pool.submit(load, it) for it in group]))

        for _ in range(max(1, prefetch)):
            submit_next()
        while pending:
            group, futures = pending.popleft()
            submit_next()
            out = []
            for item, fut in zip(group, futures, strict=True):
                wave, err = fut.result()
                out.append((item, wave, err))
            yield out


# --------------------------------------------------------------------------------------------
# The engine shared by extract and predict
# --------------------------------------------------------------------------------------------


@dataclass
class FileResult:
    """Everything computed for one input."""

    source: AudioSource
    duration: float
    windows: list[Window]
    frames: list[np.ndarray]  # per window: kept frames (L, t, D) (frame granularity only)
    embedding: np.ndarray  # (L, D) mean over the whole recording's frames
    frame_count: int
    window_logits: list[np.ndarray]  # per window (C,), from that window's own mean

    def frame_features(self) -> np.ndarray:
        """(L, T, D) frame features of the whole recording."""
        return np.concatenate(self.frames, axis=1)


def run_model(
    model: Emotion2vecModel,
    sources: Sequence[AudioSource],
    *,
    todo: Sequence[int],
    on_result: Callable[[FileResult], None],
    on_failure: Callable[[AudioSource, str], None],
    layers: list[int] | None = None,
    keep_frames: bool = False,
    batch_seconds: float = 60.0,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    workers: int = 2,
    prefetch: int = 2,
    progress: bool | None = None,
    summary: JobSummary | None = None,
) -> None:
    """Run the model over ``sources[i]`` for i in ``todo``; call ``on_result`` per finished input
    and ``on_failure`` per bad one. ``progress``: None = a bar only on a terminal."""
    enc = model.encoder
    rf = enc.feature_extractor.receptive_field
    budget = max(int(batch_seconds * SAMPLE_RATE), rf)
    window = int(window_seconds * SAMPLE_RATE) if window_seconds else None
    summary = summary if summary is not None else JobSummary()
    if window_seconds is not None:  # a bad window/hop is a usage error, not a per-file failure
        plan_windows(
            int(3 * window_seconds * SAMPLE_RATE),
            window_seconds,
            hop_seconds,
            conv_layers=enc.feature_extractor.spec,
        )

    probed = _probe(sources, todo, workers)
    items = []
    for i, samples, err in probed:
        if err is not None:
            on_failure(sources[i], err)
        else:
            items.append(_Item(i, sources[i], samples))
    groups = _group(items, budget, window)

    bar = tqdm(
        total=len(todo),
        unit="file",
        disable=(not progress) if progress is not None else None,
        dynamic_ncols=True,
    )
    bar.update(len(todo) - len(items))
    start = time.perf_counter()
    try:
        for group in _decoded(groups, workers, prefetch):

            def result(r: FileResult) -> None:
                on_result(r)
                summary.audio_seconds += r.duration
                bar.update(1)

            def failure(source: AudioSource, reason: str) -> None:
                on_failure(source, reason)
                bar.update(1)

            process_decoded(
                model,
                [(item.source, wave, err) for item, wave, err in group],
                on_result=result,
                on_failure=failure,
                layers=layers,
                keep_frames=keep_frames,
                batch_seconds=batch_seconds,
                window_seconds=window_seconds,
                hop_seconds=hop_seconds,
            )
            elapsed = time.perf_counter() - start
            if elapsed > 0:
                bar.set_postfix_str(
                    f"{bar.n / elapsed:.1f} files/s, {summary.audio_seconds / elapsed:.0f} audio h/h",
                    refresh=False,
                )
    finally:
        bar.close()


def process_decoded(
    model: Emotion2vecModel,
    decoded: Sequence[tuple[AudioSource, np.ndarray | None, str | None]],
    *,
    on_result: Callable[[FileResult], None],
    on_failure: Callable[[AudioSource, str], None],
    layers: list[int] | None = None,
    keep_frames: bool = False,
    batch_seconds: float = 60.0,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
) -> None:
    """Run the model over decoded inputs: (source, waveform (N,) float32 16 kHz or None, decoding
    error or None) each. Inputs (or their windows) are batched by length under ``batch_seconds``
    of padded audio (padding-exact); ``on_result`` gets each finished input, ``on_failure`` each
    bad one (decoding error, model error, non-finite output). The one computation behind
    :func:`run_model` and the Ray engine (:mod:`emotion2vec.scale.ray_engine`)."""
    enc = model.encoder
    rf = enc.feature_extractor.receptive_field
    budget = max(int(batch_seconds * SAMPLE_RATE), rf)
    segments: list[tuple[int, int, np.ndarray]] = []  # (input row, window idx, samples)
    plans: dict[int, list[Window]] = {}
    for row, (source, wave, err) in enumerate(decoded):
        if err is not None:
            on_failure(source, err)
            continue
        plans[row] = plan_windows(
            len(wave), window_seconds, hop_seconds, conv_layers=enc.feature_extractor.spec
        )
        for w_idx, w in enumerate(plans[row]):
            segments.append((row, w_idx, wave[w.start : w.end]))
    outputs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    broken: dict[int, str] = {}
    need_frames = keep_frames or any(len(w) > 1 for w in plans.values())

    def run(batch: list[int]) -> None:
        _encode_segments(model, segments, batch, layers, need_frames, outputs)

    for batch in plan_batches([len(seg) for _, _, seg in segments], budget):
        try:
            run(batch)
        except (RuntimeError, ValueError, MemoryError) as exc:
            # e.g. out of memory: retry one by one so only the culprit fails
            for j in batch if len(batch) > 1 else []:
                try:
                    run([j])
                except (RuntimeError, ValueError, MemoryError) as one:
                    broken[segments[j][0]] = f"model failed: {type(one).__name__}: {one}"
            if len(batch) == 1:
                broken[segments[batch[0]][0]] = f"model failed: {type(exc).__name__}: {exc}"
    for row, windows in plans.items():
        source, wave, _ = decoded[row]
        if row in broken:
            on_failure(source, broken[row])
            continue
        result = _assemble(source, len(wave), windows, outputs, row, keep_frames)
        if not _finite(result):
            on_failure(source, "the model produced non-finite values (NaN or inf) for this input")
            continue
        on_result(result)


def _finite(result: FileResult) -> bool:
    arrays = [result.embedding, *result.window_logits]
    arrays += [f for f in result.frames if isinstance(f, np.ndarray)]
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _encode_segments(model, segments, batch, layers, keep_frames, outputs) -> None:
    """Encode ``segments[j]`` for j in ``batch`` as one padded batch into ``outputs``:
    (row, window) -> (frames (L, T, D) or the frame count, embedding (L, D), logits or None)."""
    frames, pooled, logits = encode(model, [segments[j][2] for j in batch], layers=layers)
    for r, j in enumerate(batch):
        row, w_idx, _ = segments[j]
        outputs[(row, w_idx)] = (
            frames[r].float().cpu().numpy() if keep_frames else frames[r].shape[1],
            pooled[r].float().cpu().numpy(),
            None if logits is None else logits[r].float().cpu().numpy(),
        )


def _assemble(source, num_samples, windows, outputs, row, keep_frames) -> FileResult:
    if len(windows) == 1:
        frames, pooled, logits = outputs[(row, 0)]
        count = frames if isinstance(frames, int) else frames.shape[1]
        return FileResult(
            source=source,
            duration=num_samples / SAMPLE_RATE,
            windows=windows,
            frames=[frames] if keep_frames else [],
            embedding=pooled,  # the model's own mean: identical to a single pass
            frame_count=count,
            window_logits=[] if logits is None else [logits],
        )
    kept, sums, count, win_logits = [], None, 0, []
    for w_idx, w in enumerate(windows):
        frames, _, logits = outputs[(row, w_idx)]
        a, b = w.keep
        part = frames[:, a - w.first_frame : b - w.first_frame]
        if keep_frames:
            kept.append(part)
        part_sum = part.astype(np.float64).sum(axis=1)
        sums = part_sum if sums is None else sums + part_sum
        count += part.shape[1]
        if logits is not None:
            win_logits.append(logits)
    return FileResult(
        source=source,
        duration=num_samples / SAMPLE_RATE,
        windows=windows,
        frames=kept,
        embedding=(sums / max(count, 1)).astype(np.float32),
        frame_count=count,
        window_logits=win_logits,
    )


# --------------------------------------------------------------------------------------------
# Extraction job
# --------------------------------------------------------------------------------------------


def _probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: fails now rather than after the work."""
    try:
        probe = folder / f".emotion2vec-write-test.{id(folder)}.tmp"
        with open(probe, "wb") as f:
            f.write(b"x")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {folder} ({exc.strerror})") from None


def prepare_output_dir(output_dir: Path) -> None:
    """Create ``output_dir`` (and parents) and check it can be written; one-line OutputError
    otherwise (a file in the way, no permission, read-only file system)."""
    for parent in [output_dir, *output_dir.parents]:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{output_dir}: cannot create the output folder: {parent} is a file")
        if parent.exists():
            break
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{output_dir}: cannot create the output folder ({exc.strerror})"
        ) from None
    _probe_writable(output_dir, str(output_dir))


def prepare_output_file(path: Path, sources: Sequence[AudioSource], protected: Sequence) -> None:
    """Check an output file's location before any work: not a folder, not one of the inputs
    (audio files or manifests), parent creatable and writable."""
    if path.is_dir():
        raise OutputError(
            f"{path}: is a folder; --output needs a file name ending in .csv or .jsonl"
        )
    resolved = path.resolve()
    inputs = {s.path for s in sources}
    for item in protected:
        try:
            inputs.add(Path(item).resolve())
        except (OSError, RuntimeError):
            pass
    if resolved in inputs:
        raise OutputError(f"{path}: is one of the inputs; write the predictions to another file")
    prepare_output_dir(path.parent)


def _write_failed(path: Path, exc: OSError, kept: str) -> OutputError:
    reason = exc.strerror or str(exc)
    if exc.errno is None and "written" in reason:  # numpy's short write on a full disk
        reason = f"short write, {reason}: no space left on the device"
    return OutputError(
        f"cannot write {path} ({reason}); {kept}; free space or fix permissions, "
        "then re-run the same command to resume"
    )


def output_paths(sources: Sequence[AudioSource], output_dir: Path) -> list[Path]:
    """``output_dir/<key with .npy>`` per source; two inputs mapping to one output is an error."""
    paths, seen = [], {}
    for s in sources:
        out = output_dir / Path(s.key).with_suffix(".npy")
        folded = str(out).lower()
        if folded in seen:
            raise DataError(
                f"{s.path} and {seen[folded]} would both be written to {out}; rename one of them "
                "or process them in separate runs"
            )
        seen[folded] = s.path
        paths.append(out)
    return paths


def extract_files(
    model: Emotion2vecModel,
    sources: Sequence[AudioSource],
    output_dir: str | Path,
    *,
    granularity: str = "utterance",
    layer: int | None = None,
    all_layers: bool = False,
    batch_seconds: float = 60.0,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    overwrite: bool = False,
    workers: int = 2,
    progress: bool | None = None,
    model_name: str | None = None,
    shard: tuple[int, int] | None = None,
) -> JobSummary:
    """Write one ``.npy`` per input under ``output_dir`` (mirroring the inputs' relative paths),
    an ``index.csv`` (input, output, duration_s, frames), ``provenance.json`` and, when inputs
    fail, ``errors.csv``.

    ``shard`` (I, N): only this shard's inputs (:mod:`emotion2vec.shards`); its index, errors,
    provenance and lock are ``index.shard-I-of-N.csv`` and so on, merged by
    :func:`emotion2vec.shards.merge_extract`.

    Arrays: utterance (D,) or frame (T, D); with ``all_layers`` (L+1, D) / (L+1, T, D).

    Raises:
        OutputError: the folder cannot be created or written (before any work), or a write
            fails during the run (everything finished is kept).
        OutputConflictError: the folder holds outputs made differently (another model,
            granularity, layer or window) and ``overwrite`` is off, or another run writes it.
    """
    if granularity not in ("utterance", "frame"):
        raise Emotion2vecError(f"granularity must be 'utterance' or 'frame', got {granularity!r}")
    output_dir = Path(output_dir)
    output_paths(sources, output_dir)  # collisions are checked over all the inputs
    infix = ""  # a shard's own index, errors, provenance and lock: ".shard-I-of-N"
    if shard is not None:
        sources = shards.select(sources, shard)
        infix = f".{shards.tag(shard)}"
    outs = output_paths(sources, output_dir)
    layers = layer_indices(model, layer, all_layers)
    prepare_output_dir(output_dir)
    with OutputLock(output_dir / f".emotion2vec{infix}.lock", what=str(output_dir)):
        remove_stale_temporaries(output_dir, recursive=True)
        record = provenance.make(
            model,
            "extract",
            model_name=model_name,
            granularity=granularity,
            layers=layers,
            window_seconds=window_seconds,
            hop_seconds=hop_seconds,
        )
        provenance.check_resume(
            output_dir / f"provenance{infix}.json",
            record,
            what=str(output_dir),
            has_outputs=(output_dir / f"index{infix}.csv").exists()
            or any(o.exists() for o in outs),
            overwrite=overwrite,
        )
        summary = JobSummary(total=len(sources))
        index_rows: dict[int, tuple[str, str, float, int]] = {}
        todo = []
        for i, out in enumerate(outs):
            if out.exists() and not overwrite:
                summary.skipped += 1
                index_rows[i] = index_row_existing(sources[i], out, output_dir, granularity)
            else:
                todo.append(i)
        position = {id(s): i for i, s in enumerate(sources)}

        def on_result(r: FileResult) -> None:
            i = position[id(r.source)]
            arr, frames = feature_array(r, granularity, all_layers)
            try:
                save_npy(outs[i], arr)
            except OSError as exc:
                raise _write_failed(
                    outs[i], exc, f"the {summary.done + summary.skipped} outputs finished are kept"
                ) from None
            index_rows[i] = (
                r.source.ident,
                outs[i].relative_to(output_dir).as_posix(),
                r.duration,
                frames,
            )
            summary.done += 1

        def on_failure(source: AudioSource, reason: str) -> None:
            summary.failures.append(Failure(source.ident, reason))

        start = time.perf_counter()
        try:
            run_model(
                model,
                sources,
                todo=todo,
                on_result=on_result,
                on_failure=on_failure,
                layers=layers,
                keep_frames=granularity == "frame",
                batch_seconds=batch_seconds,
                window_seconds=window_seconds,
                hop_seconds=hop_seconds,
                workers=workers,
                progress=progress,
                summary=summary,
            )
        finally:
            summary.wall_seconds = time.perf_counter() - start
            index = output_dir / f"index{infix}.csv"
            try:
                write_index(index, [index_rows[i] for i in sorted(index_rows)])
                write_errors(output_dir / f"errors{infix}.csv", summary.failures)
            except OSError as exc:
                raise _write_failed(index, exc, "the .npy outputs are kept") from None
        return summary


def feature_array(r: FileResult, granularity: str, all_layers: bool) -> tuple[np.ndarray, int]:
    """What ``extract`` saves for a finished input, float32 C-contiguous: utterance (D,) or
    frame (T, D), with ``all_layers`` (L, D) / (L, T, D); and its frame count."""
    if granularity == "frame":
        arr = r.frame_features()
        frames = arr.shape[1]
    else:
        arr = r.embedding
        frames = r.frame_count
    if not all_layers:
        arr = arr[0]
    return np.ascontiguousarray(arr, dtype=np.float32), frames


def index_row_existing(source: AudioSource, out: Path, root: Path, granularity: str):
    """The ``index.csv`` row of an output kept from an earlier run (frames -1 when unknown)."""
    try:
        shape = np.load(out, mmap_mode="r").shape
        frames = shape[-2] if granularity == "frame" and len(shape) >= 2 else -1
    except (OSError, ValueError):
        frames = -1
    try:
        duration = expected_samples(source) / SAMPLE_RATE
    except Exception:  # noqa: BLE001 - the index is informative; a missing input is not fatal
        duration = float("nan")
    return (source.ident, out.relative_to(root).as_posix(), duration, frames)


def write_index(path: Path, rows) -> None:
    """Write ``index.csv``: (input, output, duration_s, frames) rows, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "output", "duration_s", "frames"])
    for p, out, dur, frames in rows:
        w.writerow([p, out, f"{dur:.4f}", frames])
    write_text(path, buf.getvalue())


# --------------------------------------------------------------------------------------------
# Prediction job
# --------------------------------------------------------------------------------------------


@dataclass
class FilePrediction:
    """Emotion of one input, for the whole recording and (with windows) over time."""

    path: str
    duration: float
    prediction: Prediction
    windows: list[tuple[float, float, Prediction]] = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-serialisable dict."""
        return {
            "path": self.path,
            "duration": round(self.duration, 4),
            "label": self.prediction.label,
            "score": self.prediction.score,
            "scores": self.prediction.scores,
            "windows": [
                {
                    "start": round(s, 3),
                    "end": round(e, 3),
                    "label": p.label,
                    "score": p.score,
                    "scores": p.scores,
                }
                for s, e, p in self.windows
            ],
        }


def predict_files(
    model: Emotion2vecModel,
    sources: Sequence[AudioSource],
    *,
    output: str | Path | None = None,
    batch_seconds: float = 60.0,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    overwrite: bool = False,
    workers: int = 2,
    progress: bool | None = None,
    save_every: float = 30.0,
    model_name: str | None = None,
    protected: Sequence[str | Path] = (),
    labels: str | Sequence[str] | None = None,
    shard: tuple[int, int] | None = None,
) -> tuple[list[FilePrediction], JobSummary]:
    """Predict the emotion of every input.

    With ``output`` (``.csv`` or ``.jsonl``), all scores are written there: each result is
    appended to ``<output>.partial.jsonl`` as it finishes, the output itself is rewritten
    atomically every ``save_every`` seconds and at the end (then the journal is removed), and
    ``<output>.provenance.json`` records the model and settings. Inputs already in an existing
    output (or its journal) are skipped unless ``overwrite``, so an interrupted run resumes,
    provided the model and settings are the same. Failures go to ``<output>.errors.csv``.
    ``protected``: paths the output must not be (the job's manifests). ``labels``: score only
    these labels (names or aliases; see :func:`emotion2vec.inference.predict`). ``shard``
    (I, N): only this shard's inputs, written to ``<stem>.shard-I-of-N<suffix>`` (merged by
    :func:`emotion2vec.shards.merge_predict`). Returns this run's predictions (not the ones
    skipped) and the summary.
    """
    if model.head is None:
        raise Emotion2vecError(
            "this model has no emotion head (emotion2vec_base is a feature extractor): use "
            "`emotion2vec extract`, an emotion2vec_plus_* model, or a fine-tuned model"
        )
    subset = None
    if labels is not None:
        from .labels import resolve

        subset = resolve(labels, model.labels)
    if shard is not None:
        sources = shards.select(sources, shard)
    out_path = Path(output) if output is not None else None
    if out_path is not None and shard is not None:
        out_path = shards.shard_path(out_path, shard)
    if out_path is None:
        return _predict(
            model,
            sources,
            None,
            None,
            [],
            batch_seconds,
            window_seconds,
            hop_seconds,
            workers,
            progress,
            save_every,
            subset,
        )
    if out_path.suffix.lower() not in (".csv", ".jsonl"):
        raise Emotion2vecError(f"{out_path}: output must end in .csv or .jsonl")
    prepare_output_file(out_path, sources, protected)
    journal = out_path.with_name(out_path.name + ".partial.jsonl")
    with OutputLock(out_path.with_name(out_path.name + ".lock"), what=str(out_path)):
        remove_stale_temporaries(out_path.parent)
        record = provenance.make(
            model,
            "predict",
            model_name=model_name,
            labels=scored_labels(model.labels, subset),
            window_seconds=window_seconds,
            hop_seconds=hop_seconds,
        )
        provenance.check_resume(
            out_path.with_name(out_path.name + ".provenance.json"),
            record,
            what=str(out_path),
            has_outputs=out_path.exists() or journal.exists(),
            overwrite=overwrite,
        )
        previous: list[dict] = []
        if overwrite:
            journal.unlink(missing_ok=True)
        else:
            if out_path.exists():
                previous = read_predictions(out_path)
            previous = merge_rows(previous, read_journal(journal))
        return _predict(
            model,
            sources,
            out_path,
            journal,
            previous,
            batch_seconds,
            window_seconds,
            hop_seconds,
            workers,
            progress,
            save_every,
            subset,
        )


def scored_labels(labels: Sequence[str], subset: Sequence[int] | None) -> list[str]:
    """The labels that get a score (the columns of a score file)."""
    return [labels[i] for i in scored_indices(labels, subset)]


def merge_rows(rows: list[dict], more: list[dict]) -> list[dict]:
    """Rows by path, later ones replacing earlier ones, first-seen order kept."""
    merged: dict[str, dict] = {}
    for row in [*rows, *more]:
        merged[row["path"]] = row
    return list(merged.values())


def read_journal(path: Path) -> list[dict]:
    """Rows of a ``.partial.jsonl`` journal; a last line cut short by a crash is ignored."""
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "path" in row:
                rows.append(row)
    return rows


def _predict(
    model,
    sources,
    out_path,
    journal,
    previous,
    batch_seconds,
    window_seconds,
    hop_seconds,
    workers,
    progress,
    save_every,
    subset=None,
) -> tuple[list[FilePrediction], JobSummary]:
    done_paths = {row["path"] for row in previous}
    summary = JobSummary(total=len(sources))
    todo = [i for i, s in enumerate(sources) if s.ident not in done_paths]
    summary.skipped = len(sources) - len(todo)
    results: list[FilePrediction] = []
    labels = model.labels
    last_save = time.perf_counter()
    log = None

    def kept() -> str:
        return f"the {len(previous) + len(results)} predictions finished are kept in {journal}"

    def save() -> None:
        if out_path is None:
            return
        try:
            write_predictions(
                out_path, previous + [r.to_json() for r in results], scored_labels(labels, subset)
            )
            if log is not None:
                log.truncate(0)
                log.seek(0)
        except OSError as exc:
            raise _write_failed(out_path, exc, kept()) from None

    def on_result(r: FileResult) -> None:
        nonlocal last_save
        result = file_prediction(model, r, subset)
        if result is None:
            on_failure(r.source, NON_FINITE_SCORES)
            return
        if log is not None:
            try:
                log.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
                log.flush()
            except OSError as exc:
                raise _write_failed(journal, exc, kept()) from None
        results.append(result)
        summary.done += 1
        if out_path is not None and time.perf_counter() - last_save > save_every:
            save()
            last_save = time.perf_counter()

    def on_failure(source: AudioSource, reason: str) -> None:
        summary.failures.append(Failure(source.ident, reason))

    start = time.perf_counter()
    if journal is not None:
        try:
            log = open(journal, "a", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise _write_failed(journal, exc, "nothing was computed") from None
    try:
        run_model(
            model,
            sources,
            todo=todo,
            on_result=on_result,
            on_failure=on_failure,
            batch_seconds=batch_seconds,
            window_seconds=window_seconds,
            hop_seconds=hop_seconds,
            workers=workers,
            progress=progress,
            summary=summary,
        )
    finally:
        summary.wall_seconds = time.perf_counter() - start
        saved = False
        try:
            save()
            saved = True
            if out_path is not None:
                write_errors(out_path.with_name(out_path.name + ".errors.csv"), summary.failures)
        finally:
            if log is not None:
                log.close()
                if saved:  # everything is in the output now
                    journal.unlink(missing_ok=True)
    order = {s.ident: i for i, s in enumerate(sources)}
    results.sort(key=lambda r: order.get(r.path, 0))
    return results, summary


NON_FINITE_SCORES = "the model produced non-finite scores (NaN or inf)"


def file_prediction(
    model: Emotion2vecModel, r: FileResult, subset: Sequence[int] | None = None
) -> FilePrediction | None:
    """The head's scores of a finished input (its whole-recording embedding and, with windows,
    each window's); None when they are not finite."""
    labels = model.labels
    whole = torch.from_numpy(r.embedding[-1:]).to(next(model.parameters()).device)
    with torch.inference_mode():
        logits = model.head(whole.float())
    if not bool(torch.isfinite(logits).all()):
        return None
    pred = scores_from_logits(logits, labels, subset)[0]
    windows = []
    if len(r.windows) > 1:
        preds = scores_from_logits(torch.from_numpy(np.stack(r.window_logits)), labels, subset)
        windows = [
            (w.start / SAMPLE_RATE, w.end / SAMPLE_RATE, p)
            for w, p in zip(r.windows, preds, strict=True)
        ]
    return FilePrediction(r.source.ident, r.duration, pred, windows)
