"""What users hold: the network plus its user-facing methods, and :func:`load_model`.

Layering (each imports only what is below it):
``pipeline`` -> ``inference`` / ``checkpoints`` / ``fast`` -> ``model``. The network
(:class:`emotion2vec.model.Emotion2vecModel`, used as is by training) knows nothing of loading
or inference; :class:`Emotion2vec` adds them on top.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import inference
from .checkpoints import loading, native
from .fast import accelerate
from .model import Emotion2vecModel


class Emotion2vec(Emotion2vecModel):
    """The network with ``extract`` / ``predict`` / ``save_pretrained`` / ``from_pretrained``
    (also exported as ``emotion2vec.Emotion2vecModel``). Built from a config it runs the reference
    modules; :func:`load_model` returns one with the fast modules swapped in."""

    def extract(self, audio, sample_rate=None, granularity="utterance", **kwargs):
        """Features of one input or a list of inputs: see :func:`emotion2vec.inference.extract`."""
        return inference.extract(
            self, audio, sample_rate=sample_rate, granularity=granularity, **kwargs
        )

    def predict(self, audio, sample_rate=None, **kwargs):
        """Emotion of one input or a list of inputs: see :func:`emotion2vec.inference.predict`."""
        return inference.predict(self, audio, sample_rate=sample_rate, **kwargs)

    def save_pretrained(self, directory) -> None:
        """Write ``model.safetensors`` + ``config.json`` (our format) into ``directory``."""
        native.save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, name_or_path, device="cpu") -> Emotion2vec:
        """Load a published name, an official checkpoint or a folder in our format."""
        return load_model(name_or_path, device=device)


def load_model(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Emotion2vec:
    """Load a model for inference: strictly, in eval mode on ``device``, with the fast modules
    (:func:`emotion2vec.fast.accelerate`). ``name_or_path`` as
    :func:`emotion2vec.checkpoints.load_model` (a folder in our format, an official checkpoint
    or folder, or a published name)."""
    model = loading.load_model(
        name_or_path,
        device,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        model_class=Emotion2vec,
    )
    return accelerate(model)
