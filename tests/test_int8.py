"""Tests of emotion2vec.fast.int8: per-channel int8 weights, per-row int8 activations, the int8 conv
layer against the exact one, the quantised model against the exact model, and the fallback when
torch.compile is not available."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emotion2vec.fast import int8 as int8_mod
from emotion2vec.fast.alibi import AlibiBias
from emotion2vec.fast.attention import attend
from emotion2vec.fast.conv import FastConvLayer
from emotion2vec.fast.int8 import (
    GELU_NEGATIVE_BOUND,
    Int8ConvLayer,
    Int8Linear,
    Int8TransformerBlock,
    int8_matmul,
    int8_product,
    quantize_gelu_rows,
    quantize_int8,
    quantize_rows,
    quantize_weight,
)
from emotion2vec.model.feature_extractor import ConvLayer
from emotion2vec.model.positional import alibi_slopes
from emotion2vec.model.transformer import TransformerBlock


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_weights_are_quantised_per_output_channel():
    torch.manual_seed(0)
    weight = torch.randn(6, 40) * torch.tensor([1e-3, 1e-2, 0.1, 1.0, 10.0, 0.0])[:, None]
    weight_t, scale = quantize_weight(weight)
    assert weight_t.dtype == torch.int8 and weight_t.shape == (40, 6)
    assert int(weight_t.abs().max()) == 127
    back = weight_t.t().float() * scale[:, None]
    # every channel within half a step of its own scale, even the 1e-3 one; zeros stay zeros
    assert bool(((back - weight).abs() <= scale[:, None] / 2 + 1e-12).all())
    assert torch.equal(back[5], torch.zeros(40))


def test_rows_are_quantised_with_their_own_scale():
    """A quiet row next to a loud one keeps its relative precision (one scale per tensor would
    round it to zero), and an all-zero row gives exactly the bias."""
    torch.manual_seed(1)
    x = torch.randn(3, 256)
    x[1] *= 1e-4
    x[2] = 0
    weight, bias = torch.randn(32, 256) / 16, torch.randn(32)
    weight_t, scale = quantize_weight(weight)
    y = int8_product(x, weight_t, scale, bias)
    want = x @ weight.t() + bias
    for row in (0, 1):
        got = y[row] - bias
        assert relative_error(got, want[row] - bias) < 0.02
    assert torch.equal(y[2], bias)


def test_gelu_rows_are_quantised_without_clipping_from_their_maximum():
    """quantize_gelu_rows takes each row's range from max(y) instead of max |GELU(y)|: every
    value stays within half a step, nothing is clipped (also a row that is all negative, down
    to GELU's minimum), and where max(y) is large the scale is quantize_rows's within 0.2%."""
    torch.manual_seed(7)
    y = torch.randn(5, 3072) * torch.tensor([1.0, 3.0, 0.05, 1.0, 1.0])[:, None]
    y[3] = -y[3].abs()  # all negative: |GELU| <= 0.16997, the bound sets the range
    y[4] = -0.7517916  # GELU's minimum everywhere
    q, scale = quantize_gelu_rows(y)
    assert q.dtype == torch.int8 and scale.shape == (5, 1)
    values = F.gelu(y)
    assert bool(((q.float() * scale - values).abs() <= scale / 2 + 1e-7).all())
    assert int(q[4].min()) == -127  # the minimum is representable: the bound is not too small
    assert bool((scale[2:] == GELU_NEGATIVE_BOUND / 127).all())
    _, plain = quantize_rows(values)
    ratio = scale[:2] / plain[:2]
    assert bool((ratio >= 1.0).all()) and bool((ratio < 1.002).all())


def test_product_epilogue_norm_and_gelu():
    torch.manual_seed(2)
    x, weight = torch.randn(50, 64), torch.randn(48, 64) / 8
    gamma, beta = torch.rand(48) + 0.5, torch.randn(48)
    weight_t, scale = quantize_weight(weight)
    y = int8_product(x, weight_t, scale, None, norm=(gamma, beta, 1e-5), gelu=True)
    want = F.gelu(F.layer_norm(x @ weight.t(), (48,), gamma, beta, 1e-5))
    assert relative_error(y, want) < 0.02


@pytest.mark.parametrize("in_channels, kernel, stride", [(16, 3, 2), (16, 2, 2), (8, 4, 3)])
def test_int8_conv_layer_matches_the_exact_layer(in_channels, kernel, stride):
    torch.manual_seed(3)
    layer = FastConvLayer(ConvLayer(in_channels, 24, kernel, stride, eps=1e-5)).eval()
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.normal_()
    fast = Int8ConvLayer(layer, compile=False)
    for length in (kernel, 57):
        x = F.gelu(torch.randn(length, in_channels))
        with torch.inference_mode():
            want, got = layer(x), fast(x)
            # a non-contiguous input (a column slice) gives the same result
            wide = torch.cat([x, torch.randn(length, 3)], dim=1)[:, :in_channels]
            assert torch.equal(fast(wide), got)
        assert got.shape == want.shape == ((length - kernel) // stride + 1, 24)
        assert relative_error(got, want) < 0.03


def test_quantize_int8_replaces_every_product_but_the_first_conv(plus_model, make_wave):
    before = {k: v.clone() for k, v in plus_model.state_dict().items()}
    fast = quantize_int8(plus_model, compile=False)
    assert all(torch.equal(before[k], v) for k, v in plus_model.state_dict().items())
    enc = fast.encoder
    layers = list(enc.feature_extractor.layers)
    assert isinstance(layers[0], FastConvLayer) and layers[0].conv.in_channels == 1
    assert all(isinstance(layer, Int8ConvLayer) for layer in layers[1:])
    assert isinstance(enc.feature_projection.linear, Int8Linear)
    for block in [*enc.context_blocks, *enc.blocks]:
        assert isinstance(block, Int8TransformerBlock)
        assert all(isinstance(p, Int8Linear) for p in (block.qkv, block.proj, block.fc1, block.fc2))
    assert not [m for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    assert isinstance(fast.head, torch.nn.Module) and not isinstance(fast.head, Int8Linear)


def test_quantized_model_stays_close_and_padding_stays_within_int8_noise(plus_model, make_wave):
    """Close to the exact model; really approximate; and a padded batch stays far closer to each
    input alone than int8 is to exact (per-row scales: a row's quantisation never depends on the
    other rows; only ulp-level differences of the fp32 steps, such as attention over extra
    masked keys, can move a value to a neighbouring int8 step)."""
    waves = [make_wave(n, seed=10 + i) for i, n in enumerate((16000, 23456, 4000))]
    fast = quantize_int8(plus_model, compile=False)
    exact = plus_model.extract(waves, sample_rate=16000)
    approx = fast.extract(waves, sample_rate=16000)
    for e, a in zip(exact, approx, strict=True):
        assert 0.995 < cosine(e, a) < 1.0 - 1e-9
    alone = [fast.extract(w, sample_rate=16000) for w in waves]
    for batched, single, e in zip(approx, alone, exact, strict=True):
        int8_error = np.abs(batched - e).max()
        assert np.abs(batched - single).max() < 0.25 * int8_error


def test_compiled_and_uncompiled_agree(plus_model, make_wave):
    wave = make_wave(20000, seed=5)
    eager = quantize_int8(plus_model, compile=False).extract(wave, sample_rate=16000)
    compiled = quantize_int8(plus_model).extract(wave, sample_rate=16000)
    if int8_mod._Compiled.failed:
        pytest.skip("torch.compile is not available on this machine")
    # the two can round a few activations to different int8 steps; nothing more
    assert cosine(eager, compiled) > 0.9999


def test_compile_failure_falls_back_with_a_warning(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler")

        return run

    product = int8_mod._Compiled(int8_product)
    monkeypatch.setattr(int8_mod, "_product", product)
    monkeypatch.setattr(int8_mod._Compiled, "failed", False)
    monkeypatch.setattr(torch, "compile", broken)
    torch.manual_seed(4)
    x, weight = torch.randn(5, 32), torch.randn(8, 32)
    layer = Int8Linear(torch.nn.Linear(32, 8))
    with torch.no_grad():
        layer.weight_t.copy_(quantize_weight(weight)[0])
        layer.weight_scale.copy_(quantize_weight(weight)[1])
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        y = layer(x)
    assert int8_mod._Compiled.failed  # one failure switches every compiled function off
    want = int8_product(x, layer.weight_t, layer.weight_scale, layer.bias)
    assert torch.equal(y, want)
    assert torch.equal(layer(x), want)  # later calls go straight to the uncompiled function


def test_an_input_error_is_not_taken_for_a_compiler_failure(monkeypatch):
    product = int8_mod._Compiled(int8_product)
    monkeypatch.setattr(int8_mod, "_product", product)
    monkeypatch.setattr(int8_mod._Compiled, "failed", False)
    layer = Int8Linear(torch.nn.Linear(32, 8))
    with pytest.raises(RuntimeError):
        layer(torch.randn(5, 31))  # wrong width: the uncompiled retry fails the same way
    assert not int8_mod._Compiled.failed


def test_int8_block_is_the_block_with_int8_products():
    """Int8TransformerBlock = LN2(h + fc2(GELU(fc1(h)))), h = LN1(x + proj(attention(qkv(x)))),
    with its own int8 products, and close to the fp32 block (with padding in the batch)."""
    torch.manual_seed(6)
    block = TransformerBlock(32, 4, 4.0, 1e-5, 0.0, 0.0, 0.0, 0.0).eval()
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0.0, 0.2)
    x = torch.randn(2, 9, 32)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 6:] = True
    bias = AlibiBias(torch.tensor(alibi_slopes(4)), torch.ones(4), 9, key_padding_mask=pad)
    with torch.inference_mode():
        want_out, want_ffn = block(x, bias.full())
        fast = Int8TransformerBlock(copy.deepcopy(block), compile=False)
        out, ffn = fast(x, bias)
        h = fast.norm1(x + fast.proj(attend(fast.qkv(x), bias, 4)))
        hidden = int8_product(h.reshape(-1, 32), *fast.fc1.operands())
        composed_ffn = int8_matmul(*quantize_gelu_rows(hidden), *fast.fc2.operands()).view(x.shape)
        torch.testing.assert_close(ffn, composed_ffn, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out, fast.norm2(h + composed_ffn), rtol=1e-5, atol=1e-5)
    assert relative_error(out, want_out) < 0.03 and relative_error(ffn, want_ffn) < 0.05
    assert not torch.equal(out, want_out)
