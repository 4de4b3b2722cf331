#!/usr/bin/env python3
"""Reference values from the authors' own pre-training code, for step-parity tests.

The emotion2vec pre-training code is public in the first author's fork of fairseq, github
``ddlBoJack/fairseq``, branch ``emotion2vec`` (commit 47cc7d53). This script imports it from a
checkout of that branch (nothing of it is copied, built or installed), runs one training step of
a micro emotion2vec configuration with fully recorded randomness, and writes
``tests/fixtures/fairseq_parity/``. ``tests/pretrain/test_fairseq_parity.py`` replays the same
step with our code and compares every quantity; neither fairseq nor its environment is needed
for that.

The reference environment (its own virtual environment, never the project's)::

    python3 -m venv ../fairseq-venv
    ../fairseq-venv/bin/pip install torch==2.13.0
    ../fairseq-venv/bin/pip install "hydra-core==1.0.7" "omegaconf==2.0.6"
    ../fairseq-venv/bin/pip install "numpy<2" bitarray sacrebleu regex cffi tqdm packaging \\
        scikit-learn pillow
    ../fairseq-venv/bin/pip install --no-deps torchvision==0.28.0 timm==1.0.29
    # and a checkout of github ddlBoJack/fairseq, branch emotion2vec, in ../fairseq-emotion2vec

    ../fairseq-venv/bin/python scripts/fairseq_parity.py --fork ../fairseq-emotion2vec

fairseq 0.12.2 does not import on Python 3.11 as it is; ``scripts/fairseq_env.py`` patches the
environment at run time (see its docstring). timm and torchvision are needed because every
data2vec block imports timm; both are installed without dependencies so that no second torch
arrives.

What is recorded (micro model: 32-d, 2 heads, 1 context + 2 main blocks, 3 extra tokens, clone
batch 2, decoder input dropout 0.1, every other dropout and layer drop 0):

* the batch exactly as their dataset makes it: three files of different lengths, normalised
  over the whole file, per-file block masks over the whole file (``compute_block_mask_1d``),
  cropped by ``RawAudioDataset.collater`` (so rows differ in their masked counts);
* the randomness of the step: the decoder input-dropout mask (their in-place ``F.dropout`` is
  replaced by the same operation with a recorded mask), the N(0, 0.01) decoder noise and the
  kept-frame indices of ``make_maskinfo``;
* teacher targets, the utterance target, decoder outputs, the student output after dropout,
  frame and utterance losses (cls_type chunk, single and global), sample size, target/pred var;
* the gradient of every student parameter after ``loss.backward()`` (fairseq's ``model``
  criterion), the student after one step of fairseq's Adam (gradients divided by the sample
  size, weight decay 0.01 on all parameters), and the EMA teacher after that update
  (``set_num_updates(1)``);
* their cosine schedule's learning rates, statistics of ``compute_block_mask_1d`` (per-row counts,
  masked fraction by position, runs, counts after the collater's crop);
* a data2vec 2.0 layout checkpoint (0 + 4 blocks, no extra tokens, an ``_ema``) and what their
  ``load_state_dict(strict=False)`` makes of it in the 1 + 2 block emotion2vec model.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "fairseq_parity"
sys.path.insert(0, str(Path(__file__).resolve().parent))

SEED = 1
NOISE_SEED = 1234
DROPOUT_SEED = 4321
LR = 2e-3
FILE_SAMPLES = (16000, 17600, 20000)

EMOTION2VEC_OVERRIDES = {
    # the launch script's model.* overrides (depth, prenet_depth, extra tokens: micro below)
    "cls_type": "chunk",
    "cls_loss": 1,
    "d2v_loss": 1,
    # a fast EMA so that one update moves the teacher measurably (the run: 0.999 -> 0.99999
    # over 20000 updates; the formula is the same)
    "ema_decay": 0.9,
    "ema_end_decay": 0.99,
    "ema_anneal_end_step": 10,
}

MICRO = {
    "embed_dim": 32,
    "num_heads": 2,
    "depth": 2,
    "clone_batch": 2,
    "average_top_k_layers": 2,
    "layerdrop": 0.0,
    "encoder_dropout": 0.0,
    "post_mlp_drop": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "dropout_input": 0.0,
    "supported_modality": "AUDIO",
    "modalities": {
        "audio": {
            "feature_encoder_spec": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32,2,2)] + [(32,2,2)]",
            "prenet_depth": 1,
            "num_extra_tokens": 3,
            "conv_pos_depth": 2,
            "conv_pos_width": 6,
            "conv_pos_groups": 4,
            "prenet_layerdrop": 0.0,
            "prenet_dropout": 0.0,
            "decoder": {
                "decoder_dim": 16,
                "decoder_groups": 4,
                "decoder_kernel": 3,
                "decoder_layers": 2,
                "input_dropout": 0.1,
            },
        }
    },
}

#: the data2vec 2.0 start checkpoint: same widths, 0 context + 4 main blocks, no extra tokens
D2V2 = {
    "depth": 4,
    "cls_loss": 0,
    "modalities": {"audio": {"prenet_depth": 0, "num_extra_tokens": 0}},
}


def compose(fork: Path, *overrides):
    from fairseq.tasks.audio_pretraining import AudioMaskingConfig
    from omegaconf import OmegaConf

    base = OmegaConf.load(fork / "examples/data2vec/config/v2/base_audio_only_task.yaml")
    model = OmegaConf.merge(base.model, EMOTION2VEC_OVERRIDES, MICRO, *overrides)
    return OmegaConf.create(
        {
            "common": {"seed": SEED},
            "optimization": {"max_update": 100000},
            "model": model,
            "task": {
                "normalize": bool(base.task.normalize),
                "precompute_mask_config": OmegaConf.structured(AudioMaskingConfig),
            },
        }
    )


def build(root):
    from fairseq import models

    return models.build_model(root.model, task=None)


def plain_cfg(root) -> dict:
    from omegaconf import OmegaConf

    return {
        "model": OmegaConf.to_container(root.model, resolve=True, enum_to_str=True),
        "task": {"normalize": bool(root.task.normalize)},
    }


def tensors(state) -> dict:
    return {k: v.detach().clone().float() for k, v in state.items() if torch.is_tensor(v)}


def perturb_teacher(model, scale: float, generator: torch.Generator) -> None:
    """Make the EMA teacher differ from the student (as after training), in both its module and
    its fp32 copy."""
    state = {
        k: (v + scale * torch.randn(v.shape, generator=generator)) if v.is_floating_point() else v
        for k, v in model.ema.model.state_dict().items()
    }
    model.ema.restore(state, build_fp32_params=True)


def make_batch(root):
    """Files and masks as FileAudioDataset.__getitem__ makes them, collated by the fork."""
    from fairseq.data.audio.raw_audio_dataset import RawAudioDataset
    from fairseq.data.data_utils import compute_block_mask_1d
    from omegaconf import OmegaConf

    mask_cfg = OmegaConf.to_container(root.task.precompute_mask_config, resolve=True)
    ds = RawAudioDataset(
        sample_rate=16000, pad=False, normalize=root.task.normalize, compute_mask=True, **mask_cfg
    )
    gen = torch.Generator().manual_seed(SEED)
    raw, normed, samples = [], [], []
    for i, n in enumerate(FILE_SAMPLES):
        wav = 0.1 * torch.randn(n, generator=gen) + 0.02
        feats = ds.postprocess(wav.clone(), 16000)
        T = ds._get_mask_indices_dims(feats.size(-1))
        mask = compute_block_mask_1d(
            shape=(ds.clone_batch, T),
            mask_prob=ds.mask_prob,
            mask_length=ds.mask_length,
            mask_prob_adjust=ds.mask_prob_adjust,
            inverse_mask=ds.inverse_mask,
            require_same_masks=True,
            expand_adjcent=ds.expand_adjacent,
            mask_dropout=ds.mask_dropout,
            non_overlapping=ds.non_overlapping,
        )
        raw.append(wav)
        normed.append(feats)
        samples.append({"id": i, "source": feats, "precomputed_mask": mask})
    sample = ds.collater(samples)
    return sample, raw, normed, ds, mask_cfg


class Recorder:
    """Wraps the fork's decoder_input / make_targets / forward_decoder to record and fix the
    step's randomness."""

    def __init__(self):
        self.data: dict = {}
        self._patches: list = []

    @contextlib.contextmanager
    def active(self, model):
        from examples.data2vec.models.modalities.base import ModalitySpecificEncoder

        rec = self.data
        orig_decoder_input = ModalitySpecificEncoder.decoder_input
        orig_make_targets = type(model).make_targets
        orig_forward_decoder = type(model).forward_decoder

        def decoder_input(enc, x, mask_info):
            p = enc.modality_cfg.decoder.input_dropout
            rec["student_before_dropout"] = x.detach().clone()
            g = torch.Generator().manual_seed(DROPOUT_SEED)
            keep = torch.rand(x.shape, generator=g) >= p
            rec["dropout_keep"] = keep
            real_dropout = torch.nn.functional.dropout

            def recorded_dropout(t, p=0.5, training=True, inplace=False):
                assert inplace and training and t is x
                return t.mul_(keep.to(t.dtype) / (1.0 - p))

            torch.nn.functional.dropout = recorded_dropout
            try:
                torch.manual_seed(NOISE_SEED)
                out = orig_decoder_input(enc, x, mask_info)
            finally:
                torch.nn.functional.dropout = real_dropout
            rec["student_after_dropout"] = x.detach().clone()
            rows, keep_n, dim = x.shape[0], mask_info.ids_keep.shape[1], x.shape[-1]
            num_extra = enc.modality_cfg.num_extra_tokens
            num_masked = mask_info.ids_restore.shape[1] - keep_n
            torch.manual_seed(NOISE_SEED)
            tokens = torch.empty(rows, num_masked, dim).normal_(0, enc.modality_cfg.mask_noise_std)
            placed = torch.cat([torch.zeros(rows, keep_n, dim), tokens], dim=1)
            rec["noise"] = torch.gather(placed, 1, mask_info.ids_restore)
            rec["ids_keep"] = mask_info.ids_keep[..., 0].clone()
            rec["num_extra"] = num_extra
            return out

        def make_targets(self_, y, num_layers):
            out = orig_make_targets(self_, y, num_layers)
            rec["targets"] = out.detach().clone()
            return out

        def forward_decoder(self_, x, feature_extractor, decoder, mask_info):
            out = orig_forward_decoder(self_, x, feature_extractor, decoder, mask_info)
            rec["decoded"] = out.detach().clone()
            return out

        ModalitySpecificEncoder.decoder_input = decoder_input
        type(model).make_targets = make_targets
        type(model).forward_decoder = forward_decoder
        try:
            yield rec
        finally:
            ModalitySpecificEncoder.decoder_input = orig_decoder_input
            type(model).make_targets = orig_make_targets
            type(model).forward_decoder = orig_forward_decoder


def one_step(model, sample):
    """fairseq's ``model`` criterion: forward, losses summed, backward. Returns records."""
    from fairseq.criterions.model_criterion import ModelCriterion

    criterion = ModelCriterion(task=None, loss_weights={}, log_keys=["target_var", "pred_var"])
    captured = {}
    hook = model.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    recorder = Recorder()
    model.zero_grad(set_to_none=True)
    with recorder.active(model):
        loss, sample_size, logs = criterion(model, sample)
    hook.remove()
    loss.backward()
    out = captured["out"]
    rec = recorder.data
    rec["losses"] = {k: float(v.float().sum()) for k, v in out["losses"].items()}
    rec["loss"] = float(loss)
    rec["sample_size"] = int(sample_size)
    rec["target_var"] = float(out["target_var"])
    rec["pred_var"] = float(out["pred_var"])
    rec["grads"] = {
        n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
    }
    return rec


def schedule_lrs():
    from fairseq.optim import FairseqOptimizer
    from fairseq.optim.lr_scheduler.cosine_lr_scheduler import (
        CosineLRSchedule,
        CosineLRScheduleConfig,
    )
    from omegaconf import OmegaConf

    class Holder(FairseqOptimizer):
        def __init__(self):
            super().__init__(None)
            self._optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)

    cfg = OmegaConf.structured(CosineLRScheduleConfig)
    cfg.warmup_updates, cfg.lr, cfg.max_update = 5, [1e-3], 20
    sched = CosineLRSchedule(cfg, Holder())
    lrs = []
    for k in range(0, 21):
        lrs.append(float(sched.step_update(k)))
    return {"warmup_updates": 5, "lr": 1e-3, "max_updates": 20, "lr_after_updates": lrs}


def block_mask_stats(ds_crop) -> dict:
    from fairseq.data.data_utils import compute_block_mask_1d

    torch.manual_seed(7)
    np.random.seed(7)
    stats: dict = {}
    for T in (50, 120, 400):
        rows = torch.cat(
            [
                compute_block_mask_1d(
                    (8, T), 0.5, 5, mask_prob_adjust=0.05, require_same_masks=True
                )
                for _ in range(250)
            ]
        )
        runs = ((rows[:, 1:] == 1) & (rows[:, :-1] == 0)).sum(1) + rows[:, 0]
        stats[f"T{T}"] = {
            "counts": rows.sum(1).to(torch.int64),
            "by_position": rows.mean(0),
            "runs_mean": float(runs.float().mean()),
        }
    # the collater's crop of whole-file masks: 400 frames cropped to 120
    crops = []
    for _ in range(250):
        m = compute_block_mask_1d((8, 400), 0.5, 5, mask_prob_adjust=0.05, require_same_masks=True)
        crops.append(ds_crop.crop_to_max_size(m, 120, dim=1))
    cropped = torch.cat(crops)
    stats["crop400to120"] = {"counts": cropped.sum(1).to(torch.int64)}
    return stats


def d2v2_start(fork: Path, out_dir: Path) -> dict:
    """A data2vec 2.0 checkpoint and what the run's strict=False load makes of it."""
    torch.manual_seed(SEED + 10)
    root = compose(fork, D2V2)
    d2v = build(root)
    perturb_teacher(d2v, 0.05, torch.Generator().manual_seed(SEED + 11))
    state = d2v.state_dict()
    ckpt = {
        "cfg": plain_cfg(root),
        "model": {
            **tensors({k: v for k, v in state.items() if k != "_ema"}),
            "_ema": tensors(state["_ema"]),
        },
    }
    torch.save(ckpt, out_dir / "d2v2_start.pt")
    torch.manual_seed(SEED + 12)
    e2v = build(compose(fork))
    before = tensors(e2v.state_dict())
    e2v.load_state_dict(copy.deepcopy(ckpt["model"]), strict=True, model_cfg=None)
    after = tensors(e2v.state_dict())
    loaded = sorted(
        k for k in after if k in ckpt["model"] and torch.equal(after[k], ckpt["model"][k])
    )
    kept_fresh = sorted(k for k in after if torch.equal(after[k], before[k]) and k not in loaded)
    return {
        "student": after,
        "teacher": tensors(e2v.ema.fp32_params),
        "loaded_keys": loaded,
        "fresh_keys": kept_fresh,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--fork", required=True, help="checkout of ddlBoJack/fairseq, branch emotion2vec"
    )
    ap.add_argument("--out", default=str(FIXTURE_DIR))
    args = ap.parse_args()
    fork = Path(args.fork).resolve()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    from fairseq_env import import_fairseq

    ns = import_fairseq(str(fork))
    from fairseq.optim.adam import Adam as FairseqAdamImpl

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    root = compose(fork)
    model = build(root)
    perturb_teacher(model, 0.05, torch.Generator().manual_seed(SEED + 1))
    teacher_before = tensors(model.ema.fp32_params)
    student_before = tensors(model.state_dict())
    student_before.pop("_ema", None)

    sample, raw, normed, ds, mask_cfg = make_batch(root)
    net_input = sample["net_input"]

    model.train()
    model.set_num_updates(0)
    variants = {}
    for cls_type in ("single", "global", "chunk"):  # chunk last: its gradients drive the update
        model.cfg.cls_type = cls_type
        variants[cls_type] = one_step(model, sample)
    main_rec = variants["chunk"]

    # the update: gradients / sample size, fairseq's Adam (weight decay on every parameter)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = FairseqAdamImpl(params, lr=LR, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    for p in params:
        p.grad.mul_(1.0 / main_rec["sample_size"])
    opt.step()
    student_after = tensors(model.state_dict())
    student_after.pop("_ema", None)
    model.set_num_updates(1)  # what the next task.train_step does first: the EMA step
    ema_decay = float(model.ema.get_decay())
    teacher_after = tensors(model.ema.fp32_params)

    # the student checkpoint in the fairseq layout (no _ema: the teacher is stored apart)
    torch.save({"cfg": plain_cfg(root), "model": student_before}, out_dir / "student.pt")

    reference = {
        "inputs": {
            "raw_files": [w.clone() for w in raw],
            "normalized_files": [w.clone() for w in normed],
            "source": net_input["source"].clone(),
            "precomputed_mask": net_input["precomputed_mask"].clone(),
            "ids_keep": main_rec["ids_keep"],
            "noise": main_rec["noise"],
            "dropout_keep": main_rec["dropout_keep"],
            "input_dropout": 0.1,
        },
        "teacher_before": teacher_before,
        "outputs": {
            "targets": main_rec["targets"],
            "decoded": main_rec["decoded"],
            "student_before_dropout": main_rec["student_before_dropout"],
            "student_after_dropout": main_rec["student_after_dropout"],
            "sample_size": main_rec["sample_size"],
            "target_var": main_rec["target_var"],
            "pred_var": main_rec["pred_var"],
        },
        "variants": {
            k: {"losses": v["losses"], "loss": v["loss"], "grads": v["grads"]}
            for k, v in variants.items()
        },
        "update": {
            "lr": LR,
            "weight_decay": 0.01,
            "betas": [0.9, 0.98],
            "eps": 1e-6,
            "student_after": student_after,
            "ema_decay": ema_decay,
            "teacher_after": teacher_after,
        },
        "schedule": schedule_lrs(),
        "block_masks": block_mask_stats(ds),
        "d2v2_start": d2v2_start(fork, out_dir),
    }
    torch.save(reference, out_dir / "reference.pt")
    try:
        commit = subprocess.run(
            ["git", "-C", str(fork), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    meta = {
        "fork": "github ddlBoJack/fairseq, branch emotion2vec",
        "fork_commit": commit or "47cc7d53 (expected)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mask_config": {k: v for k, v in mask_cfg.items()},
        "file_samples": list(FILE_SAMPLES),
        "losses_chunk": main_rec["losses"],
        "sample_size": main_rec["sample_size"],
        "ema_decay_update_1": ema_decay,
        "masked_per_row": net_input["precomputed_mask"].sum(1).tolist(),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))
    print(f"wrote {out_dir}")
    _ = ns
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    sys.exit(main())
