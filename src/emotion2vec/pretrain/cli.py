"""``emotion2vec pretrain``: the command line of pre-training (a thin shell over :func:`pretrain`).

    emotion2vec pretrain --data corpus/ --preset tiny --out runs/tiny
    emotion2vec pretrain --out runs/tiny --resume
    emotion2vec pretrain --data train.jsonl --init emotion2vec_base --out runs/continued
    torchrun --nproc_per_node 4 -m emotion2vec.pretrain --data corpus/ --preset base --out runs/b

Register with :func:`add_parser` on the main parser's subparsers and dispatch to :func:`run`.
Options left out keep the values of ``--config FILE.json`` (or, with ``--resume``, of the run's
stored ``pretrain_config.json``), else the defaults of :class:`PretrainConfig`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..argtypes import positive_int
from .command import add_config_options, run_training, standalone_main, starting_config

LOGGERS = ("emotion2vec.pretrain", "emotion2vec.training")

# (flags, section ("" = top level), field, argparse kwargs)
_OPTIONS: tuple[tuple[tuple[str, ...], str, str, dict], ...] = (
    (
        ("--preset",),
        "",
        "preset",
        dict(
            help='recipe preset: "base" (the authors\' full-scale run, the default), "tiny" (the '
            "same recipe scaled down for CPUs), or any model preset with the run's settings"
        ),
    ),
    (
        ("--init",),
        "",
        "init",
        dict(
            help="start from a model: published name (emotion2vec_base), official .pt or folder, "
            "data2vec 2.0 checkpoint, our model folder, or a previous run folder"
        ),
    ),
    (("--layerdrop",), "", "layerdrop", dict(type=float, help="override the model's layer drop")),
    (("--min-samples",), "data", "min_samples", dict(type=int, help="skip shorter files (8000)")),
    (("--max-samples",), "data", "max_samples", dict(type=int, help="crop longer files (320000)")),
    (
        ("--max-tokens",),
        "data",
        "max_tokens",
        dict(type=int, help="padded samples per micro-batch and process (600000)"),
    ),
    (("--max-batch-size",), "data", "max_batch_size", dict(type=int, help="utterances per batch")),
    (
        ("--pad-batches",),
        "data",
        "crop_to_shortest",
        dict(action="store_const", const=False, help="pad to the longest instead of cropping"),
    ),
    (("--workers",), "data", "workers", dict(type=positive_int, help="decoding threads (2)")),
    (("--mask-prob",), "masking", "mask_prob", dict(type=float, help="0.5")),
    (("--mask-length",), "masking", "mask_length", dict(type=int, help="5")),
    (("--mask-type",), "masking", "mask_type", dict(choices=["block", "spans"], help="block")),
    (
        ("--in-step-masks",),
        "masking",
        "precompute",
        dict(action="store_const", const=False, help="compute masks in the training step"),
    ),
    (("--clone-batch",), "objective", "clone_batch", dict(type=int, help="8")),
    (("--top-k",), "objective", "average_top_k_layers", dict(type=int, help="8")),
    (
        ("--utterance-loss",),
        "objective",
        "utterance_loss",
        dict(choices=["chunk", "token", "global", "none"], help="chunk"),
    ),
    (("--alpha",), "objective", "utterance_alpha", dict(type=float, help="1.0")),
    (
        ("--utterance-weighting",),
        "objective",
        "utterance_weighting",
        dict(choices=["sum", "mean"], help="sum (the run) or mean (the paper's formula)"),
    ),
    (
        ("--init-layout",),
        "objective",
        "init_layout",
        dict(
            choices=["authors", "split", "keep"],
            help="how a data2vec 2.0 --init maps onto 4 + 8 blocks (authors)",
        ),
    ),
    (
        ("--init-context-depth",),
        "objective",
        "init_context_depth",
        dict(type=int, help="context blocks of a model built from data2vec 2.0 (4)"),
    ),
    (
        ("--init-depth",),
        "objective",
        "init_depth",
        dict(type=int, help="main blocks of a model built from data2vec 2.0 (8)"),
    ),
    (("--chunk-pooling",), "objective", "chunk_pooling", dict(choices=["mean", "each"])),
    (("--chunk-tokens",), "objective", "chunk_tokens", dict(type=int)),
    (("--ema-decay",), "objective", "ema_decay", dict(type=float, help="0.999")),
    (("--ema-end-decay",), "objective", "ema_end_decay", dict(type=float, help="0.99999")),
    (("--ema-anneal-end-step",), "objective", "ema_anneal_end_step", dict(type=int, help="20000")),
    (("--min-target-var",), "objective", "min_target_var", dict(type=float, help="0.1")),
    (("--min-pred-var",), "objective", "min_pred_var", dict(type=float, help="0.01")),
    (("--var-check-after",), "objective", "var_check_after", dict(type=int, help="5000")),
    (("--lr",), "optim", "lr", dict(type=float, help="peak learning rate (7.5e-5)")),
    (("--weight-decay",), "optim", "weight_decay", dict(type=float, help="0.01")),
    (
        ("--adam",),
        "optim",
        "adam",
        dict(choices=["fairseq", "torch"], help="fairseq (the run's update rule) or torch (AdamW)"),
    ),
    (
        ("--decay-exemptions",),
        "optim",
        "decay_all",
        dict(action="store_const", const=False, help="no decay on biases, norms, ALiBi scale"),
    ),
    (("--max-updates",), "optim", "max_updates", dict(type=int, help="100000")),
    (("--warmup-fraction",), "optim", "warmup_fraction", dict(type=float, help="0.05")),
    (("--warmup-updates",), "optim", "warmup_updates", dict(type=int)),
    (("--clip-norm",), "optim", "clip_norm", dict(type=float, help="0 (off, the run)")),
    (("--update-freq",), "optim", "update_freq", dict(type=int, help="accumulation steps (1)")),
    (("--device",), "run", "device", dict(help="auto, cpu, cuda, cuda:N")),
    (("--precision",), "run", "precision", dict(choices=["auto", "fp32", "bf16", "fp16"])),
    (("--threads",), "run", "threads", dict(type=positive_int, help="CPU threads for torch")),
    (("--seed",), "run", "seed", dict(type=int, help="1")),
    (("--log-every",), "run", "log_every", dict(type=int, help="10")),
    (("--save-every",), "run", "save_every", dict(type=int, help="checkpoint interval (1000)")),
    (("--keep-last",), "run", "keep_last", dict(type=int, help="checkpoints kept (3)")),
    (
        ("--no-plot",),
        "run",
        "plot",
        dict(action="store_const", const=False, help="do not draw OUT/loss.png"),
    ),
    (
        ("--tensorboard",),
        "run",
        "tensorboard",
        dict(action="store_const", const=True, help="also write TensorBoard logs"),
    ),
    (("--stop-after",), "run", "stop_after", dict(type=int, help="stop after this update")),
)


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the pre-training options to ``p``."""
    p.add_argument("--out", "-o", required=True, help="run folder (checkpoints, final/, logs)")
    p.add_argument(
        "--data",
        nargs="+",
        default=None,
        help="audio directories, files or manifests (csv/tsv/jsonl/txt)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--config", help="JSON file of a PretrainConfig (options override it)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or console log")
    p.add_argument(
        "--plot-only", action="store_true", help="only redraw OUT/loss.png from OUT/metrics.jsonl"
    )
    add_config_options(p, _OPTIONS)
    return p


def add_parser(subparsers) -> None:
    """Register the ``pretrain`` subcommand on the main CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "pretrain",
        help="self-supervised pre-training (online distillation)",
        description="Pre-train an emotion2vec model on unlabeled audio; see docs/pretraining.md.",
    )
    configure_parser(p)


def build_config(args: argparse.Namespace):
    """The PretrainConfig the arguments describe."""
    from ..errors import ConfigError
    from .api import CONFIG_NAME
    from .config import PretrainConfig
    from .recipe import recipe_config

    preset = getattr(args, "cfg__top__preset", None)
    config = starting_config(
        PretrainConfig,
        args,
        Path(args.out) / CONFIG_NAME,
        _OPTIONS,
        defaults=(lambda: recipe_config(preset)) if preset else None,
    )
    if args.data:
        config.data.paths = tuple(str(p) for p in args.data)
    if not config.data.paths and not args.resume:
        raise ConfigError("--data is required: audio directories, files or manifests")
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    """Execute ``emotion2vec pretrain``; returns the exit code."""

    def train():
        if args.plot_only:
            from ..training.metrics import METRICS_NAME
            from .plots import PLOT_NAME, plot_metrics

            return plot_metrics(Path(args.out) / METRICS_NAME, Path(args.out) / PLOT_NAME)
        from .api import pretrain

        return pretrain(build_config(args), args.out, resume=args.resume)

    def summary(result) -> str:
        if args.plot_only:
            return f"wrote {result}"
        where = result.final or result.checkpoint
        state = "finished" if result.finished else "stopped"
        return f"{state} at update {result.step}; model: {where}"

    return run_training("pretrain", LOGGERS, args.quiet, train, summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m emotion2vec.pretrain``, e.g. under torchrun)."""
    return standalone_main(
        "pretrain", "Pre-train an emotion2vec model.", configure_parser, run, argv
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
