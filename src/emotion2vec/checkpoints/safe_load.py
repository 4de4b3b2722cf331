"""Loading ``.pt`` files without executing code, and strict state-dict loading."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError


def load_pt(path: str | Path) -> dict:
    """torch.load with ``weights_only=True`` (never unpickles arbitrary objects).

    Memory-maps zip-format files so that optimiser state carried by the official checkpoints
    (two Adam moments per weight) is never read into memory.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zip" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc) and "GLOBAL" not in str(exc):
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint (the file is damaged or of another "
                f"kind; torch said: {str(exc).splitlines()[0]})"
            ) from None
        raise CheckpointError(
            f"{path}: refused to load: this checkpoint stores Python objects that can only be "
            "restored by running code from the file (it is not a plain dict of tensors, numbers "
            "and strings), and emotion2vec never executes checkpoint code. If you trust the "
            "file, re-save its plain state dict in that environment, e.g. "
            "torch.save({'model': ckpt['model']}, 'clean.pt'), and load clean.pt. "
            f"(torch said: {str(exc).splitlines()[0]})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse is "not a checkpoint"
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict at the top level, found {type(obj).__name__}"
        )
    return dict(obj)


def load_state_strict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    name_of=lambda k: k,
    unknown: list[str] | None = None,
) -> None:
    """Copy ``state`` into ``model``; raise CheckpointError listing every missing, unexpected
    and mis-shaped key (``name_of`` maps our key to the name the user's file uses; ``unknown``
    are keys of the file that map to no parameter at all, reported as unexpected as they are)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        (k, tuple(state[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or misshaped or unknown:
        lines = [f"{source}: checkpoint does not match the model"]
        if missing:
            lines.append(
                f"  missing keys ({len(missing)}): " + ", ".join(name_of(k) for k in missing)
            )
        names = [name_of(k) for k in unexpected] + list(unknown or [])
        if names:
            lines.append(f"  unexpected keys ({len(names)}): " + ", ".join(names))
        for k, got, want in misshaped:
            lines.append(
                f"  mis-shaped: {name_of(k)} has shape {list(got)}, model expects {list(want)}"
            )
        raise CheckpointError("\n".join(lines))
    bad = [
        name_of(k)
        for k, value in state.items()
        if k in expected and torch.is_floating_point(value) and not bool(torch.isfinite(value).all())
    ]
    if bad:
        raise CheckpointError(
            f"{source}: non-finite weights (NaN or inf) in {len(bad)} tensor(s): "
            + ", ".join(bad[:8])
            + (" ..." if len(bad) > 8 else "")
            + "; the checkpoint is damaged or diverged in training"
        )
    with torch.no_grad():
        for k, target in expected.items():
            value = state[k]
            if not torch.is_floating_point(value) and torch.is_floating_point(target):
                raise CheckpointError(
                    f"{source}: {name_of(k)} has dtype {value.dtype}, expected float"
                )
            target.copy_(value.to(target.dtype))
