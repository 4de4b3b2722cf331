"""Start points of pre-training: from scratch, a published or official checkpoint, a data2vec 2.0
checkpoint, one of our model folders, or a previous run."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import load_model
from ..checkpoints.keymap import AUDIO, official_tensor_to_ours, official_to_ours
from ..checkpoints.native import is_native_folder
from ..checkpoints.official import (
    config_from_official,
    find_official_file,
    strip_plus_prefix,
    unwrap_state_dict,
)
from ..checkpoints.safe_load import load_pt, load_state_strict
from ..config import DecoderConfig, ModelConfig, preset
from ..errors import CheckpointError
from ..model import Emotion2vecModel
from .checkpointing import run_model_folder
from .config import PRESET_ALIASES, PretrainConfig

log = logging.getLogger("emotion2vec.pretrain")


def init_weights(model: Emotion2vecModel) -> Emotion2vecModel:
    """Initialisation for training from scratch: Linear layers Xavier-uniform with zero bias and
    LayerNorms at identity (data2vec 2.0's ``_init_weights``, as we read it); convs keep PyTorch's
    defaults; extra tokens and ALiBi scales get the official init."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    model.encoder.reset_parameters()
    return model


def scratch_model(name: str) -> Emotion2vecModel:
    """A freshly initialised model of preset ``name`` ("base", "tiny" or a model preset)."""
    return init_weights(Emotion2vecModel(preset(PRESET_ALIASES.get(name, name))))


def _official_file(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".pt":
        return path
    if path.is_dir() and not is_native_folder(path):
        return find_official_file(path)
    return None


def _lacks_extra_tokens(file: Path) -> bool:
    state = strip_plus_prefix(unwrap_state_dict(load_pt(file), str(file)))
    return AUDIO + "extra_tokens" not in state and AUDIO + "alibi_scale" in state


def load_data2vec2(file: str | Path, extra_tokens: int = 10) -> Emotion2vecModel:
    """A data2vec 2.0 audio checkpoint (no extra tokens) as an emotion2vec model with
    ``extra_tokens`` freshly initialised extra tokens (the paper initialises emotion2vec from
    data2vec 2.0 and adds utterance tokens). Everything else is loaded strictly."""
    file = Path(file)
    ckpt = load_pt(file)
    raw = unwrap_state_dict(ckpt, str(file))
    # the EMA teacher (``_ema``) and other non-tensor entries are not model weights
    state = {
        k: v
        for k, v in strip_plus_prefix(raw).items()
        if isinstance(v, torch.Tensor) and not k.startswith("_ema")
    }
    cfg = ckpt.get("cfg") if isinstance(ckpt.get("cfg"), dict) else {}
    model_cfg: dict[str, Any] = copy.deepcopy(cfg.get("model") or {})
    model_cfg.setdefault("modalities", {}).setdefault("audio", {})["num_extra_tokens"] = (
        extra_tokens
    )
    task = cfg.get("task") if isinstance(cfg.get("task"), dict) else {}
    normalize = bool(task["normalize"]) if "normalize" in task else None
    pos = state.get(AUDIO + "relative_positional_encoder.1.0.weight")
    if pos is None:
        raise CheckpointError(f"{file}: not a data2vec 2.0 audio checkpoint (no positional conv)")
    shaped = {**state, AUDIO + "extra_tokens": torch.zeros(1, extra_tokens, pos.shape[0])}
    config = config_from_official(shaped, model_cfg, normalize=normalize)
    model = Emotion2vecModel(config)
    ours: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        our_key = official_to_ours(key)
        if our_key is None:
            unknown.append(key)
        else:
            ours[our_key] = official_tensor_to_ours(our_key, tensor)
    if unknown:
        raise CheckpointError(
            f"{file}: checkpoint does not match the model\n  unexpected keys ({len(unknown)}): "
            + ", ".join(unknown)
        )
    ours["encoder.extra_tokens"] = model.encoder.extra_tokens.detach().clone()
    load_state_strict(model, ours, source=str(file))
    log.info(
        "%s is a data2vec 2.0 checkpoint without extra tokens: added %d freshly initialised "
        "extra tokens",
        file,
        extra_tokens,
    )
    return model


def load_start_model(name_or_path: str | Path, *, extra_tokens: int = 10) -> Emotion2vecModel:
    """The model behind ``--init``: a run folder (its final model or last checkpoint), one of our
    model folders, an official checkpoint (file or folder), a published name, or a data2vec 2.0
    checkpoint."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        folder = run_model_folder(path)
        if folder is not None:
            log.info("starting from the run %s: %s", path, folder)
            path = folder
    if path.exists():
        file = _official_file(path)
        if file is not None and _lacks_extra_tokens(file):
            return load_data2vec2(file, extra_tokens)
        return load_model(path)
    return load_model(str(name_or_path))


def add_decoder(model: Emotion2vecModel, decoder: DecoderConfig | None = None) -> Emotion2vecModel:
    """``model`` with a freshly initialised pre-training decoder (same weights otherwise)."""
    decoder = decoder or DecoderConfig()
    config = dataclasses.replace(copy.deepcopy(model.config), decoder=decoder)
    fresh = Emotion2vecModel(config)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise CheckpointError(f"cannot add a decoder: missing {missing}, unexpected {unexpected}")
    return fresh


def set_layerdrop(config: ModelConfig, layerdrop: float | None) -> None:
    """Override the layer drop of both block stacks (training only; kept in the saved config)."""
    if layerdrop is not None:
        config.encoder.layerdrop = layerdrop
        config.encoder.context_layerdrop = layerdrop


def prepare_model(
    config: PretrainConfig, model: Emotion2vecModel | None = None
) -> Emotion2vecModel:
    """The student a new run starts from: ``model`` if given, else ``config.init``, else a
    scratch ``config.preset``; with a decoder (created if the start point has none) and the
    layer-drop override applied. Seed torch first: every process must build the same model."""
    if model is None:
        if config.init:
            model = load_start_model(
                config.init, extra_tokens=config.objective.extra_tokens_if_missing
            )
        else:
            model = scratch_model(config.preset)
            log.info("training %s from scratch", config.preset)
    if model.decoder is None:
        model = add_decoder(model)
        d = model.config.decoder
        log.info(
            "the start model has no pre-training decoder (an emotion2vec+ or data2vec 2.0 "
            "model): created a fresh one (dim %d, %d layers, kernel %d, groups %d)",
            d.dim,
            d.layers,
            d.kernel,
            d.groups,
        )
    if model.head is not None:
        log.info(
            "keeping the start model's %d-class emotion head, frozen: pre-training does not "
            "train it, so fine-tune before trusting its predictions",
            len(model.labels),
        )
    set_layerdrop(model.config, config.layerdrop)
    return model
