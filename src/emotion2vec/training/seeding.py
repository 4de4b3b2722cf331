"""Seeds and RNG states.

Each micro-batch reseeds every generator from (run seed, global micro-batch number) before its
forward pass, so dropout, layer drop, masks and noise of micro-batch ``g`` are the same whether
it runs in one process or another, in one accumulation step or another, before or after a
resume. That makes runs reproducible across world sizes and exactly resumable.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed from a run seed and integer keys (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(seed), *[int(k) for k in keys]]).generate_state(
        2, dtype=np.uint32
    )
    return (int(state[0]) << 31 | int(state[1])) & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every GPU), numpy's global generator and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % (1 << 32))
    random.seed(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU torch generator with this seed."""
    return torch.Generator().manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain Python values (weights_only-loadable)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value
