#!/usr/bin/env python3
"""The GPU checks of extraction and pre-training, in one run (``scripts/gpu_check.sh`` runs it).

Sections, each printed with its numbers and PASS / FAIL (a failing section does not stop the
others; the exit code is 1 when any failed):

1. **extraction parity**: a base-size model (random weights, seeded) on the same clips on the CPU
   and on the GPU, fp32, batched: frame features and utterance embeddings within 1e-4; the drift
   of fp16 and bf16 autocast against fp32 is reported (not judged);
2. **extraction throughput**: our batched path on the GPU (clips/s, real-time factor) against
   FunASR's ``AutoModel(...).generate`` on the same clips and GPU when FunASR is importable
   (``--funasr-model DIR``: a local emotion2vec_plus folder; FunASR cannot download here);
3. **pre-training precision**: the base preset trained for a few dozen updates under fp16
   (dynamic loss scaling) and under bf16: finite losses, the loss falling, the loss scale
   finite, and MFU (model FLOPs of a step against the matmul peak measured in that dtype);
4. **two processes = one process**: ``torchrun`` with 2 processes on the one GPU (gloo) against
   1 process with 2 accumulation steps, tiny preset, fp32: final weights within 1e-4.

    python scripts/gpu_check.py [--quick] [--ravdess DIR] [--funasr-model DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
ARGS = argparse.Namespace(device="cuda", model_preset="emotion2vec_plus_base", train_preset="base")
sys.path.insert(0, str(REPO / "benchmarks"))
FAILED: list[str] = []


def sync() -> None:
    if torch.device(ARGS.device).type == "cuda":
        torch.cuda.synchronize()


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def verdict(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        FAILED.append(name)


def clips(args) -> list[np.ndarray]:
    """RAVDESS clips when available, else synthetic speech-like audio of 1.5-8 s."""
    from emotion2vec.audio import load_audio

    folder = Path(args.ravdess) if args.ravdess else None
    if folder is not None and (folder / "audio").is_dir():
        files = sorted((folder / "audio").rglob("*.flac"))[: args.clips]
        return [load_audio(f) for f in files]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(args.clips):
        n = int(rng.uniform(1.5, 8.0) * 16000)
        t = np.arange(n) / 16000
        f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        x = sum(np.sin(h * phase) / h for h in range(1, 6)) + 0.1 * rng.standard_normal(n)
        out.append((0.1 * x).astype(np.float32))
    return out


def base_model():
    from emotion2vec.config import preset
    from emotion2vec.model import Emotion2vecModel
    from emotion2vec.pretrain.start import init_weights

    torch.manual_seed(0)
    return init_weights(Emotion2vecModel(preset(ARGS.model_preset))).eval()


def extraction_parity(args, audio) -> None:
    section("1. extraction on CUDA equals CPU")
    model = base_model()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        from emotion2vec import load_model as load

        cpu = load(tmp, device="cpu")
        gpu = load(tmp, device=args.device)
        a = cpu.extract(audio, sample_rate=16000, granularity="frame")
        b = gpu.extract(audio, sample_rate=16000, granularity="frame")
        worst = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
        scale = max(float(np.abs(x).max()) for x in a)
        verdict(
            "frames fp32",
            worst <= 1e-4 * max(1.0, scale),
            f"max |cpu - cuda| = {worst:.2e} (values up to {scale:.2f})",
        )
        ua = cpu.extract(audio, sample_rate=16000)
        ub = gpu.extract(audio, sample_rate=16000)
        worst_u = max(float(np.abs(x - y).max()) for x, y in zip(ua, ub, strict=True))
        verdict("utterance fp32", worst_u <= 1e-4, f"max |cpu - cuda| = {worst_u:.2e}")
        if model.labels:
            pa = cpu.predict(audio, sample_rate=16000)
            pb = gpu.predict(audio, sample_rate=16000)
            agree = sum(x.label == y.label for x, y in zip(pa, pb, strict=True))
            verdict("labels fp32", agree == len(pa), f"{agree}/{len(pa)} equal")
        # reduced precision: drift against fp32 on the GPU (reported)
        for dtype in (torch.float16, torch.bfloat16):
            with torch.autocast(torch.device(args.device).type, dtype=dtype):
                c = gpu.extract(audio, sample_rate=16000, granularity="frame")
            drift = max(float(np.abs(x - y).max()) for x, y in zip(b, c, strict=True))
            rel = drift / scale
            print(
                f"INFO {str(dtype).replace('torch.', '')} autocast drift vs fp32: max abs {drift:.3e}, relative {rel:.2e}"
            )


def extraction_speed(args, audio) -> None:
    section("2. batched extraction throughput (GPU)")
    from emotion2vec import load_model

    model = base_model()
    seconds = sum(len(x) for x in audio) / 16000
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        gpu = load_model(tmp, device=args.device)
        gpu.extract(audio[:4], sample_rate=16000)
        sync()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            gpu.extract(audio, sample_rate=16000)
            sync()
            times.append(time.perf_counter() - t0)
        best = min(times)
        ours = len(audio) / best
        print(
            f"INFO ours: {len(audio)} clips, {seconds:.0f} s of audio in {best:.2f} s: {ours:.1f} clips/s, RTF {best / seconds:.5f}"
        )
    try:
        from funasr import AutoModel  # noqa: F401
    except ImportError:
        print("INFO FunASR is not importable on this machine: the FunASR column was not measured")
        return
    if not args.funasr_model:
        print(
            "INFO FunASR is importable but --funasr-model (a local emotion2vec_plus folder) was not given"
        )
        return
    from funasr import AutoModel

    fm = AutoModel(model=args.funasr_model, device=args.device, disable_update=True)
    fm.generate(audio[0], granularity="utterance", extract_embedding=True)
    sync()
    t0 = time.perf_counter()
    for x in audio:
        fm.generate(x, granularity="utterance", extract_embedding=True)
    sync()
    theirs = len(audio) / (time.perf_counter() - t0)
    print(f"INFO FunASR: {theirs:.1f} clips/s; ours / FunASR = {ours / theirs:.1f}x")


def write_corpus(folder: Path, n: int, seconds: float) -> None:
    import soundfile as sf

    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        m = int(rng.uniform(0.6, 1.0) * seconds * 16000)
        t = np.arange(m) / 16000
        f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        x = sum(np.sin(h * phase) / h for h in range(1, 6)) + 0.1 * rng.standard_normal(m)
        sf.write(folder / f"u{i:04d}.wav", (0.1 * x).astype(np.float32), 16000)


def pretraining_precision(args, corpus: Path, work: Path) -> None:
    section("3. pre-training under fp16 (loss scaling) and bf16")
    from pretrain_speed import bench_preset, matmul_peak

    from emotion2vec.pretrain import PretrainConfig, pretrain

    updates = 20 if args.quick else 40
    device = torch.device(args.device)
    precisions = ("fp16", "bf16") if device.type == "cuda" else ("bf16",)
    for precision in precisions:
        config = PretrainConfig(preset=args.train_preset)
        config.data.paths = (str(corpus),)
        config.data.max_tokens = 320_000
        config.optim.max_updates = updates
        config.optim.lr = 5e-4
        config.optim.warmup_updates = 4
        config.run.device = args.device
        config.run.precision = precision
        config.run.log_every = 2
        config.run.save_every = updates
        config.run.plot = False
        config.run.progress = False
        t0 = time.perf_counter()
        result = pretrain(config, work / f"pt_{precision}")
        wall = time.perf_counter() - t0
        rows = [
            json.loads(x)
            for x in (work / f"pt_{precision}" / "metrics.jsonl").read_text().splitlines()
        ]
        losses = [r["loss"] for r in rows if r.get("loss") is not None]
        finite = all(math.isfinite(v) for v in losses) and len(losses) >= 4
        head, tail = np.mean(losses[:3]), np.mean(losses[-3:])
        verdict(
            f"pretrain {precision}",
            finite and result.finished and tail < head,
            f"{updates} updates in {wall:.0f} s; loss {head:.3f} (first 3 logs) -> {tail:.3f} (last 3); "
            f"{rows[-1]['audio_seconds_per_second']:.0f} audio s/s",
        )
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        peak = matmul_peak(device, dtype)
        big = device.type == "cuda"
        ns = argparse.Namespace(
            clone=8,
            batch=8 if big else 1,
            seconds=10.0 if big else 2.0,
            precision=precision,
            steps=3 if big else 1,
            warmup=2 if big else 1,
        )
        r = bench_preset(args.train_preset, ns, device)
        print(
            f"INFO {precision}: {r['gflop_step']:.0f} GFLOP/step, {r['step_s'] * 1000:.0f} ms/step, "
            f"{r['gflops'] / 1000:.1f} TFLOP/s against a measured {precision} matmul peak of "
            f"{peak / 1000:.0f} TFLOP/s: MFU {100 * r['gflops'] / peak:.1f}%"
        )


def two_processes(args, corpus: Path, work: Path) -> None:
    section("4. two processes on the device equal one process")
    common = [
        "--data",
        str(corpus),
        "--preset",
        "tiny",
        "--device",
        "cuda:0" if torch.device(args.device).type == "cuda" else "cpu",
        "--precision",
        "fp32",
        "--max-updates",
        "3",
        "--max-tokens",
        "64000",
        "--seed",
        "3",
        "--quiet",
        "--no-plot",
        "--save-every",
        "3",
        "--lr",
        "5e-4",
    ]
    env = {**os.environ, "EMOTION2VEC_DIST_BACKEND": "gloo"}
    two = work / "two"
    one = work / "one"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "emotion2vec.pretrain",
            *common,
            "--output",
            str(two),
        ],
        check=True,
        env=env,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "emotion2vec.pretrain",
            *common,
            "--update-freq",
            "2",
            "--output",
            str(one),
        ],
        check=True,
        env=env,
    )
    from safetensors.torch import load_file

    a = load_file(str(two / "final" / "model.safetensors"))
    b = load_file(str(one / "final" / "model.safetensors"))
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    verdict(
        "2 processes vs 1 process x 2 accumulation steps",
        worst <= 1e-4,
        f"max weight difference {worst:.2e}",
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer clips and updates")
    ap.add_argument("--ravdess", default=os.environ.get("EMOTION2VEC_RAVDESS"))
    ap.add_argument("--funasr-model", default=None)
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--only", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--device", default="cuda", help="cuda (cpu: a dry run of the script itself)")
    ap.add_argument("--model-preset", default="emotion2vec_plus_base", help="extraction model")
    ap.add_argument("--train-preset", default="base", help="pre-training preset of section 3")
    args = ap.parse_args()
    ARGS.__dict__.update(vars(args))
    args.clips = args.clips or (48 if args.quick else 160)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (dry run)"
    print(
        f"# {where} | torch {torch.__version__} | CUDA {torch.version.cuda} | python {sys.version.split()[0]}"
    )
    t0 = time.perf_counter()
    audio = clips(args)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        if 3 in args.only or 4 in args.only:
            write_corpus(corpus, 64 if args.quick else 128, 6.0)
        for number, fn in ((1, extraction_parity), (2, extraction_speed)):
            if number in args.only:
                try:
                    fn(args, audio)
                except Exception as exc:  # noqa: BLE001 - report and go on with the others
                    verdict(f"section {number}", False, f"{type(exc).__name__}: {exc}")
        for number, fn in ((3, pretraining_precision), (4, two_processes)):
            if number in args.only:
                try:
                    fn(args, corpus, work)
                except Exception as exc:  # noqa: BLE001
                    verdict(f"section {number}", False, f"{type(exc).__name__}: {exc}")
    print(
        f"\n# {time.perf_counter() - t0:.0f} s; {'all passed' if not FAILED else 'FAILED: ' + ', '.join(FAILED)}"
    )
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
