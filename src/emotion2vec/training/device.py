"""Where a run computes: the device of this process and the autocast precision."""

from __future__ import annotations

import torch

from ..devices import checked_device
from ..errors import ConfigError
from .distributed import DistInfo


def resolve_device(name: str, dist: DistInfo) -> torch.device:
    """Device for "auto": this process's GPU if there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    device = checked_device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device(f"cuda:{dist.local_rank}")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype (None: plain fp32); "auto" is fp32 on CPU and fp16 (with dynamic loss
    scaling) on GPUs, the precision of the authors' runs (fairseq ``fp16: true``)."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.float16
    if name == "fp32":
        return None
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 autocast needs a GPU; use fp32 (or bf16) on the CPU")
    return torch.bfloat16 if name == "bf16" else torch.float16
