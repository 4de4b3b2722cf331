"""``emotion2vec finetune``: the command line of fine-tuning (a thin shell over :func:`finetune`).

    emotion2vec finetune --manifest train.csv --valid valid.csv --model emotion2vec_base \\
        --out runs/ft --train all --layer-decay 0.75
    emotion2vec finetune --out runs/ft --resume
    torchrun --nproc_per_node 4 -m emotion2vec.finetune --manifest train.csv --model M --out D

Options left out keep the values of ``--config FILE.json`` (or, with ``--resume``, of the run's
stored ``finetune_config.json``), else the defaults of :class:`FinetuneConfig`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..argtypes import positive_int
from ..pretrain.command import (
    add_config_options,
    run_training,
    standalone_main,
    starting_config,
)

LOGGERS = ("emotion2vec.finetune", "emotion2vec.training")

# (flags, section ("" = top level), field, argparse kwargs)
_OPTIONS: tuple[tuple[tuple[str, ...], str, str, dict], ...] = (
    (("--model", "-m"), "", "init", dict(help="model to start from (name, folder, .pt, run)")),
    (("--manifest",), "", "manifest", dict(help="labeled training manifest (csv/tsv/jsonl)")),
    (("--valid",), "", "valid", dict(help="labeled validation manifest (early stopping on UA)")),
    (("--path-column",), "", "path_column", dict(help="manifest column of the paths (path)")),
    (("--label-column",), "", "label_column", dict(help="manifest column of the labels (label)")),
    (
        ("--train",),
        "",
        "train",
        dict(choices=["head", "top", "all"], help="what trains: head, top N blocks, all (all)"),
    ),
    (("--top-blocks",), "", "top_blocks", dict(type=int, help="N for --train top (2)")),
    (
        ("--train-cnn",),
        "",
        "freeze_cnn",
        dict(action="store_const", const=False, help="with --train all, also train the CNN"),
    ),
    (("--layer-decay",), "", "layer_decay", dict(type=float, help="layer-wise lr decay (1.0)")),
    (("--head-lr-scale",), "", "head_lr_scale", dict(type=float, help="head lr factor (1.0)")),
    (
        ("--head-init",),
        "",
        "head_init",
        dict(choices=["probe", "random"], help="fresh head: linear-probe fit (probe) or random"),
    ),
    (
        ("--class-weights",),
        "",
        "class_weights",
        dict(action="store_const", const=True, help="inverse-frequency class weights"),
    ),
    (("--label-smoothing",), "", "label_smoothing", dict(type=float, help="0.0")),
    (("--layerdrop",), "", "layerdrop", dict(type=float, help="layer drop while training (0)")),
    (("--eval-every",), "", "eval_every", dict(type=int, help="validate every N updates (100)")),
    (("--patience",), "", "patience", dict(type=int, help="evaluations without gain (10)")),
    (("--min-delta",), "", "min_delta", dict(type=float, help="UA gain that counts (0)")),
    (("--max-samples",), "data", "max_samples", dict(type=int, help="crop longer files (480000)")),
    (("--max-tokens",), "data", "max_tokens", dict(type=int, help="padded samples per batch")),
    (("--max-batch-size",), "data", "max_batch_size", dict(type=int, help="utterances per batch")),
    (("--workers",), "data", "workers", dict(type=positive_int, help="decoding threads (2)")),
    (("--lr",), "optim", "lr", dict(type=float, help="peak learning rate (5e-5)")),
    (("--weight-decay",), "optim", "weight_decay", dict(type=float, help="0.01")),
    (("--max-updates",), "optim", "max_updates", dict(type=int, help="2000")),
    (("--warmup-fraction",), "optim", "warmup_fraction", dict(type=float, help="0.1")),
    (("--warmup-updates",), "optim", "warmup_updates", dict(type=int)),
    (("--clip-norm",), "optim", "clip_norm", dict(type=float, help="1.0 (0: off)")),
    (("--update-freq",), "optim", "update_freq", dict(type=int, help="accumulation steps (1)")),
    (("--device",), "run", "device", dict(help="auto, cpu, cuda, cuda:N")),
    (("--precision",), "run", "precision", dict(choices=["auto", "fp32", "bf16", "fp16"])),
    (("--threads",), "run", "threads", dict(type=positive_int, help="CPU threads for torch")),
    (("--seed",), "run", "seed", dict(type=int, help="1")),
    (("--log-every",), "run", "log_every", dict(type=int, help="10")),
    (("--save-every",), "run", "save_every", dict(type=int, help="checkpoint interval (500)")),
    (("--keep-last",), "run", "keep_last", dict(type=int, help="checkpoints kept (3)")),
    (("--stop-after",), "run", "stop_after", dict(type=int, help="stop after this update")),
)


PREFIX = "ft"  # argparse dests of the config options


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the fine-tuning options to ``p``."""
    p.add_argument("--out", "-o", required=True, help="run folder (checkpoints, best/, final/)")
    p.add_argument("--labels", help="label set in output order, comma-separated (default: all)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--config", help="JSON file of a FinetuneConfig (options override it)")
    p.add_argument("--no-patience", action="store_true", help="never stop early")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or console log")
    add_config_options(p, _OPTIONS, PREFIX)
    return p


def add_parser(subparsers) -> None:
    """Register the ``finetune`` subcommand on the main CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a model for emotion classification",
        description="Fine-tune an emotion2vec model on a labeled manifest; see docs/finetuning.md.",
    )
    configure_parser(p)


def build_config(args: argparse.Namespace):
    """The FinetuneConfig the arguments describe."""
    from ..errors import ConfigError
    from .api import CONFIG_NAME
    from .config import FinetuneConfig

    stored = Path(args.out) / CONFIG_NAME
    config = starting_config(FinetuneConfig, args, stored, _OPTIONS, PREFIX)
    if args.labels:
        config.labels = tuple(x.strip() for x in args.labels.split(",") if x.strip())
    if args.no_patience:
        config.patience = None
    if not args.resume and (not config.manifest or not config.init):
        raise ConfigError("--manifest and --model are required (or --resume)")
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    """Execute ``emotion2vec finetune``; returns the exit code."""

    def train():
        from .api import finetune

        return finetune(build_config(args), args.out, resume=args.resume)

    def summary(result) -> str:
        state = "early stop" if result.early_stopped else "finished"
        if not result.finished:
            state = "stopped"
        best = "" if result.best_ua is None else f"; best valid UA {result.best_ua:.4f}"
        where = result.final or result.run_dir
        return f"{state} at update {result.step}{best}; model: {where}"

    return run_training("finetune", LOGGERS, args.quiet, train, summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m emotion2vec.finetune``, e.g. under torchrun)."""
    return standalone_main(
        "finetune", "Fine-tune an emotion2vec model.", configure_parser, run, argv
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
