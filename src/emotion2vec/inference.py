"""Feature extraction and emotion prediction on audio files and arrays.

Batches are padded, and padding never changes a result: the conv stack only produces frames whose
windows lie inside the valid samples, the positional conv zeroes padded frames before each layer,
attention masks padded keys, and pooling averages valid frames only. A padded batch therefore
gives what each input gives alone (tested to 1e-4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .audio import SAMPLE_RATE, load_audio, normalize_batch, prepare_waveform
from .errors import Emotion2vecError
from .model import Emotion2vecModel, masked_mean

GRANULARITIES = ("utterance", "frame")


@dataclass
class Prediction:
    """Emotion scores of one input: the top label, its probability, and every label's probability."""

    label: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)


def _is_single(audio) -> bool:
    if isinstance(audio, (str, Path)):
        return True
    # An array is one (possibly multi-channel) waveform; several inputs come as a list.
    return isinstance(audio, np.ndarray | torch.Tensor)


def load_input(item, sample_rate: int | None = None) -> np.ndarray:
    """A path, or a 1-D array/tensor with its sample rate -> float32 mono 16 kHz (N,)."""
    if isinstance(item, (str, Path)):
        return load_audio(item)
    if isinstance(item, np.ndarray | torch.Tensor):
        return prepare_waveform(item, sample_rate)
    raise Emotion2vecError(
        f"unsupported audio input of type {type(item).__name__}: pass a path, a numpy array or a "
        "torch tensor (with sample_rate), or a list of them"
    )


def fill_batches(
    order: Sequence[int], sizes: Sequence[int], max_samples: int, max_count: int | None = None
) -> list[list[int]]:
    """Cut ``order`` (indices into ``sizes``) into consecutive batches, greedily: a batch is
    closed when taking the next index would make its padded size (longest x count) exceed
    ``max_samples``, or when it already holds ``max_count`` indices. An index longer than the
    budget forms a batch of its own. The length bucketing of every batch plan (inference, jobs,
    fine-tuning evaluation, training epochs) is this walk over an order sorted by length; the
    plans differ only in the order they walk (see :func:`plan_batches` and
    :class:`emotion2vec.training.batches.EpochPlan`)."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        size = int(sizes[i])
        full = max_count is not None and len(current) >= max_count
        if current and (max(longest, size) * (len(current) + 1) > max_samples or full):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    return batches


def plan_batches(lengths: Sequence[int], max_samples: int) -> list[list[int]]:
    """Group indices into batches of similar length whose padded size (longest x count) stays
    within ``max_samples``; an input longer than the budget forms a batch of its own.

    Longest first, ties in input order, no count limit, deterministic: inference wants the same
    batches for the same inputs, and the first batch to show the peak memory. (Training epochs
    walk the same :func:`fill_batches` shortest first, with random tie-breaks and a count
    limit, then shuffle the batches: :class:`emotion2vec.training.batches.EpochPlan`.)"""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return fill_batches(order, lengths, max_samples)


def pad_batch(waves: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (N_i,) -> zero-padded (B, N_max) float32 and lengths (B,)."""
    tensors = [torch.as_tensor(w, dtype=torch.float32) for w in waves]
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.long)
    batch = torch.zeros(len(tensors), int(lengths.max()), dtype=torch.float32)
    for row, t in enumerate(tensors):
        batch[row, : t.shape[0]] = t
    return batch, lengths


@torch.inference_mode()
def encode(
    model: Emotion2vecModel,
    waves: Sequence[np.ndarray | torch.Tensor],
    *,
    layers: Sequence[int] | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """Run one padded batch.

    waves: B float32 16 kHz waveforms (not yet normalised). layers: hidden-state indices to
    return (0 = input of the first block, i = output of block i), None for the last block only.
    Returns per-input frame tensors (L, T_i, D) (L = len(layers) or 1), utterance embeddings
    (B, L, D), and head logits (B, C) computed from the last block (None without a head).
    """
    device = next(model.parameters()).device
    batch, lengths = pad_batch(waves)
    if model.config.normalize_waveform:
        batch = normalize_batch(batch, lengths)
    batch, lengths = batch.to(device), lengths.to(device)
    out = model.encoder(batch, lengths, output_hidden_states=layers is not None)
    states = [out.frames] if layers is None else [out.hidden_states[i] for i in layers]
    stacked = torch.stack(states, dim=1)  # (B, L, T, D)
    mask = out.padding_mask
    pooled = torch.stack([masked_mean(s, mask) for s in states], dim=1)
    logits = None
    if model.head is not None:
        logits = model.head(masked_mean(out.frames, mask))
    n_frames = model.encoder.frame_lengths(lengths)
    per_input = [stacked[b, :, : int(n_frames[b])] for b in range(stacked.shape[0])]
    return per_input, pooled, logits


def layer_indices(model: Emotion2vecModel, layer: int | None, all_layers: bool) -> list[int] | None:
    """Hidden-state indices for a ``layer`` choice (None = last block only)."""
    total = model.config.encoder.num_layers
    if all_layers:
        return list(range(total + 1))
    if layer is None:
        return None
    index = layer if layer >= 0 else total + 1 + layer
    if not 0 <= index <= total:
        raise Emotion2vecError(f"layer {layer} out of range: this model has layers 0..{total}")
    return [index]


def _as_list(audio) -> tuple[list, bool]:
    if _is_single(audio):
        return [audio], True
    if isinstance(audio, Iterable):
        return list(audio), False
    return [audio], True


def extract(
    model: Emotion2vecModel,
    audio,
    sample_rate: int | None = None,
    granularity: str = "utterance",
    *,
    layer: int | None = None,
    all_layers: bool = False,
    batch_seconds: float = 60.0,
):
    """Features of one input or a list of inputs.

    audio: a path, a 1-D numpy array / torch tensor (with ``sample_rate``), or a list of them.
    granularity: "utterance" -> (D,) mean of frame features; "frame" -> (T, D) at 50 Hz.
    layer: which block's output (default: the last; 0 = input of the first block; negative
    counts from the end); all_layers: every layer stacked -> (L+1, D) or (L+1, T, D).
    Returns a numpy array, or a list of arrays for a list input.
    """
    if granularity not in GRANULARITIES:
        raise Emotion2vecError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    items, single = _as_list(audio)
    layers = layer_indices(model, layer, all_layers)
    waves = [load_input(item, sample_rate) for item in items]
    results: list[np.ndarray | None] = [None] * len(waves)
    budget = int(batch_seconds * SAMPLE_RATE)
    for idx in plan_batches([len(w) for w in waves], budget):
        frames, pooled, _ = encode(model, [waves[i] for i in idx], layers=layers)
        for row, i in enumerate(idx):
            feats = frames[row] if granularity == "frame" else pooled[row]
            if not all_layers:
                feats = feats[0]
            results[i] = feats.float().cpu().numpy()
    return results[0] if single else results


def scored_indices(labels: Sequence[str], subset: Sequence[int] | None = None) -> list[int]:
    """Indices of the labels that get a score, in score order: ``subset`` when given, else
    every label but the ``unuse…`` placeholders (FunASR's rule)."""
    if subset is not None:
        return list(subset)
    return [i for i, name in enumerate(labels) if not name.startswith("unuse")]


def scores_from_logits(
    logits: torch.Tensor, labels: Sequence[str], subset: Sequence[int] | None = None
) -> list[Prediction]:
    """Softmax over the labels, FunASR style: labels named ``unuse…`` are excluded. ``subset``
    (indices into ``labels``, see :func:`emotion2vec.labels.resolve`): only these labels, in this
    order; the others' logits are masked out, so the softmax renormalises over the subset."""
    keep = scored_indices(labels, subset)
    probs = F.softmax(logits.float()[:, keep], dim=-1).cpu().numpy()
    names = [labels[i] for i in keep]
    out = []
    for row in probs:
        top = int(np.argmax(row))
        out.append(
            Prediction(
                label=names[top],
                score=float(row[top]),
                scores={n: float(p) for n, p in zip(names, row, strict=True)},
            )
        )
    return out


def predict(
    model: Emotion2vecModel,
    audio,
    sample_rate: int | None = None,
    *,
    batch_seconds: float = 60.0,
    labels: str | Sequence[str] | None = None,
):
    """Emotion of one input or a list of inputs: a :class:`Prediction` (or a list of them).

    The head is applied to the utterance embedding (mean of the last block's frames), softmax
    over the model's labels, or over ``labels`` only (names or aliases, e.g.
    ``["angry", "happy", "neutral", "sad"]`` or ``"Angry,Happy,Neutral,Sad"``; the others are
    masked out and the scores renormalised).
    """
    if model.head is None:
        raise Emotion2vecError(
            "this model has no emotion head (emotion2vec_base is a feature extractor): use "
            "extract(), or an emotion2vec_plus_* model, or a model fine-tuned with labels"
        )
    subset = None
    if labels is not None:
        from .labels import resolve

        subset = resolve(labels, model.labels)
    items, single = _as_list(audio)
    waves = [load_input(item, sample_rate) for item in items]
    results: list[Prediction | None] = [None] * len(waves)
    for idx in plan_batches([len(w) for w in waves], int(batch_seconds * SAMPLE_RATE)):
        _, _, logits = encode(model, [waves[i] for i in idx])
        preds = scores_from_logits(logits, model.labels, subset)
        for row, pred in zip(idx, preds, strict=True):
            results[row] = pred
    return results[0] if single else results
