"""``emotion2vec export-onnx``: a shim over :func:`emotion2vec.export.onnx.export_onnx` (and
:func:`~emotion2vec.export.onnx.check_onnx` with ``--check``).

    emotion2vec export-onnx --model emotion2vec_plus_base model.onnx
    emotion2vec export-onnx --model runs/ft/final ft.onnx --check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options
from .exit_codes import EXIT_OK


def add_parsers(sub) -> None:
    """Register ``export-onnx``."""
    p = sub.add_parser(
        "export-onnx",
        help="export a model to ONNX (dynamic batch and time axes)",
        description="Export an emotion2vec model to ONNX; see docs/onnx.md for the graph's "
        "inputs and outputs. The export runs on the CPU in fp32.",
    )
    options.add_model(p)
    options.add_positional_output(p, "the .onnx file to write")
    p.add_argument(
        "--opset", type=int, default=17, help="ONNX opset (>= 17; default: 17)", metavar="N"
    )
    p.add_argument(
        "--dynamo",
        action="store_true",
        help="use the torch.export-based exporter (default: the TorchScript tracer)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="run the graph with onnxruntime on test signals and compare with PyTorch (1e-4; "
        "a difference exits 1)",
    )
    p.set_defaults(run=export_onnx)


def export_onnx(args: argparse.Namespace) -> int:
    """``emotion2vec export-onnx``."""
    import numpy as np

    from ..export.onnx import check_onnx
    from ..export.onnx import export_onnx as export
    from ..pipeline import load_model
    from ..training.checkpointing import run_model_folder

    name = options.model_name(args)
    model = load_model(run_model_folder(Path(name)) or name, device="cpu").float().eval()
    path = export(model, args.output, opset=args.opset, dynamo=args.dynamo)
    print(f"wrote {path}", file=sys.stderr)
    if args.check:
        rng = np.random.default_rng(0)
        waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 59200, 8000)]
        worst = check_onnx(model, path, waves)
        print(f"onnxruntime vs PyTorch: max abs difference {worst:.2e}", file=sys.stderr)
    return EXIT_OK
