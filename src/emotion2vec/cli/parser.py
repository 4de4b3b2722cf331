"""The argument parser every command uses: no abbreviated options, a suggestion for a mistyped
one, hidden deprecated spellings that still work, and checks that need the whole command line."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence


class Parser(argparse.ArgumentParser):
    """No option prefixes (``--thread`` is not ``--threads``), for every subcommand too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


class DeprecatedAlias(argparse.Action):
    """A hidden old spelling of an option (e.g. ``--out`` for ``--output``): it stores into the
    new option's ``dest`` and prints a one-line note naming the new spelling."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs):
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"{parser.prog}: note: {option_string} is deprecated; use {self.new}", file=sys.stderr
        )
        setattr(namespace, self.dest, values)


def _chosen_subparser(parser: argparse.ArgumentParser, argv: Sequence[str]):
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None:
        return parser
    command = next((a for a in argv if not a.startswith("-")), None)
    return sub.choices.get(command) if command else None


def unknown_option(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.ArgumentParser, str] | None:
    """The first option of ``argv`` that the chosen (sub)command does not know, with a
    suggestion among its documented options: checked before parsing, so that a mistyped option
    is not reported as a missing required one."""
    chosen = _chosen_subparser(parser, argv)
    if chosen is None:
        return None
    known = {o for a in chosen._actions for o in a.option_strings}
    shown = {o for a in chosen._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
    for token in argv:
        if token == "--":
            break
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        if name not in known:
            close = difflib.get_close_matches(name, sorted(shown), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            return chosen, f"unrecognized option {name}{hint}"
    return None


def require(p: argparse.ArgumentParser, dest: str, flags: str) -> None:
    """Make ``dest`` required after parsing (an option with hidden aliases cannot use argparse's
    ``required``: it would not count the aliases)."""
    p.set_defaults(_required=(*(p.get_default("_required") or ()), (dest, flags)))


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (exiting 2 with one line on a usage error), then run the chosen command's
    ``usage_check(args)`` (set with ``set_defaults``), which returns a usage error or None."""
    unknown = unknown_option(parser, argv)
    if unknown is not None:
        unknown[0].error(unknown[1])
    args = parser.parse_args(argv)
    chosen = _chosen_subparser(parser, argv) or parser
    missing = [
        flags for dest, flags in getattr(args, "_required", ()) if getattr(args, dest) is None
    ]
    if missing:
        chosen.error(f"the following arguments are required: {', '.join(missing)}")
    check = getattr(args, "usage_check", None)
    problem = check(args) if check is not None else None
    if problem:
        chosen.error(problem)
    return args
