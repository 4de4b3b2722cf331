"""``emotion2vec predict`` and ``emotion2vec extract``: shims over
:func:`emotion2vec.jobs.predict_files` and :func:`emotion2vec.jobs.extract_files`.

    emotion2vec predict speech.wav
    emotion2vec predict clips/ --output scores.csv
    emotion2vec extract data/ --model emotion2vec_base --output feats/
"""

from __future__ import annotations

import argparse
import sys

from ..argtypes import positive_int, positive_seconds
from ..errors import ConfigError
from . import options
from .exit_codes import EXIT_FAILED_INPUTS, EXIT_OK

_INTERRUPTED = "finished outputs are kept, re-run to resume"


def add_parsers(sub) -> None:
    """Register ``predict`` and ``extract``."""
    p = sub.add_parser(
        "predict",
        help="predict the emotion of audio files",
        description="Score every input with the model's emotion head and print the top label; "
        "--output also writes every score (resumable: finished inputs are kept).",
    )
    _add_job_options(p)
    options.add_output(
        p, "write all scores to FILE.csv or FILE.jsonl (default: print only)", required=False
    )
    p.add_argument(
        "--labels",
        default=None,
        metavar="LIST",
        help="score only these labels, comma-separated (e.g. angry,happy,neutral,sad; aliases "
        "such as Angry, Fear, Surprise, ang, hap work): the others are masked out and the scores "
        "renormalised",
    )
    g = p.add_argument_group(
        "recordings with segments",
        "emotion per segment and per speaker of long recordings (conversations, calls, "
        "podcasts); --output is then a folder",
    )
    g.add_argument(
        "--segments",
        default=None,
        metavar="SOURCE",
        help="'vad' (Silero voice-activity detection, pip install 'emotion2vec[segments]'), a "
        "segment file for the inputs (RTTM, pyannote or WhisperX JSON, CSV/TSV/JSONL with "
        "start,end[,speaker,text,file]) or a folder of <recording stem>.rttm|json|csv files",
    )
    g.add_argument(
        "--timeline",
        default=None,
        metavar="png,html",
        help="also draw each recording's timeline: png, html (interactive, audio included) or both",
    )
    g.add_argument(
        "--frame-curve",
        action="store_true",
        help="also apply the head to every frame (50 Hz), smoothed: <stem>.curve.csv and the "
        "timelines' curves (an extrapolation of an utterance-level head; see the docs)",
    )
    g.add_argument(
        "--smooth-seconds",
        type=float,
        default=0.5,
        metavar="S",
        help="--frame-curve: moving-average window of the per-frame logits (default: 0.5)",
    )
    g.add_argument(
        "--vad-threshold",
        type=float,
        default=0.5,
        metavar="P",
        help="--segments vad: speech probability threshold (default: 0.5)",
    )
    p.set_defaults(run=predict, interrupted=_INTERRUPTED)

    p = sub.add_parser(
        "extract",
        help="extract emotion2vec features to .npy files",
        description="Write one .npy file of features per input (utterance or frame level, one "
        "layer or all), an index.csv and errors.csv (resumable: finished inputs are kept).",
    )
    _add_job_options(p)
    options.add_output(p, "folder for the .npy files", old=("--output-dir",))
    p.add_argument(
        "--granularity",
        choices=["utterance", "frame"],
        default="utterance",
        help="utterance: one (D,) mean vector per input; frame: (T, D), 50 frames per second "
        "(default: utterance)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--layer",
        type=int,
        default=None,
        help="block output to save (0 = input of the first block, -1 = last; default: last)",
    )
    g.add_argument("--all-layers", action="store_true", help="save every layer: (L+1, [T,] D)")
    p.set_defaults(run=extract, interrupted=_INTERRUPTED)


def _add_job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", help="audio files, directories, or manifests (csv/tsv/jsonl/txt)"
    )
    options.add_model(p)
    options.add_device(p)
    options.add_threads(p)
    options.add_precision(p)
    options.add_batch_seconds(p)
    p.add_argument(
        "--window-seconds",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="process recordings longer than this in overlapping windows (default: whole file)",
    )
    p.add_argument(
        "--hop-seconds",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="window hop (default: 5/6 of the window)",
    )
    options.add_overwrite(p)
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="I/N (0 <= I < N): process only this shard of the inputs, into its own files; "
        "'auto' reads I and N from SLURM, a Kubernetes indexed job or torchrun; combine the "
        "shards with 'emotion2vec merge'",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        metavar="N",
        help="background decoding threads (default: 2)",
    )
    options.add_quiet(p)
    _add_engine_options(p)
    p.set_defaults(usage_check=_check_windows)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine ray`` and its cluster address (emotion2vec.scale.ray_engine)."""
    g = p.add_argument_group("scale-out", "run the job as a Ray Data pipeline (docs/scale-out.md)")
    g.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: decoding tasks and model actors on a Ray "
        "cluster or this machine (pip install 'emotion2vec[ray]'); an --output ending in "
        ".parquet is then written as Parquet parts",
    )
    g.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="--engine ray: the cluster to join (e.g. ray://head:10001 or auto; default: "
        "RAY_ADDRESS, else a Ray instance started on this machine)",
    )


def _run_ray(args: argparse.Namespace, mode: str, **extra):
    """``--engine ray``: the job on Ray (the model is loaded by every actor)."""
    from ..scale.ray_engine import run

    if args.shard is not None:
        raise ConfigError("--shard does not combine with --engine ray (Ray splits the work)")
    if any(getattr(args, k, None) for k in ("segments", "timeline", "frame_curve")):
        raise ConfigError("--segments, --timeline, --frame-curve do not combine with --engine ray")
    if args.precision == "int8" and args.device not in (None, "auto", "cpu"):
        raise ConfigError("--precision int8 is a CPU mode: drop --device or --precision")
    return run(
        options.model_name(args),
        args.inputs,
        args.output,
        mode=mode,
        batch_seconds=args.batch_seconds,
        window_seconds=args.window_seconds,
        hop_seconds=args.hop_seconds,
        overwrite=args.overwrite,
        device=None if args.precision == "int8" else args.device,
        precision=args.precision,
        address=args.ray_address,
        threads=args.threads,
        progress=False if args.quiet else None,
        protected=args.inputs,
        **extra,
    )


def _check_windows(args: argparse.Namespace) -> str | None:
    if args.hop_seconds is None:
        return None
    if args.window_seconds is None:
        return "--hop-seconds needs --window-seconds"
    if args.hop_seconds > args.window_seconds:
        return (
            f"--hop-seconds {args.hop_seconds:g} must not exceed --window-seconds "
            f"{args.window_seconds:g} (windows would leave gaps)"
        )
    return None


def load(args: argparse.Namespace):
    """The model of ``--model`` on ``--device`` in ``--precision`` (auto's pick is printed)."""
    from ..pipeline import load_model

    int8 = args.precision == "int8"
    device = options.device(args, cpu_only=int8)
    if int8 and device != "cpu":
        raise ConfigError(
            f"--precision int8 is a CPU mode and cannot run on --device {device}: "
            "drop one of the two options"
        )
    options.apply_threads(args)
    model = load_model(options.model_name(args), device=device, precision=args.precision)
    if args.precision == "auto" and not args.quiet:
        print(f"precision: {model.precision} ({model.precision_choice})", file=sys.stderr)
    return model


def _job(args: argparse.Namespace):
    """(model, sources, keyword arguments shared by both jobs)."""
    from ..shards import parse_shard
    from ..sources import collect_sources

    shard = parse_shard(args.shard)
    sources = collect_sources(args.inputs)
    model = load(args)
    common = dict(
        batch_seconds=args.batch_seconds,
        window_seconds=args.window_seconds,
        hop_seconds=args.hop_seconds,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=False if args.quiet else None,
        shard=shard,
        model_name=options.model_name(args),
    )
    return model, sources, common


def _finish(args: argparse.Namespace, summary) -> int:
    if not args.quiet or summary.failures:
        print(summary.describe(), file=sys.stderr)
    return EXIT_OK if summary.ok else EXIT_FAILED_INPUTS


def predict(args: argparse.Namespace) -> int:
    """``emotion2vec predict``."""
    from ..jobs import predict_files

    if args.engine == "ray":
        results, summary = _run_ray(args, "predict", labels=args.labels)
        _print_predictions(results)
        return _finish(args, summary)
    if args.segments is not None:
        return _predict_segments(args)
    if args.timeline or args.frame_curve:
        raise ConfigError("--timeline and --frame-curve work on recordings with --segments")
    model, sources, common = _job(args)
    results, summary = predict_files(
        model, sources, output=args.output, protected=args.inputs, labels=args.labels, **common
    )
    _print_predictions(results)
    return _finish(args, summary)


def _predict_segments(args: argparse.Namespace) -> int:
    from ..segments.job import TIMELINES, segment_recordings
    from ..segments.vad import VadConfig
    from ..sources import collect_sources

    for option, value in (("--window-seconds", args.window_seconds), ("--shard", args.shard)):
        if value is not None:
            raise ConfigError(
                f"{option} does not combine with --segments (segments are the windows)"
            )
    if args.output is None:
        raise ConfigError("--segments writes several files per recording: pass --output FOLDER")
    timelines = [t.strip() for t in (args.timeline or "").split(",") if t.strip()]
    wrong = [t for t in timelines if t not in TIMELINES]
    if wrong:
        raise ConfigError(f"--timeline: unknown {wrong}; use png, html or png,html")
    sources = collect_sources(args.inputs)
    spans = [s.ident for s in sources if s.has_span]
    if spans:
        raise ConfigError(
            f"{spans[0]}: with --segments each input is a whole recording; drop the manifest's "
            "channel/start/end columns"
        )
    model = load(args)
    job = segment_recordings(
        model,
        [s.path for s in sources],
        args.segments,
        args.output,
        labels=args.labels,
        curve=args.frame_curve,
        smooth_seconds=args.smooth_seconds,
        timelines=timelines,
        vad=VadConfig(threshold=args.vad_threshold),
        batch_seconds=args.batch_seconds,
        workers=args.workers,
        progress=False if args.quiet else None,
    )
    for result in job.results:
        if not args.quiet:
            _print_recording(result)
        for segment, reason in result.failures:
            print(
                f"{result.path} {segment.start:.2f}-{segment.end:.2f} s: {reason}", file=sys.stderr
            )
    for recording, reason in job.failures:
        print(f"{recording}: {reason}", file=sys.stderr)
    if not args.quiet:
        print(
            f"wrote {len(job.written)} recording(s) to {args.output} in {job.seconds:.1f} s",
            file=sys.stderr,
        )
    return EXIT_OK if job.ok else EXIT_FAILED_INPUTS


def _print_recording(result) -> None:
    print(f"{result.path}: {len(result.segments)} segment(s)")
    for row in result.summary():
        if row["label"] is None:
            continue
        print(
            f"  {row['speaker']:<14} {row['seconds']:7.1f} s  {row['label']:<10} "
            + "  ".join(
                f"{n} {100 * v:.0f}%"
                for n, v in sorted(row["share"].items(), key=lambda kv: -kv[1])[:3]
                if v > 0
            )
        )


def extract(args: argparse.Namespace) -> int:
    """``emotion2vec extract``."""
    from ..jobs import extract_files

    if args.engine == "ray":
        summary = _run_ray(
            args,
            "extract",
            granularity=args.granularity,
            layer=args.layer,
            all_layers=args.all_layers,
        )[1]
        return _finish(args, summary)
    model, sources, common = _job(args)
    summary = extract_files(
        model,
        sources,
        args.output,
        granularity=args.granularity,
        layer=args.layer,
        all_layers=args.all_layers,
        **common,
    )
    return _finish(args, summary)


def _shown(path: str) -> str:
    """A result's path as typed: relative to the working folder when it lies under it."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel


def _print_predictions(results) -> None:
    if not results:
        return
    names = [_shown(r.path) for r in results]
    width = min(max(len(n) for n in names), 80)
    print(f"{'file':<{width}}  {'emotion':<10} {'score':>6}")
    for r, name in zip(results, names, strict=True):
        name = name if len(name) <= width else "..." + name[-(width - 3) :]
        print(f"{name:<{width}}  {r.prediction.label:<10} {r.prediction.score:6.3f}")
        for start, end, p in r.windows:
            span = f"  {start:8.2f}-{end:8.2f} s"
            print(f"{span:<{width}}  {p.label:<10} {p.score:6.3f}")
