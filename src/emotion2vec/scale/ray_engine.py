"""``extract`` / ``predict`` as a streaming Ray Data pipeline (``pip install 'emotion2vec[ray]'``).

The stages, each scaled by Ray over the machine or the cluster:

1. the driver lists the inputs (:func:`emotion2vec.sources.collect_sources`) and drops those
   already in the output (resume);
2. CPU tasks read each input's header and decode and resample it
   (:meth:`emotion2vec.sources.AudioSource.load`), in the same order and with the same failure
   reasons as the local job;
3. an actor pool runs the model: each actor loads it once (:func:`emotion2vec.pipeline.load_model`,
   one GPU per actor when the cluster has GPUs) and batches the waveforms it receives by length
   (:func:`emotion2vec.jobs.process_decoded`: the local job's padding-exact computation);
4. the driver streams the results out as they come: ``extract`` writes the ``.npy`` files from the
   actors (the local layout: same files, ``index.csv``, ``errors.csv``, ``provenance.json``, so a
   folder can be started by one engine and finished by the other), ``predict`` the local score
   file (``.csv`` / ``.jsonl``); either writes Parquet parts (:mod:`emotion2vec.scale.parquet`)
   instead when the output ends in ``.parquet``.

A worker that dies (a lost node, a killed process) is retried by Ray (``max_retries`` for the
tasks, ``max_restarts`` / ``max_task_retries`` for the actors); the results of a batch reach the
driver once. ``.npy`` files written by the actors need a file system every node sees (as shards
do). Ray's own logging and progress bars are kept quiet unless ``verbose``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import AudioError, ConfigError, Emotion2vecError
from ..jobs import FilePrediction, JobSummary
from ..sources import AudioSource

#: Fault injection for the tests: a folder; a stage ("decode", "model") whose file exists there
#: removes it and kills its own process, once.
FAULTS_ENV = "EMOTION2VEC_RAY_FAULTS"

#: Rows a model actor receives at once (it batches them by length under ``batch_seconds``).
ROWS_PER_CALL = 32


#: How often Ray retries a task or restarts an actor whose process died (bounded, so that an
#: input that kills its worker every time ends the job instead of looping).
RETRIES = 3


def _retries(**kwargs) -> dict:
    """Retry settings for ``map`` / ``map_batches``. Newer Ray Data deprecates passing them as
    plain remote arguments but names no replacement for them, so its warning is silenced."""
    import warnings

    warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
    return kwargs


def _maybe_crash(stage: str) -> None:
    folder = os.environ.get(FAULTS_ENV)
    if folder:
        try:
            os.remove(os.path.join(folder, stage))
        except OSError:
            return
        os._exit(1)


def _reason(exc: Exception) -> str:
    """An input's failure reason, worded as the local job words it."""
    return exc.reason if isinstance(exc, AudioError) else f"{type(exc).__name__}: {exc}"


def _encode_source(s: AudioSource) -> str:
    return json.dumps([str(s.path), s.key, s.channel, s.start, s.end])


def _decode_source(text: str) -> AudioSource:
    path, key, channel, start, end = json.loads(text)
    return AudioSource(Path(path), key, channel, start, end)


def decode(row: dict) -> dict:
    """Stage 2 (a Ray task per row): header check then decoding, as the local job does."""
    from ..jobs import expected_samples

    _maybe_crash("decode")
    source = _decode_source(row["source"])
    wave, error = np.zeros(0, np.float32), ""
    try:
        expected_samples(source)
        wave = source.load()
    except Exception as exc:  # noqa: BLE001 - a bad input is reported, never fatal
        error = _reason(exc)
    return {"row": row["row"], "source": row["source"], "wave": wave, "error": error}


def resolve_precision(precision: str, device: str | None) -> tuple[str, str | None]:
    """``precision`` with ``auto`` resolved for ``device`` (and its reason)."""
    from ..fast.precision import CHOICES, check, choose

    if precision not in CHOICES:
        raise Emotion2vecError(f"precision must be one of {', '.join(CHOICES)}, got {precision!r}")
    target = device if device not in (None, "auto") else "cpu"
    if precision != "auto":
        check(precision, target)
        return precision, None
    picked = choose(target)
    return picked.precision, f"auto: {picked.reason}"


class ModelActor:
    """Stage 3: the model on one device; called with a batch of decoded rows (numpy format)."""

    def __init__(
        self,
        model,
        *,
        device: str,
        threads: int | None,
        precision: str,
        mode: str,
        layers: list[int] | None,
        granularity: str,
        all_layers: bool,
        subset: list[int] | None,
        batch_seconds: float,
        window_seconds: float | None,
        hop_seconds: float | None,
        npy_dir: str | None,
    ):
        import torch

        from ..pipeline import load_model

        if threads:
            torch.set_num_threads(threads)
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model, device=device, precision=precision)
        elif precision != getattr(model, "precision", "fp32"):
            from ..fast.precision import convert

            model = convert(model.to(device), precision, device)
        else:
            model = model.to(device)
        self.model = model.eval()
        self.mode = mode
        self.layers = layers
        self.granularity = granularity
        self.all_layers = all_layers
        self.subset = subset
        self.batch_seconds = batch_seconds
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.npy_dir = Path(npy_dir) if npy_dir else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from ..jobs import NON_FINITE_SCORES, file_prediction, process_decoded

        _maybe_crash("model")
        decoded = []
        for text, wave, error in zip(batch["source"], batch["wave"], batch["error"], strict=True):
            source = _decode_source(str(text))
            decoded.append((source, None, str(error)) if error else (source, wave, None))
        out: dict[str, dict] = {}

        def failure(source: AudioSource, reason: str) -> None:
            out[source.ident] = {"error": reason}

        def result(r) -> None:
            row = {"error": "", "duration": r.duration, "frames": r.frame_count}
            if self.mode == "predict":
                pred = file_prediction(self.model, r, self.subset)
                if pred is None:
                    failure(r.source, NON_FINITE_SCORES)
                    return
                row["payload"] = json.dumps(pred.to_json(), ensure_ascii=False).encode()
            else:
                from ..jobs import feature_array

                arr, row["frames"] = feature_array(r, self.granularity, self.all_layers)
                if self.npy_dir is not None:  # the local layout, written here (shared storage)
                    from ..atomic import save_npy

                    save_npy(self.npy_dir / Path(r.source.key).with_suffix(".npy"), arr)
                    row["payload"] = b""
                else:
                    buf = io.BytesIO()
                    np.save(buf, arr)
                    row["payload"] = buf.getvalue()
            out[r.source.ident] = row

        process_decoded(
            self.model,
            decoded,
            on_result=result,
            on_failure=failure,
            layers=self.layers,
            keep_frames=self.mode == "extract" and self.granularity == "frame",
            batch_seconds=self.batch_seconds,
            window_seconds=self.window_seconds,
            hop_seconds=self.hop_seconds,
        )
        rows = [out[s.ident] for s, _, _ in decoded]
        return {
            "row": list(batch["row"]),
            "error": [r["error"] for r in rows],
            "duration": [float(r.get("duration", math.nan)) for r in rows],
            "frames": [int(r.get("frames", -1)) for r in rows],
            "payload": [r.get("payload", b"") for r in rows],
        }


def _quiet_ray(verbose: bool) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    if not verbose:
        ctx.enable_progress_bars = False
        for attr in ("print_on_execution_start", "verbose_stats_logs"):
            if hasattr(ctx, attr):
                setattr(ctx, attr, False)
        for name in ("ray", "ray.data", "ray.data._internal"):
            logging.getLogger(name).setLevel(logging.ERROR)


def connect(address: str | None = None, *, verbose: bool = False) -> bool:
    """Join the Ray cluster at ``address`` (None: ``RAY_ADDRESS`` or a local instance) unless
    Ray is initialised already; True when this call started it (and should shut it down)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'emotion2vec[ray]'") from None
    _quiet_ray(verbose)
    if ray.is_initialized():
        return False
    if not verbose:  # the C++ core's own log lines (e.g. about actor restarts)
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray.init(
        address=address,
        include_dashboard=False,
        logging_level=logging.INFO if verbose else logging.ERROR,
        log_to_driver=verbose,
    )
    _quiet_ray(verbose)
    return True


def _pool(device: str | None, actors: int | None, threads: int | None) -> tuple[str, dict]:
    """(actor device, map_batches resources) for the cluster Ray is connected to."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and device in (None, "auto") or (device or "").startswith("cuda"):
        return "cuda", {"concurrency": actors or max(gpus, 1), "num_gpus": 1}
    cpus = resources.get("CPU", 1.0)
    per_actor = threads or 1
    count = actors or max(1, int(cpus // per_actor))
    # The actors' logical CPUs leave room for the decoding tasks (light next to the model).
    share = min(float(per_actor), max(0.1, (cpus - 0.5) / count))
    return "cpu", {"concurrency": count, "num_cpus": share}


def run(
    model,
    inputs: Sequence[str | os.PathLike[str]] | Sequence[AudioSource],
    output: str | os.PathLike[str] | None,
    *,
    mode: str,
    granularity: str = "utterance",
    layer: int | None = None,
    all_layers: bool = False,
    labels: str | Sequence[str] | None = None,
    batch_seconds: float = 60.0,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    overwrite: bool = False,
    device: str | None = None,
    precision: str = "fp32",
    address: str | None = None,
    actors: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    save_every: float = 30.0,
    model_name: str | None = None,
    protected: Sequence[str | os.PathLike[str]] = (),
    verbose: bool = False,
) -> tuple[list[FilePrediction], JobSummary]:
    """The Ray job behind :func:`predict_ray` and :func:`extract_ray` (``mode``)."""
    from ..pipeline import load_model
    from ..sources import collect_sources

    if mode not in ("predict", "extract"):
        raise Emotion2vecError(f"mode must be 'predict' or 'extract', got {mode!r}")
    if granularity not in ("utterance", "frame"):
        raise Emotion2vecError(f"granularity must be 'utterance' or 'frame', got {granularity!r}")
    sources = (
        list(inputs)
        if inputs and all(isinstance(s, AudioSource) for s in inputs)
        else collect_sources(inputs)
    )
    # The driver's copy (CPU, fp32) decides the provenance, labels and layers; actors load their
    # own in ``precision``, resolved here once so that every actor runs the same mode (and the
    # provenance records it).
    local = load_model(model, device="cpu") if isinstance(model, (str, os.PathLike)) else model
    precision, choice = resolve_precision(precision, device)
    if isinstance(model, (str, os.PathLike)):
        local.precision, local.precision_choice = precision, choice
    if model_name is None and isinstance(model, (str, os.PathLike)):
        model_name = str(model)
    from .driver import Job

    job = Job.open(
        local,
        sources,
        output,
        mode=mode,
        granularity=granularity,
        layer=layer,
        all_layers=all_layers,
        labels=labels,
        window_seconds=window_seconds,
        hop_seconds=hop_seconds,
        overwrite=overwrite,
        model_name=model_name,
        protected=protected,
        save_every=save_every,
    )
    with job:
        started = connect(address, verbose=verbose)
        try:
            import ray.data

            actor_device, pool = _pool(device, actors, threads)
            todo = job.todo
            ds = (
                ray.data.from_items(
                    [{"row": i, "source": _encode_source(sources[i])} for i in todo],
                    override_num_blocks=max(1, min(len(todo), 200)),
                )
                if todo
                else None
            )
            if ds is not None:
                ds = ds.map(decode, num_cpus=0.25, **_retries(max_retries=RETRIES))
                ds = ds.map_batches(
                    ModelActor,
                    batch_size=ROWS_PER_CALL,
                    batch_format="numpy",
                    fn_constructor_kwargs=dict(
                        model=model if isinstance(model, (str, os.PathLike)) else local,
                        device=actor_device,
                        threads=threads or (1 if actor_device == "cpu" else None),
                        precision=precision,
                        mode=mode,
                        layers=job.layers,
                        granularity=granularity,
                        all_layers=all_layers,
                        subset=job.subset,
                        batch_seconds=batch_seconds,
                        window_seconds=window_seconds,
                        hop_seconds=hop_seconds,
                        npy_dir=str(job.npy_dir) if job.npy_dir else None,
                    ),
                    **_retries(max_restarts=RETRIES, max_task_retries=RETRIES),
                    **pool,
                )
                job.consume(ds.iter_rows(), progress=progress)
        finally:
            if started:
                import ray

                ray.shutdown()
    return job.results, job.summary


def predict_ray(
    model, inputs, output: str | os.PathLike[str] | None = None, **options
) -> tuple[list[FilePrediction], JobSummary]:
    """Predict the emotion of every input with Ray Data (see the module docs).

    ``model``: a name or path (each actor loads it with :func:`emotion2vec.pipeline.load_model`)
    or a model object (shipped to the actors). ``output``: ``.csv`` / ``.jsonl`` (the local score
    file), ``.parquet`` (a folder of Parquet parts) or None (results returned only); resumable.
    ``options``: ``labels``, ``batch_seconds``, ``window_seconds``, ``hop_seconds``,
    ``overwrite``, ``device``, ``precision`` (as in :func:`emotion2vec.pipeline.load_model`; ``auto``
    is resolved once, on the driver), ``address`` (the Ray cluster), ``actors`` (model
    actors: default one per GPU, else one per ``threads`` CPUs), ``threads`` (torch threads per
    CPU actor, default 1), ``progress``, ``verbose`` (Ray's own logs). Returns this run's
    predictions in input order and the summary.
    """
    return run(model, inputs, output, mode="predict", **options)


def extract_ray(model, inputs, output_dir: str | os.PathLike[str], **options) -> JobSummary:
    """Extract features of every input with Ray Data into ``output_dir``: the local layout
    (``.npy`` files, ``index.csv``, ``errors.csv``, ``provenance.json``) or, for a name ending in
    ``.parquet``, Parquet parts. ``options`` as :func:`predict_ray` plus ``granularity``,
    ``layer``, ``all_layers``."""
    return run(model, inputs, output_dir, mode="extract", **options)[1]
