"""What users hold: the network plus its user-facing methods, and :func:`load_model`.

Layering (each imports only what is below it):
``pipeline`` -> ``inference`` / ``checkpoints`` / ``fast`` -> ``model``. The network
(:class:`emotion2vec.model.Emotion2vecModel`, used as is by training) knows nothing of loading
or inference; :class:`Emotion2vec` adds them on top.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import inference, provenance
from .checkpoints import loading, native
from .fast import accelerate
from .fast import precision as precisions
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
    def from_pretrained(cls, name_or_path, device="cpu", precision="fp32") -> Emotion2vec:
        """Load a published name, an official checkpoint or a folder in our format."""
        return load_model(name_or_path, device=device, precision=precision)


def load_model(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    precision: str = "fp32",
) -> Emotion2vec:
    """Load a model for inference: strictly, in eval mode on ``device``, with the fast modules
    (:func:`emotion2vec.fast.accelerate`). ``name_or_path`` as
    :func:`emotion2vec.checkpoints.load_model` (a folder in our format, an official checkpoint
    or folder, or a published name).

    ``precision``: "fp32" (default: the exact path), "bf16", "int8" (CPU only) or "auto" (picked
    by the hardware and a short calibration, logged): see :mod:`emotion2vec.fast.precision`.
    The model's ``precision`` attribute says which mode it runs (jobs record it in their
    provenance, so a resume in another mode is refused); its weights fingerprint stays the
    checkpoint's. A mode the device has no units for runs with a RuntimeWarning."""
    model = loading.load_model(
        name_or_path,
        device,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        model_class=Emotion2vec,
    )
    model = accelerate(model)
    if precision == "fp32":
        model.precision, model.precision_choice = "fp32", None
        return model
    fingerprint = provenance.weights_sha256(model)  # of the checkpoint, not of its bf16 / int8 copy
    model = precisions.convert(model, precision, device)
    model._e2v_weights_sha256 = fingerprint
    return model
