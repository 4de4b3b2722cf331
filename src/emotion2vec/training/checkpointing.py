"""Run folders: checkpoints written atomically, the ``last`` pointer, pruning, the best and the
final model.

Layout::

    RUN_DIR/checkpoints/step_0001000/model.safetensors  our model format (emotion2vec.load_model)
    RUN_DIR/checkpoints/step_0001000/config.json
    RUN_DIR/checkpoints/step_0001000/trainer_state.pt   optimizer, schedule, objective, RNG,
                                                         data position, step (plain containers)
    RUN_DIR/checkpoints/last                             text file: "step_0001000"
    RUN_DIR/best/                                        the best model so far on validation
                                                         (runs that validate: fine-tuning)
    RUN_DIR/final/                                       the final model folder

A checkpoint folder is written under a temporary name and renamed into place, then ``last`` is
replaced atomically, so a crash at any moment leaves the previous checkpoint usable. Trainer
states hold only tensors and plain containers (``torch.load(weights_only=True)``), never pickled
classes, so moving a class between modules never breaks the resume of an older run.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_text
from ..errors import CheckpointError, ConfigError

CHECKPOINTS = "checkpoints"
LAST = "last"
BEST = "best"
FINAL = "final"
STATE_NAME = "trainer_state.pt"
_STEP_RE = re.compile(r"step_(\d+)\Z")


def step_dir_name(step: int) -> str:
    """``step_0001000``."""
    return f"step_{step:07d}"


def write_dir_atomically(target: Path, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp)`` on a fresh temporary folder next to ``target``, then move it into
    place (replacing an existing ``target``). Returns ``target``; on failure only the temporary
    folder is removed and an existing ``target`` stays as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        fill(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_RE.match(child.name)
        if m and child.is_dir() and (child / STATE_NAME).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def save_checkpoint(
    run_dir: Path,
    step: int,
    save_model: Callable[[Path], None],
    state: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write ``checkpoints/step_XXXXXXX`` (model folder + trainer state), point ``last`` at it and
    delete all but the ``keep_last`` newest checkpoints. Returns the folder."""
    run_dir = Path(run_dir)
    name = step_dir_name(step)

    def fill(tmp: Path) -> None:
        save_model(tmp)
        torch.save(state, tmp / STATE_NAME)

    folder = write_dir_atomically(run_dir / CHECKPOINTS / name, fill)
    write_text(run_dir / CHECKPOINTS / LAST, name + "\n")
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def save_final(run_dir: Path, save_model: Callable[[Path], None]) -> Path:
    """Write ``RUN_DIR/final`` (a model folder) atomically."""
    return write_dir_atomically(Path(run_dir) / FINAL, save_model)


def save_best(run_dir: Path, save_model: Callable[[Path], None]) -> Path:
    """Write ``RUN_DIR/best`` (a model folder) atomically."""
    return write_dir_atomically(Path(run_dir) / BEST, save_model)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``last`` points to; the newest complete one if the pointer is missing or stale."""
    run_dir = Path(run_dir)
    pointer = run_dir / CHECKPOINTS / LAST
    if pointer.is_file():
        folder = run_dir / CHECKPOINTS / pointer.read_text(encoding="utf-8").strip()
        if (folder / STATE_NAME).is_file():
            return folder
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """The trainer state of a checkpoint folder (``torch.load(weights_only=True)``)."""
    path = Path(folder) / STATE_NAME
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no trainer state in this checkpoint folder") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
        raise CheckpointError(f"{path}: cannot read trainer state ({exc})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: not a trainer state (no 'step')")
    return state


def run_model_folder(path: Path) -> Path | None:
    """For a run folder: its ``final`` model, else its last checkpoint; None for other paths."""
    path = Path(path)
    if (path / FINAL / "config.json").is_file():
        return path / FINAL
    if (path / CHECKPOINTS).is_dir():
        return latest_checkpoint(path)
    return None


def resume_point(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from: the latest one with ``resume``, else None.

    Refuses to resume a folder without checkpoints, and to start a new run in a folder that
    already holds one (which would mix two runs' checkpoints)."""
    run_dir = Path(run_dir)
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise ConfigError(
                f"{run_dir}: nothing to resume (no checkpoint under {run_dir / CHECKPOINTS}); "
                "start without --resume"
            )
        return checkpoint
    if list_checkpoints(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run's checkpoints: pass --resume to continue it, or "
            "choose a new --out folder"
        )
    return None
