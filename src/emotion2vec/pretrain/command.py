"""Command-line plumbing shared by the training commands (``pretrain`` and ``finetune``).

Both commands describe their options as a table of ``(flags, section, field, argparse
kwargs)`` rows that map one-to-one onto fields of their dataclass config, log to stderr from
rank 0 only (other torchrun ranks report warnings), keep log lines clear of the progress bar
and turn the training errors into the same exit codes. That logic lives here once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

EXIT_OK, EXIT_TRAINING_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Result = TypeVar("Result")


def _dest(section: str, name: str, prefix: str) -> str:
    return f"{prefix}__{section or 'top'}__{name}"


def add_config_options(p: argparse.ArgumentParser, options, prefix: str = "cfg") -> None:
    """One option per (flags, section, field, argparse kwargs) of ``options``; unset ones stay
    None so that they do not override a stored or loaded config."""
    for flags, section, name, kwargs in options:
        if "action" not in kwargs and "choices" not in kwargs:
            kwargs = {"metavar": flags[0].lstrip("-").upper().replace("-", "_"), **kwargs}
        p.add_argument(*flags, dest=_dest(section, name, prefix), default=None, **kwargs)


def apply_config_options(args: argparse.Namespace, config, options, prefix: str = "cfg") -> None:
    """Copy the options the user gave (see :func:`add_config_options`) into ``config``."""
    for _, section, name, _ in options:
        value = getattr(args, _dest(section, name, prefix))
        if value is not None:
            setattr(getattr(config, section) if section else config, name, value)


def starting_config(
    config_cls, args: argparse.Namespace, stored: Path, options, prefix="cfg", defaults=None
):
    """The config a training command starts from, with the options the user gave applied:
    the run's stored config with ``--resume`` (its one-off ``stop_after`` dropped), else
    ``--config FILE``, else ``defaults()`` (e.g. a recipe preset) or ``config_cls()``."""
    if args.resume and stored.is_file():
        config = config_cls.load(stored)
        config.run.stop_after = None  # a stop point belongs to one invocation, not to the run
    elif args.config:
        config = config_cls.load(args.config)
    else:
        config = defaults() if defaults is not None else config_cls()
    apply_config_options(args, config, options, prefix)
    if args.quiet:
        config.run.progress = False
    return config


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
    command: str,
    logger_names: Sequence[str],
    quiet: bool,
    train: Callable[[], Result],
    summary: Callable[[Result], str | None],
) -> int:
    """Run ``train()`` as the command ``emotion2vec <command>`` does and return its exit code.

    Log lines are routed around the progress bar; rank 0 prints ``summary(result)`` at the end
    unless ``quiet``. A :class:`TrainingError` (collapse guard, non-finite loss) exits 1, a
    usage or input error (:class:`Emotion2vecError`) exits 2, Ctrl-C exits 130 with a hint.
    """
    from ..errors import Emotion2vecError
    from ..training.trainer import TrainingError

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
    except TrainingError as exc:
        print(f"emotion2vec {command}: training stopped: {exc}", file=sys.stderr)
        return EXIT_TRAINING_FAILED
    except Emotion2vecError as exc:
        print(f"emotion2vec {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"emotion2vec {command}: interrupted; resume with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for handler in handlers:
            for name in logger_names:
                logging.getLogger(name).removeHandler(handler)


def standalone_main(
    command: str,
    description: str,
    configure_parser: Callable[[argparse.ArgumentParser], Any],
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
) -> int:
    """Entry point of ``python -m emotion2vec.<command>`` (what torchrun launches)."""
    parser = argparse.ArgumentParser(
        prog=f"emotion2vec {command}", description=description, allow_abbrev=False
    )
    configure_parser(parser)
    return run(parser.parse_args(argv))
