"""Every fast module (emotion2vec.fast) against the reference module it replaces, that
``accelerate`` swaps them all, and the fast modules' own machinery (chunking, row blocks,
diagonals, weight caches, the folded waveform layer)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from test_model import max_diff, padded

import emotion2vec.fast.alibi as alibi_mod
import emotion2vec.fast.attention as attention_mod
import emotion2vec.fast.conv as conv_mod
from emotion2vec.audio import normalize_waveform
from emotion2vec.fast import accelerate, is_accelerated
from emotion2vec.fast.alibi import AlibiBias, LazyAlibi
from emotion2vec.fast.attention import FastFeedForward, FastSelfAttention
from emotion2vec.fast.conv import FastConvFeatureExtractor, FastConvLayer
from emotion2vec.fast.positional import FastPositionalConv
from emotion2vec.model.feature_extractor import ConvFeatureExtractor, ConvLayer
from emotion2vec.model.positional import Alibi, PositionalConv, alibi_slopes
from emotion2vec.model.transformer import FeedForward, SelfAttention

#: A small conv stack with the published kernel / stride pattern (receptive field 400).
SMALL_CONV = ((8, 10, 5),) + ((8, 3, 2),) * 4 + ((8, 2, 2),) * 2

#: Sample counts per row: below the receptive field (0 frames), exactly one frame, odd sizes.
LENGTHS = [[150], [399], [400], [719, 720], [16_000, 400, 9_001], [40_211, 33_333, 1_000, 5]]


def standard_alibi(heads, scale, frames, extra=0, pad=None) -> AlibiBias:
    """The fast (lazy) ALiBi bias with the standard slopes for ``heads``."""
    slopes = torch.tensor(alibi_slopes(heads))
    return LazyAlibi()(slopes, scale, frames, num_extra_tokens=extra, key_padding_mask=pad)


def frame_padding(frames: int, valid: list[int]) -> torch.Tensor:
    """(B, T) True = padding for rows of ``valid`` frames each."""
    return torch.arange(frames).unsqueeze(0) >= torch.tensor(valid).unsqueeze(1)


# ------------------------------------------------------------------------------------------
# Each fast module against its reference module
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("grad", [False, True])
def test_fast_conv_extractor_equals_reference(lengths, grad):
    torch.manual_seed(len(lengths))
    reference = ConvFeatureExtractor(SMALL_CONV).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0.0, 0.3).add_(0.1)  # non-default LayerNorm gains and biases too
    fast = FastConvFeatureExtractor(reference)
    waves = torch.zeros(len(lengths), max(lengths))
    for row, n in enumerate(lengths):
        waves[row, :n] = torch.randn(n)
    lengths_t = torch.tensor(lengths)
    with torch.set_grad_enabled(grad):
        want, want_frames = reference(waves, lengths_t)
        got, got_frames = fast(waves, lengths_t)
    assert torch.equal(got_frames, want_frames)
    assert got_frames.tolist() == [reference.output_lengths(n) for n in lengths]
    assert got.shape == want.shape == (len(lengths), reference.output_lengths(max(lengths)), 8)
    if want.numel():
        assert max_diff(got, want) <= 1e-5


@pytest.mark.parametrize("frames", [[1], [7, 3], [40, 40], [57, 12, 31]])
def test_fast_positional_conv_equals_reference(frames):
    torch.manual_seed(sum(frames))
    reference = PositionalConv(32, 9, 3, 4).eval()
    fast = FastPositionalConv(reference)
    x = torch.randn(len(frames), max(frames), 32)
    mask = frame_padding(max(frames), frames) if len(set(frames)) > 1 else None
    with torch.no_grad():
        got, want = fast(x, mask), reference(x, mask)
    assert max_diff(got, want) <= 1e-5


@pytest.mark.parametrize("extra", [0, 3])
@pytest.mark.parametrize("frames", [[1], [13, 9], [20, 20], [31, 1, 17]])
def test_lazy_alibi_equals_reference(frames, extra):
    heads = 4
    slopes, scale = torch.tensor(alibi_slopes(heads)), torch.tensor([0.7, -0.5, 1.3, 0.0])
    mask = frame_padding(max(frames), frames)
    want = Alibi()(slopes, scale, max(frames), num_extra_tokens=extra, key_padding_mask=mask)
    lazy = LazyAlibi()(slopes, scale, max(frames), num_extra_tokens=extra, key_padding_mask=mask)
    assert torch.equal(lazy.full(), want)
    # row blocks, including blocks that straddle the extra tokens, are slices of the bias
    length = extra + max(frames)
    for start, end in [(0, 1), (0, length), (max(extra - 1, 0), min(extra + 2, length))]:
        fresh = LazyAlibi()(
            slopes, scale, max(frames), num_extra_tokens=extra, key_padding_mask=mask
        )
        assert torch.equal(fresh.rows(start, end), want[:, :, start:end])
    positions = torch.tensor([[0, 3, 4, 9], [1, 2, 5, 6]])
    want = Alibi()(slopes, scale, 4, positions=positions, num_extra_tokens=extra)
    lazy = LazyAlibi()(slopes, scale, 4, positions=positions, num_extra_tokens=extra)
    assert torch.equal(lazy.full(), want)


@pytest.mark.parametrize("rows_per_block", [None, 7])
@pytest.mark.parametrize("frames", [[1], [23, 15], [31, 31], [23, 1, 9]])
def test_fast_attention_and_ffn_equal_reference(frames, rows_per_block, monkeypatch):
    torch.manual_seed(len(frames))
    heads, extra, dim = 4, 3, 32
    attention, ffn = SelfAttention(dim, heads, 0.1, 0.1).eval(), FeedForward(dim, 64, 0.1).eval()
    fast_attention, fast_ffn = FastSelfAttention(attention).eval(), FastFeedForward(ffn).eval()
    scale = torch.tensor([0.7, -0.5, 1.3, 0.9])
    mask = frame_padding(max(frames), frames)
    x = torch.randn(len(frames), extra + max(frames), dim)
    slopes = torch.tensor(alibi_slopes(heads))
    bias = Alibi()(slopes, scale, max(frames), num_extra_tokens=extra, key_padding_mask=mask)
    if rows_per_block is not None:  # long-input paths: row blocks, or diagonals without padding
        monkeypatch.setattr(
            attention_mod, "MAX_SCORE_ELEMENTS", len(frames) * heads * x.shape[1] * rows_per_block
        )
    with torch.no_grad():
        want = attention(x, bias)
        got = fast_attention(x, standard_alibi(heads, scale, max(frames), extra, mask))
        assert max_diff(got, want) <= 1e-5
        assert max_diff(fast_ffn(x), ffn(x)) <= 1e-5


@pytest.mark.parametrize("sizes", [[400], [16_000, 8_000], [12_000, 12_000], [30_000, 401, 9_999]])
def test_accelerated_model_equals_reference_model(make_model, make_wave, sizes):
    reference = make_model(5, reference=True)
    fast = accelerate(copy.deepcopy(reference))
    batch, lengths = padded([make_wave(n, i) for i, n in enumerate(sizes)])
    with torch.no_grad():
        want = reference(batch, lengths, output_hidden_states=True)
        x, mask = fast.encoder.local_features(batch, lengths)
        got = fast(batch, lengths, output_hidden_states=True)
        want_ffn = reference.encoder.contextualize(x, mask, output_ffn=True).ffn_outputs
        got_ffn = fast.encoder.contextualize(x, mask, output_ffn=True).ffn_outputs
    valid = slice(None) if want[0].padding_mask is None else ~want[0].padding_mask
    for g, w in zip(got[0].hidden_states, want[0].hidden_states, strict=True):
        assert max_diff(g[valid], w[valid]) <= 5e-5
    for g, w in zip(got_ffn, want_ffn, strict=True):
        assert max_diff(g[valid], w[valid]) <= 5e-5
    assert max_diff(got[1], want[1]) <= 5e-5 and max_diff(got[2], want[2]) <= 5e-5


def test_accelerate_swaps_every_module_in_place_and_keeps_the_checkpoint_keys(make_model):
    reference = make_model(3, reference=True)
    keys = list(reference.state_dict())
    assert not is_accelerated(reference)
    model = accelerate(reference)
    assert model is reference and is_accelerated(model)
    enc = model.encoder
    assert isinstance(enc.feature_extractor, FastConvFeatureExtractor)
    assert all(isinstance(layer, FastConvLayer) for layer in enc.feature_extractor.layers)
    assert isinstance(enc.positional_conv, FastPositionalConv)
    assert isinstance(enc.alibi, LazyAlibi)
    for block in [*enc.context_blocks, *enc.blocks]:
        assert isinstance(block.attn, FastSelfAttention) and isinstance(block.mlp, FastFeedForward)
        assert not block.attn.training  # the swapped modules keep eval mode
    assert list(model.state_dict()) == keys
    again = accelerate(model)  # idempotent
    assert again.encoder.feature_extractor is enc.feature_extractor


def test_load_model_accelerates(tmp_path, make_model):
    from emotion2vec import load_model

    make_model(4, reference=True).save_pretrained(tmp_path / "m")
    assert is_accelerated(load_model(tmp_path / "m"))


# ------------------------------------------------------------------------------------------
# The fast modules' own machinery
# ------------------------------------------------------------------------------------------


def test_chunked_conv_extraction(make_model, make_wave, monkeypatch):
    model = make_model(10)
    waves = [make_wave(160000, 1), make_wave(57_777, 2)]
    batch, lengths = padded(waves)
    with torch.no_grad():
        ref_feats = model.encoder.feature_extractor(batch)[0]
        ref = model(batch, lengths)

    calls = []
    original = conv_mod.FastConvFeatureExtractor._run

    def counting_run(self, waves):
        calls.append(waves.shape[-1])
        return original(self, waves)

    monkeypatch.setattr(conv_mod, "CHUNK_FRAMES", 30)
    monkeypatch.setattr(conv_mod.FastConvFeatureExtractor, "_run", counting_run)
    with torch.no_grad():
        feats = model.encoder.feature_extractor(batch)[0]
        out = model(batch, lengths)
    assert len(calls) > 20  # it did run in chunks (499 frames, 15 per chunk for 2 rows)
    assert feats.shape == ref_feats.shape
    assert max_diff(feats, ref_feats) <= 1e-5
    assert max_diff(out[0].frames, ref[0].frames) <= 1e-4
    assert max_diff(out[1], ref[1]) <= 1e-4
    assert max_diff(out[2], ref[2]) <= 1e-4


def test_chunked_conv_odd_sizes(monkeypatch):
    fe = FastConvFeatureExtractor(ConvFeatureExtractor(SMALL_CONV)).eval()
    x = torch.randn(3, 40_000 + 211)
    with torch.no_grad():
        ref = fe(x)[0]
        for chunk in (1, 3, 7, 128):
            monkeypatch.setattr(conv_mod, "CHUNK_FRAMES", chunk)
            assert max_diff(fe(x)[0], ref) <= 1e-5


def test_chunked_conv_gradients(make_model, make_wave, monkeypatch):
    """Chunking (if it happens in training) does not change the gradients of the conv weights."""
    model = make_model(22)
    fe = model.encoder.feature_extractor
    x = torch.from_numpy(make_wave(24000, 3))[None]

    def grads():
        fe.zero_grad()
        fe(x)[0].pow(2).mean().backward()
        return [p.grad.clone() for p in fe.parameters()]

    ref = grads()
    monkeypatch.setattr(conv_mod, "CHUNK_FRAMES", 5)
    for got, want in zip(grads(), ref, strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


def test_chunked_attention(make_model, make_wave, monkeypatch):
    model = make_model(11)
    waves = [make_wave(59200, 1), make_wave(30000, 2)]
    batch, lengths = padded(waves)
    with torch.no_grad():
        ref = model(batch, lengths, output_hidden_states=True)

    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting_sdpa(q, *args, **kwargs):
        calls.append(q.shape[2])
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)
    length = 10 + 184
    monkeypatch.setattr(attention_mod, "MAX_SCORE_ELEMENTS", 2 * 4 * length * 9)
    with torch.no_grad():
        out = model(batch, lengths, output_hidden_states=True)
    n_blocks = model.config.encoder.num_layers
    assert len(calls) == n_blocks * math.ceil(length / 9)
    assert max(calls) == 9
    for got, want in zip(out[0].hidden_states, ref[0].hidden_states, strict=True):
        assert max_diff(got, want) <= 1e-5
    assert max_diff(out[1], ref[1]) <= 1e-5
    assert max_diff(out[2], ref[2]) <= 1e-5


def test_chunked_attention_one_row_at_a_time(make_model, make_wave, monkeypatch):
    model = make_model(12)
    x = normalize_waveform(torch.from_numpy(make_wave(9000, 5)))[None]
    with torch.no_grad():
        ref = model(x)[0].frames
        monkeypatch.setattr(attention_mod, "MAX_SCORE_ELEMENTS", 1)
        out = model(x)[0].frames
    assert max_diff(out, ref) <= 1e-5


def test_long_unpadded_attention_reads_the_bias_from_its_diagonals(
    make_model, make_wave, monkeypatch
):
    """Where the bias would be built in row blocks and has no padding (one long recording, or
    equal lengths), every block attends with the Hankel view of the bias diagonals instead: the
    same hidden states, embeddings and logits as the whole-bias path; no bias rows are built."""
    model = make_model(14)
    wave = normalize_waveform(torch.from_numpy(make_wave(12000, 6)))
    x = torch.stack([wave, wave.flip(0)])  # equal lengths: no padding
    with torch.no_grad():
        ref = model(x, output_hidden_states=True)
    calls = []
    by_diagonals = attention_mod.attend_by_diagonals

    def counting(q, k, v, diagonals, num_extra):
        calls.append((q.shape[2], num_extra))
        return by_diagonals(q, k, v, diagonals, num_extra)

    def no_rows(self, start, end):
        raise AssertionError("bias rows built")

    monkeypatch.setattr(attention_mod, "attend_by_diagonals", counting)
    monkeypatch.setattr(AlibiBias, "rows", no_rows)
    monkeypatch.setattr(attention_mod, "MAX_SCORE_ELEMENTS", 1)
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    extra = model.config.encoder.num_extra_tokens
    assert len(calls) == model.config.encoder.num_layers and calls[0][1] == extra
    for got, want in zip(out[0].hidden_states, ref[0].hidden_states, strict=True):
        assert max_diff(got, want) <= 1e-5
    assert max_diff(out[1], ref[1]) <= 1e-5 and max_diff(out[2], ref[2]) <= 1e-5


@pytest.mark.parametrize("extra", [0, 3])
def test_attend_by_diagonals_equals_attention_over_the_whole_bias(extra):
    torch.manual_seed(15)
    heads, frames = 4, 23
    scale = torch.tensor([0.7, 0.2, 1.3, 0.9])
    qkv = torch.randn(2, extra + frames, 3 * heads * 8)
    bias = standard_alibi(heads, scale, frames, extra)
    q, k, v = qkv.view(2, extra + frames, 3, heads, 8).permute(2, 0, 3, 1, 4).unbind(0)
    with torch.no_grad():
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.full())
        got = attention_mod.attend_by_diagonals(q, k, v, bias.diagonals(), extra)
    assert got.shape == want.shape
    assert max_diff(got, want) <= 1e-5


@pytest.mark.parametrize("padded", [False, True])
def test_long_attention_gradients_with_a_frozen_alibi_scale(padded, monkeypatch):
    """With autograd on and a frozen ALiBi scale (q, k, v still trainable), attention over a
    long input gives the gradients of attention over the whole bias: the row blocks must not
    share one buffer that autograd keeps (it raised "modified by an inplace operation"), and the
    diagonal path, whose kernel does not differentiate its log-sum-exps, must not be taken."""
    torch.manual_seed(16)
    heads, frames, extra = 4, 30, 3
    scale = torch.tensor([0.7, 0.2, 1.3, 0.9])
    pad = torch.zeros(2, frames, dtype=torch.bool)
    if padded:
        pad[1, 25:] = True

    def attention_and_grad():
        qkv = torch.randn(
            2, extra + frames, 3 * heads * 8, generator=torch.Generator().manual_seed(0)
        )
        qkv.requires_grad_(True)
        bias = standard_alibi(heads, scale, frames, extra, pad)
        out = attention_mod.attend(qkv, bias, heads)
        weights = torch.linspace(-1, 1, out.numel()).view(out.shape)
        (grad,) = torch.autograd.grad((out * weights).sum(), qkv)
        return out.detach(), grad

    want_out, want_grad = attention_and_grad()
    monkeypatch.setattr(attention_mod, "MAX_SCORE_ELEMENTS", 2 * heads * (extra + frames) * 7)
    got_out, got_grad = attention_and_grad()
    assert max_diff(got_out, want_out) <= 1e-5
    assert max_diff(got_grad, want_grad) <= 1e-5


def test_alibi_diagonals_are_the_frame_bias_or_none():
    heads, frames, extra = 4, 9, 3
    slopes, scale = torch.tensor(alibi_slopes(heads)), torch.tensor([0.7, 0.2, 1.3, 0.9])
    no_pad = torch.zeros(2, frames, dtype=torch.bool)
    bias = AlibiBias(slopes, scale, frames, num_extra_tokens=extra, key_padding_mask=no_pad)
    diagonals = bias.diagonals()
    assert diagonals.shape == (heads, 2 * frames - 1)
    hankel = diagonals.as_strided((heads, frames, frames), (2 * frames - 1, 1, 1))
    # with the keys reversed, the view is exactly the frame block of the bias
    assert torch.equal(hankel.flip(-1), bias.full()[0, :, extra:, extra:])
    padded = no_pad.clone()
    padded[1, -1] = True
    assert AlibiBias(slopes, scale, frames, key_padding_mask=padded).diagonals() is None
    kept = torch.tensor([[0, 2, 3, 7]])  # pre-training's visible frames: not evenly spaced
    assert AlibiBias(slopes, scale, 4, positions=kept).diagonals() is None
    trainable = scale.clone().requires_grad_(True)
    with torch.enable_grad():
        assert AlibiBias(slopes, trainable, frames).diagonals() is None
    with torch.no_grad():
        assert AlibiBias(slopes, trainable, frames).diagonals() is not None


def test_alibi_rows_without_distance_cache_equal_cached(monkeypatch):
    slopes = torch.tensor(alibi_slopes(4))
    scale = torch.tensor([0.7, 0.2, 1.3, 0.9])
    pad = torch.zeros(2, 20, dtype=torch.bool)
    pad[1, 15:] = True
    cached = AlibiBias(slopes, scale, 20, num_extra_tokens=3, key_padding_mask=pad)
    blocks = [(0, 5), (5, 13), (13, 23)]
    with torch.no_grad():
        want = [cached.rows(a, b).clone() for a, b in blocks]
        assert cached._distances  # small inputs keep their distances
        monkeypatch.setattr(alibi_mod, "MAX_CACHED_DISTANCES", 0)
        fresh = AlibiBias(slopes, scale, 20, num_extra_tokens=3, key_padding_mask=pad)
        got = [fresh.rows(a, b).clone() for a, b in blocks]
        assert not fresh._distances  # long inputs recompute instead of keeping T x T floats
    for w, g in zip(want, got, strict=True):
        assert torch.equal(w, g)


def test_cached_weight_layouts_follow_weight_changes():
    """The weight re-layouts cached without autograd (conv taps, the folded waveform layer) give
    the autograd path's result and are redone after an in-place update (load_state_dict, which
    also changes the LayerNorm the waveform layer folds in) or a dtype change."""
    torch.manual_seed(0)
    fe = FastConvFeatureExtractor(ConvFeatureExtractor(SMALL_CONV)).eval()
    x = torch.randn(2, 16_000)
    with torch.enable_grad():
        fresh = fe(x)[0].detach()  # requires_grad weights with autograd on: no cache
    assert all(not layer._cache for layer in fe.layers)
    with torch.inference_mode():
        first = fe(x)[0]
        again = fe(x)[0]
    torch.testing.assert_close(first, fresh, rtol=1e-5, atol=1e-5)
    assert torch.equal(again, first)
    assert set(fe.layers[0]._cache) == {"waveform"}
    assert all(set(layer._cache) == {"taps"} for layer in fe.layers[1:])

    other = FastConvFeatureExtractor(ConvFeatureExtractor(fe.spec))
    with torch.no_grad():
        for param in other.parameters():  # non-default LayerNorm gains and biases too
            param.normal_()
    other.eval()
    fe.load_state_dict(other.state_dict())
    with torch.no_grad():
        expected = other(x)[0]
        got = fe(x)[0]
        assert torch.equal(got, expected)
        with torch.enable_grad():
            torch.testing.assert_close(got, other(x)[0].detach(), rtol=1e-5, atol=1e-5)
        assert fe.double()(x.double())[0].dtype == torch.float64


def test_waveform_layer_folds_its_layernorm_exactly():
    """Inference folds the waveform layer's LayerNorm into its product (statistics from a k x k
    covariance of the weights): the same as conv -> LayerNorm -> GELU up to fp32 rounding, for
    loud, quiet and all-zero (digital silence: LayerNorm gives its bias) windows."""
    torch.manual_seed(1)
    layer = FastConvLayer(ConvLayer(1, 64, 10, 5, eps=1e-5))
    with torch.no_grad():
        layer.conv.weight.normal_(0.0, 0.3)
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.normal_(0.0, 0.2)
    wave = torch.randn(4000) * torch.linspace(0, 2, 4000)
    wave[1000:2000] *= 1e-4
    wave[2000:3000] = 0.0
    x = wave.unsqueeze(-1)
    want = F.gelu(
        F.layer_norm(
            layer.conv(wave.view(1, 1, -1))[0].t(), (64,), layer.norm.weight, layer.norm.bias
        )
    )
    with torch.inference_mode():
        got = layer(x)
    assert layer._cache  # the folded form ran
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=2e-5)
    silent = slice(2000 // 5, (3000 - 10) // 5 + 1)
    assert torch.equal(got[silent], F.gelu(layer.norm.bias.detach()).expand_as(got[silent]))
