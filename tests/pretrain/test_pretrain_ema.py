"""The EMA teacher: decay schedule, update arithmetic, what is (not) averaged."""

from __future__ import annotations

import pytest
import torch
from pretrain_helpers import micro_model

from emotion2vec.pretrain.ema import EmaTeacher, ema_decay_at


def test_decay_schedule_values():
    start, end, n = 0.999, 0.99999, 20000
    assert ema_decay_at(0, start, end, n) == pytest.approx(0.999, abs=1e-12)
    assert ema_decay_at(10000, start, end, n) == pytest.approx((start + end) / 2, abs=1e-12)
    assert ema_decay_at(5000, start, end, n) == pytest.approx(0.999 + 0.25 * 0.00099, abs=1e-12)
    assert ema_decay_at(20000, start, end, n) == end
    assert ema_decay_at(10**6, start, end, n) == end
    # monotone
    values = [ema_decay_at(s, start, end, n) for s in range(0, 25000, 500)]
    assert values == sorted(values)
    # no annealing: the end decay from the start
    assert ema_decay_at(0, start, end, 0) == end


def test_teacher_averages_only_the_contextual_encoder():
    student = micro_model(0)
    teacher = EmaTeacher(student.encoder)
    names = set(teacher.encoder.state_dict())
    assert not any(n.startswith(("feature_extractor", "feature_projection")) for n in names)
    for expected in ("positional_conv.convs.0.weight", "alibi_scale", "extra_tokens"):
        assert expected in names
    assert any(n.startswith("context_blocks.") for n in names)
    assert any(n.startswith("blocks.") for n in names)
    assert all(not p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.encoder.training


def test_update_math():
    student = micro_model(0)
    teacher = EmaTeacher(student.encoder)
    before = {k: v.clone() for k, v in teacher.encoder.named_parameters()}
    with torch.no_grad():
        for p in student.encoder.parameters():
            p.add_(torch.randn_like(p))
    decay = 0.9
    teacher.update(student.encoder, decay)
    source = dict(student.encoder.named_parameters())
    for name, param in teacher.encoder.named_parameters():
        expected = decay * before[name] + (1 - decay) * source[name]
        torch.testing.assert_close(param, expected, rtol=0, atol=1e-6)
    # decay 1 leaves the teacher alone
    snapshot = {k: v.clone() for k, v in teacher.encoder.named_parameters()}
    teacher.update(student.encoder, 1.0)
    assert all(torch.equal(v, snapshot[k]) for k, v in teacher.encoder.named_parameters())


def test_teacher_starts_as_the_student():
    student = micro_model(3).eval()
    teacher = EmaTeacher(student.encoder)
    waves = torch.randn(2, 16000)
    with torch.no_grad():
        x, pad = student.encoder.local_features(waves)
        ref = student.encoder.contextualize(x, pad, output_ffn=True)
        out = teacher(x, pad)
    torch.testing.assert_close(out.frames, ref.frames)
    assert len(out.ffn_outputs) == student.config.encoder.depth
    for a, b in zip(out.ffn_outputs, ref.ffn_outputs, strict=True):
        torch.testing.assert_close(a, b)
