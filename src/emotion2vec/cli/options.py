"""The options several commands share, each defined once: the same flags, type, default and help
wherever it appears.

Options whose "not given" must be told apart from a value (``--model``, ``--device``,
``--threads``) default to None and are read through :func:`model_name` and :func:`device`, which
apply the documented defaults; the training commands rely on that to keep a run's stored
settings on ``--resume``.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..argtypes import positive_int, positive_seconds
from .parser import DeprecatedAlias, require

#: The model used when ``--model`` is not given and ``$EMOTION2VEC_MODEL`` is not set.
DEFAULT_MODEL = "emotion2vec_plus_large"
#: Environment variable naming the default model (a published name or a local folder).
MODEL_ENV = "EMOTION2VEC_MODEL"


def default_model() -> str:
    """``$EMOTION2VEC_MODEL`` when set, else :data:`DEFAULT_MODEL`."""
    return os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL


def add_model(p: argparse.ArgumentParser) -> None:
    """``--model/-m``: what to load (see :func:`model_name`)."""
    p.add_argument(
        "--model",
        "-m",
        default=None,
        metavar="NAME_OR_PATH",
        help="published name (emotion2vec_base, emotion2vec_plus_seed|base|large), a model "
        "folder (ours or official), an official .pt file, or a run folder; default: "
        f"${MODEL_ENV} when set, else {DEFAULT_MODEL} (downloaded once into the Hugging Face "
        "cache; offline, pass a local folder)",
    )


def model_name(args: argparse.Namespace) -> str:
    """The model the command should load: ``--model``, else :func:`default_model`."""
    return args.model or default_model()


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``: where the model runs (see :func:`device`)."""
    p.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="auto, cpu, cuda, cuda:N or mps; default: auto (the CUDA GPU if there is one, "
        "else the CPU)",
    )


def device(args: argparse.Namespace, *, cpu_only: bool = False) -> str:
    """The device name ``--device`` asks for, with ``auto`` (and no ``--device``) resolved: the
    first CUDA GPU when there is one, else the CPU; always the CPU when ``cpu_only`` (a CPU-only
    mode such as ``--precision int8``) and no device was named."""
    name = (args.device or "auto").strip()
    if name != "auto":
        return name
    if cpu_only:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads``: CPU threads for torch."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: torch's choice, usually the number of cores)",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU thread count when ``--threads`` was given."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_batch_seconds(p: argparse.ArgumentParser) -> None:
    """``--batch-seconds``: batch size in padded audio seconds."""
    p.add_argument(
        "--batch-seconds",
        type=positive_seconds,
        default=60.0,
        metavar="S",
        help="padded audio seconds per batch (default: 60)",
    )


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``--quiet/-q``: nothing on the console but errors and results asked for."""
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar, console log or summary (errors are still printed)",
    )


def add_precision(p: argparse.ArgumentParser) -> None:
    """``--precision``: the numeric mode of inference (``--quantize int8``, its old spelling,
    stays accepted, hidden)."""
    from ..fast.precision import CHOICES

    p.add_argument(
        "--precision",
        choices=CHOICES,
        default="fp32",
        help="numeric mode: fp32 (exact, the default); bf16 (large products in bfloat16, "
        "LayerNorms / attention / head in fp32: for CPUs with AVX512-BF16 or AMX and CUDA "
        "GPUs); int8 (int8 products, CPU only, best with VNNI; implies --device cpu); auto "
        "(picked from the hardware and a short calibration, printed and recorded in the "
        "output's provenance). bf16 and int8 are approximate: see docs/precision.md",
    )
    p.add_argument("--quantize", dest="precision", action=QuantizeAlias, choices=["none", "int8"])


class QuantizeAlias(argparse.Action):
    """``--quantize none|int8``, the old spelling of ``--precision fp32|int8``: hidden, with a
    one-line note."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        new = "int8" if values == "int8" else "fp32"
        print(
            f"{parser.prog}: note: {option_string} {values} is deprecated; use --precision {new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, new)


def add_overwrite(p: argparse.ArgumentParser) -> None:
    """``--overwrite``: redo instead of resume."""
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="redo inputs whose output exists (default: keep them and resume)",
    )


def add_resume(p: argparse.ArgumentParser) -> None:
    """``--resume``: continue a run folder exactly."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output exactly, with its stored settings (options given "
        "override them)",
    )


def add_output(
    p: argparse.ArgumentParser,
    help: str,
    *,
    required: bool = True,
    default: str | None = None,
    old: tuple[str, ...] = (),
) -> None:
    """``--output/-o``, the command's one output (a file or a folder), described by ``help``.

    ``old`` spellings (``--out``, ``--output-dir``) stay accepted, hidden, with a note.
    """
    if default is not None:
        help = f"{help} (default: {default})"
    p.add_argument("--output", "-o", default=default, metavar="PATH", help=help)
    for flag in old:
        p.add_argument(flag, dest="output", action=DeprecatedAlias, new="--output", metavar="PATH")
    if required:
        require(p, "output", "--output/-o")


def add_positional_output(p: argparse.ArgumentParser, help: str) -> None:
    """The command's one output as an optional last positional argument or as ``--output/-o``
    (exactly one of the two), for commands documented as ``COMMAND SOURCE OUTPUT``."""
    p.add_argument("output_arg", nargs="?", default=None, metavar="OUTPUT", help=help)
    p.add_argument(
        "--output", "-o", default=None, metavar="PATH", help="the same as OUTPUT, as an option"
    )
    p.set_defaults(usage_check=_one_output)


def _one_output(args: argparse.Namespace) -> str | None:
    if args.output_arg is not None and args.output is not None:
        return "give the output once: as OUTPUT or as --output, not both"
    if args.output_arg is None and args.output is None:
        return "the following arguments are required: OUTPUT (or --output/-o)"
    args.output = args.output if args.output is not None else args.output_arg
    return None
