"""Writers of the official checkpoint layouts, for tests only: they build fairseq
(``emotion2vec_base.pt``) and FunASR (``emotion2vec_plus_*`` folder) files from our models, so
the loaders in :mod:`emotion2vec.checkpoints.official` can be tested without the published
weights. The library reads these layouts; it never needs to write them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from emotion2vec.checkpoints.keymap import AUDIO, ours_tensor_to_official, ours_to_official
from emotion2vec.checkpoints.official import OFFICIAL_TOKENS, PLUS_PREFIX
from emotion2vec.config import EMOTION_LABELS, ModelConfig
from emotion2vec.errors import CheckpointError
from emotion2vec.model import Emotion2vecModel


def to_official_state(model: Emotion2vecModel, *, plus_layout: bool) -> dict[str, torch.Tensor]:
    """Our weights in the official key layout (``plus_layout``: ``d2v_model.`` prefix, no decoder)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        official = ours_to_official(key)
        if official is None:
            raise CheckpointError(f"no official name for parameter {key}")
        if plus_layout and official.startswith(AUDIO + "decoder."):
            continue
        if plus_layout and not official.startswith("proj."):
            official = PLUS_PREFIX + official
        out[official] = ours_tensor_to_official(key, tensor.detach().clone())
    return out


#: Training-only fields of the official model config, with the values of emotion2vec_base's
#: training config (FunASR ``template.yaml``). Inference ignores them, but FunASR refuses a
#: config that lacks them, so written configs carry them.
TRAINING_FIELDS: dict[str, Any] = {
    "loss_beta": 0.0,
    "loss_scale": None,
    "start_drop_path_rate": 0.0,
    "end_drop_path_rate": 0.0,
    "norm_affine": True,
    "dropout_input": 0.0,
    "end_of_block_targets": False,
    "clone_batch": 8,
    "layer_norm_target_layer": False,
    "batch_norm_target_layer": False,
    "instance_norm_target_layer": True,
    "instance_norm_targets": False,
    "layer_norm_targets": False,
    "ema_decay": 0.999,
    "ema_same_dtype": True,
    "log_norms": True,
    "ema_end_decay": 0.99999,
    "ema_anneal_end_step": 20000,
    "ema_encoder_only": False,
    "max_update": 100000,
    "extractor_mode": "layer_norm",
    "shared_decoder": None,
    "min_target_var": 0.1,
    "min_pred_var": 0.01,
    "supported_modality": "AUDIO",
    "mae_init": False,
    "seed": 1,
    "skip_ema": False,
    "cls_loss": 1.0,
    "recon_loss": 0.0,
    "d2v_loss": 1.0,
    "decoder_group": False,
    "adversarial_training": False,
    "adversarial_hidden_dim": 128,
    "adversarial_weight": 0.1,
    "cls_type": "chunk",
}
AUDIO_TRAINING_FIELDS: dict[str, Any] = {
    "type": "AUDIO",
    "start_drop_path_rate": 0.0,
    "end_drop_path_rate": 0.0,
    "init_extra_token_zero": True,
    "mask_noise_std": 0.01,
    "mask_prob_min": None,
    "mask_prob": 0.5,
    "inverse_mask": False,
    "mask_prob_adjust": 0.05,
    "keep_masked_pct": 0.0,
    "mask_length": 5,
    "add_masks": False,
    "remove_masks": False,
    "mask_dropout": 0.0,
    "encoder_zero_mask": True,
    "mask_channel_prob": 0.0,
    "mask_channel_length": 64,
    "ema_local_encoder": False,
    "local_grad_mult": 1.0,
    "use_alibi_encoder": True,
    "alibi_scale": 1.0,
    "learned_alibi": False,
    "alibi_max_pos": None,
    "learned_alibi_scale": True,
    "learned_alibi_scale_per_head": True,
    "learned_alibi_scale_per_layer": False,
    "extractor_mode": "layer_norm",
    "conv_pos_pre_ln": False,
}


def official_model_cfg(config: ModelConfig) -> dict[str, Any]:
    """The complete fairseq/FunASR model config (``cfg.model`` / ``model_conf``) for ``config``."""
    e = config.encoder
    spec = "[" + ", ".join(f"({c}, {k}, {s})" for c, k, s in e.conv_layers) + "]"
    audio: dict[str, Any] = {
        **AUDIO_TRAINING_FIELDS,
        "feature_encoder_spec": spec,
        "prenet_depth": e.context_depth,
        "prenet_dropout": e.context_dropout,
        "prenet_layerdrop": e.context_layerdrop,
        "conv_pos_width": e.pos_conv_kernel * e.pos_conv_layers,
        "conv_pos_depth": e.pos_conv_layers,
        "conv_pos_groups": e.pos_conv_groups,
        "num_extra_tokens": e.num_extra_tokens,
        "num_alibi_heads": e.num_heads,
        "model_depth": e.depth,
        "decoder": None,
    }
    if config.decoder is not None:
        d = config.decoder
        audio["decoder"] = {
            "decoder_dim": d.dim,
            "decoder_kernel": d.kernel,
            "decoder_layers": d.layers,
            "decoder_groups": d.groups,
            "input_dropout": d.input_dropout,
            "add_positions_masked": False,
            "add_positions_all": False,
            "decoder_residual": True,
            "projection_layers": 1,
            "projection_ratio": 2.0,
        }
    return {
        "_name": "data2vec_multi",
        **TRAINING_FIELDS,
        "embed_dim": e.embed_dim,
        "num_heads": e.num_heads,
        "mlp_ratio": e.mlp_ratio,
        "depth": e.depth,
        "norm_eps": e.norm_eps,
        "encoder_dropout": e.dropout,
        "attention_dropout": e.attention_dropout,
        "activation_dropout": e.activation_dropout,
        "post_mlp_drop": e.post_mlp_dropout,
        "layerdrop": e.layerdrop,
        "layer_norm_first": False,
        "average_top_k_layers": e.depth,
        "normalize": config.normalize_waveform,
        "modalities": {"audio": audio},
    }


def save_fairseq_checkpoint(model: Emotion2vecModel, path: str | Path) -> None:
    """Write ``model`` as an emotion2vec_base-style fairseq checkpoint ."""
    ckpt = {
        "cfg": {
            "model": official_model_cfg(model.config),
            "task": {
                "_name": "emotion2vec_pretraining",
                "normalize": model.config.normalize_waveform,
            },
        },
        "model": to_official_state(model, plus_layout=False),
    }
    torch.save(ckpt, path)


def save_plus_folder(model: Emotion2vecModel, folder: str | Path) -> None:
    """Write ``model`` as a FunASR emotion2vec_plus folder: model.pt, config.yaml, tokens.txt."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": to_official_state(model, plus_layout=True)}, folder / "model.pt")
    model_conf = official_model_cfg(model.config)
    # FunASR builds no decoder from ``decoder: null`` (the plus files carry none), needs
    # ``tokenizer_conf`` to exist, and maps the ``d2v_model.`` prefix away through ``scope_map``.
    model_conf["modalities"]["audio"]["decoder"] = None
    conf = {
        "model": "Emotion2vec",
        "model_conf": model_conf,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
        "scope_map": [PLUS_PREFIX, "none"],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False), encoding="utf-8")
    if model.labels:
        if tuple(model.labels) == EMOTION_LABELS:
            lines = list(OFFICIAL_TOKENS)
        else:
            lines = ["<unk>" if label == "unknown" else label for label in model.labels]
        (folder / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
