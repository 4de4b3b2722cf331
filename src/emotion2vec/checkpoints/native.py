"""Our own checkpoint format: ``model.safetensors`` + ``config.json`` in one folder."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write
from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError
from ..model import Emotion2vecModel
from .safe_load import load_state_strict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1


def save_pretrained(model: Emotion2vecModel, directory: str | Path) -> Path:
    """Write weights and config into ``directory`` (created if needed); each file atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "emotion2vec", "format_version": str(FORMAT_VERSION)}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata=meta))
    doc = {
        "format": "emotion2vec",
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return directory


def is_native_folder(path: Path) -> bool:
    """True for a folder written by :func:`save_pretrained`."""
    return path.is_dir() and (path / WEIGHTS_NAME).is_file() and (path / CONFIG_NAME).is_file()


def read_config(directory: Path) -> ModelConfig:
    """The ModelConfig stored in ``directory/config.json``."""
    path = directory / CONFIG_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != "emotion2vec" or "model" not in doc:
        raise CheckpointError(f"{path}: not an emotion2vec config.json (missing 'format'/'model')")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer emotion2vec (format {doc['format_version']}); upgrade the package"
        )
    try:
        return ModelConfig.from_dict(doc["model"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_pretrained(
    directory: str | Path, model_class: type[Emotion2vecModel] = Emotion2vecModel
) -> Emotion2vecModel:
    """Load a folder written by :func:`save_pretrained` strictly (CPU, eval mode) into a new
    ``model_class`` (an :class:`Emotion2vecModel` or a subclass)."""
    directory = Path(directory)
    config = read_config(directory)
    model = model_class(config)
    weights = directory / WEIGHTS_NAME
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: cannot read safetensors file ({exc})") from None
    load_state_strict(model, state, source=str(weights))
    return model.eval()
