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


def _add_model_or_baseline(p: argparse.ArgumentParser, features_help: str) -> None:
    """``--model`` or ``--features`` (a classic baseline), and the feature cache."""
    options.add_model(p)
    p.add_argument("--features", choices=["egemaps", "logmel"], default=None, help=features_help)
    p.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache (default: $EMOTION2VEC_CACHE/features or ~/.cache/emotion2vec/features)",
    )


def _add_feature_options(p: argparse.ArgumentParser) -> None:
    _add_model_or_baseline(p, "classic baseline features instead of a model (then no --model)")
    p.add_argument(
        "--layer",
        type=_layers,
        default=None,
        help="hidden state to use (0 = input of the first block, -1 = last; default: last); "
        "a comma-separated list averages several, e.g. --layer=-4,-3,-2,-1",
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
        help="EmoBox's benchmark on your copy of its corpora (zero-shot, intra-, cross-corpus)",
        description="Read EmoBox's published metadata and folds, find each utterance in your "
        "own copy of the corpus (any layout, any audio extension, channels and time spans "
        "honoured) and run a track: zero-shot (a model's emotion head on the four primary "
        "classes, masked and kept readings, fold 1 and all folds), intra (EmoBox's "
        "linear-probe recipe on its folds, both published hyper-parameter sets, last / "
        "best-valid / best-test epochs) or cross (its track 2: train on one balanced set, "
        "test on the others). Writes results.json and results.md to --output.",
    )
    p.add_argument("--emobox-root", required=True, help="folder holding EmoBox's data/")
    p.add_argument(
        "--track",
        choices=["zero-shot", "intra", "cross"],
        default="zero-shot",
        help="the track to run (default: zero-shot)",
    )
    p.add_argument(
        "--corpus", default=None, help="zero-shot / intra: EmoBox corpus name, e.g. ravdess"
    )
    p.add_argument(
        "--audio-root", default=None, help="zero-shot / intra: your copy of the corpus's audio"
    )
    p.add_argument(
        "--set-audio",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="cross: your copy of one of the track-2 sets (IEMOCAP, MELD, RAVDESS, SAVEE); "
        "repeat for each set you have",
    )
    _add_model_or_baseline(p, "intra / cross: a classic baseline instead of a model")
    p.add_argument(
        "--readings",
        default="recipe,readme",
        help="intra / cross: EmoBox hyper-parameter sets to run, comma-separated: recipe (its "
        "hparams files: 20 epochs, hidden 256, seed 1993), readme (its README: 100 epochs, "
        "hidden 128, seed 1234); default: both",
    )
    p.add_argument(
        "--folds", default=None, help="intra: comma-separated fold numbers (default: all)"
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
    from ..pipeline import load_model

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
    options.apply_threads(args)
    if args.track == "cross":
        return _emobox_cross(args)
    if args.corpus is None or args.audio_root is None:
        raise Emotion2vecError(f"--track {args.track} needs --corpus and --audio-root")
    if args.set_audio:
        raise Emotion2vecError("--set-audio is for --track cross")
    from ..evaluate import emobox as box

    corpus = box.read_corpus(args.emobox_root, args.corpus)
    found = box.map_audio(corpus.rows, args.audio_root)
    report = found.report(len(corpus.rows))
    print(f"{args.corpus}: {report}", file=sys.stderr)
    if not found.found:
        raise Emotion2vecError(
            f"none of the {len(corpus.rows)} utterances of {args.corpus} was found under "
            f"{args.audio_root}; point --audio-root at your copy of the corpus"
        )
    audio = {
        "listed": len(corpus.rows),
        "found": len(found.found),
        "missing": found.missing,
        "ambiguous": {k: [str(p) for p in v] for k, v in found.ambiguous.items()},
    }
    if args.track == "intra":
        return _emobox_intra(args, corpus, found, report, audio)
    return _emobox_zero_shot(args, corpus, found, report, audio)


def _emobox_write(args, doc: dict, table: str) -> int:
    from ..atomic import write_text

    out = Path(args.output)
    write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")
    write_text(out / "results.md", table)
    print(table)
    return EXIT_OK


def _emobox_zero_shot(args, corpus, found, report: str, audio: dict) -> int:
    from ..evaluate import emobox as box
    from ..evaluate.emobox_published import published
    from ..jobs import predict_files
    from ..pipeline import load_model
    from ..sources import AudioSource

    if args.features is not None:
        raise Emotion2vecError("the zero-shot track scores a model's emotion head: drop --features")
    name = options.model_name(args)
    model = load_model(name, device=options.device(args))
    rows = corpus.rows
    sources = {
        k: AudioSource(
            path.resolve(), k, channel=rows[k].channel, start=rows[k].start, end=rows[k].end
        )
        for k, path in found.found.items()
    }
    preds, summary = predict_files(
        model,
        list(sources.values()),
        batch_seconds=args.batch_seconds,
        progress=False if args.quiet else None,
    )
    by_ident = {p.path: p for p in preds}
    scores = {
        k: by_ident[s.ident].prediction.scores for k, s in sources.items() if s.ident in by_ident
    }
    results = box.zero_shot(corpus, found, scores)
    audio["failed"] = [{"path": f.path, "reason": f.reason} for f in summary.failures]
    doc = {
        "format": "emotion2vec.emobox/1",
        "corpus": args.corpus,
        "track": args.track,
        "model": name,
        "audio": audio,
        "results": results,
        "published": published(args.corpus),
    }
    return _emobox_write(args, doc, box.markdown(args.corpus, report, results, name))


def _emobox_features(args):
    """(extractor, baseline?, what) for the trained tracks."""
    from ..evaluate.tasks import make_extractor

    if args.features is not None:
        if args.model is not None:
            raise Emotion2vecError("pass one of --model and --features, not both")
        return make_extractor(features=args.features), True, args.features
    from ..pipeline import load_model

    name = options.model_name(args)
    model = load_model(name, device=options.device(args))
    return make_extractor(model=model, head="paper", batch_seconds=args.batch_seconds), False, name


def _readings(args) -> list[str]:
    return [r.strip() for r in args.readings.split(",") if r.strip()]


def _emobox_intra(args, corpus, found, report: str, audio: dict) -> int:
    import time

    from ..evaluate import emobox_probe

    folds = None
    if args.folds:
        try:
            folds = [int(f) for f in args.folds.split(",") if f.strip()]
        except ValueError:
            raise Emotion2vecError(
                f"--folds: expected numbers like 1,2, got {args.folds!r}"
            ) from None
    extractor, baseline, what = _emobox_features(args)
    start = time.perf_counter()
    results = emobox_probe.intra_corpus(
        corpus,
        found,
        extractor,
        cache=_cache(args),
        protocols=_readings(args),
        folds=folds,
        baseline=baseline,
        device=options.device(args),
        progress=False if args.quiet else None,
    )
    doc = {
        "format": "emotion2vec.emobox/1",
        "corpus": args.corpus,
        "track": "intra",
        "features": what,
        "seconds": round(time.perf_counter() - start, 1),
        "audio": audio,
        "results": results,
    }
    table = emobox_probe.intra_markdown(args.corpus, results, what, report)
    return _emobox_write(args, doc, table)


def _emobox_cross(args) -> int:
    import time

    from ..evaluate import emobox_probe

    if args.corpus is not None or args.audio_root is not None:
        raise Emotion2vecError(
            "--track cross reads EmoBox's track-2 sets: use --set-audio NAME=FOLDER"
        )
    roots = {}
    for item in args.set_audio:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise Emotion2vecError(f"--set-audio: expected NAME=FOLDER, got {item!r}")
        roots[name.strip().upper()] = folder
    if not roots:
        raise Emotion2vecError(
            "--track cross needs at least one --set-audio NAME=FOLDER (IEMOCAP, MELD, RAVDESS, SAVEE)"
        )
    extractor, baseline, what = _emobox_features(args)
    start = time.perf_counter()
    results = emobox_probe.cross_corpus(
        args.emobox_root,
        roots,
        extractor,
        cache=_cache(args),
        protocols=_readings(args),
        baseline=baseline,
        device=options.device(args),
        progress=False if args.quiet else None,
    )
    for name, cov in results["sets"].items():
        print(f"{name}: {cov['status']}", file=sys.stderr)
    doc = {
        "format": "emotion2vec.emobox/1",
        "track": "cross",
        "features": what,
        "seconds": round(time.perf_counter() - start, 1),
        "results": results,
    }
    return _emobox_write(args, doc, emobox_probe.cross_markdown(results, what))
