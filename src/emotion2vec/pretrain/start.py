"""Start points of pre-training: from scratch, a published or official checkpoint, a data2vec 2.0
checkpoint, one of our model folders, or a previous run."""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
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
from ..config import DecoderConfig, preset
from ..errors import CheckpointError
from ..model import Emotion2vecModel
from ..training.checkpointing import run_model_folder
from ..training.layerdrop import set_layerdrop
from .config import PRESET_ALIASES, PretrainConfig

log = logging.getLogger("emotion2vec.pretrain")


def init_weights(model: Emotion2vecModel) -> Emotion2vecModel:
    """The authors' initialisation for training from scratch (``mae_init: false``): every Linear
    N(0, 0.02) with zero bias (fairseq's ``init_bert_params``), then the feature projection's and
    the decoder's output Linear back to PyTorch's defaults (the modality encoder's
    ``reset_parameters``); LayerNorms at identity, convs at PyTorch's defaults, extra tokens
    (token 0 zeros, the others N(0, 1)) and ALiBi scales (1) as the official init."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    model.encoder.feature_projection.linear.reset_parameters()
    if model.decoder is not None:
        model.decoder.proj.reset_parameters()
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


@dataclasses.dataclass
class StartPoint:
    """A start model and, when the start checkpoint carried one, its EMA teacher."""

    model: Emotion2vecModel
    teacher: dict[str, torch.Tensor] | None = None
    """Teacher weights in our encoder's key names (no ``encoder.`` prefix), only the keys the
    checkpoint had; the rest of the teacher is a copy of the student."""


def _block_map(layout: str, context_depth: int, depth: int):
    """Official key -> official key of the target model, for a data2vec 2.0 start (None: drop)."""
    block = re.compile(r"^blocks\.(\d+)\.(.*)$")

    def target(key: str) -> str | None:
        m = block.match(key)
        if layout == "split" and m is not None:
            i, rest = int(m.group(1)), m.group(2)
            if i < context_depth:
                return f"{AUDIO}context_encoder.blocks.{i}.{rest}"
            return f"blocks.{i - context_depth}.{rest}" if i - context_depth < depth else None
        if layout == "split" and key.startswith(AUDIO + "context_encoder.blocks."):
            return None  # a checkpoint with its own context blocks: "split" reads main blocks only
        return key

    return target


def _identity(key: str) -> str:
    return key


def _ours(
    state: dict[str, torch.Tensor], target, model_keys: set[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Official ``state`` mapped through ``target`` onto our key names present in ``model_keys``
    (the ``strict=False`` reading: keys the model lacks are dropped). Returns (ours, dropped)."""
    ours: dict[str, torch.Tensor] = {}
    dropped = []
    for key, tensor in state.items():
        mapped = target(key)
        our_key = official_to_ours(mapped) if mapped is not None else None
        if our_key is None or our_key not in model_keys:
            dropped.append(key)
            continue
        ours[our_key] = official_tensor_to_ours(our_key, tensor)
    return ours, dropped


def teacher_state_from_official(
    state: dict[str, torch.Tensor], teacher_keys: set[str] | None = None, target=_identity
) -> dict[str, torch.Tensor]:
    """fairseq EMA teacher weights (``_ema`` / ``ema.fp32_params``, official key names, whole
    model or ``ema_encoder_only``) -> our teacher encoder's names (no ``encoder.`` prefix),
    official keys mapped through ``target`` first (a block layout). With ``teacher_keys``, names
    the teacher lacks are dropped (a ``strict=False`` load)."""
    named = {
        (f"blocks.{k}" if k[:1].isdigit() else k): v
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }
    keys = None if teacher_keys is None else {"encoder." + k for k in teacher_keys}
    if keys is None:
        keys = {
            k
            for k in (official_to_ours(m) for m in map(target, named) if m is not None)
            if k is not None
        }
    ours, _ = _ours(named, target, {k for k in keys if k.startswith("encoder.")})
    return {k[len("encoder.") :]: v for k, v in ours.items()}


def load_data2vec2(
    file: str | Path,
    extra_tokens: int = 10,
    *,
    layout: str = "authors",
    context_depth: int = 4,
    depth: int = 8,
) -> StartPoint:
    """A data2vec 2.0 audio checkpoint (no extra tokens) as the start of emotion2vec
    pre-training, with ``extra_tokens`` freshly initialised extra tokens.

    ``layout`` decides the architecture and where the checkpoint's blocks go:

    * "authors" (the emotion2vec run): a model of ``context_depth`` + ``depth`` blocks, loaded
      the way their ``load_state_dict(strict=False)`` did it: keys are matched by name, so
      checkpoint blocks 0..depth-1 become the main blocks, further blocks are dropped and the
      context blocks keep their fresh initialisation (data2vec 2.0 base has no context blocks);
    * "split": the first ``context_depth`` checkpoint blocks become the context blocks and the
      next ``depth`` the main blocks;
    * "keep": the checkpoint's own architecture (e.g. 0 + 12 blocks), loaded strictly.

    The checkpoint's ``_ema`` (fairseq's EMA teacher, ``ema_encoder_only`` or not) is mapped the
    same way into :attr:`StartPoint.teacher`. Fresh parameters get :func:`init_weights`.
    """
    file = Path(file)
    ckpt = load_pt(file)
    raw = unwrap_state_dict(ckpt, str(file))
    # the EMA teacher (``_ema``) and other non-tensor entries are not model weights
    state = {
        k: v
        for k, v in strip_plus_prefix(raw).items()
        if isinstance(v, torch.Tensor) and not k.startswith("_ema")
    }
    ema = raw.get("_ema") if isinstance(raw, dict) else None
    if ema is None and isinstance(ckpt.get("model"), dict):
        ema = ckpt["model"].get("_ema")
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
    if layout != "keep":
        config.encoder.context_depth = context_depth
        config.encoder.depth = depth
    model = init_weights(Emotion2vecModel(config))
    target = _block_map(layout, context_depth, depth)
    model_keys = set(model.state_dict())
    ours, dropped = _ours(state, target, model_keys)
    unknown = [k for k in dropped if official_to_ours(k) is None]
    if unknown:
        raise CheckpointError(
            f"{file}: checkpoint does not match the model\n  unexpected keys ({len(unknown)}): "
            + ", ".join(unknown)
        )
    if layout == "keep":
        ours["encoder.extra_tokens"] = model.encoder.extra_tokens.detach().clone()
        load_state_strict(model, ours, source=str(file))
    else:
        fresh = sorted(model_keys - set(ours))
        missing_main = [k for k in fresh if k.startswith("encoder.blocks.")]
        if missing_main:
            raise CheckpointError(
                f"{file}: has too few blocks for {depth} main blocks (layout {layout!r}); "
                f"missing {missing_main[0]} and {len(missing_main) - 1} more"
            )
        model.load_state_dict(ours, strict=False)
        log.info(
            "%s: data2vec 2.0 start, layout %r: %d tensors loaded, %d dropped (%s), %d left "
            "freshly initialised (%s)",
            file,
            layout,
            len(ours),
            len(dropped),
            _summary(dropped),
            len(fresh),
            _summary(fresh),
        )
    teacher = None
    if isinstance(ema, dict) and ema:
        teacher_keys = {k[len("encoder.") :] for k in model_keys if k.startswith("encoder.")}
        teacher = teacher_state_from_official(ema, teacher_keys, target)
        log.info(
            "%s: the EMA teacher starts from the checkpoint's _ema (%d tensors)", file, len(teacher)
        )
    log.info("%s: added %d freshly initialised extra tokens", file, extra_tokens)
    return StartPoint(model, teacher)


def _summary(keys: list[str]) -> str:
    groups = sorted({re.sub(r"\.(weight|bias)$", "", re.sub(r"\.\d+\..*$", ".*", k)) for k in keys})
    return ", ".join(groups[:6]) + (" ..." if len(groups) > 6 else "")


def load_start_model(
    name_or_path: str | Path,
    *,
    extra_tokens: int = 10,
    layout: str = "authors",
    context_depth: int = 4,
    depth: int = 8,
) -> StartPoint:
    """The start behind ``--init``: a run folder (its final model or last checkpoint), one of our
    model folders, an official checkpoint (file or folder), a published name, or a data2vec 2.0
    checkpoint (see :func:`load_data2vec2` for ``layout``)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        folder = run_model_folder(path)
        if folder is not None:
            log.info("starting from the run %s: %s", path, folder)
            path = folder
    if path.exists():
        file = _official_file(path)
        if file is not None and _lacks_extra_tokens(file):
            return load_data2vec2(
                file, extra_tokens, layout=layout, context_depth=context_depth, depth=depth
            )
        return StartPoint(load_model(path))
    return StartPoint(load_model(str(name_or_path)))


def add_decoder(model: Emotion2vecModel, decoder: DecoderConfig | None = None) -> Emotion2vecModel:
    """``model`` with a freshly initialised pre-training decoder (same weights otherwise)."""
    decoder = decoder or DecoderConfig()
    config = dataclasses.replace(copy.deepcopy(model.config), decoder=decoder)
    fresh = Emotion2vecModel(config)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise CheckpointError(f"cannot add a decoder: missing {missing}, unexpected {unexpected}")
    return fresh


def prepare_start(config: PretrainConfig, model: Emotion2vecModel | None = None) -> StartPoint:
    """The student a new run starts from, and its teacher when the start checkpoint had one:
    ``model`` if given, else ``config.init``, else a scratch ``config.preset``; with a decoder
    (created if the start point has none) and the layer-drop override applied. Seed torch first:
    every process must build the same model."""
    o = config.objective
    teacher = None
    if model is None:
        if config.init:
            start = load_start_model(
                config.init,
                extra_tokens=o.extra_tokens_if_missing,
                layout=o.init_layout,
                context_depth=o.init_context_depth,
                depth=o.init_depth,
            )
            model = start.model
            teacher = start.teacher if o.teacher_from_checkpoint else None
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
    return StartPoint(model, teacher)


def prepare_model(
    config: PretrainConfig, model: Emotion2vecModel | None = None
) -> Emotion2vecModel:
    """The student of :func:`prepare_start` alone."""
    return prepare_start(config, model).model
