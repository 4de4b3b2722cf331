"""``emotion2vec export-onnx``: write a model as an ONNX graph (a thin shell over
:func:`emotion2vec.export.onnx.export_onnx`).

    emotion2vec export-onnx --model emotion2vec_plus_base model.onnx
    emotion2vec export-onnx --model runs/ft/final ft.onnx --check

Register with :func:`add_parser` on the main parser's subparsers and dispatch to :func:`run`.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers) -> None:
    """Register the ``export-onnx`` subcommand on the main CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "export-onnx",
        help="export a model to ONNX (dynamic batch and time axes)",
        description="Export an emotion2vec model to ONNX; see docs/onnx.md for the graph's "
        "inputs and outputs.",
    )
    p.add_argument(
        "--model",
        "-m",
        required=True,
        help="published name, a model folder (ours or official), an official .pt, or a run "
        "folder (its final model)",
    )
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    p.add_argument(
        "--dynamo",
        action="store_true",
        help="use the torch.export-based exporter (default: the TorchScript tracer)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="run the graph with onnxruntime on test signals and compare with PyTorch (1e-4)",
    )


def run(args: argparse.Namespace) -> int:
    """Execute ``emotion2vec export-onnx``; returns the exit code."""
    from ..errors import Emotion2vecError

    try:
        from pathlib import Path

        import numpy as np

        from ..checkpoints import load_model
        from ..training.checkpointing import run_model_folder
        from .onnx import check_onnx, export_onnx

        source = run_model_folder(Path(args.model)) or args.model
        model = load_model(source, device="cpu").float().eval()
        path = export_onnx(model, args.output, opset=args.opset, dynamo=args.dynamo)
        print(f"wrote {path}", file=sys.stderr)
        if args.check:
            rng = np.random.default_rng(0)
            waves = [
                (0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 59200, 8000)
            ]
            worst = check_onnx(model, path, waves)
            print(f"onnxruntime vs PyTorch: max abs difference {worst:.2e}", file=sys.stderr)
        return EXIT_OK
    except Emotion2vecError as exc:
        print(f"emotion2vec export-onnx: error: {exc}", file=sys.stderr)
        return EXIT_FAILED if "differs" in str(exc) else EXIT_USAGE
