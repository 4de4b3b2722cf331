"""``emotion2vec convert``: a shim over :func:`emotion2vec.load_model` and
:meth:`~emotion2vec.Emotion2vecModel.save_pretrained`.

    emotion2vec convert path/to/emotion2vec_plus_large my_model/
"""

from __future__ import annotations

import argparse

from . import options
from .exit_codes import EXIT_OK


def add_parsers(sub) -> None:
    """Register ``convert``."""
    p = sub.add_parser(
        "convert",
        help="convert a checkpoint to our format (safetensors + config.json)",
        description="Load a checkpoint strictly (official .pt file or folder, published name, "
        "or our folder) and write it as model.safetensors + config.json, the folder that "
        "--model accepts offline.",
    )
    p.add_argument(
        "source", help="official .pt file, official model folder, published name or our folder"
    )
    options.add_positional_output(p, "folder to write model.safetensors and config.json into")
    p.set_defaults(run=convert)


def convert(args: argparse.Namespace) -> int:
    """``emotion2vec convert``."""
    from ..pipeline import load_model

    load_model(args.source).save_pretrained(args.output)
    print(f"wrote {args.output}/model.safetensors and config.json")
    return EXIT_OK
