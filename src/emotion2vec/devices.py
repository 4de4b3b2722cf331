"""``checked_device``: a device name checked against what this machine and this PyTorch build
have, so that ``--device cuda`` on a CPU-only build fails with one clear line instead of a
traceback from deep inside ``Module.to``."""

from __future__ import annotations

import torch

from .errors import ConfigError


def checked_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here, or a :class:`ConfigError` that
    says why not (unknown name, no CUDA in this build, no GPU visible, index out of range, no
    MPS)."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device {str(device)!r} is not a device name (expected cpu, cuda, cuda:N or mps)"
        ) from exc
    if resolved.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            raise ConfigError(
                f"device {str(device)!r}: this PyTorch build ({torch.__version__}) has no CUDA "
                "support; install a CUDA build of torch, or use cpu"
            )
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"device {str(device)!r}: no CUDA GPU is visible to this process")
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(
                f"device {str(device)!r}: this process sees {count} CUDA GPU(s), "
                f"numbered 0-{count - 1}"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device {str(device)!r}: MPS is not available here (it needs Apple silicon and a "
            "macOS build of PyTorch)"
        )
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"device {str(device)!r}: emotion2vec runs on cpu, cuda or mps, not {resolved.type}"
        )
    return resolved
