"""Command line: a thin shell over the Python API.

emotion2vec predict speech.wav --model emotion2vec_plus_large
emotion2vec extract data/ --model emotion2vec_base --output-dir feats/
emotion2vec convert path/to/emotion2vec_plus_large my_model/
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence

#: Exit codes: some inputs failed (1), a usage or configuration error (2), an output could not be
#: written mid-run (3; what was finished is kept).
EXIT_OK, EXIT_FAILED_INPUTS, EXIT_USAGE, EXIT_OUTPUT = 0, 1, 2, 3

from .argtypes import positive_int, positive_seconds  # noqa: E402


class Parser(argparse.ArgumentParser):
    """No option prefixes (``--thread`` is not ``--threads``), for every subcommand too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _unknown_option(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.ArgumentParser, str] | None:
    """The first option of ``argv`` that the chosen subcommand does not know, with argparse-style
    suggestions: checked before parsing, so that a mistyped option is not reported as a missing
    required one."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None:
        return None
    command = next((a for a in argv if not a.startswith("-")), None)
    chosen = sub.choices.get(command) if command else None
    if chosen is None:
        return None
    known = {o for a in chosen._actions for o in a.option_strings}
    for token in argv:
        if token == "--":
            break
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            return chosen, f"unrecognized option {name}{hint}"
    return None


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        required=True,
        help="published name (emotion2vec_base, emotion2vec_plus_seed|base|large), a model folder, "
        "or an official .pt file",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for the model")
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
        type=positive_seconds,
        default=60.0,
        help="audio seconds (padded) per batch (default: 60)",
    )
    p.add_argument(
        "--window-seconds",
        type=positive_seconds,
        default=None,
        help="process recordings longer than this in overlapping windows (default: whole file)",
    )
    p.add_argument(
        "--hop-seconds",
        type=positive_seconds,
        default=None,
        help="window hop (default: 5/6 of the window)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose output exists")
    p.add_argument(
        "--shard",
        default=None,
        help="I/N (0 <= I < N): process only this shard of the inputs, into its own files; "
        "'auto' reads I and N from SLURM, a Kubernetes indexed job or torchrun; combine the "
        "shards with 'emotion2vec merge'",
    )
    p.add_argument(
        "--workers", type=positive_int, default=2, help="background decoding threads (default: 2)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emotion2vec`` command."""
    from . import __version__

    parser = Parser(
        prog="emotion2vec",
        description="Universal speech emotion representations: emotion2vec models, exactly.",
    )
    parser.add_argument("--version", action="version", version=f"emotion2vec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("predict", help="predict the emotion of audio files")
    _add_job_options(p)
    _add_model_options(p)
    p.add_argument("--output", "-o", help="write all scores to FILE.csv or FILE.jsonl")
    p.add_argument(
        "--labels",
        default=None,
        help="score only these labels, comma-separated (e.g. angry,happy,neutral,sad; aliases "
        "such as Angry, Fear, Surprise, ang, hap work): the others are masked out and the scores "
        "renormalised",
    )

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
        "merge",
        help="combine the shards of an extract or predict job",
        description="Check that every shard of a --shard job is there, made the same way, with no "
        "input twice, and write the outputs of an unsharded run (index.csv / the score file, "
        "errors, provenance).",
    )
    p.add_argument(
        "target",
        help="the --output-dir of an extract job, or the --output file of a predict job",
    )

    p = sub.add_parser(
        "convert", help="convert a checkpoint to our format (safetensors + config.json)"
    )
    p.add_argument(
        "source", help="official .pt file, official model folder, published name or our folder"
    )
    p.add_argument("output_dir", help="folder to write model.safetensors and config.json into")

    from .evaluate import cli as evaluate_cli
    from .evaluate import emobox_cli
    from .export import cli as export_cli
    from .finetune import cli as finetune_cli
    from .pretrain import cli as pretrain_cli

    pretrain_cli.add_parser(sub)
    finetune_cli.add_parser(sub)
    export_cli.add_parser(sub)
    evaluate_cli.add_parsers(sub)
    emobox_cli.add_parser(sub)
    return parser


def _load(args):
    import torch

    from .errors import Emotion2vecError
    from .int8 import quantize_int8
    from .pipeline import load_model

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
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    unknown = _unknown_option(parser, argv)
    if unknown is not None:
        unknown[0].error(unknown[1])
    args = parser.parse_args(argv)
    if getattr(args, "hop_seconds", None) is not None:
        if args.window_seconds is None:
            parser.error("--hop-seconds needs --window-seconds")
        if args.hop_seconds > args.window_seconds:
            parser.error(
                f"--hop-seconds {args.hop_seconds:g} must not exceed --window-seconds "
                f"{args.window_seconds:g} (windows would leave gaps)"
            )
    from .errors import Emotion2vecError, OutputError

    if args.command == "pretrain":
        from .pretrain import cli as pretrain_cli

        return pretrain_cli.run(args)
    if args.command == "finetune":
        from .finetune import cli as finetune_cli

        return finetune_cli.run(args)
    if args.command == "export-onnx":
        from .export import cli as export_cli

        return export_cli.run(args)
    if args.command == "emobox":
        from .evaluate import emobox_cli

        return emobox_cli.run(args)
    if args.command in ("probe", "plot"):
        from .evaluate import cli as evaluate_cli

        return evaluate_cli.run(args)
    try:
        if args.command == "merge":
            from pathlib import Path

            from . import shards

            target = Path(args.target)
            if target.is_dir():
                done, failed = shards.merge_extract(target)
                print(f"merged {done} outputs and {failed} failures into {target}/index.csv")
            else:
                done, failed = shards.merge_predict(target)
                print(f"merged {done} predictions and {failed} failures into {target}")
            return EXIT_OK
        if args.command == "convert":
            from .pipeline import load_model

            model = load_model(args.source)
            model.save_pretrained(args.output_dir)
            print(f"wrote {args.output_dir}/model.safetensors and config.json")
            return EXIT_OK

        from .jobs import extract_files, predict_files
        from .shards import parse_shard
        from .sources import collect_sources

        shard = parse_shard(args.shard)
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
            shard=shard,
        )
        if args.command == "predict":
            results, summary = predict_files(
                model,
                sources,
                output=args.output,
                model_name=args.model,
                protected=args.inputs,
                labels=args.labels,
                **common,
            )
            _print_predictions(results, summary, args.quiet)
        else:
            summary = extract_files(
                model,
                sources,
                args.output_dir,
                granularity=args.granularity,
                layer=args.layer,
                all_layers=args.all_layers,
                model_name=args.model,
                **common,
            )
        if not args.quiet or summary.failures:
            print(summary.describe(), file=sys.stderr)
        return EXIT_OK if summary.ok else EXIT_FAILED_INPUTS
    except OutputError as exc:
        print(f"emotion2vec: error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
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
