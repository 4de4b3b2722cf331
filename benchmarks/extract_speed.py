"""Extraction speed and memory: our batched path, our one-at-a-time path, FunASR, int8 mode.

Everything is measured in one run on the same machine, each system in its own subprocess (so
peak RSS is per system), on the same files (decoding included), with base-size random weights:

    python benchmarks/extract_speed.py                          # default: 2 threads
    python benchmarks/extract_speed.py --ravdess-limit 0        # all 1,440 RAVDESS clips
    python benchmarks/extract_speed.py --funasr-python ../funasr-venv/bin/python

The machine's fp32 matmul peak is measured again before every set (each row's %peak is against
the highest so far). Since two measurements minutes apart on a shared host can differ by more
than the effect, two comparisons are also made inside one process: our batched exact path runs
``--peak-passes`` passes over each set, each right after a peak measurement (its row shows the
median pass; a line below gives each pass against its own peak), and int8 is timed against
exact alternating over the same RAVDESS clips (``--paired-clips``).

FunASR runs when ``funasr`` is importable by the interpreter given with ``--funasr-python``
(default: this one, else ``../funasr-venv/bin/python`` next to the repository). The machine is
shared and noisy: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAVDESS = ROOT.parent / "shared" / "data" / "ravdess_speech" / "audio"
#: Every worker first runs one short clip untimed (kernel selection, allocator, lazy imports),
#: the same 3 s clip whatever the set, so a long set does not pay for a long warm-up.
WARMUP_NAME = "warmup.wav"


# ------------------------------------------------------------------------------------------
# workers (run in subprocesses)
# ------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    """Peak RSS of this process. VmHWM is per address space; ru_maxrss would carry the parent's
    high-water mark across fork + exec on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    files = [line for line in Path(args.files).read_text().splitlines() if line]
    warmup = args.warmup or files[0]
    mode = args.worker
    passes = None  # our batched path's per-pass walls and peaks, with --peak-passes
    if mode == "funasr":
        import logging

        from funasr import AutoModel

        logging.disable(logging.WARNING)
        model = AutoModel(
            model=args.model_dir, disable_update=True, device="cpu", log_level="ERROR"
        )
        torch.set_num_threads(args.threads)
        model.generate(warmup, granularity="utterance", extract_embedding=True)
        start = time.perf_counter()
        embs = []
        for f in files:
            res = model.generate(f, granularity="utterance", extract_embedding=True)
            embs.append(np.asarray(res[0]["feats"], dtype=np.float32))
        wall = time.perf_counter() - start
    elif mode == "onnx":
        import onnxruntime as ort

        from emotion2vec.audio import load_audio

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])

        def run_one(path: str) -> np.ndarray:
            wave = load_audio(path)[None]
            outs = session.run(
                ["embedding"],
                {"waveform": wave, "lengths": np.array([wave.shape[1]], dtype=np.int64)},
            )
            return outs[0][0]

        run_one(warmup)
        start = time.perf_counter()
        embs = [run_one(f) for f in files]
        wall = time.perf_counter() - start
    elif mode == "paired-int8":
        return paired_int8(args, files, warmup)
    else:
        from emotion2vec import load_model
        from emotion2vec.int8 import quantize_int8

        model = load_model(args.model_dir)
        warm = time.perf_counter()
        if mode == "ours-int8":
            model = quantize_int8(model)
        model.extract(warmup)  # for int8 this includes compiling its product (torch.compile)
        warmup_s = time.perf_counter() - warm
        if mode == "ours-single":
            start = time.perf_counter()
            embs = [model.extract(f) for f in files]
            wall = time.perf_counter() - start
        else:
            walls, peaks = [], []
            for _ in range(max(1, args.peak_passes)):
                if args.peak_passes:
                    peaks.append(matmul_peak(args.threads))
                start = time.perf_counter()
                out = batched_embeddings(model, files, args.batch_seconds, args.window_seconds)
                walls.append(time.perf_counter() - start)
            embs = [out[str(Path(f))] for f in files]
            wall = float(np.median(walls))
            if args.peak_passes:
                passes = {"walls": walls, "peaks": peaks}
    np.save(args.save, np.stack(embs))
    result = {"wall": wall, "rss_mb": _rss_mb()}
    if mode.startswith("ours"):
        result["warmup_s"] = warmup_s
    if passes:
        result["passes"] = passes
    return result


def batched_embeddings(
    model, files: list[str], batch_seconds: float, window_seconds: float | None = None
) -> dict[str, np.ndarray]:
    """Our batched job (decoding included) over ``files``: utterance embedding per path."""
    from emotion2vec.jobs import run_model
    from emotion2vec.sources import AudioSource

    sources = [AudioSource(Path(f), Path(f).name) for f in files]
    out: dict[str, np.ndarray] = {}
    run_model(
        model,
        sources,
        todo=list(range(len(sources))),
        on_result=lambda r: out.__setitem__(str(r.source.path), r.embedding[0]),
        on_failure=lambda s, reason: print(f"failed {s.path}: {reason}", file=sys.stderr),
        batch_seconds=batch_seconds,
        window_seconds=window_seconds,
        progress=False,
    )
    return out


def paired_int8(args, files: list[str], warmup: str) -> dict:
    """Exact and int8 in one process, alternating over the same clips (ABBA...), so that both
    see the same machine: on a shared host, two processes minutes apart can differ by 15% on
    the very same work, which is larger than the effect measured."""
    from emotion2vec import load_model
    from emotion2vec.int8 import quantize_int8

    exact = load_model(args.model_dir)
    fast = quantize_int8(exact)
    exact.extract(warmup)
    fast.extract(warmup)
    walls: dict[str, list[float]] = {"exact": [], "int8": []}
    for round_ in range(args.paired_rounds):
        order = ("exact", "int8") if round_ % 2 == 0 else ("int8", "exact")
        for name in order:
            start = time.perf_counter()
            batched_embeddings(exact if name == "exact" else fast, files, args.batch_seconds)
            walls[name].append(time.perf_counter() - start)
    return {"walls": walls, "rss_mb": _rss_mb()}


# ------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------


def best_seconds(fn, reps: int) -> float:
    """Seconds per call of ``fn``: two untimed calls, then the fastest of 3 runs of ``reps``."""
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def matmul_peak(threads: int) -> float:
    """Best fp32 GEMM throughput (GFLOP/s) of this machine at ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    best = 0.0
    for n in (1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        seconds = best_seconds(partial(torch.matmul, a, b), max(2, int(4e10 / (2 * n**3))))
        best = max(best, 2 * n**3 / seconds / 1e9)
    return best


def gemm_ceiling(config, threads: int, batch_seconds: float = 60.0) -> float:
    """GFLOP/s of the model's own fp32 matrix products, each timed alone at the shapes of one
    batch of ``batch_seconds`` of 3.7 s clips, weighted by their share of the model's FLOPs:
    what the exact model would reach with these kernels if normalisation, activations, softmax
    and copies were free. (Noise can put it a little above the square-matmul peak.)"""
    import torch

    from emotion2vec.audio import frame_count
    from emotion2vec.fast import conv as feature_extractor

    torch.set_num_threads(threads)
    e = config.encoder
    clip_frames = frame_count(int(3.7 * 16000))
    clips = max(1, int(batch_seconds // 3.7))
    rows = clips * (clip_frames + e.num_extra_tokens)
    d, hidden = e.embed_dim, int(e.embed_dim * e.mlp_ratio)
    shapes = []  # (M, K, N, times per batch)
    # conv layers 1..6: one product per kernel tap, on chunks of CHUNK_FRAMES output frames
    frames_out = clips * clip_frames
    chunk = feature_extractor.CHUNK_FRAMES
    stride_below = 1
    for ch, kernel, stride in reversed(e.conv_layers[1:]):
        m = chunk * stride_below
        shapes.append((m, ch, ch, kernel * frames_out * stride_below / m))
        stride_below *= stride
    shapes.append((rows, e.conv_dim, d, 1))  # projection
    for k, n in ((d, 3 * d), (d, d), (d, hidden), (hidden, d)):
        shapes.append((rows, k, n, e.num_layers))
    total_flops = total_time = 0.0
    for m, k, n, count in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        total_flops += 2 * m * k * n * count
        total_time += (
            best_seconds(partial(torch.matmul, a, b), max(3, int(2e9 / (2 * m * k * n)))) * count
        )
    # attention scores and weighted values: per clip and head, (T x Dh) @ (Dh x T) and back
    t_len, heads = clip_frames + e.num_extra_tokens, e.num_heads
    q = torch.randn(clips * heads, t_len, d // heads)
    s = torch.randn(clips * heads, t_len, t_len)
    total_flops += 2 * 2 * clips * heads * t_len * t_len * (d // heads) * e.num_layers
    total_time += (
        best_seconds(lambda: (torch.bmm(q, q.transpose(1, 2)), torch.bmm(s, q)), 1) * e.num_layers
    )
    return total_flops / total_time / 1e9


def run_worker(python: str, mode: str, model_dir: Path, files: list[str], tmp: Path, args, **extra):
    listing = tmp / f"files_{mode}_{len(files)}.txt"
    listing.write_text("\n".join(files) + "\n")
    save = tmp / f"emb_{mode}_{len(files)}_{extra.get('window', '')}.npy"
    cmd = [
        python,
        __file__,
        "--worker",
        mode,
        "--files",
        str(listing),
        "--model-dir",
        str(model_dir),
        "--threads",
        str(args.threads),
        "--save",
        str(save),
        "--batch-seconds",
        str(args.batch_seconds),
        "--warmup",
        str(tmp / WARMUP_NAME),
        "--paired-rounds",
        str(args.paired_rounds),
    ]
    if extra.get("window"):
        cmd += ["--window-seconds", str(extra["window"])]
    # the worker's own default would be the driver's: only the rows that ask for passes get them
    cmd += ["--peak-passes", str(extra.get("peak_passes", 0))]
    if mode == "onnx":
        cmd += ["--onnx", str(model_dir.parent / "model.onnx")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"[{mode}] failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if save.exists():  # the paired A/B saves no embeddings
        result["emb"] = np.load(save)
    return result


def whole_process(cmd: list[str], cwd: Path) -> float | None:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        print(f"failed: {' '.join(cmd)}\n{proc.stderr[-1500:]}", file=sys.stderr)
        return None
    return time.perf_counter() - start


def funasr_python(args) -> str | None:
    candidates = (
        [args.funasr_python]
        if args.funasr_python
        else [sys.executable, str(ROOT.parent / "funasr-venv" / "bin" / "python")]
    )
    for py in candidates:
        if py and Path(py).exists():
            ok = subprocess.run([py, "-c", "import funasr"], capture_output=True).returncode == 0
            if ok:
                return py
    return None


def synth(path: Path, seconds: float, seed: int) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    wave = env * (
        0.3 * np.sin(2 * np.pi * (140 + 40 * np.sin(t)) * t) + 0.05 * rng.standard_normal(n)
    )
    sf.write(path, wave.astype(np.float32), 16000, subtype="PCM_16")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--lengths", default="2,5,10,30,120", help="synthetic clip lengths (s); '' for none"
    )
    p.add_argument("--seconds-per-length", type=float, default=120.0, help="audio per length")
    p.add_argument("--ravdess", default=str(DEFAULT_RAVDESS))
    p.add_argument("--ravdess-limit", type=int, default=240, help="clips (0 = all)")
    p.add_argument(
        "--long-seconds", type=float, default=600.0, help="memory check recording (0: skip)"
    )
    p.add_argument("--batch-seconds", type=float, default=60.0)
    p.add_argument("--funasr-python", default=None)
    p.add_argument("--skip-funasr", action="store_true")
    p.add_argument("--skip-single", action="store_true")
    # worker mode
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--files", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--save", default=None, help=argparse.SUPPRESS)
    p.add_argument("--window-seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--warmup", default=None, help=argparse.SUPPRESS)
    p.add_argument("--onnx", default=None, help=argparse.SUPPRESS)
    p.add_argument("--skip-onnx", action="store_true", help="skip the onnxruntime row")
    p.add_argument(
        "--paired-clips",
        type=int,
        default=48,
        help="RAVDESS clips for the int8-vs-exact A/B in one process (0: skip)",
    )
    p.add_argument("--paired-rounds", type=int, default=4, help="rounds of that A/B")
    p.add_argument(
        "--peak-passes",
        type=int,
        default=3,
        help="passes of our batched exact path over each set, each right after a matmul-peak "
        "measurement in the same process (0: one pass, no peak)",
    )
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import soundfile as sf
    import torch

    from emotion2vec.checkpoints.official import save_plus_folder
    from emotion2vec.config import preset
    from emotion2vec.model import Emotion2vecModel
    from emotion2vec.model.flops import encoder_flops

    fpy = None if args.skip_funasr else funasr_python(args)
    tmp = Path(tempfile.mkdtemp(prefix="e2v_bench_"))
    try:
        torch.manual_seed(0)
        config = preset("emotion2vec_plus_base")
        model_dir = tmp / "model"
        model = Emotion2vecModel(config).eval()
        save_plus_folder(model, model_dir)
        onnx_ok = False
        if not args.skip_onnx:
            try:
                from emotion2vec.export import export_onnx

                export_onnx(model, tmp / "model.onnx")
                onnx_ok = True
            except Exception as exc:  # noqa: BLE001 - onnx is optional
                print(f"ONNX export skipped: {exc}")
        synth(tmp / WARMUP_NAME, 3.0, 12345)
        # On a shared machine one measurement of the peak can land in a neighbour's busy
        # minute (seen: 155 against 240-300). It is measured again before every set, and each
        # row's %peak is against the highest measured so far (never flattering our rows).
        peaks = [matmul_peak(args.threads)]
        peak = peaks[0]
        print(f"fp32 matmul peak at {args.threads} threads: {peak:.1f} GFLOP/s")
        ceiling = gemm_ceiling(config, args.threads, args.batch_seconds)
        print(
            f"the model's own fp32 products alone, RAVDESS-length batch: {ceiling:.1f} GFLOP/s "
            f"({100 * ceiling / peak:.0f}% of peak): the exact model's speed if all else were free"
        )
        print(f"FunASR: {'via ' + fpy if fpy else 'not available (skipped)'}\n")

        sets: list[tuple[str, list[str]]] = []
        rav = Path(args.ravdess)
        if rav.is_dir():
            files = sorted(str(f) for f in rav.rglob("*.flac"))
            if args.ravdess_limit:
                files = files[:: max(1, len(files) // args.ravdess_limit)][: args.ravdess_limit]
            sets.append((f"RAVDESS ({len(files)} clips)", files))
        for length in [float(x) for x in args.lengths.split(",") if x.strip()]:
            count = max(1, int(args.seconds_per_length // length))
            files = []
            for i in range(count):
                path = tmp / f"synth_{length:g}s_{i}.wav"
                synth(path, length, i)
                files.append(str(path))
            sets.append((f"{length:g} s x {count}", files))

        header = f"{'set':<22} {'system':<16} {'RTF':>7} {'clips/s':>8} {'GFLOP/s':>8} {'%peak':>6} {'RSS MB':>7} {'vs FunASR':>9}"
        print(header)
        print("-" * len(header))
        int8_fidelity = None
        batched_gflops: dict[str, float] = {}
        paired_shares: dict[str, float] = {}
        for name, files in sets:
            peaks.append(matmul_peak(args.threads))
            peak = max(peaks)
            print(
                f"{'':<22} fp32 matmul peak now: {peaks[-1]:.1f} GFLOP/s (highest so far {peak:.1f})"
            )
            durations = [sf.info(f).frames / 16000 for f in files]
            audio = sum(durations)
            flops = sum(encoder_flops(config, int(d * 16000)) for d in durations)
            systems = [("ours-batched", {"peak_passes": args.peak_passes})]
            if not args.skip_single:
                systems.append(("ours-single", {}))
            if name.startswith("RAVDESS"):
                systems.append(("ours-int8", {}))
            if onnx_ok and max(durations) <= 60:
                systems.append(("onnx", {}))
            if max(durations) > 60:
                systems.append(("ours-window30", {"window": 30.0}))
            if fpy:
                systems.append(("funasr", {}))
            results = {}
            for mode, extra in systems:
                worker_mode = "ours-batched" if mode == "ours-window30" else mode
                py = fpy if mode == "funasr" else sys.executable
                res = run_worker(py, worker_mode, model_dir, files, tmp, args, **extra)
                if res is not None:
                    results[mode] = res
            ref = results.get("funasr")
            for mode, res in results.items():
                rtf = res["wall"] / audio
                gflops = flops / res["wall"] / 1e9
                if mode == "ours-batched":
                    batched_gflops[name] = gflops
                ratio = f"{ref['wall'] / res['wall']:.2f}x" if ref else "-"
                print(
                    f"{name:<22} {mode:<16} {rtf:7.3f} {len(files) / res['wall']:8.2f} "
                    f"{gflops:8.1f} {100 * gflops / peak:5.0f}% {res['rss_mb']:7.0f} {ratio:>9}"
                )
            passes = results.get("ours-batched", {}).get("passes")
            if passes:
                shares = [
                    flops / w / 1e9 / pk
                    for w, pk in zip(passes["walls"], passes["peaks"], strict=True)
                ]
                paired_shares[name] = float(np.median(shares))
                print(
                    f"{'':<22} ours-batched against the peak measured just before each of its "
                    f"{len(shares)} passes, in the same process: "
                    + ", ".join(f"{100 * x:.0f}%" for x in shares)
                    + f" (median {100 * paired_shares[name]:.0f}%; peaks "
                    + ", ".join(f"{x:.0f}" for x in passes["peaks"])
                    + " GFLOP/s)"
                )
            if "ours-single" in results:
                diff = np.abs(results["ours-batched"]["emb"] - results["ours-single"]["emb"]).max()
                print(f"{'':<22} batched vs one-at-a-time: max abs diff {diff:.2e}")
            if ref is not None:
                diff = np.abs(results["ours-batched"]["emb"] - ref["emb"]).max()
                print(f"{'':<22} batched vs FunASR: max abs diff {diff:.2e}")
            if "ours-int8" in results:
                print(
                    f"{'':<22} int8 warm-up (quantise + compile + one clip): "
                    f"{results['ours-int8']['warmup_s']:.1f} s, exact: "
                    f"{results['ours-batched']['warmup_s']:.1f} s"
                )
                int8_fidelity = fidelity(
                    model_dir, results["ours-batched"]["emb"], results["ours-int8"]["emb"]
                )
            print()

        peaks.append(matmul_peak(args.threads))
        print(
            f"fp32 matmul peak measured {len(peaks)} times in this run: {min(peaks):.1f}-"
            f"{max(peaks):.1f} GFLOP/s; our batched exact path against the highest: "
            + ", ".join(f"{n} {100 * g / max(peaks):.0f}%" for n, g in batched_gflops.items())
        )
        if paired_shares:
            print(
                "our batched exact path against the peak measured just before each pass, in the "
                "same process (median of passes): "
                + ", ".join(f"{n} {100 * x:.0f}%" for n, x in paired_shares.items())
            )
        if int8_fidelity:
            print(
                "int8 vs exact on RAVDESS: utterance-embedding cosine min {min:.4f} / mean {mean:.4f}; "
                "error / between-clip spread {error:.3f} (median); same top emotion on {agree:.1%} "
                "of clips (largest exact top-2 margin among the flipped: {flip_margin:.4f}, median "
                "margin {margin:.4f}); largest probability change {dp:.4f}".format(**int8_fidelity)
            )

        # int8 against exact, alternating in one process
        ravdess_files = next((f for n, f in sets if n.startswith("RAVDESS")), None)
        if ravdess_files and args.paired_clips > 0:
            subset = ravdess_files[: args.paired_clips]
            res = run_worker(sys.executable, "paired-int8", model_dir, subset, tmp, args)
            if res:
                walls = res["walls"]
                ratios = [e / i for e, i in zip(walls["exact"], walls["int8"], strict=True)]
                audio = sum(sf.info(f).frames for f in subset) / 16000
                print(
                    f"int8 vs exact in one process, alternating over {len(subset)} RAVDESS clips "
                    f"({audio:.0f} s), {len(ratios)} rounds: exact RTF "
                    f"{min(walls['exact']) / audio:.3f}, int8 RTF {min(walls['int8']) / audio:.3f}; "
                    f"speed-up per round {', '.join(f'{r:.2f}' for r in ratios)} "
                    f"(median {float(np.median(ratios)):.2f}x, best-of exact / best-of int8 "
                    f"{min(walls['exact']) / min(walls['int8']):.2f}x)"
                )

        # memory on a long recording
        if args.long_seconds > 0:
            long_path = tmp / "long.wav"
            synth(long_path, args.long_seconds, 99)
            for label, window in (("exact whole-file", None), ("30 s windows", 30.0)):
                res = run_worker(
                    sys.executable,
                    "ours-batched",
                    model_dir,
                    [str(long_path)],
                    tmp,
                    args,
                    window=window,
                )
                if res:
                    print(
                        f"{args.long_seconds / 60:g}-minute recording, {label}: "
                        f"{res['wall']:.1f} s (RTF {res['wall'] / args.long_seconds:.3f}), "
                        f"peak RSS {res['rss_mb']:.0f} MB"
                    )

        # whole-process time to the first prediction
        one = sets[0][1][0]
        ours = whole_process(
            [
                sys.executable,
                "-m",
                "emotion2vec.cli",
                "predict",
                one,
                "--model",
                str(model_dir),
                "--quiet",
                "--threads",
                str(args.threads),
            ],
            ROOT,
        )
        line = f"time to first prediction (import + load + predict): ours {ours:.2f} s"
        if fpy:
            code = (
                "import logging; from funasr import AutoModel; logging.disable(logging.WARNING); "
                f"m = AutoModel(model={str(model_dir)!r}, disable_update=True, device='cpu', log_level='ERROR'); "
                f"print(m.generate({one!r}, extract_embedding=False)[0]['labels'][0])"
            )
            theirs = whole_process([fpy, "-c", code], ROOT)
            if theirs and ours:
                line += f", FunASR {theirs:.2f} s ({theirs / ours:.1f}x)"
        print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fidelity(model_dir: Path, exact: np.ndarray, approx: np.ndarray) -> dict:
    """How far the approximate embeddings are from the exact ones, and what that does to the
    head. ``error / spread`` compares each clip's embedding error with the median distance of
    the exact embeddings from their mean: a head can only separate clips by that spread, so
    this ratio, not the cosine, says how many predictions an approximation can flip."""
    import torch

    from emotion2vec import load_model

    model = load_model(model_dir)
    cos = (exact * approx).sum(1) / (np.linalg.norm(exact, axis=1) * np.linalg.norm(approx, axis=1))
    spread = np.median(np.linalg.norm(exact - exact.mean(0), axis=1))
    error = np.linalg.norm(exact - approx, axis=1) / spread
    with torch.inference_mode():
        p_exact = model.head(torch.from_numpy(exact)).softmax(-1)
        p_approx = model.head(torch.from_numpy(approx)).softmax(-1)
    top2 = p_exact.topk(2, dim=-1).values
    margin = top2[:, 0] - top2[:, 1]
    flipped = p_exact.argmax(1) != p_approx.argmax(1)
    return {
        "min": float(cos.min()),
        "mean": float(cos.mean()),
        "error": float(np.median(error)),
        "agree": float(1.0 - flipped.float().mean()),
        "flip_margin": float(margin[flipped].max()) if bool(flipped.any()) else 0.0,
        "margin": float(margin.median()),
        "dp": float((p_exact - p_approx).abs().max()),
    }


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
