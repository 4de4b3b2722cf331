"""Precision modes side by side: speed of fp32 / bf16 / int8 (and what ``auto`` picks) at 2, 10
and 120 s and on RAVDESS clips, and each approximate mode's fidelity against fp32.

    python benchmarks/precision.py                      # 2 threads, 96 RAVDESS clips
    python benchmarks/precision.py --ravdess-limit 0    # all 1,440 clips

Base-size random weights (``emotion2vec_plus_base`` layout). All modes run in one process,
alternating over the same files round by round (fp32, bf16, int8, then the reverse order), each
through our batched job (decoding included, as ``benchmarks/extract_speed.py``'s
``ours-batched`` row), after untimed warm-ups (compiling, and each set's first file). On a shared machine
two processes minutes apart can differ by more than the effect, so the speed-ups are per round
within one process; the table gives the median.

FunASR: run ``benchmarks/extract_speed.py`` for the comparison; it is not importable in most
environments. When it is not, this script says so and gives, for orientation only, each mode's
speed-up times the fp32 / FunASR ratio measured earlier by extract_speed.py on an AVX-512 CPU
(``--funasr-ratio``; an estimate, not a measurement of this run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from extract_speed import (  # noqa: E402
    batched_embeddings,  # noqa: E402
    best_seconds,
    matmul_peak,
    synth,
)
from machine import cpu_description  # noqa: E402

ROOT = HERE.parent
DEFAULT_RAVDESS = ROOT.parent / "shared" / "data" / "ravdess_speech" / "audio"
MODES = ("fp32", "bf16", "int8")
#: fp32 / FunASR speed ratio measured earlier (extract_speed.py, AVX-512 CPU, 2 threads): the
#: lower end of 1.5-1.7x on 2-10 s clips (RAVDESS clips are ~3.7 s), 2.9x at 120 s.
EARLIER_FUNASR_RATIO = {"2": 1.5, "10": 1.5, "RAVDESS": 1.5, "120": 2.9}


def product_rates(threads: int, n: int = 2048) -> dict[str, float]:
    """GOP/s of one n x n x n product per mode's kernel (fp32, bf16, int8 -> int32)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    ab, bb = a.bfloat16(), b.bfloat16()
    ai, bi = (a * 30).round().to(torch.int8), (b * 30).round().to(torch.int8)
    reps = 3
    return {
        "fp32": 2 * n**3 / best_seconds(partial(torch.matmul, a, b), reps) / 1e9,
        "bf16": 2 * n**3 / best_seconds(partial(torch.matmul, ab, bb), reps) / 1e9,
        "int8": 2 * n**3 / best_seconds(partial(torch._int_mm, ai, bi), reps) / 1e9,
    }


def run_set(model, files: list[str], batch_seconds: float) -> np.ndarray:
    """Utterance embeddings (N, D) of ``files`` through our batched job."""
    out = batched_embeddings(model, files, batch_seconds)
    return np.stack([out[str(Path(f))] for f in files])


def fidelity(head, exact: np.ndarray, approx: np.ndarray) -> dict[str, float]:
    """Embedding cosine (min / mean), mean |error| over the between-clip spread (mean over
    dimensions of the std across clips of the exact embeddings), top-label agreement and the
    largest change of a class probability through ``head``."""
    import torch

    cos = (exact * approx).sum(1) / (np.linalg.norm(exact, axis=1) * np.linalg.norm(approx, axis=1))
    spread = float(exact.std(axis=0).mean()) if len(exact) > 1 else float("nan")
    with torch.inference_mode():
        p = head(torch.from_numpy(exact)).softmax(-1)
        q = head(torch.from_numpy(approx)).softmax(-1)
    return {
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
        "err_spread": float(np.abs(exact - approx).mean()) / spread,
        "agree": float((p.argmax(1) == q.argmax(1)).float().mean()),
        "dp": float((p - q).abs().max()),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lengths", default="2,10,120", help="synthetic clip lengths (s)")
    p.add_argument("--seconds-per-length", type=float, default=120.0, help="audio per length")
    p.add_argument("--ravdess", default=str(DEFAULT_RAVDESS))
    p.add_argument("--ravdess-limit", type=int, default=96, help="clips (0 = all)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per mode and set")
    p.add_argument("--batch-seconds", type=float, default=60.0)
    args = p.parse_args()

    import soundfile as sf
    import torch

    from emotion2vec.config import preset
    from emotion2vec.fast import accelerate
    from emotion2vec.fast import precision as precisions
    from emotion2vec.model.flops import encoder_flops
    from emotion2vec.pipeline import Emotion2vec

    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_description()}; {args.threads} threads; torch {torch.__version__}")
    flags = sorted(precisions.cpu_flags())
    print(f"precision units seen by emotion2vec: {', '.join(flags) or 'none'}")
    funasr = subprocess.run([sys.executable, "-c", "import funasr"], capture_output=True)
    have_funasr = funasr.returncode == 0
    print(
        "FunASR: importable, compare with benchmarks/extract_speed.py"
        if have_funasr
        else "FunASR: NOT installed here, NOT run in this session; the 'est. vs FunASR' column "
        "is each mode's speed-up times the fp32/FunASR ratio measured earlier (an estimate)"
    )
    rates = product_rates(args.threads)
    print(
        "2048^3 products: "
        + ", ".join(f"{m} {r:.0f} GOP/s ({r / rates['fp32']:.2f}x)" for m, r in rates.items())
    )
    peak = matmul_peak(args.threads)
    print(f"fp32 matmul peak: {peak:.0f} GFLOP/s")

    torch.manual_seed(0)
    config = preset("emotion2vec_plus_base")
    exact = accelerate(Emotion2vec(config).eval())
    start = time.perf_counter()
    choice = precisions.choose("cpu")
    print(
        f"auto -> {choice.precision} ({choice.reason}; calibration "
        f"{time.perf_counter() - start:.2f} s)\n"
    )
    models = {"fp32": exact}
    for mode in MODES[1:]:  # measured with or without units (convert warns without)
        models[mode] = precisions.convert(exact, mode, "cpu")

    tmp = Path(tempfile.mkdtemp(prefix="e2v_precision_"))
    sets: list[tuple[str, str, list[str]]] = []  # (name, key of the FunASR ratio, files)
    rav = Path(args.ravdess)
    if rav.is_dir():
        files = sorted(str(f) for f in rav.rglob("*.flac"))
        if args.ravdess_limit:
            files = files[:: max(1, len(files) // args.ravdess_limit)][: args.ravdess_limit]
        sets.append((f"RAVDESS x {len(files)}", "RAVDESS", files))
    else:
        print(f"RAVDESS not found at {rav}: synthetic sets only")
    for length in [float(x) for x in args.lengths.split(",") if x.strip()]:
        count = max(1, int(args.seconds_per_length // length))
        paths = []
        for i in range(count):
            path = tmp / f"synth_{length:g}s_{i}.wav"
            synth(path, length, i)
            paths.append(str(path))
        sets.append((f"{length:g} s x {count}", f"{length:g}", paths))

    warm = tmp / "warm.wav"
    synth(warm, 3.0, 999)
    for mode, model in models.items():
        t = time.perf_counter()
        run_set(model, [str(warm)], args.batch_seconds)
        print(f"warm-up {mode}: {time.perf_counter() - t:.1f} s (compiling included)")
    print()

    header = (
        f"{'set':<16} {'mode':<5} {'RTF':>6} {'GFLOP/s':>8} {'%fp32pk':>7} {'vs fp32':>8} "
        f"{'est. vs FunASR':>14} {'cos min':>8} {'cos mean':>9} {'err/spr':>8} {'agree':>6} "
        f"{'max dp':>7}"
    )
    print(header)
    print("-" * len(header))
    rav_fidelity = {}
    for name, key, files in sets:
        audio = sum(sf.info(f).frames for f in files) / 16000
        flops = sum(encoder_flops(config, sf.info(f).frames) for f in files)
        walls: dict[str, list[float]] = {m: [] for m in models}
        embs: dict[str, np.ndarray] = {}
        for model in models.values():  # untimed: a new input length can recompile (inductor)
            run_set(model, files[:1], args.batch_seconds)
        for round_ in range(args.rounds):
            order = list(models) if round_ % 2 == 0 else list(reversed(models))
            for mode in order:
                t = time.perf_counter()
                embs[mode] = run_set(models[mode], files, args.batch_seconds)
                walls[mode].append(time.perf_counter() - t)
        for mode in models:
            speedups = [f / w for f, w in zip(walls["fp32"], walls[mode], strict=True)]
            speedup = float(np.median(speedups))
            wall = float(np.median(walls[mode]))
            gflops = flops / wall / 1e9
            est = speedup * EARLIER_FUNASR_RATIO.get(key, float("nan"))
            fid = fidelity(exact.head, embs["fp32"], embs[mode])
            if key == "RAVDESS":
                rav_fidelity[mode] = fid
            print(
                f"{name:<16} {mode:<5} {wall / audio:6.3f} {gflops:8.1f} "
                f"{100 * gflops / peak:6.0f}% {speedup:7.2f}x {est:13.1f}x "
                f"{fid['cos_min']:8.5f} {fid['cos_mean']:9.5f} {fid['err_spread']:8.4f} "
                f"{fid['agree']:6.1%} {fid['dp']:7.4f}"
            )
        print()

    if rav_fidelity:
        print("faithful on RAVDESS (utterance-embedding cosine >= 0.999 against fp32, min):")
        for mode, fid in rav_fidelity.items():
            verdict = "yes" if fid["cos_min"] >= 0.999 else "NO"
            print(f"  {mode}: {verdict} (min {fid['cos_min']:.5f})")
    print(
        "columns: RTF = seconds per audio second (median round); GFLOP/s = the exact model's "
        "FLOPs / wall; %fp32pk = against the fp32 matmul peak above; vs fp32 = median per-round "
        "speed-up over fp32 in this process; est. vs FunASR = vs fp32 x earlier fp32/FunASR "
        "ratio (2/10 s and RAVDESS 1.5x, 120 s 2.9x); err/spr = mean |error| / mean std across "
        "clips; agree = same top label through the (random) head; max dp = largest probability "
        "change (random head: near-uniform scores, so agreement is a strict test)"
    )


if __name__ == "__main__":
    main()
