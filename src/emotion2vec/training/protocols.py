"""What the engine needs from a training objective and from a batch source.

An :class:`Objective` supplies the trainable module, the loss of a micro-batch as a *sum* with
its sample size (:class:`StepOutput`), and what follows an update; a :class:`BatchSource`
supplies numbered micro-batches. Pre-training (:mod:`emotion2vec.pretrain.objective`) and
fine-tuning (:mod:`emotion2vec.finetune.objective`) implement them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn


@dataclass
class StepOutput:
    """What an objective returns for one micro-batch."""

    loss: torch.Tensor
    """Scalar *sum* of per-sample losses (the engine divides by the total sample size)."""
    sample_size: float
    """What ``loss`` sums over (pre-training: masked frames)."""
    stats: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """name -> (sum, count): logged as sum / count over the update (tensors or numbers)."""


class Objective(Protocol):
    """What the engine needs from a training objective."""

    module: nn.Module
    """The trainable module: moved to the device, wrapped in DDP, optimised, checkpointed."""
    stat_names: tuple[str, ...]
    """Names of the stats every :meth:`step` reports (the same on every process)."""

    def to(self, device: torch.device) -> None:
        """Move everything (including non-trainable parts) to ``device``."""

    def step(self, module: nn.Module, batch: Any) -> StepOutput:
        """Loss of one micro-batch; call ``module`` (maybe DDP-wrapped) for the forward pass."""

    def after_update(self, step: int) -> dict[str, float]:
        """Called after optimizer update number ``step`` (1-based); returns values to log."""

    def check(self, stats: Mapping[str, float], step: int) -> None:
        """Raise to stop training (e.g. collapse), given the update's reduced stats."""

    def state_dict(self) -> dict[str, Any]:
        """Objective state beyond the module's weights (plain tensors and containers)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""

    def save_model(self, directory: Path) -> None:
        """Write the model folder of a checkpoint (loadable by ``emotion2vec.load_model``)."""


class BatchSource(Protocol):
    """Numbered micro-batches (each with ``.index``, ``.audio_seconds`` and ``.to(device)``)."""

    def iterate(self, indices: Iterable[int]) -> Iterator[Any]:
        """Batches for ``indices``, in order."""

    def epoch_of(self, index: int) -> float:
        """Fractional epoch of micro-batch ``index``."""
