"""``emotion2vec emobox``: EmoBox's metadata on your own copy of a corpus (zero-shot track)."""

from __future__ import annotations

import argparse
import json
import sys

from ..argtypes import positive_int, positive_seconds


def add_parser(subparsers) -> None:
    """Register ``emobox`` on the main CLI's sub-parsers."""
    p = subparsers.add_parser(
        "emobox",
        help="score a model on EmoBox's metadata and folds (zero-shot, 4 classes)",
        description="Read EmoBox's published metadata for a corpus, find each utterance in your "
        "own copy of the corpus (any layout, any audio extension) and score a model with an "
        "emotion head on EmoBox's four primary classes, per test set, in both readings "
        "(masked / kept). Writes results.json and results.md to --out.",
    )
    p.add_argument("--emobox-root", required=True, help="folder holding EmoBox's data/")
    p.add_argument("--corpus", required=True, help="EmoBox corpus name, e.g. ravdess")
    p.add_argument("--audio-root", required=True, help="your copy of the corpus's audio")
    p.add_argument("--model", "-m", required=True, help="a model with an emotion head")
    p.add_argument(
        "--track", choices=["zero-shot"], default="zero-shot", help="the track to run (zero-shot)"
    )
    p.add_argument("--out", "-o", required=True, help="output folder (results.json, results.md)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for the model")
    p.add_argument(
        "--batch-seconds",
        type=positive_seconds,
        default=60.0,
        help="padded audio seconds per batch",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Execute ``emotion2vec emobox``; returns the exit code."""
    from pathlib import Path

    import torch

    from ..atomic import write_text
    from ..errors import Emotion2vecError
    from ..jobs import predict_files
    from ..pipeline import load_model
    from ..sources import AudioSource
    from . import emobox

    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        corpus = emobox.read_corpus(args.emobox_root, args.corpus)
        found = emobox.map_audio(corpus.rows, args.audio_root)
        report = found.report(len(corpus.rows))
        print(f"{args.corpus}: {report}", file=sys.stderr)
        if not found.found:
            raise Emotion2vecError(
                f"none of the {len(corpus.rows)} utterances of {args.corpus} was found under "
                f"{args.audio_root}; point --audio-root at your copy of the corpus"
            )
        model = load_model(args.model, device=args.device)
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
        results = emobox.zero_shot(corpus, found, scores)
        out = Path(args.out)
        doc = {
            "format": "emotion2vec.emobox/1",
            "corpus": args.corpus,
            "track": args.track,
            "model": args.model,
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
        table = emobox.markdown(args.corpus, report, results, args.model)
        write_text(out / "results.md", table)
        print(table)
        return 0
    except Emotion2vecError as exc:
        print(f"emotion2vec: error: {exc}", file=sys.stderr)
        return 2
