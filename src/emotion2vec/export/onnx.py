"""ONNX export of the reference modules (:mod:`emotion2vec.model`).

The reference modules have no length-dependent Python loops or data-dependent branches in the
traced path, so a traced export does not freeze anything to the example input. (The fast
modules of :mod:`emotion2vec.fast` do have them: chunked conv, attention row blocks; an
accelerated model is exported through reference modules that share its weights.)
:class:`OnnxForward` adds what lies around the network at inference:

* waveform normalisation per row over the valid samples (zero mean, unit biased variance,
  ``eps`` 1e-5, as :func:`emotion2vec.audio.normalize_batch`), padding set to zero;
* a frame padding mask for every batch (the padding-free shortcut of ``local_features`` is a
  data-dependent branch), the mean over valid frames and, with a head, the softmax over the
  labels (labels named ``unuse...`` excluded, as :func:`emotion2vec.inference.scores_from_logits`).

Boundary of the exported graph:

* inputs ``waveform`` (B, N) float32, 16 kHz mono, *not* normalised, zero-padded on the right;
  ``lengths`` (B,) int64, valid samples per row (each >= 400, the receptive field);
* outputs ``frames`` (B, T, D) last-block frame features (zero beyond each row's frame count),
  ``frame_lengths`` (B,) int64, ``embedding`` (B, D) mean of the valid frames and, when the model
  has an emotion head, ``scores`` (B, C) probabilities in the order of the ``labels`` metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..audio import NORM_EPS
from ..errors import ConfigError, Emotion2vecError, MismatchError
from ..model import Emotion2vecModel

#: Default ONNX opset (LayerNormalization is native from 17 on).
DEFAULT_OPSET = 17
INPUT_NAMES = ("waveform", "lengths")


class OnnxForward(nn.Module):
    """The model's inference forward pass, from raw waveforms to scores, for export.

    ``forward(waveform (B, N) float32, lengths (B,) int64)`` returns ``(frames (B, T, D),
    frame_lengths (B,), embedding (B, D))`` plus ``scores (B, C)`` when the model has a head.
    ``model`` should hold the reference modules (:func:`reference_copy`); call in eval mode.
    """

    def __init__(self, model: Emotion2vecModel):
        super().__init__()
        self.model = model
        labels = model.labels
        self.keep = [i for i, name in enumerate(labels) if not name.startswith("unuse")]

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the ``scores`` output, in order (empty without a head)."""
        return tuple(self.model.labels[i] for i in self.keep)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, in order."""
        names = ("frames", "frame_lengths", "embedding")
        return names + ("scores",) if self.model.head is not None else names

    def _normalise(self, waves: torch.Tensor, valid: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x = waves * valid
        mean = x.sum(dim=1, keepdim=True) / n
        centred = (x - mean) * valid
        var = (centred * centred).sum(dim=1, keepdim=True) / n
        return centred / torch.sqrt(var + NORM_EPS)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor):
        """waveform: (B, N) float32 16 kHz, not normalised, zero-padded; lengths: (B,) int64."""
        model, enc = self.model, self.model.encoder
        lengths = lengths.to(torch.int64)
        sample_index = torch.arange(waveform.shape[1], device=waveform.device)
        valid = (sample_index.unsqueeze(0) < lengths.unsqueeze(1)).to(waveform.dtype)
        waves = waveform * valid
        if model.config.normalize_waveform:
            waves = self._normalise(waves, valid, lengths.to(waveform.dtype).unsqueeze(1))

        feats, frame_lengths = enc.feature_extractor(waves, lengths)
        x = enc.feature_projection(feats)  # (B, T, D)
        frame_index = torch.arange(x.shape[1], device=x.device)
        padding = frame_index.unsqueeze(0) >= frame_lengths.unsqueeze(1)  # (B, T) True = pad
        out = enc.contextualize(x, padding)

        keep = (~padding).unsqueeze(-1).to(x.dtype)
        frames = out.frames * keep
        embedding = frames.sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)
        if model.head is None:
            return frames, frame_lengths, embedding
        logits = model.head(embedding)
        if len(self.keep) != logits.shape[-1]:
            logits = logits[:, self.keep]
        return frames, frame_lengths, embedding, torch.softmax(logits.float(), dim=-1)


def reference_copy(model: Emotion2vecModel) -> Emotion2vecModel:
    """The reference network (no fast modules) over ``model``'s own tensors (no copies)."""
    reference = Emotion2vecModel(model.config)
    reference.load_state_dict(model.state_dict(), assign=True)
    return reference.eval()


def export_onnx(
    model: Emotion2vecModel,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = False,
    example_seconds: tuple[float, ...] = (2.0, 1.3),
) -> Path:
    """Write ``model`` as an ONNX graph with dynamic batch and time axes.

    Args:
        model: any emotion2vec model, on the CPU in fp32 (the graph's weights are its own).
        path: the ``.onnx`` file to write.
        opset: ONNX opset (>= 17).
        dynamo: use the ``torch.export``-based exporter instead of the TorchScript tracer.
        example_seconds: lengths of the padded example batch the graph is traced with (two
            different lengths, so the padding path is what gets traced).

    The labels of the ``scores`` output and the I/O convention are stored in the model's
    metadata (``labels``: JSON list, ``sample_rate``, ``input``). Returns ``path``.
    """
    if opset < 17:
        raise ConfigError(f"opset {opset} is too old: LayerNormalization needs opset >= 17")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = OnnxForward(reference_copy(model)).eval()
    rate = model.config.sample_rate
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([int(s * rate) for s in example_seconds], dtype=torch.int64)
    waves = torch.randn(len(example_seconds), int(lengths.max()), generator=gen) * 0.1
    waves = waves * (torch.arange(waves.shape[1]).unsqueeze(0) < lengths.unsqueeze(1))
    outputs = list(wrapper.output_names)
    dynamic_axes = {
        "waveform": {0: "batch", 1: "samples"},
        "lengths": {0: "batch"},
        "frames": {0: "batch", 1: "time"},
        "frame_lengths": {0: "batch"},
        "embedding": {0: "batch"},
        "scores": {0: "batch"},
    }
    dynamic_axes = {k: v for k, v in dynamic_axes.items() if k in outputs or k in INPUT_NAMES}
    kwargs = dict(
        input_names=list(INPUT_NAMES),
        output_names=outputs,
        opset_version=opset,
    )
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic
        if dynamo:
            batch = torch.export.Dim("batch", min=1)
            samples = torch.export.Dim("samples", min=400)
            torch.onnx.export(
                wrapper,
                (waves, lengths),
                str(path),
                dynamo=True,
                dynamic_shapes=({0: batch, 1: samples}, {0: batch}),
                **kwargs,
            )
        else:
            torch.onnx.export(
                wrapper,
                (waves, lengths),
                str(path),
                dynamo=False,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                **kwargs,
            )
    _add_metadata(path, wrapper)
    return path


def _add_metadata(path: Path, wrapper: OnnxForward) -> None:
    try:
        import onnx
    except ImportError:  # metadata is a convenience; the graph is complete without it
        return
    proto = onnx.load(str(path))
    config = wrapper.model.config
    meta = {
        "producer": "emotion2vec",
        "labels": json.dumps(list(wrapper.labels)),
        "sample_rate": str(config.sample_rate),
        "input": "waveform (B, N) float32 16 kHz mono, not normalised, zero-padded; "
        "lengths (B,) int64 valid samples (>= 400)",
        "model_config": json.dumps(config.to_dict()),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def check_onnx(
    model: Emotion2vecModel,
    path: str | Path,
    waves: list,
    *,
    atol: float = 1e-4,
) -> float:
    """Run the ONNX file with onnxruntime on a padded batch of ``waves`` (1-D float32 arrays)
    and compare every output against PyTorch's inference path; returns the max abs difference
    and raises MismatchError (an Emotion2vecError) when it exceeds ``atol``."""
    import numpy as np

    from ..inference import encode, pad_batch, scores_from_logits

    try:
        import onnxruntime as ort
    except ImportError:
        raise Emotion2vecError(
            "checking the export needs onnxruntime: pip install onnxruntime"
        ) from None
    batch, lengths = pad_batch(waves)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"waveform": batch.numpy(), "lengths": lengths.numpy()})
    frames, pooled, logits = encode(model, waves)
    worst = 0.0
    for row, f in enumerate(frames):
        t = f.shape[1]
        worst = max(worst, float(np.abs(got[0][row, :t] - f[0].numpy()).max()))
        if int(got[1][row]) != t:
            raise MismatchError(f"frame_lengths[{row}] = {int(got[1][row])}, expected {t}")
    worst = max(worst, float(np.abs(got[2] - pooled[:, 0].numpy()).max()))
    if logits is not None:
        preds = scores_from_logits(logits, model.labels)
        ref = np.array([[p.scores[name] for name in OnnxForward(model).labels] for p in preds])
        worst = max(worst, float(np.abs(got[3] - ref).max()))
    if worst > atol:
        raise MismatchError(f"{path}: ONNX differs from PyTorch by {worst:.3g} > {atol:g}")
    return worst
