"""Tests of emotion2vec.model: frame arithmetic, ALiBi, padding exactness, hidden states,
training mode. The fast modules are checked against these reference modules in test_fast.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emotion2vec.audio import frame_count, normalize_batch, normalize_waveform
from emotion2vec.model import Decoder, masked_mean
from emotion2vec.model.feature_extractor import ConvFeatureExtractor
from emotion2vec.model.positional import Alibi, alibi_slopes

# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def expected_slopes(num_heads: int) -> list[float]:
    """ALiBi slopes written out: 2^(-8k/n), k = 1..n, for a power of two n; otherwise the slopes
    of the nearest lower power of two followed by every other slope of twice that count."""
    n = num_heads
    if n & (n - 1) == 0:
        return [2.0 ** (-8.0 * k / n) for k in range(1, n + 1)]
    low = 2 ** int(math.floor(math.log2(n)))
    first = [2.0 ** (-8.0 * k / low) for k in range(1, low + 1)]
    double = [2.0 ** (-8.0 * k / (2 * low)) for k in range(1, 2 * low + 1)]
    return first + double[0::2][: n - low]


def standard_alibi(
    heads: int,
    scale: torch.Tensor,
    frames: int,
    extra: int = 0,
    pad: torch.Tensor | None = None,
) -> torch.Tensor:
    """The model's ALiBi bias (its standard slopes for ``heads``) over ``frames`` frames."""
    slopes = torch.tensor(alibi_slopes(heads))
    return Alibi()(slopes, scale, frames, num_extra_tokens=extra, key_padding_mask=pad)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def run_alone(model, wave: np.ndarray):
    """Frames (T, D), embedding (D,), logits (C,) of one normalised waveform, no padding."""
    x = normalize_waveform(torch.from_numpy(wave))[None]
    out, emb, logits = model(x)
    assert out.padding_mask is None
    return out.frames[0], emb[0], None if logits is None else logits[0]


def padded(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    return normalize_batch(batch, lengths), lengths


# ------------------------------------------------------------------------------------------
# Frame arithmetic
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "frames"),
    [(16000, 49), (59200, 184), (160000, 499), (480000, 1499), (400, 1), (719, 1), (720, 2)],
)
def test_frame_lengths_match_the_conv(make_model, samples, frames):
    enc = make_model().encoder
    assert int(enc.frame_lengths(torch.tensor([samples]))[0]) == frames
    with torch.no_grad():
        real, counted = enc.feature_extractor(torch.randn(1, samples))
        projected, mask = enc.local_features(torch.randn(1, samples))
    assert counted.tolist() == [frames]
    assert real.shape == (1, frames, 64)  # (B, T, C)
    assert projected.shape == (1, frames, 64) and mask is None
    assert frame_count(samples) == frames


def test_frame_lengths_below_receptive_field(make_model):
    enc = make_model().encoder
    lengths = torch.tensor([0, 1, 9, 10, 399, 400, 719, 720])
    assert enc.frame_lengths(lengths).tolist() == [0, 0, 0, 0, 0, 1, 1, 2]
    assert enc.feature_extractor.receptive_field == 400
    assert enc.feature_extractor.stride == 320


def test_frame_lengths_many_lengths():
    fe = ConvFeatureExtractor(((4, 10, 5),) + ((4, 3, 2),) * 4 + ((4, 2, 2),) * 2)
    lengths = list(range(400, 2600, 37)) + [3199, 3200, 3201, 3519, 3520, 3521, 3839, 3840]
    got = fe.output_lengths(torch.tensor(lengths)).tolist()
    with torch.no_grad():
        real = [fe(torch.randn(1, n))[0].shape[1] for n in lengths]
    assert got == real == [frame_count(n) for n in lengths]


def test_padded_rows_get_the_frames_of_their_length(make_model, make_wave):
    """Frame counts of each row of a padded batch follow the row's own length."""
    enc = make_model().encoder
    sizes = [400, 16000, 719, 720, 33333]
    batch, lengths = padded([make_wave(n, i) for i, n in enumerate(sizes)])
    with torch.no_grad():
        x, mask = enc.local_features(batch, lengths)
    assert x.shape == (5, frame_count(33333), 64)
    assert (~mask).sum(1).tolist() == [frame_count(n) for n in sizes]


# ------------------------------------------------------------------------------------------
# ALiBi
# ------------------------------------------------------------------------------------------


def test_alibi_slopes_12_heads():
    want = [2.0**-k for k in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    assert alibi_slopes(12) == pytest.approx(want, rel=1e-12)
    assert expected_slopes(12) == pytest.approx(want, rel=1e-12)


def test_alibi_slopes_16_heads():
    want = [2.0 ** (-0.5 * k) for k in range(1, 17)]
    assert alibi_slopes(16) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("heads", [1, 2, 4, 6, 8, 12, 16, 20])
def test_alibi_slopes_other_counts(heads):
    assert alibi_slopes(heads) == pytest.approx(expected_slopes(heads), rel=1e-12)


def test_encoder_uses_the_slopes(make_model):
    enc = make_model().encoder
    assert torch.allclose(enc.alibi_slopes, torch.tensor(expected_slopes(4)))
    # not a saved tensor: checkpoints do not carry it
    assert "encoder.alibi_slopes" not in make_model().state_dict()


def test_extra_tokens_get_zero_bias():
    heads, frames, extra = 4, 7, 10
    bias = standard_alibi(heads, torch.ones(heads), frames, extra)
    assert bias.shape[-2:] == (extra + frames, extra + frames)
    assert torch.count_nonzero(bias[..., :extra, :]) == 0
    assert torch.count_nonzero(bias[..., :, :extra]) == 0
    # and the frame part is not zero (off the diagonal)
    assert bool((bias[..., extra:, extra:].sum(-1) < 0).all())


def test_alibi_bias_values_and_padding():
    heads, frames, extra = 4, 6, 2
    scale = torch.tensor([0.7, -0.5, 1.3, 0.0])
    pad = torch.zeros(2, frames, dtype=torch.bool)
    pad[1, 4:] = True
    bias = standard_alibi(heads, scale, frames, extra, pad)
    slopes = expected_slopes(heads)
    assert bias.shape == (2, heads, extra + frames, extra + frames)
    for h in range(heads):
        coef = slopes[h] * max(float(scale[h]), 0.0)
        for i in range(frames):
            for j in range(frames):
                want = -coef * abs(i - j)
                assert float(bias[0, h, extra + i, extra + j]) == pytest.approx(want, abs=1e-6)
                got = float(bias[1, h, extra + i, extra + j])
                assert got == float("-inf") if j >= 4 else got == pytest.approx(want, abs=1e-6)


def test_alibi_bias_with_positions():
    """keep_index path: distances are those of the original positions."""
    slopes = torch.tensor(alibi_slopes(4))
    positions = torch.tensor([[0, 3, 4, 9]])
    bias = Alibi()(slopes, torch.ones(4), 4, positions=positions, num_extra_tokens=2)
    dist = (positions[0][:, None] - positions[0][None, :]).abs().float()
    for h in range(4):
        assert torch.allclose(bias[0, h, 2:, 2:], -slopes[h] * dist)


# ------------------------------------------------------------------------------------------
# The ALiBi scale
# ------------------------------------------------------------------------------------------


def test_negative_alibi_scale_is_clamped(make_model, make_wave):
    model = make_model(6)
    x = normalize_waveform(torch.from_numpy(make_wave(16000, 3)))[None]
    outputs = {}
    for value in (0.0, -1.0, 1.0):
        with torch.no_grad():
            model.encoder.alibi_scale[1] = value
            outputs[value] = model(x)[0].frames
    assert torch.equal(outputs[0.0], outputs[-1.0])
    assert max_diff(outputs[0.0], outputs[1.0]) > 1e-3  # the head's bias does matter


# ------------------------------------------------------------------------------------------
# Padding exactness: a padded batch gives what each input gives alone
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", [False, True])
def test_padded_batch_equals_each_alone(make_model, make_wave, reference):
    model = make_model(7, reference=reference)
    sizes = [16000, 400, 59200, 480000, 100_137, 1234]
    waves = [make_wave(n, seed=i) for i, n in enumerate(sizes)]
    batch, lengths = padded(waves)
    with torch.no_grad():
        out, emb, logits = model(batch, lengths)
        assert out.padding_mask is not None
        frames_per = model.encoder.frame_lengths(lengths)
        for i, wave in enumerate(waves):
            frames, e, lg = run_alone(model, wave)
            t = int(frames_per[i])
            assert frames.shape[0] == t == frame_count(len(wave))
            assert bool(out.padding_mask[i, :t].logical_not().all())
            assert bool(out.padding_mask[i, t:].all())
            assert max_diff(out.frames[i, :t], frames) <= 1e-4, sizes[i]
            assert max_diff(emb[i], e) <= 1e-4, sizes[i]
            assert max_diff(logits[i], lg) <= 1e-4, sizes[i]


def test_padding_does_not_change_a_full_length_row(make_model, make_wave):
    """A batch of equal lengths has no padding mask and equals each row alone."""
    model = make_model(8)
    waves = [make_wave(20000, 1), make_wave(20000, 2)]
    batch, lengths = padded(waves)
    with torch.no_grad():
        out, emb, _ = model(batch, lengths)
        assert out.padding_mask is None
        frames, e, _ = run_alone(model, waves[1])
    assert max_diff(out.frames[1], frames) <= 1e-5
    assert max_diff(emb[1], e) <= 1e-5


def test_masked_mean():
    frames = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[False, False, True], [False, True, True]])
    got = masked_mean(frames, mask)
    assert torch.allclose(got[0], frames[0, :2].mean(0))
    assert torch.allclose(got[1], frames[1, 0])
    assert torch.allclose(masked_mean(frames, None), frames.mean(1))


def test_forward_embedding_and_logits(make_model, make_wave):
    model = make_model(9)
    x = normalize_waveform(torch.from_numpy(make_wave(12000, 4)))[None]
    with torch.no_grad():
        out, emb, logits = model(x)
    assert out.frames.shape == (1, frame_count(12000), 64)
    assert out.extra_tokens.shape == (1, 10, 64)
    assert torch.allclose(emb, out.frames.mean(1), atol=1e-6)
    assert torch.allclose(logits, model.head(emb))
    assert logits.shape == (1, 9)
    no_head = make_model(9, labels=())
    assert no_head(x)[2] is None


# ------------------------------------------------------------------------------------------
# Hidden states, keep_index
# ------------------------------------------------------------------------------------------


def test_output_hidden_states(make_model, make_wave):
    model = make_model(13)
    batch, lengths = padded([make_wave(16000, 1), make_wave(9000, 2)])
    with torch.no_grad():
        out, _, _ = model(batch, lengths, output_hidden_states=True)
        plain, _, _ = model(batch, lengths)
    n = model.config.encoder.num_layers
    assert len(out.hidden_states) == n + 1 == 4
    assert all(h.shape == out.frames.shape for h in out.hidden_states)
    assert torch.equal(out.hidden_states[-1], out.frames)
    assert torch.equal(out.frames, plain.frames)
    assert plain.hidden_states is None and plain.ffn_outputs is None
    # consecutive states differ: each is a different block's output
    for a, b in zip(out.hidden_states, out.hidden_states[1:], strict=False):
        assert max_diff(a, b) > 1e-3


def test_hidden_state_zero_is_the_context_norm_input(make_model, make_wave):
    model = make_model(14)
    enc = model.encoder
    x_wave = normalize_waveform(torch.from_numpy(make_wave(8000, 3)))[None]
    with torch.no_grad():
        x, mask = enc.local_features(x_wave)
        out = enc.contextualize(x, mask, output_hidden_states=True)
        want = enc.context_norm(x + enc.positional_conv(x, mask))
    assert max_diff(out.hidden_states[0], want) <= 1e-6


def test_keep_index_all_frames_equals_normal_path(make_model, make_wave):
    model = make_model(15)
    enc = model.encoder
    batch, lengths = padded([make_wave(16000, 1), make_wave(11000, 2)])
    with torch.no_grad():
        x, mask = enc.local_features(batch, lengths)
        ref = enc.contextualize(x, mask, output_ffn=True)
        keep = torch.arange(x.shape[1]).unsqueeze(0).expand(x.shape[0], -1)
        out = enc.contextualize(x, mask, keep_index=keep, output_ffn=True)
    assert torch.equal(out.padding_mask, ref.padding_mask)
    assert max_diff(out.frames, ref.frames) <= 1e-6
    assert max_diff(out.extra_tokens, ref.extra_tokens) <= 1e-6
    for a, b in zip(out.ffn_outputs, ref.ffn_outputs, strict=True):
        assert max_diff(a, b) <= 1e-6


def test_keep_index_subset_shapes(make_model, make_wave):
    enc = make_model(16).encoder
    with torch.no_grad():
        x, _ = enc.local_features(normalize_waveform(torch.from_numpy(make_wave(16000)))[None])
        keep = torch.tensor([[0, 5, 6, 40]])
        out = enc.contextualize(x, None, keep_index=keep)
    assert out.frames.shape == (1, 4, 64)
    assert out.padding_mask is None


# ------------------------------------------------------------------------------------------
# Training mode
# ------------------------------------------------------------------------------------------


def test_training_with_layerdrop_gives_gradients(make_model, make_wave):
    model = make_model(17, layerdrop=0.5, context_layerdrop=0.5).train()
    batch, lengths = padded([make_wave(16000, 1), make_wave(12000, 2)])
    torch.manual_seed(0)
    for _ in range(4):  # (1/8)^4 chance that every block is dropped in every step
        out, emb, logits = model(batch, lengths)
        loss = out.frames.pow(2).mean() + logits.logsumexp(-1).mean()
        loss.backward()
    enc = model.encoder
    assert enc.alibi_scale.grad is not None and float(enc.alibi_scale.grad.abs().sum()) > 0
    assert enc.extra_tokens.grad is not None and float(enc.extra_tokens.grad.abs().sum()) > 0
    assert model.head.linear.weight.grad is not None
    assert enc.feature_extractor.layers[0].conv.weight.grad is not None
    assert torch.isfinite(enc.alibi_scale.grad).all()


def test_layerdrop_only_in_training(make_model, make_wave):
    model = make_model(18, layerdrop=1.0, context_layerdrop=1.0)
    x = normalize_waveform(torch.from_numpy(make_wave(8000)))[None]
    model.train()
    out = model(x, output_hidden_states=True)[0]
    assert len(out.hidden_states) == 1  # every block skipped
    model.eval()
    with torch.no_grad():
        out = model(x, output_hidden_states=True)[0]
    assert len(out.hidden_states) == 4


def test_eval_is_deterministic_and_train_uses_dropout(make_model, make_wave):
    model = make_model(19, layerdrop=0.0, context_layerdrop=0.0)
    x = normalize_waveform(torch.from_numpy(make_wave(8000)))[None]
    with torch.no_grad():
        a = model(x)[0].frames
        b = model(x)[0].frames
        assert torch.equal(a, b)
        model.train()
        torch.manual_seed(1)
        c = model(x)[0].frames
    assert max_diff(a, c) > 1e-3


# ------------------------------------------------------------------------------------------
# Decoder (pre-training)
# ------------------------------------------------------------------------------------------


def test_decoder_shapes_and_padding(make_model):
    model = make_model(20)
    dec = model.decoder
    assert isinstance(dec, Decoder)
    assert len(dec.convs) == 4
    assert dec.convs[0].weight.shape == (32, 64 // 16, 7)
    assert dec.convs[1].weight.shape == (32, 32 // 16, 7)
    x = torch.randn(2, 30, 64, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[1, 20:] = True
    x_pad = x.clone()
    x_pad[1, 20:] = 123.0  # garbage in padded frames must not leak into valid ones
    with torch.no_grad():
        out = dec(x_pad, mask)
        alone = dec(x[1:, :20])
    assert out.shape == (2, 30, 64)
    assert max_diff(out[1, :20], alone[0]) <= 1e-5


def test_decoder_against_naive(make_model):
    dec = make_model(21).decoder
    x = torch.randn(1, 17, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = dec(x)
        h = x.transpose(1, 2).double()
        for i, conv in enumerate(dec.convs):
            y = F.conv1d(
                h,
                conv.weight.double(),
                conv.bias.double(),
                padding=conv.kernel_size[0] // 2,
                groups=conv.groups,
            )
            y = F.gelu(F.layer_norm(y.transpose(1, 2), (y.shape[1],)).transpose(1, 2))
            h = y + h if i > 0 else y
        want = h.transpose(1, 2) @ dec.proj.weight.double().T + dec.proj.bias.double()
    assert max_diff(got, want) <= 1e-5
