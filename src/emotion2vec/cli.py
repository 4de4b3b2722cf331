"""Command line: a thin shell over the Python API.

emotion2vec predict speech.wav --model emotion2vec_plus_large
emotion2vec extract data/ --model emotion2vec_base --output-dir feats/
emotion2vec convert path/to/emotion2vec_plus_large my_model/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED_INPUTS, EXIT_USAGE = 0, 1, 2


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        required=True,
        help="published name (emotion2vec_base, emotion2vec_plus_seed|base|large), a model folder, "
        "or an official .pt file",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    p.add_argument(
        "--quantize",
        choices=["none", "int8"],
        default="none",
        help="int8: int8 matrix products on CPU (faster, approximate; default: exact fp32)",
    )


def _add_job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", help="audio files, directories, or manifests (csv/tsv/jsonl/txt)"
    )
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=60.0,
        help="audio seconds (padded) per batch (default: 60)",
    )
    p.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        help="process recordings longer than this in overlapping windows (default: whole file)",
    )
    p.add_argument(
        "--hop-seconds",
        type=float,
        default=None,
        help="window hop (default: 5/6 of the window)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose output exists")
    p.add_argument(
        "--workers", type=int, default=2, help="background decoding threads (default: 2)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emotion2vec`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="emotion2vec",
        description="Universal speech emotion representations: emotion2vec models, exactly.",
    )
    parser.add_argument("--version", action="version", version=f"emotion2vec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict the emotion of audio files")
    _add_job_options(p)
    _add_model_options(p)
    p.add_argument("--output", "-o", help="write all scores to FILE.csv or FILE.jsonl")

    p = sub.add_parser("extract", help="extract emotion2vec features to .npy files")
    _add_job_options(p)
    _add_model_options(p)
    p.add_argument("--output-dir", "-o", required=True, help="folder for the .npy files")
    p.add_argument("--granularity", choices=["utterance", "frame"], default="utterance")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--layer",
        type=int,
        default=None,
        help="block output to save (0 = input of the first block, -1 = last; default: last)",
    )
    g.add_argument("--all-layers", action="store_true", help="save every layer: (L+1, [T,] D)")

    p = sub.add_parser(
        "convert", help="convert a checkpoint to our format (safetensors + config.json)"
    )
    p.add_argument(
        "source", help="official .pt file, official model folder, published name or our folder"
    )
    p.add_argument("output_dir", help="folder to write model.safetensors and config.json into")

    from .evaluate import cli as evaluate_cli
    from .export import cli as export_cli
    from .finetune import cli as finetune_cli
    from .pretrain import cli as pretrain_cli

    pretrain_cli.add_parser(sub)
    finetune_cli.add_parser(sub)
    export_cli.add_parser(sub)
    evaluate_cli.add_parsers(sub)
    return parser


def _load(args):
    import torch

    from .checkpoints import load_model
    from .errors import Emotion2vecError
    from .int8 import quantize_int8

    if args.quantize == "int8" and args.device != "cpu":
        raise Emotion2vecError(
            f"--quantize int8 is a CPU mode and cannot run on --device {args.device}: "
            "drop one of the two options"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    if args.quantize == "int8":
        model = quantize_int8(model)
    return model


def _print_predictions(results, summary, quiet: bool) -> None:
    if not results:
        return
    width = min(max(len(r.path) for r in results), 80)
    print(f"{'file':<{width}}  {'emotion':<10} {'score':>6}")
    for r in results:
        name = r.path if len(r.path) <= width else "..." + r.path[-(width - 3) :]
        print(f"{name:<{width}}  {r.prediction.label:<10} {r.prediction.score:6.3f}")
        for start, end, p in r.windows:
            span = f"  {start:8.2f}-{end:8.2f} s"
            print(f"{span:<{width}}  {p.label:<10} {p.score:6.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emotion2vec`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    from .errors import Emotion2vecError

    if args.command == "pretrain":
        from .pretrain import cli as pretrain_cli

        return pretrain_cli.run(args)
    if args.command == "finetune":
        from .finetune import cli as finetune_cli

        return finetune_cli.run(args)
    if args.command == "export-onnx":
        from .export import cli as export_cli

        return export_cli.run(args)
    if args.command in ("probe", "plot"):
        from .evaluate import cli as evaluate_cli

        return evaluate_cli.run(args)
    try:
        if args.command == "convert":
            from .checkpoints import load_model

            model = load_model(args.source)
            model.save_pretrained(args.output_dir)
            print(f"wrote {args.output_dir}/model.safetensors and config.json")
            return EXIT_OK

        from .jobs import extract_files, predict_files
        from .sources import collect_sources

        sources = collect_sources(args.inputs)
        model = _load(args)
        progress = False if args.quiet else None
        common = dict(
            batch_seconds=args.batch_seconds,
            window_seconds=args.window_seconds,
            hop_seconds=args.hop_seconds,
            overwrite=args.overwrite,
            workers=args.workers,
            progress=progress,
        )
        if args.command == "predict":
            results, summary = predict_files(model, sources, output=args.output, **common)
            _print_predictions(results, summary, args.quiet)
        else:
            summary = extract_files(
                model,
                sources,
                args.output_dir,
                granularity=args.granularity,
                layer=args.layer,
                all_layers=args.all_layers,
                **common,
            )
        if not args.quiet or summary.failures:
            print(summary.describe(), file=sys.stderr)
        return EXIT_OK if summary.ok else EXIT_FAILED_INPUTS
    except Emotion2vecError as exc:
        print(f"emotion2vec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "emotion2vec: interrupted; finished outputs are kept, re-run to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
