"""What a benchmark ran on, printed with every result (machines differ between sessions)."""

from __future__ import annotations

import os
from pathlib import Path

#: CPU flags that change which precision modes and kernels are fast.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_description() -> str:
    """``<model name> [<flags of interest>], N cores`` from /proc/cpuinfo (Linux)."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    try:
        import torch

        capability = f", torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    except (ImportError, AttributeError):
        capability = ""
    have = " ".join(f for f in FLAGS if f in flags) or "none of " + ", ".join(FLAGS)
    return f"{model} [{have}], {os.cpu_count()} cores{capability}"
