#!/usr/bin/env python3
"""CPU evidence for the pre-training recipe: utterance-loss variants x seeds, then linear probes.

For every variant (chunk, token, global, none = frame loss only) and seed it pre-trains the tiny
preset (the authors' recipe scaled down) on RAVDESS speech (labels unused), then runs the
6-fold actor-disjoint logistic-regression probe on the final model's utterance embeddings;
random initialisation (the same architecture, untrained, one model per seed) is probed too.
It prints one table of mean +- std across seeds (of each seed's 6-fold mean) and writes
``summary.json`` in the output folder. Runs already finished are reused, so an interrupted
invocation continues.

    python scripts/pretrain_evidence.py --data ../shared/data/ravdess_speech --out runs/evidence \\
        --updates 600 --seeds 1 2 3 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VARIANTS = ("chunk", "token", "global", "none")
METRICS = ("wa", "ua", "weighted_f1")


def run(cmd: list[str], log: Path) -> None:
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")


def pretrain(args, variant: str, seed: int) -> Path:
    out = args.out / f"{variant}_s{seed}"
    if (out / "final").is_dir():
        return out / "final"
    updates = args.updates
    cmd = [
        sys.executable,
        "-m",
        "emotion2vec",
        "pretrain",
        "--data",
        str(args.data / "audio"),
        "--preset",
        "tiny",
        "--output",
        str(out),
        "--utterance-loss",
        variant,
        "--seed",
        str(seed),
        "--max-updates",
        str(updates),
        # the tiny preset's proportions for a shorter run: EMA annealed over 20% of the
        # updates, collapse guards from 25%
        "--ema-anneal-end-step",
        str(updates // 5),
        "--var-check-after",
        str(updates // 4),
        "--threads",
        "1",
        "--workers",
        "1",
        "--quiet",
        "--save-every",
        str(updates),
    ]
    if (out / "checkpoints").is_dir():
        cmd = [
            sys.executable,
            "-m",
            "emotion2vec",
            "pretrain",
            "--output",
            str(out),
            "--resume",
            "--quiet",
            "--threads",
            "1",
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    run(cmd, args.out / f"{variant}_s{seed}.log")
    return out / "final"


def random_init(args, seed: int) -> Path:
    folder = args.out / f"random_s{seed}"
    if not (folder / "config.json").is_file():
        import torch

        from emotion2vec.pretrain.start import scratch_model

        torch.manual_seed(seed)
        scratch_model("tiny").save_pretrained(folder)
    return folder


def probe(args, model: Path, name: str) -> dict:
    out = args.out / f"probe_{name}"
    results = out / "results.json"
    if not results.is_file():
        cmd = [
            sys.executable,
            "-m",
            "emotion2vec",
            "probe",
            "--manifest",
            str(args.data / "manifest.csv"),
            "--model",
            str(model),
            "--protocol",
            "predefined",
            "--session-column",
            "fold6_by_actor",
            "--head",
            "logreg",
            "--threads",
            "1",
            "--quiet",
            "--output",
            str(out),
        ]
        run(cmd, args.out / f"probe_{name}.log")
    summary = json.loads(results.read_text())["summary"]
    return {m: 100.0 * summary[m]["mean"] for m in METRICS}


def last_metrics(run_dir: Path) -> dict:
    lines = (run_dir / "metrics.jsonl").read_text().strip().splitlines()
    rows = [json.loads(x) for x in lines]
    return {
        "frame_loss": rows[-1].get("frame_loss"),
        "utt_loss": rows[-1].get("utt_loss"),
        "min_pred_var": min(r["pred_var"] for r in rows if r.get("pred_var") is not None),
    }


def job(args, name: str, seed: int) -> tuple[str, int, dict]:
    if name == "random":
        return name, seed, probe(args, random_init(args, seed), f"random_s{seed}")
    final = pretrain(args, name, seed)
    row = probe(args, final, f"{name}_s{seed}")
    row.update(last_metrics(final.parent))
    return name, seed, row


def fmt(values: list[float], digits: int = 1) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="RAVDESS speech folder (manifest.csv)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--updates", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [(v, s) for s in args.seeds for v in [*args.variants, "random"]]
    results: dict[str, dict[int, dict]] = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, seed, row in pool.map(lambda vs: job(args, *vs), todo):
            results.setdefault(name, {})[seed] = row
            print(
                f"{name} seed {seed}: "
                + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if v is not None),
                flush=True,
            )
    (args.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\n{len(args.seeds)} seeds, {args.updates} updates, tiny preset, RAVDESS speech, "
        "6-fold actor-disjoint logistic regression (mean ± std across seeds of the 6-fold means)\n"
    )
    print(
        "| utterance loss | final frame / utterance loss | lowest prediction std | WA % | UA % | weighted-F1 % |"
    )
    print("|---|---|---|---|---|---|")
    for name in [*args.variants, "random"]:
        rows = list(results[name].values())
        cols = [fmt([r[m] for r in rows]) for m in METRICS]
        if name == "random":
            print(f"| *random init (no pre-training)* | | | {' | '.join(cols)} |")
            continue
        frame = fmt([r["frame_loss"] for r in rows], 2)
        utt = "—" if rows[0]["utt_loss"] is None else fmt([r["utt_loss"] for r in rows], 2)
        low = fmt([r["min_pred_var"] for r in rows], 2)
        print(f"| {name} | {frame} / {utt} | {low} | {' | '.join(cols)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
