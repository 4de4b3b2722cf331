"""``load_model``: one entry point for every kind of checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from ..devices import checked_device
from ..errors import CheckpointError
from ..model import Emotion2vecModel
from . import hub, native, official


def load_model(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    model_class: type[Emotion2vecModel] = Emotion2vecModel,
) -> Emotion2vecModel:
    """Load a model, strictly, in eval mode on ``device``, as a new ``model_class`` (the plain
    network by default; :func:`emotion2vec.load_model` asks for the user-facing subclass and
    swaps in the fast modules).

    ``name_or_path`` is one of:

    * a folder in our format (``model.safetensors`` + ``config.json``, from ``save_pretrained``);
    * an official model folder (FunASR layout: ``model.pt`` + ``config.yaml`` [+ ``tokens.txt``])
      or an official ``.pt`` file (fairseq ``emotion2vec_base.pt`` or a plus ``model.pt``);
    * a published name: ``emotion2vec_base``, ``emotion2vec_plus_seed``, ``emotion2vec_plus_base``,
      ``emotion2vec_plus_large`` (also ``emotion2vec/<name>`` or ``iic/<name>``), fetched through
      the Hugging Face cache.
    """
    device = checked_device(device)  # before the (slow) load: a bad device fails at once
    path = Path(name_or_path).expanduser()
    if path.exists():
        model = _load_local(path, model_class)
    elif hub.split_name(str(name_or_path)) is not None:
        folder = hub.resolve(
            str(name_or_path),
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        model = _load_local(folder, model_class)
    else:
        raise CheckpointError(
            f"{name_or_path}: no such file or folder, and not a published model name "
            f"({', '.join(hub.PUBLISHED_MODELS)})"
        )
    model = model.to(device).eval()
    model.name_or_path = str(name_or_path)  # what the user asked for (provenance of outputs)
    return model


def _load_local(path: Path, model_class: type[Emotion2vecModel]) -> Emotion2vecModel:
    if path.is_dir():
        if native.is_native_folder(path):
            return native.load_pretrained(path, model_class)
        if official.find_official_file(path) is not None:
            return official.load_official(path, model_class)
        raise CheckpointError(
            f"{path}: not a model folder: expected model.safetensors + config.json (our format) "
            "or an official .pt checkpoint (model.pt / emotion2vec_base.pt)"
        )
    if path.suffix == ".safetensors":
        if native.is_native_folder(path.parent):
            return native.load_pretrained(path.parent, model_class)
        raise CheckpointError(
            f"{path}: a .safetensors file needs its config.json in the same folder"
        )
    if path.name == native.CONFIG_NAME:
        return native.load_pretrained(path.parent, model_class)
    return official.load_official(path, model_class)
