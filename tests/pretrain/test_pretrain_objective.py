"""The pre-training objective on single micro-batches."""

from __future__ import annotations

import pytest
import torch
from pretrain_helpers import micro_model, tone_wave
from torch import nn

from emotion2vec.errors import ConfigError
from emotion2vec.pretrain.config import MaskConfig, ObjectiveConfig
from emotion2vec.pretrain.objective import CollapseError, PretrainObjective
from emotion2vec.training import Batch


def make_batch(lengths=(16000, 16000), index=0) -> Batch:
    n = max(lengths)
    waves = torch.zeros(len(lengths), n)
    for i, length in enumerate(lengths):
        waves[i, :length] = torch.from_numpy(tone_wave(length, i))
    return Batch(index, waves, torch.tensor(lengths), list(range(len(lengths))))


def make_objective(seed=0, **overrides) -> PretrainObjective:
    cfg = ObjectiveConfig(clone_batch=2)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return PretrainObjective(micro_model(seed), MaskConfig(), cfg, seed=7)


def run_step(objective, batch, seed=0):
    torch.manual_seed(seed)
    return objective.step(objective.module, batch)


class _LeafDecoded(nn.Module):
    """Replaces the decoder output by a leaf tensor so its gradient can be inspected."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.leaf = None

    def forward(self, waves, lengths, mask):
        out = self.inner(waves, lengths, mask)
        self.leaf = out["decoded"].detach().clone().requires_grad_(True)
        return {**out, "decoded": self.leaf}


def test_frame_loss_only_at_masked_frames():
    objective = make_objective(utterance_loss="none")
    batch = make_batch()
    wrapper = _LeafDecoded(objective.module)
    torch.manual_seed(0)
    out = objective.step(wrapper, batch)
    out.loss.backward()
    mask = objective.mask_for(batch)
    touched = wrapper.leaf.grad.abs().sum(-1) > 0
    assert torch.equal(touched, mask)
    assert out.sample_size == float(mask.sum())


def test_loss_is_frame_loss_plus_alpha_utterance_loss():
    batch = make_batch()
    results = {}
    for alpha in (0.0, 2.0):
        objective = make_objective(utterance_alpha=alpha)
        objective.module.eval()  # no dropout: both runs see the same student
        results[alpha] = run_step(objective, batch)
    base, weighted = results[0.0], results[2.0]
    frame_mean = float(base.stats["frame_loss"][0]) / float(base.stats["frame_loss"][1])
    utt_mean = float(base.stats["utt_loss"][0]) / base.stats["utt_loss"][1]
    assert float(base.loss.detach()) / base.sample_size == pytest.approx(frame_mean, rel=1e-5)
    # the run's weighting: the utterance term is a sum over the micro-batch's rows
    rows = base.stats["utt_loss"][1]
    expected = frame_mean + 2.0 * utt_mean * rows
    assert float(weighted.loss.detach()) / weighted.sample_size == pytest.approx(expected, rel=1e-5)
    # the paper's form: a mean over rows
    objective = make_objective(utterance_alpha=2.0, utterance_weighting="mean")
    objective.module.eval()
    mean_weighted = run_step(objective, batch)
    expected = frame_mean + 2.0 * utt_mean
    assert float(mean_weighted.loss.detach()) / mean_weighted.sample_size == pytest.approx(
        expected, rel=1e-5
    )
    assert utt_mean > 0


@pytest.mark.parametrize(
    "variant, pooling",
    [("chunk", "mean"), ("chunk", "each"), ("token", "mean"), ("global", "mean")],
)
def test_variants_give_a_trainable_loss(variant, pooling):
    objective = make_objective(utterance_loss=variant, chunk_pooling=pooling)
    out = run_step(objective, make_batch())
    assert torch.isfinite(out.loss)
    assert out.loss.requires_grad
    assert "utt_loss" in out.stats and float(out.stats["utt_loss"][0]) > 0
    out.loss.backward()
    tokens = objective.model.encoder.extra_tokens.grad
    assert tokens is not None and float(tokens.abs().sum()) > 0


def test_utterance_variants_differ():
    batch = make_batch()
    values = {}
    for variant in ("chunk", "token", "global"):
        objective = make_objective(utterance_loss=variant)
        objective.module.eval()
        values[variant] = float(run_step(objective, batch).stats["utt_loss"][0])
    assert len(set(values.values())) == 3


def test_precomputed_and_in_step_masks_agree():
    objective = make_objective()
    batch = make_batch(index=3)
    pre = objective.precompute(batch)
    assert torch.equal(pre.mask, objective.mask_for(batch))
    assert pre.mask.shape == (4, 49)  # 2 utterances x clone 2, 49 frames per second
    assert not torch.equal(objective.mask_for(make_batch(index=4)), pre.mask)
    objective.module.eval()
    a = run_step(objective, batch)
    b = run_step(objective, pre)
    assert float(a.loss.detach()) == float(b.loss.detach())


def test_teacher_reads_the_students_unmasked_features(monkeypatch):
    objective = make_objective()
    batch = make_batch()
    seen = {}
    original = objective.teacher.forward

    def spy(features, padding_mask):
        seen["features"] = features
        return original(features, padding_mask)

    monkeypatch.setattr(objective.teacher, "forward", spy)
    run_step(objective, batch)
    with torch.no_grad():
        expected, _ = objective.model.encoder.local_features(batch.waves, batch.lengths)
    assert seen["features"].shape == expected.shape  # not cloned, not shortened
    assert not seen["features"].requires_grad
    torch.testing.assert_close(seen["features"], expected)


def test_padded_rows_get_their_own_targets_and_masks():
    objective = make_objective()
    batch = make_batch(lengths=(16000, 11200))
    mask = objective.mask_for(batch)
    frames = objective.model.encoder.frame_lengths(batch.lengths).repeat_interleave(2)
    for row, valid in enumerate(frames.tolist()):
        assert not mask[row, valid:].any()
    out = run_step(objective, batch)
    assert torch.isfinite(out.loss)
    # the short row's teacher targets are those it gets alone
    from emotion2vec.pretrain.losses import teacher_targets

    enc = objective.model.encoder
    with torch.no_grad():
        x, pad = enc.local_features(batch.waves, batch.lengths)
        both = teacher_targets(objective.teacher(x, pad).ffn_outputs, pad, 8)
        x1, _ = enc.local_features(batch.waves[1:, :11200])
        alone = teacher_targets(objective.teacher(x1, None).ffn_outputs, None, 8)
    n = alone.shape[1]
    torch.testing.assert_close(both[1, :n], alone[0], rtol=1e-4, atol=1e-4)


def test_placeholder_batch_contributes_nothing():
    objective = make_objective()
    batch = make_batch()
    batch.weight = 0.0
    out = run_step(objective, batch)
    assert out.sample_size == 0.0 and out.stats == {}
    out.loss.backward()
    grads = [p.grad for p in objective.module.parameters() if p.grad is not None]
    assert grads and all(float(g.abs().sum()) == 0 for g in grads)


def test_collapse_guard():
    objective = make_objective(var_check_after=100, min_target_var=0.1, min_pred_var=0.01)
    objective.check({"target_var": 0.01, "pred_var": 0.001}, 100)  # not checked yet
    with pytest.raises(CollapseError, match=r"target_var = 0\.05 fell below min_target_var = 0\.1"):
        objective.check({"target_var": 0.05, "pred_var": 1.0}, 101)
    with pytest.raises(CollapseError, match="pred_var .* min_pred_var = 0.01"):
        objective.check({"target_var": 1.0, "pred_var": 0.001}, 101)
    objective.check({"target_var": 0.5, "pred_var": 0.5}, 101)


def test_objective_refuses_impossible_setups():
    model = micro_model(0, decoder=False)
    with pytest.raises(ConfigError, match="decoder"):
        PretrainObjective(model, MaskConfig(), ObjectiveConfig())
    with pytest.raises(ConfigError, match="chunk_tokens=11"):
        PretrainObjective(micro_model(0), MaskConfig(), ObjectiveConfig(chunk_tokens=11))
