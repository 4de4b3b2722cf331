#!/usr/bin/env python3
"""Reference outputs from FunASR's own emotion2vec implementation, for parity tests.

Run with the separate FunASR environment (never install funasr into the project venv)::

    /work/funasr-venv/bin/python scripts/funasr_parity.py fixtures   # writes tests/fixtures/funasr_parity/
    /work/funasr-venv/bin/python scripts/funasr_parity.py full       # full-size random models, + our model
    python scripts/funasr_parity.py compare                          # our model vs the committed fixture
                                                                      # (no funasr needed)

What it does:

* builds FunASR's ``Emotion2vec`` module from an architecture description, re-initialises every
  parameter with seeded random values (LayerNorm affines, ALiBi scales, extra tokens and the head
  included, so that a mistake in any of them changes the outputs), and writes the weights in the two
  published layouts:

  - ``<out>/plus/``: ``model.pt`` (``{"model": state}``, backbone keys prefixed ``d2v_model.``, head
    ``proj.*``, no decoder), ``config.yaml`` and ``tokens.txt`` - an emotion2vec_plus_* model folder;
  - ``<out>/emotion2vec_base.pt``: a fairseq-style checkpoint (``{"cfg": {"model", "task"}, "model":
    state}``, no prefix, pre-training decoder included, no head).

* runs FunASR's public inference path, ``AutoModel(model=<folder>).generate(...)``, one utterance at
  a time with ``granularity="frame"`` and ``"utterance"``, checking that loading printed no
  "miss key" warning and that the loaded weights equal the saved ones bit for bit.

Only plain tensors and plain Python containers are saved, so ``torch.load(weights_only=True)`` reads
every file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SAMPLE_RATE = 16000
REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "funasr_parity"

#: tokens.txt of the published emotion2vec_plus_* models, in head output order.
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

OFFICIAL_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2

# ----------------------------------------------------------------------------------------------
# Architectures
# ----------------------------------------------------------------------------------------------


def conv_spec(channels: int) -> list[tuple[int, int, int]]:
    """The official 7-layer (channels, kernel, stride) spec with another channel count."""
    return [(channels, k, s) for _, k, s in OFFICIAL_CONV]


#: Tiny model for the committed fixture: every module of the real thing, small widths.
MICRO = dict(
    embed_dim=64,
    num_heads=4,
    mlp_ratio=4.0,
    prenet_depth=1,
    depth=2,
    conv_layers=conv_spec(64),
    conv_pos_groups=16,
    conv_pos_width=95,
    conv_pos_depth=5,
    num_extra_tokens=10,
    decoder_dim=32,
    decoder_kernel=7,
    decoder_layers=4,
    decoder_groups=16,
    num_classes=9,
)

#: The shape of emotion2vec_base / plus_seed / plus_base.
BASE = dict(
    embed_dim=768,
    num_heads=12,
    mlp_ratio=4.0,
    prenet_depth=4,
    depth=8,
    conv_layers=conv_spec(512),
    conv_pos_groups=16,
    conv_pos_width=95,
    conv_pos_depth=5,
    num_extra_tokens=10,
    decoder_dim=384,
    decoder_kernel=7,
    decoder_layers=4,
    decoder_groups=16,
    num_classes=9,
)

#: The shape of emotion2vec_plus_large (its release has no decoder; the fairseq-layout file of
#: this test model carries one of the base decoder's shape anyway, so both layouts are exercised).
PLUS_LARGE = dict(BASE, embed_dim=1024, num_heads=16)

ARCHS = {"micro": MICRO, "base": BASE, "plus_large": PLUS_LARGE}


def render_conv_spec(layers: list[tuple[int, int, int]]) -> str:
    """Python-expression form used by the official configs, e.g. '[(512, 10, 5)] + [(512, 3, 2)] * 4 + ...'."""
    parts: list[str] = []
    i = 0
    while i < len(layers):
        j = i
        while j + 1 < len(layers) and tuple(layers[j + 1]) == tuple(layers[i]):
            j += 1
        c, k, s = layers[i]
        n = j - i + 1
        parts.append(f"[({c}, {k}, {s})]" + (f" * {n}" if n > 1 else ""))
        i = j + 1
    return " + ".join(parts)


def model_conf(arch: dict[str, Any], *, with_decoder: bool) -> dict[str, Any]:
    """FunASR ``model_conf`` (= fairseq ``cfg.model``) for an architecture.

    Values not given by ``arch`` are those of FunASR's emotion2vec ``template.yaml`` (the
    emotion2vec_base training config). Inference only reads the architecture fields and
    ``normalize``; the training-only fields are kept so that the config looks like the real one.

    This deliberately repeats what ``emotion2vec.checkpoints.official.official_model_cfg``
    writes, from FunASR's template rather than from our code: the parity fixtures must not
    inherit a mistake of the library they check.
    """
    audio = {
        "type": "AUDIO",
        "prenet_depth": arch["prenet_depth"],
        "prenet_layerdrop": 0.05,
        "prenet_dropout": 0.1,
        "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0,
        "num_extra_tokens": arch["num_extra_tokens"],
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
        "num_alibi_heads": arch["num_heads"],
        "model_depth": arch["depth"],
        "decoder": (
            {
                "decoder_dim": arch["decoder_dim"],
                "decoder_groups": arch["decoder_groups"],
                "decoder_kernel": arch["decoder_kernel"],
                "decoder_layers": arch["decoder_layers"],
                "input_dropout": 0.1,
                "add_positions_masked": False,
                "add_positions_all": False,
                "decoder_residual": True,
                "projection_layers": 1,
                "projection_ratio": 2.0,
            }
            if with_decoder
            else None
        ),
        "extractor_mode": "layer_norm",
        "feature_encoder_spec": render_conv_spec(arch["conv_layers"]),
        "conv_pos_width": arch["conv_pos_width"],
        "conv_pos_groups": arch["conv_pos_groups"],
        "conv_pos_depth": arch["conv_pos_depth"],
        "conv_pos_pre_ln": False,
    }
    return {
        "loss_beta": 0.0,
        "loss_scale": None,
        "depth": arch["depth"],
        "start_drop_path_rate": 0.0,
        "end_drop_path_rate": 0.0,
        "num_heads": arch["num_heads"],
        "norm_eps": 1e-05,
        "norm_affine": True,
        "encoder_dropout": 0.1,
        "post_mlp_drop": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "dropout_input": 0.0,
        "layerdrop": 0.05,
        "embed_dim": arch["embed_dim"],
        "mlp_ratio": float(arch["mlp_ratio"]),
        "layer_norm_first": False,
        "average_top_k_layers": arch["depth"],
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
        "normalize": True,
        "modalities": {"audio": audio},
    }


# ----------------------------------------------------------------------------------------------
# Model with random weights, written in both layouts
# ----------------------------------------------------------------------------------------------


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded random values of a sensible scale.

    Linear/conv weights ~ N(0, 1/fan_in) keep activations O(1); LayerNorm gains ~ 1 + N(0, 0.3^2)
    and biases ~ N(0, 0.2^2) so a missing affine shows up; ALiBi scales are drawn per head in
    [0.3, 1.7] except head 1, which is negative, to exercise the clamp at 0; extra tokens ~ N(0, 1);
    the head is scaled up so the 9 scores are far from uniform.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean

    done: set[str] = set()
    with torch.no_grad():
        for mod_name, mod in model.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            if isinstance(mod, torch.nn.LayerNorm):
                if mod.weight is not None:
                    mod.weight.copy_(normal(mod.weight.shape, 0.3, 1.0))
                    done.add(prefix + "weight")
                if mod.bias is not None:
                    mod.bias.copy_(normal(mod.bias.shape, 0.2))
                    done.add(prefix + "bias")
            elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d)):
                w = mod.weight
                fan_in = w.shape[1] * (w.shape[2] if w.dim() == 3 else 1)
                std = 1.0 / math.sqrt(fan_in)
                if isinstance(mod, torch.nn.Conv1d):
                    std *= math.sqrt(2.0)
                if mod_name == "proj":  # the 9-class emotion head
                    std *= 4.0
                w.copy_(normal(w.shape, std))
                done.add(prefix + "weight")
                if mod.bias is not None:
                    mod.bias.copy_(normal(mod.bias.shape, 0.1))
                    done.add(prefix + "bias")
        for name, p in model.named_parameters():
            if name.endswith("extra_tokens"):
                p.copy_(normal(p.shape, 1.0))
                done.add(name)
            elif name.endswith("alibi_scale"):
                vals = torch.rand(p.shape, generator=gen) * 1.4 + 0.3
                flat = vals.view(-1)
                if flat.numel() > 1:
                    flat[1] = -0.5  # clamped to 0 by the model: this head gets no ALiBi bias
                p.copy_(vals)
                done.add(name)
    missing = [n for n, _ in model.named_parameters() if n not in done]
    if missing:
        raise RuntimeError(f"randomize_: parameters not re-initialised: {missing}")


def build_funasr_model(arch: dict[str, Any], seed: int) -> torch.nn.Module:
    """FunASR's Emotion2vec (with pre-training decoder and head) holding seeded random weights."""
    from funasr.models.emotion2vec.model import Emotion2vec

    torch.manual_seed(seed)
    model = Emotion2vec(
        model_conf=model_conf(arch, with_decoder=True), vocab_size=arch["num_classes"]
    )
    randomize_(model, seed)
    return model.eval()


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous().clone()


def plus_config_yaml(arch: dict[str, Any]) -> dict[str, Any]:
    """config.yaml of a plus-style FunASR model folder."""
    return {
        "model": "Emotion2vec",
        "model_conf": model_conf(arch, with_decoder=False),
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
        # checkpoint key = "d2v_model." + model key; "none" = empty destination prefix
        "scope_map": ["d2v_model.", "none"],
    }


def write_layouts(model: torch.nn.Module, arch: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write ``out/plus/{model.pt,config.yaml,tokens.txt}`` and ``out/emotion2vec_base.pt``."""
    import yaml

    if arch["num_classes"] != len(OFFICIAL_TOKENS):
        raise ValueError("the plus layout needs the 9 official classes")
    state = {k: _plain(v) for k, v in model.state_dict().items()}
    backbone = {k: v for k, v in state.items() if not k.startswith("proj.")}
    head = {k: v for k, v in state.items() if k.startswith("proj.")}

    plus_dir = out / "plus"
    plus_dir.mkdir(parents=True, exist_ok=True)
    plus_state = {"d2v_model." + k: v for k, v in backbone.items() if ".decoder." not in k}
    plus_state.update(head)
    torch.save({"model": plus_state}, plus_dir / "model.pt")
    with open(plus_dir / "config.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(plus_config_yaml(arch), f, sort_keys=False, allow_unicode=True)
    (plus_dir / "tokens.txt").write_text("\n".join(OFFICIAL_TOKENS) + "\n", encoding="utf-8")

    cfg_model = {"_name": "data2vec_multi", **model_conf(arch, with_decoder=True)}
    cfg_task = {
        "_name": "emotion2vec_pretraining",
        "data": "",
        "normalize": True,
        "sample_rate": SAMPLE_RATE,
        "max_sample_size": 320000,
        "min_sample_size": 16000,
    }
    fairseq_ckpt = {
        "args": None,
        "cfg": {"model": cfg_model, "task": cfg_task},
        "model": backbone,
        "optimizer_history": [
            {"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam", "num_updates": 0}
        ],
        "extra_state": {},
        "last_optimizer_state": None,
    }
    base_pt = out / "emotion2vec_base.pt"
    torch.save(fairseq_ckpt, base_pt)

    # both files must be readable without pickle
    torch.load(plus_dir / "model.pt", weights_only=True)
    torch.load(base_pt, weights_only=True)
    return {"plus": plus_dir, "base_pt": base_pt}


def base_funasr_folder(base_pt: Path, arch: dict[str, Any], folder: Path) -> Path:
    """A FunASR model folder around a fairseq-style emotion2vec_base.pt (like the ModelScope repo):
    configuration.json names the checkpoint and config.yaml; no tokens.txt, so no head."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base_pt, folder / "emotion2vec_base.pt")
    conf = {"model": "Emotion2vec", "model_conf": model_conf(arch, with_decoder=True)}
    with open(folder / "config.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(conf, f, sort_keys=False)
    meta = {
        "framework": "pytorch",
        "task": "emotion-recognition",
        "model": {"type": "funasr"},
        "file_path_metas": {"init_param": "emotion2vec_base.pt", "config": "config.yaml"},
    }
    (folder / "configuration.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

#: Input durations of the fixture and of ``full``.
DURATIONS = (1.0, 3.7, 10.0, 30.0)


def input_name(seconds: float) -> str:
    return f"wav_{int(round(seconds * 1000))}ms"


def expected_frames(num_samples: int, conv_layers) -> int:
    n = num_samples
    for _, k, s in conv_layers:
        n = (n - k) // s + 1
    return n


def synth_pcm16(seconds: float, seed: int) -> np.ndarray:
    """Deterministic speech-like int16 signal: a harmonic 'voice' with a wandering pitch, syllable-rate
    envelope, pauses, slowly varying loudness, some coloured breath noise and a little hiss."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    f0 = (
        135.0
        + 35.0 * np.sin(2 * np.pi * 0.6 * t + rng.uniform(0, 2 * np.pi))
        + 12.0 * np.sin(2 * np.pi * 2.9 * t + rng.uniform(0, 2 * np.pi))
    )
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = np.zeros(n)
    formant = 700.0 + 400.0 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 2 * np.pi))
    for h in range(1, 16):
        gain = np.exp(-((((h * f0) - formant) / 500.0) ** 2)) + 0.15 / h
        voice += gain * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    syll = np.clip(np.sin(2 * np.pi * 4.2 * t + rng.uniform(0, 2 * np.pi)), 0.0, None) ** 0.6
    loud = 0.55 + 0.45 * np.sin(2 * np.pi * 0.23 * t + rng.uniform(0, 2 * np.pi))
    gate = np.ones(n)
    for _ in range(max(1, int(seconds / 2.5))):  # a pause every ~2.5 s
        start = rng.integers(0, max(1, n - SAMPLE_RATE // 4))
        gate[start : start + int(rng.uniform(0.1, 0.35) * SAMPLE_RATE)] = 0.0
    breath = np.convolve(rng.standard_normal(n), np.ones(8) / 8.0, mode="same")
    x = (
        voice * syll * loud * gate * 0.12
        + 0.03 * breath * (1.2 - syll)
        + 0.004 * rng.standard_normal(n)
    )
    x = x / np.max(np.abs(x)) * 0.7
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def pcm_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1): exactly pcm / 32768."""
    return pcm.astype(np.float32) / np.float32(32768.0)


def make_inputs(durations=DURATIONS, seed: int = 1234) -> dict[str, np.ndarray]:
    return {input_name(d): synth_pcm16(d, seed + i) for i, d in enumerate(durations)}


# ----------------------------------------------------------------------------------------------
# FunASR inference
# ----------------------------------------------------------------------------------------------


def load_funasr(model_dir: Path, *, device: str = "cpu", expected_state: dict | None = None):
    """AutoModel on a local folder, offline; fail on any 'miss key' print or weight mismatch."""
    import logging

    from funasr import AutoModel

    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # FunASR logs every mapped key at INFO
    try:
        with contextlib.redirect_stdout(buf):
            am = AutoModel(
                model=str(model_dir),
                device=device,
                disable_update=True,
                disable_pbar=True,
                log_level="WARNING",
                ncpu=os.cpu_count() or 1,
            )
    finally:
        root.setLevel(level)
    printed = buf.getvalue()
    if printed.strip():
        print(printed, end="", file=sys.stderr)
    if "miss key" in printed:
        raise RuntimeError(f"FunASR reported missing keys while loading {model_dir}:\n{printed}")
    if expected_state is not None:
        got = am.model.state_dict()
        bad = [
            k for k, v in expected_state.items() if k not in got or not torch.equal(got[k].cpu(), v)
        ]
        extra = [k for k in got if k not in expected_state]
        if bad or extra:
            raise RuntimeError(
                f"FunASR's loaded weights differ from the saved ones: differ={bad[:10]} "
                f"not-in-checkpoint={extra[:10]}"
            )
    return am


def run_funasr(
    model_dir: Path,
    inputs: dict[str, np.ndarray],
    *,
    device: str = "cpu",
    expected_state: dict | None = None,
    with_head: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """FunASR outputs per input: frame (T, D), utterance (D,), scores (9,) in label order.

    ``inputs`` values are float32 16 kHz waveforms.
    """
    am = load_funasr(model_dir, device=device, expected_state=expected_state)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, wav in inputs.items():
        if wav.dtype != np.float32:
            raise TypeError("FunASR needs float32 input (float64 would meet float32 weights)")
        res_f = am.generate(wav, granularity="frame", extract_embedding=True)[0]
        res_u = am.generate(wav, granularity="utterance", extract_embedding=True)[0]
        item = {
            "frame": np.asarray(res_f["feats"], dtype=np.float32),
            "utterance": np.asarray(res_u["feats"], dtype=np.float32),
        }
        if with_head:
            if list(res_f["labels"]) != list(OFFICIAL_TOKENS):
                raise RuntimeError(f"unexpected labels {res_f['labels']}")
            item["scores"] = np.asarray(res_u["scores"], dtype=np.float32)
            frame_scores = np.asarray(res_f["scores"], dtype=np.float32)
            if not np.array_equal(frame_scores, item["scores"]):
                raise RuntimeError("FunASR scores depend on granularity (unexpected)")
        else:
            if res_f.get("labels") or res_f.get("scores"):
                raise RuntimeError("a model without head returned labels/scores")
        out[name] = item
    return out


def check_outputs(outputs, inputs_pcm, arch) -> list[str]:
    """Sanity checks; returns human-readable lines, raises on failure."""
    lines = []
    for name, o in outputs.items():
        n = len(inputs_pcm[name])
        t_exp = expected_frames(n, arch["conv_layers"])
        fr, ut = o["frame"], o["utterance"]
        assert fr.shape == (t_exp, arch["embed_dim"]), (name, fr.shape, t_exp)
        assert ut.shape == (arch["embed_dim"],), (name, ut.shape)
        assert np.isfinite(fr).all() and np.isfinite(ut).all(), name
        assert fr.std() > 1e-3 and fr.std(axis=0).mean() > 1e-3, f"{name}: frames near-constant"
        assert np.allclose(ut, fr.mean(axis=0), atol=1e-5), f"{name}: utterance != mean of frames"
        line = (
            f"{name}: T={fr.shape[0]} frame mean={fr.mean():+.4f} std={fr.std():.4f} "
            f"max|x|={np.abs(fr).max():.3f}"
        )
        if "scores" in o:
            sc = o["scores"]
            assert sc.shape == (9,) and np.isfinite(sc).all(), name
            assert abs(float(sc.sum()) - 1.0) < 1e-5, f"{name}: scores sum {sc.sum()}"
            line += f" scores max={sc.max():.3f} argmax={int(sc.argmax())}"
        lines.append(line)
    return lines


# ----------------------------------------------------------------------------------------------
# Hook: compare our package against the FunASR outputs
# ----------------------------------------------------------------------------------------------


def _scores_vector(pred) -> np.ndarray:
    """9 scores in label order from an emotion2vec Prediction (or a list/array)."""
    scores = getattr(pred, "scores", pred)
    if isinstance(scores, dict):
        return np.asarray(list(scores.values()), dtype=np.float32)
    return np.asarray(scores, dtype=np.float32).reshape(-1)


def compare_with_emotion2vec(
    folder: Path,
    inputs: dict[str, np.ndarray],
    funasr_outputs: dict[str, dict[str, np.ndarray]],
    *,
    atol: float = 1e-4,
) -> bool:
    """=== HOOK: our package vs FunASR ===

    Loads the plus folder (``folder/plus``) and the fairseq file (``folder/emotion2vec_base.pt``)
    with ``emotion2vec.load_model`` and compares ``.extract(granularity="frame"/"utterance")`` and
    ``.predict`` with the FunASR outputs, printing the max abs difference per input. Returns True
    when everything is within ``atol``.
    """
    import emotion2vec  # the project package (installed with `pip install --no-deps -e .`)

    ok = True
    targets = [("plus", folder / "plus", True), ("fairseq", folder / "emotion2vec_base.pt", False)]
    for label, path, has_head in targets:
        model = emotion2vec.load_model(str(path))
        for name, wav in inputs.items():
            ref = funasr_outputs[name]
            frame = np.asarray(model.extract(wav, sample_rate=SAMPLE_RATE, granularity="frame"))
            utt = np.asarray(model.extract(wav, sample_rate=SAMPLE_RATE, granularity="utterance"))
            if frame.shape != ref["frame"].shape:
                print(f"[{label}] {name}: frame shape {frame.shape} != FunASR {ref['frame'].shape}")
                ok = False
                continue
            d_frame = float(np.abs(frame - ref["frame"]).max())
            d_utt = float(np.abs(utt - ref["utterance"]).max())
            diffs = [d_frame, d_utt]
            msg = f"[{label}] {name}: max|frame diff|={d_frame:.2e} max|utt diff|={d_utt:.2e}"
            if has_head and "scores" in ref:
                pred = model.predict(wav, sample_rate=SAMPLE_RATE)
                sc = _scores_vector(pred)
                d_sc = float(np.abs(sc - ref["scores"]).max())
                diffs.append(d_sc)
                msg += f" max|score diff|={d_sc:.2e}"
            passed = max(diffs) <= atol
            ok &= passed
            print(msg + ("  OK" if passed else f"  FAIL (> {atol:g})"))
    return ok


# ----------------------------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import funasr

    return {
        "funasr": getattr(funasr, "__version__", "?"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _try_compare(folder, inputs_f32, outputs, atol) -> None:
    try:
        import emotion2vec  # noqa: F401
    except ImportError as exc:
        print(f"(compare skipped: cannot import emotion2vec: {exc})")
        return
    try:
        ok = compare_with_emotion2vec(folder, inputs_f32, outputs, atol=atol)
        print("emotion2vec vs FunASR:", "ALL WITHIN" if ok else "MISMATCH", f"{atol:g}")
    except Exception as exc:  # the package API may still be in progress
        print(f"(compare failed: {type(exc).__name__}: {exc})")


def cmd_fixtures(args) -> None:
    out = Path(args.out)
    arch = MICRO
    seed = args.seed
    if out.exists():
        for p in ("plus", "emotion2vec_base.pt", "inputs.npz", "reference.npz", "meta.json"):
            q = out / p
            if q.is_dir():
                shutil.rmtree(q)
            elif q.exists():
                q.unlink()
    out.mkdir(parents=True, exist_ok=True)

    model = build_funasr_model(arch, seed)
    paths = write_layouts(model, arch, out)
    expected_plus = {k: v for k, v in _plain_state(model).items() if ".decoder." not in k}

    pcm = make_inputs(DURATIONS, seed=args.input_seed)
    np.savez_compressed(out / "inputs.npz", **pcm)
    inputs_f32 = {k: pcm_to_float(v) for k, v in pcm.items()}

    t0 = time.time()
    outputs = run_funasr(paths["plus"], inputs_f32, expected_state=expected_plus)
    print(f"FunASR (plus folder) ran in {time.time() - t0:.1f}s")
    for line in check_outputs(outputs, pcm, arch):
        print("  " + line)

    # the fairseq-style file through FunASR gives the same features (no head)
    with tempfile.TemporaryDirectory() as tmp:
        bdir = base_funasr_folder(paths["base_pt"], arch, Path(tmp) / "base")
        expected_base = {k: v for k, v in _plain_state(model).items() if not k.startswith("proj.")}
        short = {k: inputs_f32[k] for k in list(inputs_f32)[:2]}
        base_out = run_funasr(bdir, short, expected_state=expected_base, with_head=False)
    base_diff = max(
        float(np.abs(base_out[k][g] - outputs[k][g]).max())
        for k in short
        for g in ("frame", "utterance")
    )
    print(f"FunASR fairseq-layout vs plus-layout features: max|diff|={base_diff:.1e}")
    if base_diff != 0.0:
        raise RuntimeError("the two layouts give different features in FunASR")

    ref = {}
    for name, o in outputs.items():
        ref[f"frame__{name}"] = o["frame"]
        ref[f"utterance__{name}"] = o["utterance"]
        ref[f"scores__{name}"] = o["scores"]
    ref["labels"] = np.array(OFFICIAL_TOKENS)
    np.savez_compressed(out / "reference.npz", **ref)

    versions = _versions()
    meta = {
        "arch": {k: (list(map(list, v)) if k == "conv_layers" else v) for k, v in arch.items()},
        "seed": seed,
        "input_seed": args.input_seed,
        "inputs": {
            name: {"samples": int(len(p)), "frames": int(outputs[name]["frame"].shape[0])}
            for name, p in pcm.items()
        },
        "input_scaling": "float32(pcm) / 32768",
        "sample_rate": SAMPLE_RATE,
        "versions": versions,
        "reference_keys": "frame__<input> (T,D), utterance__<input> (D,), scores__<input> (9,) in tokens.txt order",
    }
    (out / "meta.json").write_text(
        json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote fixture in {out}")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"  {p.relative_to(out)}  {p.stat().st_size:,} B")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"  total {total:,} B")
    if args.compare:
        _try_compare(out, inputs_f32, outputs, args.atol)


def _plain_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: _plain(v) for k, v in model.state_dict().items()}


def cmd_full(args) -> None:
    pcm = make_inputs(DURATIONS, seed=args.input_seed)
    inputs_f32 = {k: pcm_to_float(v) for k, v in pcm.items()}
    all_ok = True
    for arch_name in args.archs:
        arch = ARCHS[arch_name]
        tmp = Path(tempfile.mkdtemp(prefix=f"funasr_parity_{arch_name}_"))
        try:
            print(
                f"== {arch_name}: D={arch['embed_dim']} H={arch['num_heads']} "
                f"prenet={arch['prenet_depth']} depth={arch['depth']} (in {tmp})"
            )
            model = build_funasr_model(arch, args.seed)
            paths = write_layouts(model, arch, tmp)
            state = _plain_state(model)
            expected_plus = {k: v for k, v in state.items() if ".decoder." not in k}
            del model
            t0 = time.time()
            outputs = run_funasr(
                paths["plus"], inputs_f32, device=args.device, expected_state=expected_plus
            )
            print(f"FunASR ran in {time.time() - t0:.1f}s")
            for line in check_outputs(outputs, pcm, arch):
                print("  " + line)
            if args.check_base_layout:
                bdir = base_funasr_folder(paths["base_pt"], arch, tmp / "base_funasr")
                first = list(inputs_f32)[0]
                expected_base = {k: v for k, v in state.items() if not k.startswith("proj.")}
                b = run_funasr(
                    bdir,
                    {first: inputs_f32[first]},
                    device=args.device,
                    expected_state=expected_base,
                    with_head=False,
                )
                d = float(np.abs(b[first]["frame"] - outputs[first]["frame"]).max())
                print(f"  FunASR fairseq-layout vs plus-layout ({first}): max|diff|={d:.1e}")
            if args.save_reference:
                dst = Path(args.save_reference) / arch_name
                dst.mkdir(parents=True, exist_ok=True)
                np.savez(
                    dst / "reference.npz",
                    **{f"{g}__{n}": o[g] for n, o in outputs.items() for g in o},
                )
            try:
                import emotion2vec  # noqa: F401
            except ImportError as exc:
                print(f"(compare skipped: cannot import emotion2vec: {exc})")
                continue
            ok = compare_with_emotion2vec(tmp, inputs_f32, outputs, atol=args.atol)
            print(
                f"{arch_name}: emotion2vec vs FunASR",
                "ALL WITHIN" if ok else "MISMATCH",
                f"{args.atol:g}",
            )
            all_ok &= ok
        finally:
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    if not all_ok:
        sys.exit(1)


def load_fixture(folder: Path = FIXTURE_DIR):
    """(float32 inputs, reference outputs) of the committed fixture; needs no funasr."""
    with np.load(folder / "inputs.npz") as z:
        inputs = {k: pcm_to_float(z[k]) for k in z.files}
    outputs: dict[str, dict[str, np.ndarray]] = {k: {} for k in inputs}
    with np.load(folder / "reference.npz") as z:
        for key in z.files:
            if "__" in key:
                kind, name = key.split("__", 1)
                outputs[name][kind] = z[key]
    return inputs, outputs


def cmd_compare(args) -> None:
    folder = Path(args.fixture_dir)
    inputs, outputs = load_fixture(folder)
    ok = compare_with_emotion2vec(folder, inputs, outputs, atol=args.atol)
    print("emotion2vec vs FunASR fixture:", "ALL WITHIN" if ok else "MISMATCH", f"{args.atol:g}")
    sys.exit(0 if ok else 1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fixtures", help="write the committed micro-model fixture (needs funasr)")
    f.add_argument("--out", default=str(FIXTURE_DIR))
    f.add_argument("--seed", type=int, default=20240607)
    f.add_argument("--input-seed", type=int, default=1234)
    f.add_argument(
        "--no-compare",
        dest="compare",
        action="store_false",
        help="do not run the emotion2vec comparison afterwards",
    )
    f.add_argument("--atol", type=float, default=1e-4)
    f.set_defaults(func=cmd_fixtures)

    g = sub.add_parser(
        "full", help="full-size random models through FunASR and emotion2vec (needs funasr)"
    )
    g.add_argument("--archs", nargs="+", default=["base", "plus_large"], choices=sorted(ARCHS))
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--input-seed", type=int, default=1234)
    g.add_argument("--device", default="cpu")
    g.add_argument("--atol", type=float, default=1e-4)
    g.add_argument(
        "--no-base-layout",
        dest="check_base_layout",
        action="store_false",
        help="skip loading the fairseq-layout file through FunASR",
    )
    g.add_argument("--save-reference", default=None, help="folder to keep the FunASR outputs in")
    g.add_argument("--keep", action="store_true", help="keep the temporary model folders")
    g.set_defaults(func=cmd_full)

    c = sub.add_parser("compare", help="emotion2vec vs the committed fixture (no funasr needed)")
    c.add_argument("--fixture-dir", default=str(FIXTURE_DIR))
    c.add_argument("--atol", type=float, default=1e-4)
    c.set_defaults(func=cmd_compare)

    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
