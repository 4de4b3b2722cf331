"""Masks of the student's input frames, as data2vec 2.0 draws them (our own implementation).

Two algorithms, both on a batch of rows that may carry padding:

* :func:`span_mask` (data2vec 2.0's in-model masking, ``compute_mask_indices``):
  ``floor(mask_prob * T / mask_length + U[0, 1))`` span starts per row (at least ``min_masks``),
  drawn uniformly without replacement; each masks ``mask_length`` frames; spans may overlap.
* :func:`block_mask` (data2vec 2.0's precomputed masks, ``compute_block_mask_1d``):
  ``int(T * (mask_prob + adjust) / mask_length)`` span centres, centred spans clipped to the row,
  then each row brought to exactly ``int(T * mask_prob)`` masked frames.

Rules shared by both (``T`` is a row's *valid* length):

* padding is never masked: spans are drawn inside the valid frames only;
* every row keeps at least one visible valid frame;
* every row of the batch ends with the same number of masked frames (``require_same_masks``),
  the smallest count of any row: rows with more lose randomly chosen masked frames. The student
  drops masked frames, so equal counts give a rectangular (rows, T - masked) input. Clones of an
  utterance are rows like any other, so one count holds across all clones of all utterances.
"""

from __future__ import annotations

import math

import torch

from .config import MaskConfig


def _span_row(
    valid: int, mask_prob: float, mask_length: int, min_masks: int, generator: torch.Generator
) -> torch.Tensor:
    """Masked positions (sorted, unique) of one row of ``valid`` frames."""
    u = float(torch.rand((), generator=generator))
    n = max(min_masks, int(mask_prob * valid / mask_length + u))
    span = min(mask_length, valid)
    positions = valid - span + 1
    n = min(n, positions)
    if n <= 0:
        return torch.empty(0, dtype=torch.long)
    starts = torch.randperm(positions, generator=generator)[:n]
    idx = (starts.unsqueeze(1) + torch.arange(span)).reshape(-1)
    return torch.unique(idx)


def _block_row(
    valid: int, mask_prob: float, mask_length: int, adjust: float, generator: torch.Generator
) -> torch.Tensor:
    """Masked positions of one row, centred spans, before count adjustment."""
    n = min(valid, int(valid * (mask_prob + adjust) / mask_length))
    if n <= 0:
        return torch.empty(0, dtype=torch.long)
    centres = torch.randperm(valid, generator=generator)[:n]
    offsets = torch.arange(mask_length) - mask_length // 2
    idx = (centres.unsqueeze(1) + offsets).clamp_(0, valid - 1).reshape(-1)
    return torch.unique(idx)


def _assemble(
    rows: list[torch.Tensor],
    valid: list[int],
    max_len: int,
    target: int,
    generator: torch.Generator,
    fill: bool,
) -> torch.Tensor:
    """Rows of positions -> (R, max_len) mask with exactly ``target`` masked frames per row.

    Rows with more lose random masked frames; with ``fill``, rows with fewer gain random
    unmasked valid frames (block masks); without it, ``target`` is never above a row's count.
    """
    mask = torch.zeros(len(rows), max_len, dtype=torch.bool)
    for i, (pos, n_valid) in enumerate(zip(rows, valid, strict=True)):
        if pos.numel() > target:
            pos = pos[torch.randperm(pos.numel(), generator=generator)[:target]]
        elif pos.numel() < target and fill:
            free = torch.ones(n_valid, dtype=torch.bool)
            free[pos] = False
            candidates = free.nonzero().squeeze(1)
            extra = candidates[
                torch.randperm(candidates.numel(), generator=generator)[: target - pos.numel()]
            ]
            pos = torch.cat([pos, extra])
        mask[i, pos] = True
    return mask


def span_mask(
    valid_lengths: torch.Tensor | list[int],
    max_len: int,
    *,
    mask_prob: float,
    mask_length: int,
    min_masks: int = 1,
    same_count: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """data2vec 2.0 span masks: (R,) valid frames per row -> (R, max_len) bool, True = masked.

    With ``same_count`` every row has the same number of masked frames (see the module notes);
    without it, rows keep the union of their spans (used to test the span statistics).
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    valid = [int(v) for v in torch.as_tensor(valid_lengths).tolist()]
    if any(v > max_len for v in valid):
        raise ValueError(f"valid lengths {valid} exceed max_len {max_len}")
    rows = [_span_row(v, mask_prob, mask_length, min_masks, g) for v in valid]
    if not same_count:
        mask = torch.zeros(len(rows), max_len, dtype=torch.bool)
        for i, (r, v) in enumerate(zip(rows, valid, strict=True)):
            if r.numel() >= v:
                r = r[1:]  # keep the row's first frame visible
            mask[i, r] = True
        return mask
    target = max(0, min(min(r.numel() for r in rows), min(v - 1 for v in valid)))
    return _assemble(rows, valid, max_len, target, g, fill=False)


def block_mask(
    valid_lengths: torch.Tensor | list[int],
    max_len: int,
    *,
    mask_prob: float,
    mask_length: int,
    mask_prob_adjust: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """data2vec 2.0 block masks: (R,) valid frames -> (R, max_len) bool with exactly
    ``min over rows of int(valid * mask_prob)`` masked frames per row (at least 1, at most
    ``valid - 1``)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    valid = [int(v) for v in torch.as_tensor(valid_lengths).tolist()]
    if any(v > max_len for v in valid):
        raise ValueError(f"valid lengths {valid} exceed max_len {max_len}")
    rows = [_block_row(v, mask_prob, mask_length, mask_prob_adjust, g) for v in valid]
    target = min(int(v * mask_prob) for v in valid)
    target = min(max(target, 1), min(v - 1 for v in valid))
    return _assemble(rows, valid, max_len, max(target, 0), g, fill=True)


def compute_mask(
    valid_lengths: torch.Tensor | list[int],
    max_len: int,
    config: MaskConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The mask ``config`` asks for: (R,) valid frames per row -> (R, max_len) bool."""
    if config.mask_type == "block":
        return block_mask(
            valid_lengths,
            max_len,
            mask_prob=config.mask_prob,
            mask_length=config.mask_length,
            mask_prob_adjust=config.mask_prob_adjust,
            generator=generator,
        )
    return span_mask(
        valid_lengths,
        max_len,
        mask_prob=config.mask_prob,
        mask_length=config.mask_length,
        min_masks=config.min_masks,
        generator=generator,
    )


def keep_indices(mask: torch.Tensor) -> torch.Tensor:
    """(R, T) mask with the same count per row -> (R, T - count) positions of the visible frames,
    in increasing order."""
    counts = mask.sum(dim=1)
    if counts.numel() and bool((counts != counts[0]).any()):
        raise ValueError(f"rows have different numbers of masked frames: {counts.tolist()}")
    keep = mask.shape[1] - (int(counts[0]) if counts.numel() else 0)
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
    return order[:, :keep]


def expected_span_fraction(mask_prob: float, mask_length: int) -> float:
    """Expected masked fraction of a long row under :func:`span_mask` without count equalisation:
    each frame is covered unless none of the ``mask_length`` starts that would cover it is drawn,
    ``1 - (1 - mask_prob / mask_length) ** mask_length`` (0.41 for 0.5 and 5)."""
    return 1.0 - math.pow(1.0 - mask_prob / mask_length, mask_length)
