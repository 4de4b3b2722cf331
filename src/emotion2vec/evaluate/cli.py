"""``emotion2vec probe`` and ``emotion2vec plot``: thin shells over the evaluation API.

The main CLI registers them with :func:`add_parsers` and calls :func:`run` on the parsed
arguments::

    emotion2vec probe --manifest iemocap.csv --model emotion2vec_base --protocol loso
    emotion2vec probe --manifest ravdess.csv --features logmel --head logreg \\
        --protocol predefined --session-column fold6_by_actor
    emotion2vec plot --manifest iemocap.csv --model emotion2vec_base --out plots/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emotion2vec.errors import DataError, Emotion2vecError

from ..argtypes import positive_int, positive_seconds

__all__ = ["PROTOCOLS", "add_parsers", "make_folds", "run"]

EXIT_OK, EXIT_ERROR = 0, 2

#: Protocol names of ``--protocol`` (``kfold:K`` takes the number of folds).
PROTOCOLS = ("loso", "lospk", "kfold:K", "predefined")

_COMMAND = "_emotion2vec_evaluate_command"


def _layers(text: str) -> int | list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a layer index or list: {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("empty layer list")
    return values[0] if len(values) == 1 else values


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="labelled manifest (.csv/.tsv/.jsonl)")
    p.add_argument("--label-column", default=None, help="column holding the label (default: label)")
    p.add_argument(
        "--speaker-column", default=None, help="column holding the speaker (default: speaker)"
    )
    p.add_argument(
        "--session-column",
        default=None,
        help="column that loso/predefined group by (default: session), e.g. fold6_by_actor",
    )


def _add_feature_options(p: argparse.ArgumentParser, *, model_required: bool = False) -> None:
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="published name, model folder or official .pt file (or use --features)",
    )
    p.add_argument(
        "--features",
        choices=["egemaps", "logmel"],
        default=None,
        help="classic baseline features instead of a model",
    )
    p.add_argument(
        "--layer",
        type=_layers,
        default=None,
        help="hidden state to use (0 = input of the first block, -1 = last; default: last); "
        "a comma-separated list averages several, e.g. --layer=-4,-3,-2,-1",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache (default: $EMOTION2VEC_CACHE/features or ~/.cache/emotion2vec/features)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps, for model and head")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--batch-seconds",
        type=positive_seconds,
        default=60.0,
        help="padded audio seconds per batch",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def add_parsers(subparsers) -> None:
    """Register ``probe`` and ``plot`` on an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "probe",
        help="train and test a probe on frozen features, fold by fold",
        description="Evaluate a model (or a classic baseline) on a labelled manifest: "
        "features are extracted once into the cache, a head is trained per fold and the "
        "results (JSON, Markdown, confusion PNG) are written to --out.",
    )
    _add_data_options(p)
    _add_feature_options(p)
    p.add_argument(
        "--protocol",
        required=True,
        help="loso (leave one session out), lospk (leave one speaker out), kfold:K (speaker "
        "k-fold) or predefined (one fold per --session-column value, or the corpus's "
        "train/dev/test split when the values are split names)",
    )
    p.add_argument(
        "--head",
        choices=["paper", "superb", "logreg"],
        default="paper",
        help="paper: Linear-ReLU-mean-Linear on frames (default); superb: weighted layer sum "
        "+ linear; logreg: logistic regression on utterance embeddings",
    )
    p.add_argument(
        "--task",
        choices=["categorical", "sentiment", "sentiment_regression", "conversation"],
        default="categorical",
    )
    p.add_argument("--labels", default=None, help="comma-separated classes to keep, in order")
    p.add_argument("--context", type=int, default=6, help="conversation: previous turns (6)")
    p.add_argument("--out", default="probe_results", help="output folder (default: probe_results)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: 100)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="constant learning rate (replaces the recipe's rate and the paper's cyclic schedule)",
    )
    p.add_argument(
        "--select-by",
        choices=["wa", "ua", "macro_f1", "weighted_f1", "loss", "ccc", "mae"],
        default=None,
        help="validation metric that picks the epoch (default: wa; ccc for regression)",
    )
    p.add_argument("--seed", type=int, default=42, help="training seed (default: 42)")
    p.add_argument(
        "--valid",
        choices=["speakers", "utterances", "none"],
        default="speakers",
        help="validation: held-out training speakers (default), a stratified fraction of "
        "training utterances (the paper / SUPERB convention), or none",
    )
    p.add_argument("--valid-fraction", type=float, default=0.2)
    p.add_argument(
        "--valid-speakers",
        type=int,
        default=None,
        help="number of validation speakers (lospk default: 1, the paper's 8/1/1)",
    )
    p.add_argument("--fold-seed", type=int, default=0, help="seed of the validation draw")
    p.add_argument(
        "--allow-speaker-overlap",
        action="store_true",
        help="predefined: accept a corpus split that reuses speakers (MELD, ESD)",
    )
    p.add_argument(
        "--dtype",
        choices=["float16", "float32"],
        default="float16",
        help="storage of cached frame features (default: float16)",
    )
    p.set_defaults(**{_COMMAND: "probe"})

    p = subparsers.add_parser(
        "plot",
        help="UMAP / t-SNE maps of utterance embeddings by label and arousal",
    )
    _add_data_options(p)
    _add_feature_options(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=["umap", "tsne", "both"], default="both")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(**{_COMMAND: "plot"})


# --------------------------------------------------------------------------------------


def make_folds(
    items,
    protocol: str,
    *,
    valid: str = "speakers",
    valid_fraction: float = 0.2,
    valid_speakers: int | None = None,
    seed: int = 0,
    allow_speaker_overlap: bool = False,
):
    """Folds of a ``--protocol`` name (see :data:`PROTOCOLS`)."""
    from emotion2vec.evaluate import folds as F

    common = dict(valid=valid, valid_fraction=valid_fraction, seed=seed)
    name = protocol.strip().lower()
    if name == "loso":
        return F.leave_one_session_out(items, valid_speakers=valid_speakers, **common)
    if name == "lospk":
        return F.leave_one_speaker_out(
            items, valid_speakers=1 if valid_speakers is None else valid_speakers, **common
        )
    if name.startswith("kfold"):
        _, _, k = name.partition(":")
        if not k.isdigit():
            raise DataError(f"--protocol kfold:K needs a number of folds, got {protocol!r}")
        return F.speaker_kfold(items, int(k), valid_speakers=valid_speakers, **common)
    if name == "predefined":
        values = {str(it.session).lower() for it in items if it.session is not None}
        if values and values <= set(F.SPLIT_ROLES):
            return F.predefined_split(
                items,
                allow_speaker_overlap=allow_speaker_overlap,
                valid_speakers=valid_speakers,
                **common,
            )
        return F.predefined_folds(
            items,
            allow_speaker_overlap=allow_speaker_overlap,
            valid_speakers=valid_speakers,
            **common,
        )
    raise DataError(f"unknown --protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def _items(args):
    from emotion2vec.evaluate.manifest import check_unique, read_manifest

    items = read_manifest(
        args.manifest,
        label_column=args.label_column,
        speaker_column=args.speaker_column,
        session_column=args.session_column,
    )
    check_unique(items, args.manifest)
    return items


def _source(args):
    if (args.model is None) == (args.features is None):
        raise Emotion2vecError("pass exactly one of --model and --features")
    if args.model is None:
        return None
    from emotion2vec.pipeline import load_model

    return load_model(args.model, device=args.device)


def _cache(args):
    from emotion2vec.evaluate.cache import FeatureCache, default_cache_dir

    return FeatureCache(args.cache_dir if args.cache_dir else default_cache_dir())


def _probe(args) -> int:
    from emotion2vec.evaluate.folds import save_folds
    from emotion2vec.evaluate.probe import TrainConfig
    from emotion2vec.evaluate.report import write_report
    from emotion2vec.evaluate.tasks import run_evaluation

    items = _items(args)
    folds = make_folds(
        items,
        args.protocol,
        valid=args.valid,
        valid_fraction=args.valid_fraction,
        valid_speakers=args.valid_speakers,
        seed=args.fold_seed,
        allow_speaker_overlap=args.allow_speaker_overlap,
    )
    model = _source(args)
    overrides = {"seed": args.seed, "device": args.device}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.lr is not None:
        overrides["lr"] = args.lr
        overrides["cyclic_lr"] = None
    if args.select_by is not None:
        overrides["select_by"] = args.select_by
    if args.task == "sentiment_regression" and args.select_by is None:
        overrides["select_by"] = "ccc"
    config = (TrainConfig.superb if args.head == "superb" else TrainConfig.paper)(**overrides)
    labels = [s.strip() for s in args.labels.split(",") if s.strip()] if args.labels else None
    progress = False if args.quiet else None
    out = Path(args.out)
    result = run_evaluation(
        items,
        folds,
        model=model,
        features=args.features,
        head=args.head,
        task=args.task,
        layer=args.layer,
        labels=labels,
        cache=_cache(args),
        config=config,
        context=args.context,
        dtype=args.dtype,
        batch_seconds=args.batch_seconds,
        progress=progress,
        info={
            "manifest": str(Path(args.manifest).absolute()),
            "model": args.model,
            "protocol_arg": args.protocol,
            "valid": args.valid,
        },
    )
    if model is not None:
        result.info["model_fingerprint"] = result.info["features"].get("model")
    paths = write_report(result, out)
    save_folds(folds, out / "folds.json", items=items)
    if not args.quiet:
        print(paths["markdown"].read_text(encoding="utf-8"))
        print("wrote " + ", ".join(str(p) for p in [*paths.values(), out / "folds.json"]))
    return EXIT_OK


def _plot(args) -> int:
    from emotion2vec.evaluate.plots import plot_embeddings
    from emotion2vec.evaluate.tasks import utterance_embeddings

    items = [it for it in _items(args) if it.label is not None]
    if len(items) < 3:
        raise DataError(f"{args.manifest}: need at least 3 labelled items to plot")
    model = _source(args)
    embeddings = utterance_embeddings(
        items,
        model=model,
        features=args.features,
        layer=args.layer,
        cache=_cache(args),
        progress=False if args.quiet else None,
    )
    what = args.model or args.features
    paths = plot_embeddings(
        embeddings,
        [it.label for it in items],
        args.out,
        method=args.method,
        title=f"{Path(args.manifest).name} · {what}",
        seed=args.seed,
    )
    if not args.quiet:
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run the command ``add_parsers`` registered; returns the exit code (0 ok, 2 error,
    130 interrupted). Errors are printed to stderr as ``emotion2vec: error: ...``."""
    command = getattr(args, _COMMAND, None)
    try:
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        if command == "probe":
            return _probe(args)
        if command == "plot":
            return _plot(args)
        raise Emotion2vecError(f"not an evaluation command: {command!r}")
    except Emotion2vecError as exc:
        print(f"emotion2vec: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("emotion2vec: interrupted; cached features are kept", file=sys.stderr)
        return 130
