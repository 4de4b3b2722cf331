"""In-process A/B of the default inference path: this tree against another checkout.

The other checkout's package is copied into a temporary folder under the name
``emotion2vec_before`` (its absolute ``emotion2vec.`` imports rewritten), so both versions load
into one process. Both get the same base-size random weights (the state-dict keys are the same
across versions) and are loaded the way users load them (``load_model`` on a saved folder), then
they alternate over the same RAVDESS clips, round after round, each round timing one batched
``extract`` of every clip per version. Alternating in one process cancels most of a shared
machine's drift; the ratio per round and the embedding difference are printed:

    git worktree add --detach ../before <commit>
    python benchmarks/ab_inference.py --before ../before/src --clips 48 --rounds 5
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_description

ROOT = Path(__file__).resolve().parents[1]
RAVDESS = ROOT.parent / "shared" / "data" / "ravdess_speech" / "audio"


def import_renamed(src: Path, name: str, tmp: Path):
    """``src/emotion2vec`` imported as ``name`` (absolute self-imports rewritten)."""
    target = tmp / name
    shutil.copytree(src / "emotion2vec", target, ignore=shutil.ignore_patterns("__pycache__"))
    pattern = re.compile(r"(?<![.\w])emotion2vec(?=[.\s])")  # absolute names only
    for path in target.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(pattern.sub(name, text), encoding="utf-8")
    sys.path.insert(0, str(tmp))
    return importlib.import_module(name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, type=Path, help="the other checkout's src/ folder")
    p.add_argument("--clips", type=int, default=48, help="RAVDESS clips per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    after = importlib.import_module("emotion2vec")
    files = sorted(RAVDESS.rglob("*.flac"))[:: max(1, 1440 // args.clips)][: args.clips]
    if not files:
        raise SystemExit(f"no RAVDESS clips under {RAVDESS}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before = import_renamed(args.before, "emotion2vec_before", tmp)
        torch.manual_seed(0)
        reference = after.Emotion2vecModel(after.preset("emotion2vec_plus_base"))
        reference.save_pretrained(tmp / "model")
        models = {
            "before": before.load_model(str(tmp / "model"), device="cpu"),
            "after": after.load_model(str(tmp / "model"), device="cpu"),
        }
        paths = [str(f) for f in files]
        for model in models.values():  # warm-up: kernels, allocator, caches
            model.extract(paths[:4])
        times: dict[str, list[float]] = {"before": [], "after": []}
        outputs = {}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                start = time.perf_counter()
                outputs[name] = np.stack(models[name].extract(paths))
                times[name].append(time.perf_counter() - start)
    ratios = [b / a for b, a in zip(times["before"], times["after"], strict=True)]
    audio = sum(__import__("soundfile").info(f).duration for f in files)
    print(f"CPU: {cpu_description()}; torch threads {args.threads}")
    print(f"{len(files)} RAVDESS clips ({audio:.0f} s of audio), {args.rounds} alternating rounds")
    for name in ("before", "after"):
        t = times[name]
        print(
            f"  {name:6s}: "
            + ", ".join(f"{x:.2f}" for x in t)
            + f" s (median {statistics.median(t):.2f})"
        )
    print(
        "  before / after per round: "
        + ", ".join(f"{x:.3f}" for x in ratios)
        + f" (median {statistics.median(ratios):.3f}; > 1 means the tree is faster)"
    )
    print(
        f"  max |embedding difference|: {float(np.abs(outputs['before'] - outputs['after']).max()):.2e}"
    )


if __name__ == "__main__":
    main()
