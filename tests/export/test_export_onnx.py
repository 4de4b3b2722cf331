"""ONNX export: the export-friendly forward equals the inference path, and the exported graph
run by onnxruntime equals PyTorch (1e-4) on several lengths and a padded batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emotion2vec.cli import main as cli_main
from emotion2vec.export import OnnxForward, check_onnx, export_onnx
from emotion2vec.inference import encode, pad_batch, scores_from_logits

SECONDS = (1.0, 3.7, 7.0)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _alone(model, wave):
    """PyTorch's results for one input: frames (T, D), embedding (D,), scores (C,) or None."""
    frames, pooled, logits = encode(model, [wave])
    scores = None
    if logits is not None:
        pred = scores_from_logits(logits, model.labels)[0]
        scores = np.array([pred.scores[name] for name in OnnxForward(model).labels])
    return frames[0][0].numpy(), pooled[0, 0].numpy(), scores


def _compare(model, outputs, waves, atol=1e-4):
    """outputs of one padded batch of ``waves`` against each input run alone."""
    for row, wave in enumerate(waves):
        frames, embedding, scores = _alone(model, wave)
        t = frames.shape[0]
        assert int(outputs[1][row]) == t
        np.testing.assert_allclose(np.asarray(outputs[0][row, :t]), frames, rtol=0, atol=atol)
        assert not np.asarray(outputs[0][row, t:]).any()  # padded frames are zero
        np.testing.assert_allclose(np.asarray(outputs[2][row]), embedding, rtol=0, atol=atol)
        if scores is not None:
            np.testing.assert_allclose(np.asarray(outputs[3][row]), scores, rtol=0, atol=atol)


def _waves(make_wave, seconds):
    return [make_wave(int(s * 16000), seed=i) for i, s in enumerate(seconds)]


def test_wrapper_equals_inference_path(plus_model, base_model, make_wave):
    waves = _waves(make_wave, (3.7, 1.0, 2.3))
    batch, lengths = pad_batch(waves)
    for model in (plus_model, base_model):
        with torch.no_grad():
            out = OnnxForward(model).eval()(batch, lengths)
        assert len(out) == (4 if model.head is not None else 3)
        _compare(model, [o.numpy() for o in out], waves, atol=2e-5)


def test_wrapper_shares_parameters(plus_model):
    wrapper = OnnxForward(plus_model)
    own = {id(p) for p in plus_model.parameters()}
    assert {id(p) for p in wrapper.parameters()} == own


@pytest.fixture(scope="module")
def exported(plus_model, tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("onnx") / "plus.onnx"
    export_onnx(plus_model, path)
    return path


def _session(path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("seconds", SECONDS)
def test_onnx_equals_pytorch_single(exported, plus_model, make_wave, seconds):
    wave = _waves(make_wave, (seconds,))
    batch, lengths = pad_batch(wave)
    out = _session(exported).run(None, {"waveform": batch.numpy(), "lengths": lengths.numpy()})
    _compare(plus_model, out, wave)


def test_onnx_equals_pytorch_padded_batch(exported, plus_model, make_wave):
    waves = _waves(make_wave, (3.7, 1.0, 7.0, 2.3))
    batch, lengths = pad_batch(waves)
    out = _session(exported).run(None, {"waveform": batch.numpy(), "lengths": lengths.numpy()})
    assert out[0].shape[:2] == (4, 349)  # 7 s -> 349 frames
    _compare(plus_model, out, waves)
    assert check_onnx(plus_model, exported, waves) <= 1e-4


def test_onnx_metadata_and_axes(exported, plus_model):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(exported))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["labels"]) == list(plus_model.labels)
    assert meta["sample_rate"] == "16000"
    assert proto.opset_import[0].version >= 17
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "samples"]
    assert [o.name for o in proto.graph.output] == [
        "frames",
        "frame_lengths",
        "embedding",
        "scores",
    ]


def test_onnx_without_head(base_model, make_wave, tmp_path):
    pytest.importorskip("onnx")
    path = export_onnx(base_model, tmp_path / "base.onnx")
    waves = _waves(make_wave, (1.0, 2.5))
    batch, lengths = pad_batch(waves)
    out = _session(path).run(None, {"waveform": batch.numpy(), "lengths": lengths.numpy()})
    assert len(out) == 3
    _compare(base_model, out, waves)


def test_cli_export_onnx(plus_model, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    plus_model.save_pretrained(tmp_path / "model")
    out = tmp_path / "m.onnx"
    rc = cli_main(["export-onnx", "--model", str(tmp_path / "model"), str(out), "--check"])
    assert rc == 0 and out.is_file()


def test_dynamo_export_equals_pytorch(plus_model, make_wave, tmp_path):
    """The torch.export-based exporter (``--dynamo``) gives the same graph semantics, dynamic
    axes included (a padded batch of another size and length than the example)."""
    pytest.importorskip("onnxscript")
    path = export_onnx(plus_model, tmp_path / "dynamo.onnx", dynamo=True)
    waves = _waves(make_wave, (3.7, 1.0, 7.0, 2.3))
    batch, lengths = pad_batch(waves)
    out = _session(path).run(None, {"waveform": batch.numpy(), "lengths": lengths.numpy()})
    _compare(plus_model, out, waves)
