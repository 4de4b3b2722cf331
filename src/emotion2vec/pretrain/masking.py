"""Masks of the student's input frames, as data2vec 2.0 and the emotion2vec run draw them (our own
implementation, written from the authors' code in github ddlBoJack/fairseq, branch emotion2vec).

Two algorithms:

* :func:`block_mask` / :func:`cropped_block_masks` (the authors' run: fairseq's *precomputed*
  masks, ``compute_block_mask_1d``, switched on by the task's ``precompute_mask_config: {}``):
  for every file, ``clone_batch`` rows over the frames of the **whole file**, each with
  ``int(T * (mask_prob + adjust) / mask_length)`` span centres drawn with replacement, spans of
  ``mask_length`` frames centred on them and clipped to the row, then exactly ``int(T *
  mask_prob)`` masked frames per row (random masked frames unmasked, or random free frames
  masked). The batch then crops every file's rows, all clones at one random offset drawn
  independently of the audio crop, to the batch's frames. After the crop, rows of a batch
  generally differ in their masked counts (about 50% each).
* :func:`span_mask` (data2vec 2.0's in-model masking, ``compute_mask_indices``; an option):
  ``floor(mask_prob * T / mask_length + U[0, 1))`` span starts per row (at least ``min_masks``),
  drawn uniformly without replacement; spans may overlap; every row of the batch is brought to
  the same masked count, the smallest of any row (``require_same_masks``).

Which frames the student keeps (:func:`keep_indices`) follows the authors' model exactly: every
row keeps ``T - (masked count of row 0)`` frames, its unmasked frames first. A row with more
masked frames than row 0 therefore shows the student a few of its masked frames (they stay in
the loss); a row with fewer hides a few unmasked frames (which are not in the loss). With equal
counts (span masks, or uncropped block masks) this is simply "keep the unmasked frames".

Padding is never masked: masks are drawn inside each row's valid frames.
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
    """Masked positions of one row before count adjustment: ``int(valid * (p + adjust) / l)``
    centres drawn with replacement, centred spans clipped to the row."""
    n = int(valid * ((mask_prob + adjust) / mask_length))
    if n <= 0 or valid <= 0:
        return torch.empty(0, dtype=torch.long)
    centres = torch.randint(0, valid, (n,), generator=generator)
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
    """data2vec 2.0 block masks of rows that are not cropped afterwards: (R,) valid frames ->
    (R, max_len) bool with exactly ``min over rows of int(valid * mask_prob)`` masked frames per
    row (at least 1, at most ``valid - 1``)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    valid = [int(v) for v in torch.as_tensor(valid_lengths).tolist()]
    if any(v > max_len for v in valid):
        raise ValueError(f"valid lengths {valid} exceed max_len {max_len}")
    rows = [_block_row(v, mask_prob, mask_length, mask_prob_adjust, g) for v in valid]
    target = min(int(v * mask_prob) for v in valid)
    target = min(max(target, 1), min(v - 1 for v in valid))
    return _assemble(rows, valid, max_len, max(target, 0), g, fill=True)


def file_block_masks(
    frames: int,
    clone_batch: int,
    *,
    mask_prob: float,
    mask_length: int,
    mask_prob_adjust: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The precomputed masks of one file (``compute_block_mask_1d`` with shape (clone_batch,
    frames)): (clone_batch, frames) bool, every row with exactly ``int(frames * mask_prob)``
    masked frames."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    rows = [
        _block_row(frames, mask_prob, mask_length, mask_prob_adjust, g) for _ in range(clone_batch)
    ]
    target = int(frames * mask_prob)
    return _assemble(rows, [frames] * clone_batch, frames, target, g, fill=True)


def cropped_block_masks(
    file_frames: torch.Tensor | list[int],
    crop_frames: torch.Tensor | list[int],
    max_len: int,
    clone_batch: int,
    *,
    mask_prob: float,
    mask_length: int,
    mask_prob_adjust: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The authors' masks of a batch: each file's :func:`file_block_masks` over its whole length
    (``file_frames``), cropped (all clones at one random offset) to its ``crop_frames`` valid
    frames. Returns (B * clone_batch, max_len) bool, rows ordered file by file (clones of a file
    adjacent, like ``repeat_interleave``); counts per row are not equalised."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    full = [int(v) for v in torch.as_tensor(file_frames).tolist()]
    crop = [int(v) for v in torch.as_tensor(crop_frames).tolist()]
    if len(full) != len(crop):
        raise ValueError(f"{len(full)} file lengths but {len(crop)} crop lengths")
    if any(c > max_len for c in crop):
        raise ValueError(f"crop lengths {crop} exceed max_len {max_len}")
    out = torch.zeros(len(full) * clone_batch, max_len, dtype=torch.bool)
    for i, (n_full, n_crop) in enumerate(zip(full, crop, strict=True)):
        n_full = max(n_full, n_crop)
        rows = file_block_masks(
            n_full,
            clone_batch,
            mask_prob=mask_prob,
            mask_length=mask_length,
            mask_prob_adjust=mask_prob_adjust,
            generator=g,
        )
        start = int(torch.randint(0, n_full - n_crop + 1, (), generator=g))
        out[i * clone_batch : (i + 1) * clone_batch, :n_crop] = rows[:, start : start + n_crop]
    return out


def compute_mask(
    valid_lengths: torch.Tensor | list[int],
    max_len: int,
    config: MaskConfig,
    generator: torch.Generator | None = None,
    *,
    file_frames: torch.Tensor | list[int] | None = None,
    clone_batch: int = 1,
) -> torch.Tensor:
    """The mask ``config`` asks for: (B * clone_batch,) valid frames per row -> (B *
    clone_batch, max_len) bool.

    For block masks, ``file_frames`` (B,) are the frames of each whole file (the authors' masks
    are drawn over the whole file, then cropped); without it the rows are not cropped (every row
    exactly ``int(valid * mask_prob)`` masked frames)."""
    if config.mask_type == "block":
        if file_frames is not None:
            crop = torch.as_tensor(valid_lengths).reshape(-1)[::clone_batch]
            return cropped_block_masks(
                file_frames,
                crop,
                max_len,
                clone_batch,
                mask_prob=config.mask_prob,
                mask_length=config.mask_length,
                mask_prob_adjust=config.mask_prob_adjust,
                generator=generator,
            )
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
    """(R, T) mask -> (R, T - count of row 0) positions the student keeps, row by row: the
    unmasked frames in increasing order, then (when a row has more masked frames than row 0)
    its earliest masked frames. This is the authors' ``make_maskinfo`` rule (their argsort of
    the mask; we break its ties by position so the choice is deterministic), except that every
    row keeps at least one frame."""
    if mask.shape[0] == 0:
        return torch.zeros(0, mask.shape[1], dtype=torch.long, device=mask.device)
    # at least one frame: a crop that row 0 masks entirely (possible, if rare, with short crops)
    # would otherwise leave the student with no frame at all
    keep = max(1, mask.shape[1] - int(mask[0].sum()))
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
    return order[:, :keep]


def expected_span_fraction(mask_prob: float, mask_length: int) -> float:
    """Expected masked fraction of a long row under :func:`span_mask` without count equalisation:
    each frame is covered unless none of the ``mask_length`` starts that would cover it is drawn,
    ``1 - (1 - mask_prob / mask_length) ** mask_length`` (0.41 for 0.5 and 5)."""
    return 1.0 - math.pow(1.0 - mask_prob / mask_length, mask_length)
