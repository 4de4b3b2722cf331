"""One pre-training step of ours equals one step of the authors' code.

The fixture was written by ``scripts/fairseq_parity.py`` with the authors' fairseq fork
(ddlBoJack/fairseq, branch emotion2vec): a micro model, a batch of three files of different
lengths with their precomputed block masks cropped by fairseq's collater (rows with 24-28 masked
frames), and the step's randomness (decoder input-dropout mask, decoder noise, kept frames)
recorded so that we can replay it exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import emotion2vec.pretrain.objective as objective_module
from emotion2vec.audio import normalize_waveform
from emotion2vec.checkpoints import load_model
from emotion2vec.checkpoints.keymap import ours_tensor_to_official, ours_to_official
from emotion2vec.pretrain.config import MaskConfig, ObjectiveConfig
from emotion2vec.pretrain.ema import ema_decay_at
from emotion2vec.pretrain.masking import cropped_block_masks, file_block_masks, keep_indices
from emotion2vec.pretrain.objective import PretrainObjective
from emotion2vec.pretrain.start import load_start_model, teacher_state_from_official
from emotion2vec.training import Batch, OptimConfig
from emotion2vec.training.optim import build_optimizer
from emotion2vec.training.schedule import lr_at

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "fairseq_parity"
#: their cls_type -> our utterance_loss
VARIANTS = {"chunk": "chunk", "single": "token", "global": "global"}


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIXTURE / "reference.pt", weights_only=True)


class RecordedDropout(nn.Module):
    """The reference run's input-dropout mask, applied as dropout would (scaled by 1/(1-p))."""

    def __init__(self, keep: torch.Tensor, p: float):
        super().__init__()
        self.keep, self.p = keep, p

    def forward(self, x):
        assert x.shape == self.keep.shape, (x.shape, self.keep.shape)
        return x * self.keep.to(x.dtype) / (1.0 - self.p)


def replay(ref, monkeypatch, variant="chunk"):
    """Our objective on the fixture's weights, batch and randomness; returns (objective,
    step output, records)."""
    inputs = ref["inputs"]
    model = load_model(FIXTURE / "student.pt")
    model.train()
    cfg = ObjectiveConfig(
        clone_batch=2,
        average_top_k_layers=2,
        utterance_loss=VARIANTS[variant],
        ema_decay=0.9,
        ema_end_decay=0.99,
        ema_anneal_end_step=10,
    )
    teacher = teacher_state_from_official(ref["teacher_before"])
    obj = PretrainObjective(model, MaskConfig(), cfg, teacher=teacher)
    model.decoder.input_dropout = RecordedDropout(inputs["dropout_keep"], inputs["input_dropout"])
    monkeypatch.setattr(objective_module, "keep_indices", lambda mask: inputs["ids_keep"])
    monkeypatch.setattr(obj.module, "decoder_noise", lambda like, frames: inputs["noise"])
    records: dict = {}
    real_targets = objective_module.teacher_targets

    def targets(*args, **kwargs):
        records["targets"] = real_targets(*args, **kwargs)
        return records["targets"]

    monkeypatch.setattr(objective_module, "teacher_targets", targets)
    obj.module.register_forward_hook(lambda m, i, o: records.update(out=o))
    source = inputs["source"]
    batch = Batch(
        0,
        source,
        torch.full((source.shape[0],), source.shape[1]),
        [0, 1, 2],
        mask=inputs["precomputed_mask"].bool(),
    )
    out = obj.step(obj.module, batch)
    return obj, out, records


def official_grads(model) -> dict[str, torch.Tensor]:
    return {
        ours_to_official(n): ours_tensor_to_official(n, p.grad)
        for n, p in model.named_parameters()
        if p.grad is not None
    }


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / max |theirs| (0 when both are 0)."""
    scale = float(theirs.abs().max())
    diff = float((ours.detach().float() - theirs.float()).abs().max())
    return diff / scale if scale > 0 else diff


def test_data_normalisation_is_theirs(ref):
    for raw, theirs in zip(
        ref["inputs"]["raw_files"], ref["inputs"]["normalized_files"], strict=True
    ):
        assert rel_err(normalize_waveform(raw), theirs) < 1e-5


def test_our_kept_frames_are_theirs(ref):
    mask = ref["inputs"]["precomputed_mask"].bool()
    counts = mask.sum(1)
    assert len(set(counts.tolist())) > 1  # the crop left rows with different counts: the hard case
    ours, theirs = keep_indices(mask), ref["inputs"]["ids_keep"]
    assert ours.shape == theirs.shape  # every row keeps T - (masked count of row 0)
    for row in range(mask.shape[0]):
        o, t = set(ours[row].tolist()), set(theirs[row].tolist())
        unmasked = set((~mask[row]).nonzero().squeeze(1).tolist())
        if counts[row] >= counts[0]:
            # all unmasked frames, plus as many masked ones as the row exceeds row 0 by
            assert unmasked <= o and unmasked <= t
            assert len(o - unmasked) == len(t - unmasked) == int(counts[row] - counts[0])
        else:
            # a subset of the unmasked frames (which ones: their argsort's ties; ours by position)
            assert o <= unmasked and t <= unmasked


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_losses_and_gradients_equal_theirs(ref, monkeypatch, variant):
    obj, out, records = replay(ref, monkeypatch, variant)
    theirs = ref["variants"][variant]
    assert out.sample_size == ref["outputs"]["sample_size"]
    frame = float(out.stats["frame_loss"][0])
    utterance = float(out.loss.detach()) - frame
    assert math.isclose(frame, theirs["losses"]["AUDIO_regression"], rel_tol=1e-5)
    assert math.isclose(utterance, theirs["losses"]["cls"], rel_tol=1e-5)
    out.loss.backward()
    grads = official_grads(obj.model)
    assert set(grads) == set(theirs["grads"])
    worst = max(rel_err(grads[k], theirs["grads"][k]) for k in grads)
    assert worst < 1e-4, worst


def test_targets_decoder_and_statistics_equal_theirs(ref, monkeypatch):
    obj, out, records = replay(ref, monkeypatch)
    o = ref["outputs"]
    assert rel_err(records["targets"], o["targets"]) < 1e-5
    assert rel_err(records["out"]["decoded"], o["decoded"]) < 1e-5
    after = torch.cat([records["out"]["extra_tokens"], records["out"]["frames"]], 1)
    assert rel_err(after, o["student_after_dropout"]) < 1e-5
    before = torch.cat([records["out"]["clean_extra_tokens"], records["out"]["clean_frames"]], 1)
    assert rel_err(before, o["student_before_dropout"]) < 1e-5
    # the utterance target: time-mean of the targets (about 0 with instance-normed layers)
    assert float(records["targets"].mean(1).abs().max()) < 1e-5
    assert math.isclose(float(out.stats["target_var"][0]), o["target_var"], rel_tol=1e-5)
    assert math.isclose(float(out.stats["pred_var"][0]), o["pred_var"], rel_tol=1e-5)


def _load_official_into(model, state) -> None:
    from emotion2vec.checkpoints.keymap import official_tensor_to_ours, official_to_ours

    ours = {official_to_ours(k): v for k, v in state.items()}
    model.load_state_dict(
        {k: official_tensor_to_ours(k, v) for k, v in ours.items() if k is not None}, strict=True
    )


def _update_error(model, ref) -> float:
    """Largest difference of our update from theirs, relative to each tensor's largest step."""
    u = ref["update"]
    before = load_model(FIXTURE / "student.pt").state_dict()
    after = model.state_dict()
    worst = 0.0
    for our_key, value in before.items():
        key = ours_to_official(our_key)
        start = ours_tensor_to_official(our_key, value)
        theirs = u["student_after"][key] - start
        ours = ours_tensor_to_official(our_key, after[our_key]) - start
        worst = max(worst, rel_err(ours, theirs))
    return worst


def _optimizer(module, ref):
    u = ref["update"]
    config = OptimConfig(
        lr=u["lr"], betas=tuple(u["betas"]), eps=u["eps"], weight_decay=u["weight_decay"]
    )
    return build_optimizer(module, config)


def test_our_adam_is_theirs_on_their_gradients(ref):
    # the update rule alone: their gradients through our optimizer
    model = load_model(FIXTURE / "student.pt")
    grads = ref["variants"]["chunk"]["grads"]
    sample_size = ref["outputs"]["sample_size"]
    for name, p in model.named_parameters():
        p.grad = torch.zeros_like(p)
        # fairseq multiplies by 1 / sample_size (so does our engine)
        p.grad.copy_(grads[ours_to_official(name)].reshape(p.shape) * (1.0 / sample_size))
    _optimizer(model, ref).step()
    assert _update_error(model, ref) < 1e-5
    # torch's AdamW puts eps elsewhere: on parameters with tiny gradients its first step differs
    model = load_model(FIXTURE / "student.pt")
    for name, p in model.named_parameters():
        p.grad = grads[ours_to_official(name)].reshape(p.shape) * (1.0 / sample_size)
    u = ref["update"]
    torch.optim.AdamW(
        model.parameters(),
        lr=u["lr"],
        betas=tuple(u["betas"]),
        eps=u["eps"],
        weight_decay=u["weight_decay"],
    ).step()
    assert _update_error(model, ref) > 0.1


def test_our_ema_step_is_theirs(ref):
    u = ref["update"]
    assert math.isclose(ema_decay_at(1, 0.9, 0.99, 10), u["ema_decay"], rel_tol=1e-12)
    model = load_model(FIXTURE / "student.pt")
    obj = PretrainObjective(
        model,
        MaskConfig(),
        ObjectiveConfig(clone_batch=2, ema_decay=0.9, ema_end_decay=0.99, ema_anneal_end_step=10),
        teacher=teacher_state_from_official(ref["teacher_before"]),
    )
    _load_official_into(model, u["student_after"])
    obj.after_update(1)
    ours = obj.teacher.encoder.state_dict()
    theirs = teacher_state_from_official(u["teacher_after"], set(ours))
    assert set(theirs) == set(ours)
    assert max(rel_err(ours[k], theirs[k]) for k in theirs) < 1e-6


def test_one_whole_step_of_ours_is_theirs(ref, monkeypatch):
    # forward, backward, update and EMA, all ours: the update inherits the float noise of
    # gradient elements near zero (Adam divides them by sqrt(v) + eps), so it matches to
    # 1% of a step, the teacher to 1e-5
    obj, out, _ = replay(ref, monkeypatch)
    out.loss.backward()
    for p in obj.module.parameters():
        if p.grad is not None:
            p.grad.mul_(1.0 / out.sample_size)
    _optimizer(obj.module, ref).step()
    assert _update_error(obj.model, ref) < 1e-2
    obj.after_update(1)
    ours = obj.teacher.encoder.state_dict()
    theirs = teacher_state_from_official(ref["update"]["teacher_after"], set(ours))
    assert max(rel_err(ours[k], theirs[k]) for k in theirs) < 1e-5


def test_learning_rate_schedule_is_theirs(ref):
    s = ref["schedule"]
    config = OptimConfig(
        lr=s["lr"], max_updates=s["max_updates"], warmup_updates=s["warmup_updates"]
    )
    theirs = s["lr_after_updates"]
    for done in range(s["max_updates"]):
        assert lr_at(done + 1, config) == pytest.approx(theirs[done], rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("frames", [50, 120, 400])
def test_block_masks_follow_their_law(ref, frames):
    theirs = ref["block_masks"][f"T{frames}"]
    g = torch.Generator().manual_seed(frames)
    ours = torch.cat(
        [file_block_masks(frames, 8, mask_prob=0.5, mask_length=5, generator=g) for _ in range(250)]
    ).float()
    # every row exactly int(T * 0.5), theirs and ours
    assert set(theirs["counts"].tolist()) == {frames // 2}
    assert set(ours.sum(1).long().tolist()) == {frames // 2}
    # where masks fall: the same marginal by position (edges included), within sampling noise
    by_position = ours.mean(0)
    assert float((by_position - theirs["by_position"]).abs().mean()) < 0.025
    for edge in (0, 1, frames - 2, frames - 1):
        assert abs(float(by_position[edge] - theirs["by_position"][edge])) < 0.07
    runs = ((ours[:, 1:] == 1) & (ours[:, :-1] == 0)).sum(1) + ours[:, 0]
    assert float(runs.float().mean()) == pytest.approx(theirs["runs_mean"], rel=0.03)


def test_cropped_block_masks_follow_their_law(ref):
    theirs = ref["block_masks"]["crop400to120"]["counts"].float()
    g = torch.Generator().manual_seed(0)
    ours = (
        cropped_block_masks(
            [400] * 250, [120] * 250, 120, 8, mask_prob=0.5, mask_length=5, generator=g
        )
        .sum(1)
        .float()
    )
    assert float(ours.mean()) == pytest.approx(float(theirs.mean()), abs=0.5)
    assert float(ours.std()) == pytest.approx(float(theirs.std()), rel=0.15)


def test_start_from_data2vec2_is_their_strict_false_load(ref):
    d = ref["d2v2_start"]
    ckpt = torch.load(FIXTURE / "d2v2_start.pt", weights_only=True)["model"]
    start = load_start_model(
        FIXTURE / "d2v2_start.pt", extra_tokens=3, layout="authors", context_depth=1, depth=2
    )
    ours = {
        ours_to_official(k): ours_tensor_to_official(k, v)
        for k, v in start.model.state_dict().items()
    }
    assert set(ours) == set(d["student"])
    for key in d["loaded_keys"]:
        assert torch.equal(ours[key], d["student"][key]), key
    for key in d["fresh_keys"]:  # their fresh parameters are fresh in ours too
        assert key not in ckpt
        if float(ours[key].float().std()) > 0:  # constant inits (zero bias, unit norm) agree
            assert not any(
                torch.equal(ours[key], v)
                for v in ckpt.values()
                if isinstance(v, torch.Tensor) and v.shape == ours[key].shape
            ), key
    # the teacher: what their EMA restore took from the checkpoint's _ema
    ema = ckpt["_ema"]
    from_ckpt = {k for k, v in d["teacher"].items() if k in ema and torch.equal(v, ema[k])}
    teacher = start.teacher
    mapped = teacher_state_from_official({k: d["teacher"][k] for k in from_ckpt}, set(teacher))
    assert set(mapped) == set(teacher)
    for key, value in mapped.items():
        assert torch.equal(teacher[key], value), key
