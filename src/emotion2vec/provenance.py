"""What made an output: recorded next to it, checked before a run resumes into it.

Every output folder of ``extract`` holds ``provenance.json`` and every score file of ``predict``
a ``<output>.provenance.json``: the model (its name and a SHA-256 of its weights), what was
computed (granularity, layers, windows, label set, numeric precision) and the package version. A run that finds an
existing output resumes into it only when the fields that decide the numbers are equal;
otherwise it stops before any work with one line saying what differs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .atomic import write_text
from .errors import OutputConflictError
from .version import __version__

FORMAT = "emotion2vec.provenance/1"
#: Fields that must match for a run to resume into an existing output.
IDENTITY = (
    "kind",
    "model_sha256",
    "granularity",
    "layers",
    "window_seconds",
    "hop_seconds",
    "labels",
    "precision",
)
#: Values of identity fields in records written before the field existed.
ABSENT_MEANS = {"precision": "fp32"}


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of the model's tensors (names, dtypes, shapes and bytes, in name order); cached on
    the model object."""
    cached = getattr(model, "_e2v_weights_sha256", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()
    try:
        model._e2v_weights_sha256 = digest  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return digest


def make(
    model: torch.nn.Module, kind: str, *, model_name: str | None = None, **settings: Any
) -> dict:
    """The provenance record of a job of ``kind`` ("extract" / "predict") with ``settings``."""
    record = {
        "format": FORMAT,
        "kind": kind,
        "model": model_name or getattr(model, "name_or_path", None) or type(model).__name__,
        "model_sha256": weights_sha256(model),
        "package_version": __version__,
        # the numeric mode (emotion2vec.fast.precision); "auto" is recorded as what it picked
        "precision": getattr(model, "precision", None) or "fp32",
    }
    choice = getattr(model, "precision_choice", None)
    if choice:
        record["precision_choice"] = choice
    record.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()})
    return record


def read(path: Path) -> dict | None:
    """The record at ``path``, or None when there is none."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputConflictError(
            f"{path}: unreadable provenance ({exc}); pass --overwrite to start over"
        ) from None
    return record if isinstance(record, dict) else None


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable differences of the identity fields."""
    out = []
    for key in IDENTITY:
        a, b = old.get(key, ABSENT_MEANS.get(key)), new.get(key, ABSENT_MEANS.get(key))
        if a != b:
            if key == "model_sha256":
                out.append(
                    f"model weights ({old.get('model')} sha256 {str(a)[:12]} vs "
                    f"{new.get('model')} sha256 {str(b)[:12]})"
                )
            else:
                out.append(f"{key} ({a!r} vs {b!r})")
    return out


def check_resume(
    path: Path, record: dict, *, what: str, has_outputs: bool, overwrite: bool
) -> None:
    """Refuse to resume into an output made differently; write ``record`` when the run may go on.

    ``has_outputs``: the output already holds results (without a provenance file, they cannot be
    attributed and resuming is refused).
    """
    if not overwrite:
        old = read(path)
        if old is None and has_outputs:
            raise OutputConflictError(
                f"{what} already holds outputs but no {path.name} (written by hand or by an older "
                "version): cannot tell what made them; pass --overwrite to replace them, or choose "
                "another output"
            )
        if old is not None:
            diff = differences(old, record)
            if diff:
                raise OutputConflictError(
                    f"{what} was made differently: " + "; ".join(diff) + " (existing vs this run); "
                    "pass --overwrite to replace its outputs, or choose another output"
                )
    write_text(path, json.dumps(record, indent=2) + "\n")
