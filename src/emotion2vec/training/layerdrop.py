"""Layer drop for a training run: both block stacks of a model config get one value."""

from __future__ import annotations

from ..config import ModelConfig


def set_layerdrop(config: ModelConfig, layerdrop: float | None) -> None:
    """Override the layer drop of both block stacks (training only; kept in the saved config)."""
    if layerdrop is not None:
        config.encoder.layerdrop = layerdrop
        config.encoder.context_layerdrop = layerdrop
