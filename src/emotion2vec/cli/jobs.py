"""``emotion2vec merge``: a shim over :func:`emotion2vec.shards.merge_extract` and
:func:`emotion2vec.shards.merge_predict`.

    emotion2vec merge feats/
    emotion2vec merge scores.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .exit_codes import EXIT_OK


def add_parsers(sub) -> None:
    """Register ``merge``."""
    p = sub.add_parser(
        "merge",
        help="combine the shards of an extract or predict job",
        description="Check that every shard of a --shard job is there, made the same way, with no "
        "input twice, and write the outputs of an unsharded run (index.csv / the score file, "
        "errors, provenance).",
    )
    p.add_argument(
        "target",
        help="the --output folder of an extract job, or the --output file of a predict job",
    )
    p.set_defaults(run=merge)


def merge(args: argparse.Namespace) -> int:
    """``emotion2vec merge``."""
    from .. import shards

    target = Path(args.target)
    if target.is_dir():
        done, failed = shards.merge_extract(target)
        print(f"merged {done} outputs and {failed} failures into {target}/index.csv")
    else:
        done, failed = shards.merge_predict(target)
        print(f"merged {done} predictions and {failed} failures into {target}")
    return EXIT_OK
