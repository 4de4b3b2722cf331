"""Pre-training throughput and model FLOPs utilisation (MFU) of the tiny and base presets.

One full training step = student forward on the clone batch (masked, frames dropped) + decoder +
EMA-teacher forward + losses + backward + Adam update (the run's: FairseqAdam, no clipping) + EMA
update, on synthetic speech-like audio (decoding is not part of the measurement). Reported per
preset:

* audio s/s: seconds of input audio (before cloning) trained on per wall-clock second;
* model GFLOP/s: FLOPs of one step counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls, convs, attention; forward + backward; the optimizer and elementwise ops are not
  counted), divided by the measured step time;
* matmul peak GFLOP/s: the machine's fp32 matmul rate measured in the same run
  (best of several large square matmuls), the denominator of MFU.

    python benchmarks/pretrain_speed.py                       # tiny and base on the CPU
    python benchmarks/pretrain_speed.py --presets tiny --steps 5
    python benchmarks/pretrain_speed.py --device cuda --batch 8 --seconds 10 --precision bf16

On a GPU with ``--precision bf16``/``fp16`` the peak is also measured in that dtype and MFU is
given against it. The machine may be shared: compare numbers within one run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from emotion2vec.pretrain.config import MaskConfig, ObjectiveConfig
from emotion2vec.pretrain.objective import PretrainObjective
from emotion2vec.pretrain.start import scratch_model
from emotion2vec.training import Batch, OptimConfig
from emotion2vec.training.device import resolve_precision
from emotion2vec.training.optim import build_optimizer, set_lr
from emotion2vec.training.seeding import derive_seed, seed_everything

PRESETS = {"tiny": "tiny", "base": "base"}


def _sdpa_cpu(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode that also counts the CPU flash-attention kernels (not in torch's table)."""
    aten = torch.ops.aten
    custom = {}
    for name, fn in (
        ("_scaled_dot_product_flash_attention_for_cpu", _sdpa_cpu),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", _sdpa_cpu_backward),
    ):
        if hasattr(aten, name):
            custom[getattr(aten, name).default] = fn
    return FlopCounterMode(display=False, custom_mapping=custom)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Best achieved GFLOP/s of n x n matmuls (n = 2048 on CPU, 8192 on GPU)."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    synchronize(device)
    best, spent = 0.0, 0.0
    while spent < seconds:
        start = time.perf_counter()
        a @ b
        synchronize(device)
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, 2 * n**3 / elapsed / 1e9)
    return best


def speech_batch(batch: int, seconds: float, index: int) -> Batch:
    rng = np.random.default_rng(index)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    rows = []
    for _ in range(batch):
        f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        x = sum(np.sin(h * phase) / h for h in range(1, 6)) + 0.1 * rng.standard_normal(n)
        rows.append((x - x.mean()) / x.std())
    waves = torch.tensor(np.stack(rows), dtype=torch.float32)
    return Batch(index, waves, torch.full((batch,), n), list(range(batch)))


def bench_preset(name: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = scratch_model(PRESETS[name])
    objective = PretrainObjective(
        model, MaskConfig(), ObjectiveConfig(clone_batch=args.clone), seed=1
    )
    objective.to(device)
    module = objective.module.train()
    optimizer = build_optimizer(module, OptimConfig())
    set_lr(optimizer, 1e-5)
    amp = resolve_precision(args.precision, device)

    def step(i: int) -> None:
        batch = speech_batch(args.batch, args.seconds, i).to(device)
        seed_everything(derive_seed(1, i))
        optimizer.zero_grad(set_to_none=True)
        ctx = torch.autocast(device.type, dtype=amp) if amp is not None else _null()
        with ctx:
            out = objective.step(module, batch)
        (out.loss.float() / max(out.sample_size, 1.0)).backward()
        optimizer.step()
        objective.after_update(i + 1)

    for i in range(args.warmup):
        step(i)
    with flop_counter() as counter:
        step(args.warmup)
    flops = counter.get_total_flops()
    synchronize(device)
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        step(args.warmup + 1 + i)
        synchronize(device)
        times.append(time.perf_counter() - start)
    step_time = float(np.median(times))
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {
        "preset": name,
        "params_m": params / 1e6,
        "step_s": step_time,
        "audio_per_s": args.batch * args.seconds / step_time,
        "gflop_step": flops / 1e9,
        "gflops": flops / step_time / 1e9,
    }


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["tiny", "base"], choices=sorted(PRESETS))
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--batch", type=int, default=2, help="utterances per step (2)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per utterance (4)")
    p.add_argument("--clone", type=int, default=8, help="clone batch (8)")
    p.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available on this machine", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = resolve_precision(args.precision, device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# {where}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{args.batch} x {args.seconds:g} s per step, clone batch {args.clone}, "
        f"precision {'fp32' if amp is None else str(amp).replace('torch.', '')}"
    )
    peak32 = matmul_peak(device, torch.float32)
    peak_amp = matmul_peak(device, amp) if amp is not None else None
    rows = [bench_preset(name, args, device) for name in args.presets]
    header = (
        f"{'preset':<6} {'params':>8} {'device':<6} {'step s':>8} {'audio s/s':>10} "
        f"{'GFLOP/step':>11} {'model GFLOP/s':>14} {'fp32 peak':>10} {'MFU %':>7}"
    )
    if peak_amp is not None:
        header += f" {'amp peak':>9} {'MFU(amp) %':>10}"
    print(header)
    for r in rows:
        line = (
            f"{r['preset']:<6} {r['params_m']:>7.1f}M {device.type:<6} {r['step_s']:>8.2f} "
            f"{r['audio_per_s']:>10.2f} {r['gflop_step']:>11.1f} {r['gflops']:>14.1f} "
            f"{peak32:>10.1f} {100 * r['gflops'] / peak32:>7.1f}"
        )
        if peak_amp is not None:
            line += f" {peak_amp:>9.1f} {100 * r['gflops'] / peak_amp:>10.1f}"
        print(line)
    print(
        "# FLOPs: FlopCounterMode on one step (matmul, conv, attention incl. the CPU flash "
        "kernels; forward + backward, teacher included; optimizer/elementwise not counted)."
    )
    assert all(math.isfinite(r["gflops"]) for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
