"""``emotion2vec probe``, ``plot`` and ``emobox``: shims over the evaluation API
(:func:`emotion2vec.evaluate.tasks.run_evaluation`, :func:`emotion2vec.evaluate.plots.plot_embeddings`,
:mod:`emotion2vec.evaluate.emobox`).

    emotion2vec probe --manifest iemocap.csv --model emotion2vec_base --protocol loso
    emotion2vec probe --manifest ravdess.csv --features logmel --head logreg \\
        --protocol predefined --session-column fold6_by_actor
    emotion2vec plot --manifest iemocap.csv --model emotion2vec_base --output plots/
    emotion2vec emobox --emobox-root EmoBox --corpus ravdess --audio-root ravdess/ --output r/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import DataError, Emotion2vecError
from . import options
from .exit_codes import EXIT_OK

_INTERRUPTED = "cached features are kept"


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


def _add_feature_options(p: argparse.ArgumentParser) -> None:
    options.add_model(p)
    p.add_argument(
        "--features",
        choices=["egemaps", "logmel"],
        default=None,
        help="classic baseline features instead of a model (then no --model)",
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
    options.add_device(p)
    options.add_threads(p)
    options.add_batch_seconds(p)
    options.add_quiet(p)


def add_parsers(sub) -> None:
    """Register ``probe``, ``plot`` and ``emobox``."""
    p = sub.add_parser(
        "probe",
        help="train and test a probe on frozen features, fold by fold",
        description="Evaluate a model (or a classic baseline) on a labelled manifest: "
        "features are extracted once into the cache, a head is trained per fold and the "
        "results (JSON, Markdown, confusion PNG) are written to --output.",
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
        help="what the labels are: emotion classes (default), sentiment classes, a sentiment "
        "score (regression), or emotions in conversation (a GRU over previous turns)",
    )
    p.add_argument("--labels", default=None, help="comma-separated classes to keep, in order")
    p.add_argument("--context", type=int, default=6, help="conversation: previous turns (6)")
    options.add_output(
        p, "folder for the reports", required=False, default="probe_results", old=("--out",)
    )
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
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="--valid utterances: fraction of the training utterances held out (default: 0.2)",
    )
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
    p.set_defaults(run=probe, interrupted=_INTERRUPTED)

    p = sub.add_parser(
        "plot",
        help="UMAP / t-SNE maps of utterance embeddings by label and arousal",
        description="Draw 2-D maps (UMAP, t-SNE) of the utterance embeddings of a labelled "
        "manifest, coloured by label and by arousal, into --output.",
    )
    _add_data_options(p)
    _add_feature_options(p)
    options.add_output(p, "folder for the PNG files", old=("--out",))
    p.add_argument(
        "--method",
        choices=["umap", "tsne", "both"],
        default="both",
        help="projection(s) to draw (default: both)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the projection (default: 0)")
    p.set_defaults(run=plot, interrupted=_INTERRUPTED)

    p = sub.add_parser(
        "emobox",
        help="score a model on EmoBox's metadata and folds (zero-shot, 4 classes)",
        description="Read EmoBox's published metadata for a corpus, find each utterance in your "
        "own copy of the corpus (any layout, any audio extension) and score a model with an "
        "emotion head on EmoBox's four primary classes, per test set, in both readings "
        "(masked / kept). Writes results.json and results.md to --output.",
    )
    p.add_argument("--emobox-root", required=True, help="folder holding EmoBox's data/")
    p.add_argument("--corpus", required=True, help="EmoBox corpus name, e.g. ravdess")
    p.add_argument("--audio-root", required=True, help="your copy of the corpus's audio")
    options.add_model(p)
    p.add_argument(
        "--track", choices=["zero-shot"], default="zero-shot", help="the track to run (zero-shot)"
    )
    options.add_output(p, "folder for results.json and results.md", old=("--out",))
    options.add_device(p)
    options.add_threads(p)
    options.add_batch_seconds(p)
    options.add_quiet(p)
    p.set_defaults(run=emobox, interrupted="")


def _items(args):
    from ..evaluate.manifest import check_unique, read_manifest

    items = read_manifest(
        args.manifest,
        label_column=args.label_column,
        speaker_column=args.speaker_column,
        session_column=args.session_column,
    )
    check_unique(items, args.manifest)
    return items


def _source(args, device: str):
    """The model to evaluate, or None for ``--features``."""
    if args.features is not None:
        if args.model is not None:
            raise Emotion2vecError("pass one of --model and --features, not both")
        return None
    from ..checkpoints import load_model

    return load_model(options.model_name(args), device=device)


def _cache(args):
    from ..evaluate.cache import FeatureCache, default_cache_dir

    return FeatureCache(args.cache_dir if args.cache_dir else default_cache_dir())


def probe(args: argparse.Namespace) -> int:
    """``emotion2vec probe``."""
    from ..evaluate.folds import make_folds, save_folds
    from ..evaluate.probe import TrainConfig
    from ..evaluate.report import write_report
    from ..evaluate.tasks import run_evaluation

    options.apply_threads(args)
    device = options.device(args)
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
    model = _source(args, device)
    overrides = {"seed": args.seed, "device": device}
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
    out = Path(args.output)
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
        progress=False if args.quiet else None,
        info={
            "manifest": str(Path(args.manifest).absolute()),
            "model": None if model is None else options.model_name(args),
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


def plot(args: argparse.Namespace) -> int:
    """``emotion2vec plot``."""
    from ..evaluate.plots import plot_embeddings
    from ..evaluate.tasks import utterance_embeddings

    options.apply_threads(args)
    items = [it for it in _items(args) if it.label is not None]
    if len(items) < 3:
        raise DataError(f"{args.manifest}: need at least 3 labelled items to plot")
    model = _source(args, options.device(args))
    embeddings = utterance_embeddings(
        items,
        model=model,
        features=args.features,
        layer=args.layer,
        cache=_cache(args),
        progress=False if args.quiet else None,
    )
    what = args.features if model is None else options.model_name(args)
    paths = plot_embeddings(
        embeddings,
        [it.label for it in items],
        args.output,
        method=args.method,
        title=f"{Path(args.manifest).name} · {what}",
        seed=args.seed,
    )
    if not args.quiet:
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def emobox(args: argparse.Namespace) -> int:
    """``emotion2vec emobox``."""
    from ..atomic import write_text
    from ..checkpoints import load_model
    from ..evaluate import emobox as box
    from ..jobs import predict_files
    from ..sources import AudioSource

    options.apply_threads(args)
    corpus = box.read_corpus(args.emobox_root, args.corpus)
    found = box.map_audio(corpus.rows, args.audio_root)
    report = found.report(len(corpus.rows))
    print(f"{args.corpus}: {report}", file=sys.stderr)
    if not found.found:
        raise Emotion2vecError(
            f"none of the {len(corpus.rows)} utterances of {args.corpus} was found under "
            f"{args.audio_root}; point --audio-root at your copy of the corpus"
        )
    name = options.model_name(args)
    model = load_model(name, device=options.device(args))
    keys = list(found.found)
    rows = corpus.rows
    sources = [
        AudioSource(
            found.found[k].resolve(),
            k,
            channel=rows[k].channel,
            start=rows[k].start,
            end=rows[k].end,
        )
        for k in keys
    ]
    preds, summary = predict_files(
        model, sources, batch_seconds=args.batch_seconds, progress=False if args.quiet else None
    )
    by_path = {p.path: p for p in preds}
    scores = {
        k: by_path[s.ident].prediction.scores
        for k, s in zip(keys, sources, strict=True)
        if s.ident in by_path
    }
    results = box.zero_shot(corpus, found, scores)
    out = Path(args.output)
    doc = {
        "format": "emotion2vec.emobox/1",
        "corpus": args.corpus,
        "track": args.track,
        "model": name,
        "audio": {
            "listed": len(corpus.rows),
            "found": len(found.found),
            "missing": found.missing,
            "ambiguous": {k: [str(p) for p in v] for k, v in found.ambiguous.items()},
            "failed": [{"path": f.path, "reason": f.reason} for f in summary.failures],
        },
        "results": results,
    }
    write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")
    table = box.markdown(args.corpus, report, results, name)
    write_text(out / "results.md", table)
    print(table)
    return EXIT_OK
