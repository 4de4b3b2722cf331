"""The ``emotion2vec`` command line: a thin shell over the Python API.

    emotion2vec predict speech.wav
    emotion2vec extract data/ --model emotion2vec_base --output feats/
    emotion2vec convert path/to/emotion2vec_plus_large my_model/

Structure: one module per command group (:mod:`.infer` predict/extract, :mod:`.models` convert,
:mod:`.jobs` merge, :mod:`.train` pretrain/finetune, :mod:`.evaluate` probe/plot/emobox,
:mod:`.export` export-onnx, :mod:`.serve` serve), each with an ``add_parsers(subparsers)`` that
registers its commands and, per command, a function ``command(args) -> exit code`` that calls the library and prints.
Options that several commands share (``--model``, ``--device``, ``--threads``,
``--batch-seconds``, ``--quiet``, ``--output``, ``--overwrite``/``--resume``, ``--precision``)
are defined once in :mod:`.options`; :mod:`.exit_codes` maps our error types to exit codes and
prints them (the only ``try`` of the CLI); :mod:`.parser` holds the parser class (no abbreviated
options, a suggestion for a mistyped one, hidden deprecated spellings). To add a command: write
its function in the group's module (or a new module listed in ``_GROUPS``), register it in that
module's ``add_parsers`` with a ``description``, help on every option (a test checks) and
``set_defaults(run=function, interrupted="hint shown on Ctrl-C")``; a usage check that needs
several options goes in ``set_defaults(usage_check=...)``. Raise our error types, never exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .exit_codes import (
    EXIT_FAILED,
    EXIT_FAILED_INPUTS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    guarded,
)
from .parser import Parser, parse

__all__ = [
    "EXIT_FAILED",
    "EXIT_FAILED_INPUTS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "Parser",
    "build_parser",
    "main",
]

#: Command-group modules, in the order of ``emotion2vec --help``.
_GROUPS = ("infer", "jobs", "models", "train", "export", "evaluate", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emotion2vec`` command."""
    from importlib import import_module

    from ..version import __version__

    parser = Parser(
        prog="emotion2vec",
        description="Universal speech emotion representations: emotion2vec models, exactly. "
        "Exit codes: 0 done, 1 some inputs (or the training, or an export check) failed, "
        "2 usage or configuration error, 3 an output could not be written, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"emotion2vec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in _GROUPS:
        import_module(f"{__name__}.{group}").add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emotion2vec`` console script; returns the exit code."""
    args = parse(build_parser(), list(sys.argv[1:] if argv is None else argv))
    return guarded(args.command, lambda: args.run(args), getattr(args, "interrupted", ""))
