"""Precision modes (emotion2vec.fast.precision, fast/bf16.py): fp32 stays the exact default, bf16
and int8 stay within measured bounds of it on the micro model, auto resolves to a real mode and
says why, jobs record the mode and refuse to resume in another, and the hardware checks warn or
refuse.

Fidelity bounds (utterance-embedding cosine against fp32, and the largest change of a class
probability), measured on the micro model (seeds 1-5, four speech-like clips of 0.25-3 s,
uncompiled): bf16 worst cosine 0.999965 and probability change 0.016; int8 worst cosine
0.99945 and 0.042. The bounds leave about 3x on ``1 - cosine`` and on the probability change:
bf16 >= 0.9999 and <= 0.05, int8 >= 0.998 and <= 0.12.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from model_factory import build_model

from emotion2vec import errors, provenance
from emotion2vec.cli import build_parser, main
from emotion2vec.fast import precision as precisions
from emotion2vec.fast.bf16 import Bf16ConvLayer, Bf16Linear, Bf16TransformerBlock, to_bf16
from emotion2vec.fast.conv import FastConvLayer
from emotion2vec.jobs import extract_files
from emotion2vec.pipeline import load_model
from emotion2vec.sources import collect_sources

BOUNDS = {"bf16": (0.9999, 0.05), "int8": (0.998, 0.12)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("precision") / "model"
    build_model(3, decoder=False).save_pretrained(path)
    return path


@pytest.fixture
def waves(make_wave):
    return [make_wave(n, seed=10 + i) for i, n in enumerate((16000, 23456, 4000, 48000))]


def test_fp32_is_the_exact_default(model_dir, waves):
    """load_model's default and precision="fp32" are today's accelerated exact path, bit for bit."""
    default = load_model(model_dir)
    explicit = load_model(model_dir, precision="fp32")
    reference = build_model(3, decoder=False)  # the same weights, accelerated by the factory
    assert default.precision == explicit.precision == "fp32"
    for a, b, c in zip(
        default.extract(waves, sample_rate=16000),
        explicit.extract(waves, sample_rate=16000),
        reference.extract(waves, sample_rate=16000),
        strict=True,
    ):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not any(isinstance(m, (Bf16Linear, Bf16ConvLayer)) for m in default.modules())


def test_bf16_swaps_the_large_products_and_keeps_the_sensitive_parts_fp32(plus_model):
    fast = to_bf16(plus_model, compile=False)
    enc = fast.encoder
    layers = enc.feature_extractor.layers
    assert type(layers[0]) is FastConvLayer  # the waveform layer stays fp32
    assert all(isinstance(layer, Bf16ConvLayer) for layer in layers[1:])
    assert layers[-1].out_dtype == torch.float32 and layers[1].out_dtype == torch.bfloat16
    assert isinstance(enc.feature_projection.linear, Bf16Linear)
    for block in [*enc.context_blocks, *enc.blocks]:
        assert isinstance(block, Bf16TransformerBlock)
        assert block.norm1.weight.dtype == block.norm2.weight.dtype == torch.float32
    assert not [m for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    assert all(p.dtype == torch.float32 for p in fast.head.parameters())
    # the original is untouched
    assert isinstance(plus_model.encoder.blocks[0].attn.qkv, torch.nn.Linear)


@pytest.mark.parametrize("mode", ["bf16", "int8"])
def test_approximate_modes_stay_within_their_bounds(plus_model, waves, mode):
    fast = precisions.convert(plus_model, mode, compile=False)
    assert fast.precision == mode
    min_cosine, max_dp = BOUNDS[mode]
    exact = plus_model.extract(waves, sample_rate=16000)
    approx = fast.extract(waves, sample_rate=16000)
    for e, a in zip(exact, approx, strict=True):
        assert a.dtype == np.float32
        assert min_cosine <= cosine(e, a) < 1.0 - 1e-9  # close, and really approximate
    for p, q in zip(
        plus_model.predict(waves, sample_rate=16000),
        fast.predict(waves, sample_rate=16000),
        strict=True,
    ):
        assert max(abs(p.scores[k] - q.scores[k]) for k in p.scores) <= max_dp


def test_bf16_padded_batch_matches_each_input_alone_within_bf16_noise(plus_model, waves):
    fast = to_bf16(plus_model, compile=False)
    exact = plus_model.extract(waves, sample_rate=16000)
    batched = fast.extract(waves, sample_rate=16000)
    for w, b, e in zip(waves, batched, exact, strict=True):
        alone = fast.extract(w, sample_rate=16000)
        assert np.abs(b - alone).max() <= np.abs(b - e).max()


def test_bf16_compiled_and_uncompiled_agree(plus_model, make_wave):
    from emotion2vec.fast.compiled import Compiled

    wave = make_wave(20000, seed=5)
    eager = to_bf16(plus_model, compile=False).extract(wave, sample_rate=16000)
    compiled = to_bf16(plus_model).extract(wave, sample_rate=16000)
    if Compiled.failed:
        pytest.skip("torch.compile is not available on this machine")
    assert cosine(eager, compiled) > 0.99999


def test_auto_resolves_to_a_mode_and_says_why(plus_model, monkeypatch):
    fast = precisions.convert(plus_model, "auto", compile=False)
    assert fast.precision in precisions.PRECISIONS
    assert fast.precision_choice.startswith("auto: ")
    # no units: fp32, without calibrating
    monkeypatch.setattr(precisions, "has_units", lambda p, d="cpu": p == "fp32")
    monkeypatch.setattr(precisions, "calibrate", lambda *a, **k: pytest.fail("calibrated"))
    plain = precisions.convert(plus_model, "auto")
    assert plain.precision == "fp32" and "no bf16 or int8 units" in plain.precision_choice
    assert plain is plus_model  # fp32 is the model itself, unconverted


def test_auto_takes_the_first_mode_that_calibrates_fast_enough(monkeypatch):
    monkeypatch.setattr(precisions, "has_units", lambda p, d="cpu": True)
    monkeypatch.setattr(precisions, "can_compile", lambda: True)
    seconds = {"fp32": 1.0, "bf16": 0.5, "int8": 0.3}
    monkeypatch.setattr(precisions, "calibrate", lambda p, d="cpu": seconds[p])
    assert precisions.choose().precision == "int8"
    seconds["int8"] = 0.9  # int8 only 1.11x: not worth it
    choice = precisions.choose()
    assert choice.precision == "bf16" and "bf16 2.00x" in choice.reason
    seconds["bf16"] = 0.95
    assert precisions.choose().precision == "fp32"
    # int8 is fast only compiled: without a compiler, bf16 comes first
    seconds.update(bf16=0.5, int8=0.3)
    monkeypatch.setattr(precisions, "can_compile", lambda: False)
    assert precisions.choose().precision == "bf16"
    # off the CPU, bf16 only (int8 is never considered)
    assert precisions.preference("cuda") == ("bf16",)
    assert precisions.choose("cuda").precision == "bf16"


def test_modes_without_units_warn_and_impossible_ones_are_refused(monkeypatch):
    monkeypatch.setattr(precisions, "cpu_flags", lambda: frozenset())
    with pytest.warns(RuntimeWarning, match="no bf16 units.*emulated"):
        precisions.check("bf16", "cpu")
    with pytest.warns(RuntimeWarning, match="no VNNI"):
        precisions.check("int8", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precisions.check("fp32", "cpu") is None
    with pytest.raises(errors.ConfigError, match="int8 is a CPU mode"):
        precisions.check("int8", "cuda")
    with pytest.raises(errors.ConfigError, match="precision must be one of"):
        precisions.convert(None, "fp16")
    monkeypatch.setattr(precisions, "cpu_flags", lambda: frozenset({"avx512_bf16", "avx_vnni"}))
    assert precisions.has_units("bf16", "cpu") and precisions.has_units("int8", "cpu")


def test_jobs_record_the_precision_and_refuse_to_resume_in_another(model_dir, tmp_path, make_wave):
    sf.write(tmp_path / "a.wav", make_wave(16000, seed=1), 16000)
    sf.write(tmp_path / "b.wav", make_wave(12000, seed=2), 16000)
    sources = collect_sources([str(tmp_path / "a.wav")])
    out = tmp_path / "feats"
    bf16 = load_model(model_dir, precision="bf16")
    exact = load_model(model_dir)
    assert extract_files(bf16, sources, out, progress=False).ok
    record = json.loads((out / "provenance.json").read_text())
    assert record["precision"] == "bf16"
    # the weights fingerprint is the checkpoint's, whatever the mode: the difference is named
    assert record["model_sha256"] == provenance.weights_sha256(exact)
    with pytest.raises(errors.OutputConflictError, match=r"precision \('bf16' vs 'fp32'\)") as e:
        extract_files(exact, sources, out, progress=False)
    assert "model weights" not in str(e.value)
    # a record from before the field existed was made in fp32
    del record["precision"]
    (out / "provenance.json").write_text(json.dumps(record))
    more = collect_sources([str(tmp_path / "a.wav"), str(tmp_path / "b.wav")])
    assert extract_files(exact, more, out, progress=False).ok


def test_cli_precision_option_and_its_old_spelling(
    model_dir, tmp_path, make_wave, capsys, monkeypatch
):
    from emotion2vec.fast.compiled import Compiled

    monkeypatch.setattr(Compiled, "failed", True)  # uncompiled: compiling is tested above
    parser = build_parser()
    assert parser.parse_args(["extract", "x", "-o", "o"]).precision == "fp32"
    assert parser.parse_args(["extract", "x", "-o", "o", "--quantize", "int8"]).precision == "int8"
    assert parser.parse_args(["predict", "x", "--quantize", "none"]).precision == "fp32"
    assert parser.parse_args(["predict", "x", "--precision", "auto"]).precision == "auto"
    capsys.readouterr()
    sf.write(tmp_path / "a.wav", make_wave(16000, seed=1), 16000)
    out = tmp_path / "feats"
    args = ["extract", str(tmp_path / "a.wav"), "-m", str(model_dir), "-o", str(out)]
    assert main([*args, "--precision", "auto", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    record = json.loads((out / "provenance.json").read_text())
    assert f"precision: {record['precision']} (auto: " in err
    assert record["precision"] in precisions.PRECISIONS
    assert record["precision_choice"].startswith("auto: ")


def test_the_ray_engine_resolves_precision_once_on_the_driver():
    from emotion2vec.errors import ConfigError, Emotion2vecError
    from emotion2vec.fast.precision import PRECISIONS
    from emotion2vec.scale.ray_engine import resolve_precision as resolve

    assert resolve("fp32", "cpu") == ("fp32", None)
    picked, reason = resolve("auto", "auto")
    assert picked in PRECISIONS and reason.startswith("auto: ")
    with pytest.raises(ConfigError, match="int8 is a CPU mode"):
        resolve("int8", "cuda")
    with pytest.raises(Emotion2vecError, match="precision must be one of"):
        resolve("fp16", "cpu")
