"""The official checkpoint layouts.

* fairseq format (``emotion2vec_base.pt``): ``{"cfg": ..., "model": state_dict, ...}``, keys without
  prefix, pre-training decoder present, no head.
* FunASR format (``emotion2vec_plus_*`` folders): ``model.pt`` whose ``model`` dict has the backbone
  under ``d2v_model.`` and the 9-class head as ``proj.*``; ``config.yaml``; ``tokens.txt``.

Configs are read from the checkpoint's own config (fairseq ``cfg.model`` or FunASR
``config.yaml: model_conf``) when present, otherwise inferred from tensor shapes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import (
    EMOTION_LABELS,
    OFFICIAL_CONV_LAYERS,
    DecoderConfig,
    EncoderConfig,
    ModelConfig,
)
from ..errors import CheckpointError
from ..model import Emotion2vecModel
from .keymap import (
    AUDIO,
    official_tensor_to_ours,
    official_to_ours,
    ours_to_official,
)
from .safe_load import load_pt, load_state_strict

PLUS_PREFIX = "d2v_model."

#: The ``tokens.txt`` of the published plus models, in head output order.
OFFICIAL_TOKENS = (
    "生气/angry",
    "厌恶/disgusted",
    "恐惧/fearful",
    "开心/happy",
    "中立/neutral",
    "其他/other",
    "难过/sad",
    "吃惊/surprised",
    "<unk>",
)

#: What the tokens.txt entries of the plus models are called in our outputs.
_TOKEN_NAMES = {"<unk>": "unknown"}


def unwrap_state_dict(ckpt: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (under ``model``, ``state_dict`` or ``model_state_dict``,
    or the top level itself)."""
    for key in ("model", "state_dict", "model_state_dict"):
        inner = ckpt.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return {k: v for k, v in inner.items()}
    if any(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return {k: v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    raise CheckpointError(
        f"{source}: no state dict found (looked under 'model', 'state_dict', top level)"
    )


def strip_plus_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the FunASR ``d2v_model.`` prefix of backbone keys (head keys have none)."""
    return {
        (k[len(PLUS_PREFIX) :] if k.startswith(PLUS_PREFIX) else k): v for k, v in state.items()
    }


def parse_conv_spec(spec: Any) -> tuple[tuple[int, int, int], ...]:
    """Parse fairseq's ``feature_encoder_spec`` (a Python-expression string such as
    ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``) without ``eval``: only list/tuple literals, ``+``
    and ``*`` by an integer are accepted."""
    if not isinstance(spec, str):
        return tuple(tuple(int(v) for v in layer) for layer in spec)

    def ev(node: ast.AST):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return ev(node.left) + ev(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            left, right = ev(node.left), ev(node.right)
            return left * right
        if isinstance(node, (ast.List, ast.Tuple, ast.Constant)):
            return ast.literal_eval(node)
        raise CheckpointError(f"unsupported expression in feature_encoder_spec: {ast.dump(node)}")

    try:
        value = ev(ast.parse(spec, mode="eval"))
    except SyntaxError as exc:
        raise CheckpointError(f"cannot parse feature_encoder_spec {spec!r}: {exc}") from None
    return tuple(tuple(int(v) for v in layer) for layer in value)


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in state if (m := regex.match(k))}
    return max(found) + 1 if found else 0


#: Where each of our config fields is read from in an official model config: (section, official
#: name, our field). Sections: ``model`` is fairseq's ``cfg["model"]`` / FunASR's ``model_conf``,
#: ``audio`` its ``modalities.audio``, ``decoder`` that one's ``decoder``. Every read of an
#: official config goes through this table (:func:`official_values`); fields an official config
#: lacks are inferred from tensor shapes or take the published defaults.
#: Two need converting: ``feature_encoder_spec`` is a Python-literal string
#: (:func:`parse_conv_spec`), and ``conv_pos_width`` is the whole positional conv's width, our
#: per-layer kernel times the number of layers.
OFFICIAL_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("model", "embed_dim", "encoder.embed_dim"),
    ("model", "num_heads", "encoder.num_heads"),
    ("model", "mlp_ratio", "encoder.mlp_ratio"),
    ("model", "depth", "encoder.depth"),
    ("model", "norm_eps", "encoder.norm_eps"),
    ("model", "encoder_dropout", "encoder.dropout"),
    ("model", "attention_dropout", "encoder.attention_dropout"),
    ("model", "activation_dropout", "encoder.activation_dropout"),
    ("model", "post_mlp_drop", "encoder.post_mlp_dropout"),
    ("model", "layerdrop", "encoder.layerdrop"),
    ("audio", "feature_encoder_spec", "encoder.conv_layers"),
    ("audio", "prenet_depth", "encoder.context_depth"),
    ("audio", "prenet_dropout", "encoder.context_dropout"),
    ("audio", "prenet_layerdrop", "encoder.context_layerdrop"),
    ("audio", "conv_pos_width", "encoder.pos_conv_kernel"),
    ("audio", "conv_pos_depth", "encoder.pos_conv_layers"),
    ("audio", "conv_pos_groups", "encoder.pos_conv_groups"),
    ("audio", "num_extra_tokens", "encoder.num_extra_tokens"),
    ("decoder", "decoder_dim", "decoder.dim"),
    ("decoder", "decoder_kernel", "decoder.kernel"),
    ("decoder", "decoder_layers", "decoder.layers"),
    ("decoder", "decoder_groups", "decoder.groups"),
    ("decoder", "input_dropout", "decoder.input_dropout"),
)


def official_values(model_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values an official model config gives, by our field name (``"encoder.depth"``, ...),
    as written there (no conversion); fields it lacks are absent."""
    model = dict(model_cfg or {})
    audio = dict((model.get("modalities") or {}).get("audio") or {})
    sections = {"model": model, "audio": audio, "decoder": dict(audio.get("decoder") or {})}
    return {
        ours: sections[section][name]
        for section, name, ours in OFFICIAL_FIELDS
        if name in sections[section]
    }


def config_from_official(
    state: Mapping[str, torch.Tensor],
    model_cfg: Mapping[str, Any] | None = None,
    *,
    normalize: bool | None = None,
    labels: tuple[str, ...] | None = None,
) -> ModelConfig:
    """A ModelConfig for an official state dict (prefix stripped).

    ``model_cfg`` is fairseq's ``cfg["model"]`` or FunASR's ``model_conf``: its values take
    precedence; whatever it lacks is inferred from tensor shapes, and what shapes cannot tell
    (conv strides, dropouts) takes the published defaults.
    """
    given = official_values(model_cfg)
    try:
        extra = state[AUDIO + "extra_tokens"]
        alibi = state[AUDIO + "alibi_scale"]
        pos_w = state[AUDIO + "relative_positional_encoder.1.0.weight"]
    except KeyError as exc:
        raise CheckpointError(
            f"not an emotion2vec / data2vec 2.0 audio state dict: no {exc.args[0]}"
        ) from None
    embed_dim = int(given.get("encoder.embed_dim", extra.shape[-1]))
    fc1 = state.get("blocks.0.mlp.fc1.weight")

    # conv stack: channels and kernels from shapes, strides from the config or the official spec
    n_conv = _count(state, re.escape(AUDIO) + r"local_encoder\.conv_layers\.(\d+)\.0\.weight")
    if "encoder.conv_layers" in given:
        conv_layers = parse_conv_spec(given["encoder.conv_layers"])
    else:
        # strides are not in the tensors: without a config, only the official stack is accepted
        kernels = [
            int(state[AUDIO + f"local_encoder.conv_layers.{i}.0.weight"].shape[2])
            for i in range(n_conv)
        ]
        if kernels != [k for _, k, _ in OFFICIAL_CONV_LAYERS]:
            raise CheckpointError(
                f"conv kernels {kernels} differ from the official stack and the checkpoint has no "
                "config giving the strides (feature_encoder_spec); add a config.yaml with "
                "model_conf.modalities.audio.feature_encoder_spec"
            )
        conv_layers = tuple(
            (int(state[AUDIO + f"local_encoder.conv_layers.{i}.0.weight"].shape[0]), k, s)
            for i, (_, k, s) in enumerate(OFFICIAL_CONV_LAYERS)
        )

    pos_layers = (
        _count(state, re.escape(AUDIO) + r"relative_positional_encoder\.(\d+)\.0\.weight") - 1
    )
    if "encoder.pos_conv_kernel" in given and "encoder.pos_conv_layers" in given:
        pos_depth = int(given["encoder.pos_conv_layers"])
        pos_kernel = max(3, int(given["encoder.pos_conv_kernel"]) // pos_depth)  # width / depth
    else:
        pos_depth, pos_kernel = pos_layers, int(pos_w.shape[2])
    encoder = EncoderConfig(
        conv_layers=conv_layers,
        embed_dim=embed_dim,
        num_heads=int(given.get("encoder.num_heads", alibi.numel())),
        mlp_ratio=float(
            given.get("encoder.mlp_ratio", fc1.shape[0] / embed_dim if fc1 is not None else 4.0)
        ),
        context_depth=int(
            given.get(
                "encoder.context_depth",
                _count(state, re.escape(AUDIO) + r"context_encoder\.blocks\.(\d+)\."),
            )
        ),
        depth=int(given.get("encoder.depth", _count(state, r"blocks\.(\d+)\."))),
        norm_eps=float(given.get("encoder.norm_eps", 1e-5)),
        pos_conv_kernel=pos_kernel,
        pos_conv_layers=pos_depth,
        pos_conv_groups=int(given.get("encoder.pos_conv_groups", embed_dim // pos_w.shape[1])),
        num_extra_tokens=int(given.get("encoder.num_extra_tokens", extra.shape[-2])),
        dropout=float(given.get("encoder.dropout", 0.1)),
        attention_dropout=float(given.get("encoder.attention_dropout", 0.1)),
        activation_dropout=float(given.get("encoder.activation_dropout", 0.0)),
        post_mlp_dropout=float(given.get("encoder.post_mlp_dropout", 0.1)),
        context_dropout=float(given.get("encoder.context_dropout", 0.1)),
        layerdrop=float(given.get("encoder.layerdrop", 0.05)),
        context_layerdrop=float(given.get("encoder.context_layerdrop", 0.05)),
    )

    decoder = None
    dec_w = state.get(AUDIO + "decoder.blocks.0.0.weight")
    if dec_w is not None:
        decoder = DecoderConfig(
            dim=int(given.get("decoder.dim", dec_w.shape[0])),
            kernel=int(given.get("decoder.kernel", dec_w.shape[2])),
            layers=int(
                given.get(
                    "decoder.layers", _count(state, re.escape(AUDIO) + r"decoder\.blocks\.(\d+)\.")
                )
            ),
            groups=int(given.get("decoder.groups", embed_dim // dec_w.shape[1])),
            input_dropout=float(given.get("decoder.input_dropout", 0.1)),
        )

    head = state.get("proj.weight")
    if head is None:
        labels = ()
    elif labels is None:
        n = int(head.shape[0])
        labels = (
            EMOTION_LABELS if n == len(EMOTION_LABELS) else tuple(f"class_{i}" for i in range(n))
        )
    config = ModelConfig(
        encoder=encoder,
        decoder=decoder,
        labels=tuple(labels),
        normalize_waveform=True if normalize is None else bool(normalize),
    )
    config.validate()
    return config


def read_tokens(path: Path) -> tuple[str, ...]:
    """Labels from a FunASR ``tokens.txt`` (``生气/angry`` -> ``angry``, ``<unk>`` -> ``unknown``)."""
    labels = []
    for line in path.read_text(encoding="utf-8").splitlines():
        token = line.strip()
        if not token:
            continue
        name = token.split("/")[-1]
        labels.append(_TOKEN_NAMES.get(name, name))
    return tuple(labels)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path}: invalid YAML ({exc})") from None
    return data if isinstance(data, dict) else {}


def find_official_file(folder: Path) -> Path | None:
    """The checkpoint inside a downloaded official model folder."""
    meta = folder / "configuration.json"
    if meta.is_file():
        import json

        try:
            init = json.loads(meta.read_text(encoding="utf-8"))["file_path_metas"]["init_param"]
            if (folder / init).is_file():
                return folder / init
        except (KeyError, TypeError, ValueError):
            pass
    for name in ("model.pt", "emotion2vec_base.pt"):
        if (folder / name).is_file():
            return folder / name
    pts = sorted(folder.glob("*.pt"))
    return pts[0] if len(pts) == 1 else None


def load_official(
    path: str | Path, model_class: type[Emotion2vecModel] = Emotion2vecModel
) -> Emotion2vecModel:
    """Load an official checkpoint file or model folder strictly into our model (CPU, eval mode)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    ckpt_path = find_official_file(path) if path.is_dir() else path
    if ckpt_path is None:
        raise CheckpointError(f"{path}: no checkpoint (.pt) found in this folder")
    ckpt = load_pt(ckpt_path)
    raw = unwrap_state_dict(ckpt, str(ckpt_path))
    state = strip_plus_prefix(raw)
    prefixed = any(k.startswith(PLUS_PREFIX) for k in raw)

    model_cfg: dict[str, Any] | None = None
    normalize: bool | None = None
    cfg = ckpt.get("cfg")
    if isinstance(cfg, Mapping):
        model_cfg = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else None
        task = cfg.get("task")
        if isinstance(task, Mapping) and "normalize" in task:
            normalize = bool(task["normalize"])
    yaml_path = folder / "config.yaml"
    if yaml_path.is_file():
        conf = _read_yaml(yaml_path)
        if model_cfg is None and isinstance(conf.get("model_conf"), Mapping):
            model_cfg = conf["model_conf"]
        if normalize is None and isinstance(conf.get("model_conf"), Mapping):
            if "normalize" in conf["model_conf"]:
                normalize = bool(conf["model_conf"]["normalize"])
    labels = None
    tokens = folder / "tokens.txt"
    if "proj.weight" in state and tokens.is_file():
        labels = read_tokens(tokens)

    core = [
        AUDIO + "extra_tokens",
        AUDIO + "alibi_scale",
        AUDIO + "relative_positional_encoder.1.0.weight",
    ]
    absent = [(PLUS_PREFIX + k) if prefixed else k for k in core if k not in state]
    if absent:
        raise CheckpointError(
            f"{ckpt_path}: checkpoint does not match the model (not an emotion2vec / data2vec 2.0 "
            f"audio checkpoint?)\n  missing keys ({len(absent)}): " + ", ".join(absent)
        )
    try:
        config = config_from_official(state, model_cfg, normalize=normalize, labels=labels)
    except CheckpointError as exc:
        raise CheckpointError(f"{ckpt_path}: {exc}") from None
    model = model_class(config)

    ours: dict[str, torch.Tensor] = {}
    original_name: dict[str, str] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        our_key = official_to_ours(key)
        if our_key is None:
            unknown.append((PLUS_PREFIX + key) if prefixed and (PLUS_PREFIX + key) in raw else key)
            continue
        ours[our_key] = official_tensor_to_ours(our_key, tensor)
        original_name[our_key] = (
            (PLUS_PREFIX + key) if prefixed and not key.startswith("proj.") else key
        )

    def name_of(k: str) -> str:
        if k in original_name:
            return original_name[k]
        official = ours_to_official(k) or k
        return (
            (PLUS_PREFIX + official) if prefixed and not official.startswith("proj.") else official
        )

    load_state_strict(model, ours, source=str(ckpt_path), name_of=name_of, unknown=unknown)
    return model.eval()
