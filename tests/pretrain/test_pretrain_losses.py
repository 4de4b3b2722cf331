"""Targets and losses: instance norm, top-k averaging, utterance-loss variants."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from emotion2vec.pretrain.losses import (
    instance_norm_time,
    mean_channel_std,
    regression_loss,
    teacher_targets,
    utterance_loss,
    utterance_prediction,
)


def test_instance_norm_matches_torch_without_padding():
    x = torch.randn(3, 40, 8) * 5 + 2
    ours = instance_norm_time(x, None)
    ref = F.instance_norm(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.mean(1), torch.zeros(3, 8), rtol=0, atol=1e-5)


def test_instance_norm_ignores_padding():
    x = torch.randn(2, 30, 8)
    padding = torch.zeros(2, 30, dtype=torch.bool)
    padding[1, 20:] = True
    x[1, 20:] = 1000.0  # garbage in the padding must not matter
    out = instance_norm_time(x, padding)
    alone = instance_norm_time(x[1:2, :20], None)
    torch.testing.assert_close(out[1:2, :20], alone, rtol=1e-5, atol=1e-5)
    assert bool((out[1, 20:] == 0).all())


def test_targets_average_the_top_k_normalised_layers():
    layers = [torch.randn(2, 10, 4) * (i + 1) for i in range(4)]
    y = teacher_targets(layers, None, top_k=2)
    expected = (instance_norm_time(layers[2], None) + instance_norm_time(layers[3], None)) / 2
    torch.testing.assert_close(y, expected)
    # k larger than the depth is clamped to all layers
    y_all = teacher_targets(layers, None, top_k=8)
    expected = sum(instance_norm_time(t, None) for t in layers) / 4
    torch.testing.assert_close(y_all, expected)
    raw = teacher_targets(layers, None, top_k=1, instance_norm=False)
    torch.testing.assert_close(raw, layers[-1])


def test_regression_loss_scale():
    pred, target = torch.ones(5, 16), torch.zeros(5, 16)
    out = regression_loss(pred, target, 1 / math.sqrt(16))
    torch.testing.assert_close(out, torch.full((5,), 16 / 4.0))


@pytest.fixture
def student_outputs():
    torch.manual_seed(0)
    extra = torch.randn(3, 10, 8)
    frames = torch.randn(3, 6, 8)
    padding = torch.zeros(3, 6, dtype=torch.bool)
    padding[2, 4:] = True
    return extra, frames, padding


def test_token_variant_uses_one_token(student_outputs):
    extra, frames, padding = student_outputs
    out = utterance_prediction(
        "token", extra_tokens=extra, frames=frames, frames_padding_mask=padding
    )
    assert torch.equal(out, extra[:, -1])
    out = utterance_prediction(
        "token", extra_tokens=extra, frames=frames, frames_padding_mask=padding, token_index=0
    )
    assert torch.equal(out, extra[:, 0])


def test_chunk_variant_pools_tokens(student_outputs):
    extra, frames, padding = student_outputs
    out = utterance_prediction(
        "chunk", extra_tokens=extra, frames=frames, frames_padding_mask=padding
    )
    torch.testing.assert_close(out, extra.mean(1))
    out = utterance_prediction(
        "chunk", extra_tokens=extra, frames=frames, frames_padding_mask=padding, chunk_tokens=4
    )
    torch.testing.assert_close(out, extra[:, :4].mean(1))
    each = utterance_prediction(
        "chunk",
        extra_tokens=extra,
        frames=frames,
        frames_padding_mask=padding,
        chunk_pooling="each",
    )
    assert each.shape == (3, 10, 8)
    target = torch.randn(3, 8)
    per_token = [regression_loss(extra[:, k], target, 0.5) for k in range(10)]
    torch.testing.assert_close(utterance_loss(each, target, 0.5), torch.stack(per_token, 1).mean(1))
    # "each" is not "mean": averaging losses != loss of the average
    mean_pred = extra.mean(1)
    assert not torch.allclose(
        utterance_loss(each, target, 0.5), utterance_loss(mean_pred, target, 0.5)
    )


def test_global_variant_averages_visible_frames(student_outputs):
    extra, frames, padding = student_outputs
    out = utterance_prediction(
        "global", extra_tokens=extra, frames=frames, frames_padding_mask=padding
    )
    torch.testing.assert_close(out[:2], frames[:2].mean(1))
    torch.testing.assert_close(out[2], frames[2, :4].mean(0))


def test_token_variants_need_extra_tokens():
    with pytest.raises(ValueError, match="needs extra tokens"):
        utterance_prediction(
            "chunk",
            extra_tokens=torch.zeros(2, 0, 4),
            frames=torch.zeros(2, 3, 4),
            frames_padding_mask=None,
        )


def test_mean_channel_std():
    x = torch.randn(5000, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert float(mean_channel_std(x)) == pytest.approx(2.5, rel=0.03)
    assert float(mean_channel_std(torch.ones(100, 4))) == pytest.approx(1e-3, rel=1e-3)


def test_instance_normed_targets_make_the_utterance_target_zero():
    """docs/pretraining.md "What this target is": the time-mean of instance-normalised,
    averaged targets vanishes for every utterance (padded or not); without the per-layer norm
    it does not."""
    from emotion2vec.model import masked_mean

    torch.manual_seed(0)
    layers = [torch.randn(3, 40, 16) * 3 + torch.randn(3, 1, 16) * 5 for _ in range(4)]
    mask = torch.zeros(3, 40, dtype=torch.bool)
    mask[1, 25:] = True
    normed = masked_mean(teacher_targets(layers, mask, top_k=3), mask)
    assert normed.abs().max() < 1e-5
    raw = masked_mean(teacher_targets(layers, mask, top_k=3, instance_norm=False), mask)
    assert raw.abs().max() > 1.0
