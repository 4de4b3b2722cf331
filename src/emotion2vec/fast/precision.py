"""Numeric precision modes of inference, and the choice among them by the hardware.

========  ==========================================================================  ==========
mode      what runs in it                                                             devices
========  ==========================================================================  ==========
fp32      everything: the exact path (the default)                                    any
bf16      the large products (:mod:`.bf16`); LayerNorms, attention, head in fp32       any
int8      the large products (:mod:`.int8`), one activation scale per row             CPU
auto      one of the above, picked by :func:`choose` from the hardware and a          any
          calibration of a few products per mode
========  ==========================================================================  ==========

A mode is *faithful* on a machine when it has units for it (bf16: AVX512-BF16 or AMX on the
CPU, a CUDA GPU with native bf16; int8: VNNI on the CPU): without them the products are
emulated and slower than fp32, so :func:`check` warns. The fidelity of each mode against fp32
(embedding cosine, top-label agreement) is measured by ``benchmarks/precision.py`` and bounded
on small random models by tests/test_precision.py.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError

PRECISIONS = ("fp32", "bf16", "int8")
#: What ``precision=`` accepts.
CHOICES = (*PRECISIONS, "auto")
#: ``auto`` picks an approximate mode only when its products calibrate at least this much
#: faster than fp32's (below that the approximation is not worth it).
MIN_SPEEDUP = 1.3

log = logging.getLogger("emotion2vec")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags of interest that are present: ``avx512_bf16``, ``amx_bf16``,
    ``avx512_vnni``, ``avx_vnni``, ``amx_int8`` (from torch's own CPU probe, and /proc/cpuinfo
    where it has them)."""
    found: set[str] = set()
    probes = {
        "avx512_bf16": "_is_avx512_bf16_supported",
        "avx512_vnni": "_is_vnni_supported",
        "amx_bf16": "_is_amx_tile_supported",
    }
    for flag, probe in probes.items():
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                found.add(flag)
        except RuntimeError:
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.partition(":")[2].split())
            found |= have & {"avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "amx_int8"}
            break
    if "amx_bf16" in found:  # torch's probe says "AMX tiles"; the int8 tiles come with them
        found.add("amx_int8")
    return frozenset(found)


def has_units(precision: str, device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` has hardware units for ``precision`` (fp32: always)."""
    kind = torch.device(device).type
    if precision == "fp32":
        return True
    if precision == "bf16":
        if kind == "cuda":
            return torch.cuda.is_available() and torch.cuda.is_bf16_supported(
                including_emulation=False
            )
        if kind == "cpu":
            return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
        return False
    if precision == "int8":
        return kind == "cpu" and bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})
    raise ValueError(precision)


def check(precision: str, device: str | torch.device = "cpu") -> str | None:
    """Refuse what cannot run and warn about what runs but is not worth it: ConfigError for a
    mode the device cannot run (int8 off the CPU, an unknown name); a RuntimeWarning (also
    returned) where the device lacks units for the mode; None when all is well."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(CHOICES)}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "int8" and kind != "cpu":
        raise ConfigError(
            f"precision int8 is a CPU mode and cannot run on {device}: use bf16 or fp32 there, "
            "or run on the CPU"
        )
    if has_units(precision, device):
        return None
    if precision == "bf16":
        message = (
            f"precision bf16: {device} has no bf16 units (AVX512-BF16 / AMX on the CPU, native "
            "bf16 on CUDA); bf16 products are emulated there and run slower than fp32 with less "
            "precision: use fp32 (or auto)"
        )
    else:
        message = (
            "precision int8: this CPU has no VNNI units (AVX512-VNNI / AVX-VNNI / AMX); int8 "
            "products run slower there, possibly slower than fp32: use fp32 (or auto)"
        )
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return message


def _best_seconds(fn, reps: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(precision: str, device: str | torch.device = "cpu", rows: int = 2048) -> float:
    """Seconds of one FFN-sized product (rows x 768 @ 768 x 3072) in ``precision``, with one
    conversion pass in and one out (what the modes' compiled steps pay around a product: the
    int8 quantisation and rescale are each fused into one pass there); best of 3."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 768, generator=gen).to(device)
    w = torch.randn(3072, 768, generator=gen).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        if precision == "fp32":
            fn = functools.partial(F.linear, x, w)
        elif precision == "bf16":
            wb = w.to(torch.bfloat16)

            def fn():
                return F.linear(x.to(torch.bfloat16), wb).float()
        elif precision == "int8":
            wt = (w * 40).round().to(torch.int8).t().contiguous()
            xs = x * 40

            def fn():
                return torch._int_mm(xs.to(torch.int8), wt).float()
        else:
            raise ValueError(precision)

        def timed():
            fn()
            sync()

        return _best_seconds(timed)


@dataclass(frozen=True)
class Choice:
    """What ``auto`` picked, and why (one line for logs and provenance)."""

    precision: str
    reason: str


def can_compile() -> bool:
    """Whether ``torch.compile`` can work here (a C++ compiler on the PATH, and no earlier
    failure): the int8 mode is fast only compiled (uncompiled it runs at about fp32's speed;
    bf16 keeps most of its gain uncompiled)."""
    from .compiled import Compiled

    return not Compiled.failed and any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def preference(device: str | torch.device = "cpu") -> tuple[str, ...]:
    """The approximate modes ``auto`` considers on ``device``, best first: on the CPU int8 (the
    higher product throughput on every CPU with the units: VNNI 4x fp32, AVX512-BF16 2x; AMX
    int8 twice AMX bf16; faster than bf16 in benchmarks/precision.py at every length), then
    bf16; bf16 first where int8 cannot be compiled; on CUDA and others bf16 only."""
    if torch.device(device).type != "cpu":
        return ("bf16",)
    return ("int8", "bf16") if can_compile() else ("bf16", "int8")


def choose(device: str | torch.device = "cpu") -> Choice:
    """The mode ``auto`` resolves to on ``device``: the first of :func:`preference` that the
    device has units for and whose calibrated product (:func:`calibrate`) is at least
    :data:`MIN_SPEEDUP` times faster than fp32's; else fp32. The calibration only vetoes a mode
    (the margins are about 2x), so that the pick stays the same from run to run on a machine:
    a job resumed with ``auto`` must get the mode it started with (the provenance checks it)."""
    candidates = [p for p in preference(device) if has_units(p, device)]
    if not candidates:
        return Choice("fp32", f"no bf16 or int8 units on {device}")
    base = calibrate("fp32", device)
    speedups = {p: base / calibrate(p, device) for p in candidates}
    measured = ", ".join(f"{p} {s:.2f}x" for p, s in speedups.items())
    for p in candidates:
        if speedups[p] >= MIN_SPEEDUP:
            return Choice(p, f"{p} units on {device}; products vs fp32: {measured}")
    return Choice("fp32", f"no mode's products beat fp32 by {MIN_SPEEDUP}x: {measured}")


def convert(model, precision: str, device: str | torch.device = "cpu", *, compile: bool = True):
    """``model`` (accelerated, on ``device``) in ``precision``, after :func:`check`: itself for
    fp32, else a converted copy. Resolves ``auto`` with :func:`choose` (logged). The result
    carries ``precision`` (the mode it runs) and ``precision_choice`` (auto's reason, or None)."""
    if precision not in CHOICES:
        raise ConfigError(f"precision must be one of {', '.join(CHOICES)}, got {precision!r}")
    reason = None
    if precision == "auto":
        picked = choose(device)
        precision, reason = picked.precision, f"auto: {picked.reason}"
        log.info("precision %s (%s)", precision, reason)
    check(precision, device)
    if precision == "bf16":
        from .bf16 import to_bf16

        model = to_bf16(model, compile=compile)
    elif precision == "int8":
        from .int8 import quantize_int8

        model = quantize_int8(model, compile=compile)
    model.precision = precision
    model.precision_choice = reason
    return model
