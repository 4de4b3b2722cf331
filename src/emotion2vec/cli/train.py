"""``emotion2vec pretrain`` and ``emotion2vec finetune``: shims over
:func:`emotion2vec.pretrain.pretrain` and :func:`emotion2vec.finetune.finetune`.

    emotion2vec pretrain --data corpus/ --preset tiny --output runs/tiny
    emotion2vec pretrain --output runs/tiny --resume
    emotion2vec finetune --manifest train.csv --valid valid.csv --model emotion2vec_base \\
        --output runs/ft --train all --layer-decay 0.75
    torchrun --nproc_per_node 4 -m emotion2vec.pretrain --data corpus/ --preset base --output runs/b

The same options work stand-alone (``python -m emotion2vec.pretrain`` / ``.finetune``, what
torchrun launches: :func:`pretrain_main`, :func:`finetune_main`). Options left out keep the values
of ``--config FILE.json`` (or, with ``--resume``, of the run's stored config), else the defaults
of the config class. Rank 0 logs to stderr; other torchrun ranks only their warnings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from . import options
from .exit_codes import EXIT_OK, guarded
from .parser import Parser, parse
from .train_options import (
    FINETUNE_OPTIONS,
    PRETRAIN_OPTIONS,
    add_config_options,
    starting_config,
)

Result = TypeVar("Result")

PRETRAIN_LOGGERS = ("emotion2vec.pretrain", "emotion2vec.training")
FINETUNE_LOGGERS = ("emotion2vec.finetune", "emotion2vec.training")
_INTERRUPTED = "resume with --resume"
_PRETRAIN = dict(
    help="self-supervised pre-training (online distillation)",
    description="Pre-train an emotion2vec model on unlabeled audio; see docs/pretraining.md. "
    "Options left out keep the values of --config (or, with --resume, of the run's stored "
    "config), else the recipe's.",
)
_FINETUNE = dict(
    help="fine-tune a model for emotion classification",
    description="Fine-tune an emotion2vec model on a labeled manifest; see docs/finetuning.md. "
    "Options left out keep the values of --config (or, with --resume, of the run's stored "
    "config), else the defaults.",
)


def _add_run_options(p: argparse.ArgumentParser, kind: str) -> None:
    options.add_output(p, "run folder (checkpoints, final model, logs, metrics)", old=("--out",))
    options.add_resume(p)
    p.add_argument("--config", help=f"JSON file of a {kind} (options override it)")
    options.add_device(p)
    options.add_threads(p)
    options.add_quiet(p)


def configure_pretrain(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``pretrain`` options to ``p``."""
    _add_run_options(p, "PretrainConfig")
    p.add_argument(
        "--data",
        nargs="+",
        default=None,
        help="audio directories, files or manifests (csv/tsv/jsonl/txt)",
    )
    p.add_argument(
        "--plot-only", action="store_true", help="only redraw OUTPUT/loss.png from metrics.jsonl"
    )
    add_config_options(p, PRETRAIN_OPTIONS, "cfg")
    p.set_defaults(run=run_pretrain, interrupted=_INTERRUPTED)
    return p


def configure_finetune(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``finetune`` options to ``p``."""
    _add_run_options(p, "FinetuneConfig")
    options.add_model(p)
    p.add_argument("--labels", help="label set in output order, comma-separated (default: all)")
    p.add_argument("--no-patience", action="store_true", help="never stop early")
    add_config_options(p, FINETUNE_OPTIONS, "ft")
    p.set_defaults(run=run_finetune, interrupted=_INTERRUPTED)
    return p


def add_parsers(sub) -> None:
    """Register ``pretrain`` and ``finetune``."""
    configure_pretrain(sub.add_parser("pretrain", **_PRETRAIN))
    configure_finetune(sub.add_parser("finetune", **_FINETUNE))


def pretrain_config(args: argparse.Namespace):
    """The PretrainConfig the arguments describe."""
    from ..errors import ConfigError
    from ..pretrain.api import CONFIG_NAME
    from ..pretrain.config import PretrainConfig
    from ..pretrain.recipe import recipe_config

    preset = getattr(args, "cfg__top__preset", None)
    config = starting_config(
        PretrainConfig,
        args,
        Path(args.output) / CONFIG_NAME,
        PRETRAIN_OPTIONS,
        "cfg",
        defaults=(lambda: recipe_config(preset)) if preset else None,
    )
    if args.data:
        config.data.paths = tuple(str(p) for p in args.data)
    if not config.data.paths and not args.resume:
        raise ConfigError("--data is required: audio directories, files or manifests")
    config.validate()
    return config


def finetune_config(args: argparse.Namespace):
    """The FinetuneConfig the arguments describe; without ``--model`` (and no stored or
    ``--config`` start model) it starts from :func:`options.default_model`."""
    from ..errors import ConfigError
    from ..finetune.api import CONFIG_NAME
    from ..finetune.config import FinetuneConfig

    stored = Path(args.output) / CONFIG_NAME
    config = starting_config(FinetuneConfig, args, stored, FINETUNE_OPTIONS, "ft")
    if args.model is not None:
        config.init = args.model
    elif not config.init and not args.resume:
        config.init = options.default_model()
    if args.labels:
        config.labels = tuple(x.strip() for x in args.labels.split(",") if x.strip())
    if args.no_patience:
        config.patience = None
    if not args.resume and not config.manifest:
        raise ConfigError("--manifest is required (or --resume)")
    config.validate()
    return config


def run_pretrain(args: argparse.Namespace) -> int:
    """``emotion2vec pretrain``."""
    out = Path(args.output)

    def train():
        if args.plot_only:
            from ..pretrain.plots import PLOT_NAME, plot_metrics
            from ..training.metrics import METRICS_NAME

            return plot_metrics(out / METRICS_NAME, out / PLOT_NAME)
        from ..pretrain.api import pretrain

        return pretrain(pretrain_config(args), out, resume=args.resume)

    def summary(result) -> str:
        if args.plot_only:
            return f"wrote {result}"
        where = result.final or result.checkpoint
        state = "finished" if result.finished else "stopped"
        return f"{state} at update {result.step}; model: {where}"

    return run_training(PRETRAIN_LOGGERS, args.quiet, train, summary)


def run_finetune(args: argparse.Namespace) -> int:
    """``emotion2vec finetune``."""

    def train():
        from ..finetune.api import finetune

        return finetune(finetune_config(args), args.output, resume=args.resume)

    def summary(result) -> str:
        state = "early stop" if result.early_stopped else "finished"
        if not result.finished:
            state = "stopped"
        best = "" if result.best_ua is None else f"; best valid UA {result.best_ua:.4f}"
        where = result.final or result.run_dir
        return f"{state} at update {result.step}{best}; model: {where}"

    return run_training(FINETUNE_LOGGERS, args.quiet, train, summary)


def process_rank() -> int:
    """This process's rank under torchrun (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def console_logging(logger_names: Sequence[str], quiet: bool) -> list[logging.Handler]:
    """Rank 0 logs progress to stderr; other torchrun ranks only their warnings. The loggers
    are set to INFO either way, so that the run's own log file still gets every line."""
    loggers = [logging.getLogger(name) for name in logger_names]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    if quiet:
        return []
    handler = logging.StreamHandler(sys.stderr)
    rank = process_rank()
    prefix = f"[rank {rank}] " if rank else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(message)s", "%H:%M:%S"))
    if rank:
        handler.setLevel(logging.WARNING)
    for logger in loggers:
        logger.addHandler(handler)
    return [handler]


def run_training(
    logger_names: Sequence[str],
    quiet: bool,
    train: Callable[[], Result],
    summary: Callable[[Result], str | None],
) -> int:
    """Run ``train()`` with log lines routed around the progress bar; rank 0 prints
    ``summary(result)`` at the end unless ``quiet``. Errors propagate (the caller's
    :func:`~emotion2vec.cli.exit_codes.guarded` turns them into exit codes)."""
    handlers = console_logging(logger_names, quiet)
    try:
        if not handlers or process_rank() != 0:  # only rank 0 has a progress bar
            result = train()
        else:
            from tqdm.contrib.logging import logging_redirect_tqdm

            loggers = [logging.getLogger(name) for name in logger_names]
            with logging_redirect_tqdm(loggers=loggers):
                result = train()
        if not quiet and process_rank() == 0:
            line = summary(result)
            if line:
                print(line, file=sys.stderr)
        return EXIT_OK
    finally:
        for handler in handlers:
            for name in logger_names:
                logging.getLogger(name).removeHandler(handler)


def _standalone(command: str, configure, argv: Sequence[str] | None) -> int:
    parser = configure(Parser(prog=f"emotion2vec {command}", description=_DESCRIPTIONS[command]))
    args = parse(parser, list(sys.argv[1:] if argv is None else argv))
    return guarded(command, lambda: args.run(args), getattr(args, "interrupted", ""))


_DESCRIPTIONS = {"pretrain": _PRETRAIN["description"], "finetune": _FINETUNE["description"]}


def pretrain_main(argv: Sequence[str] | None = None) -> int:
    """``python -m emotion2vec.pretrain`` (e.g. under torchrun): the options of
    ``emotion2vec pretrain``; returns the exit code."""
    return _standalone("pretrain", configure_pretrain, argv)


def finetune_main(argv: Sequence[str] | None = None) -> int:
    """``python -m emotion2vec.finetune`` (e.g. under torchrun): the options of
    ``emotion2vec finetune``; returns the exit code."""
    return _standalone("finetune", configure_finetune, argv)
