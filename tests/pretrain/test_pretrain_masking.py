"""Student masks: equal counts per row, spans, masked fraction, padding, visible frames."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emotion2vec.pretrain.config import MaskConfig
from emotion2vec.pretrain.masking import (
    block_mask,
    compute_mask,
    cropped_block_masks,
    expected_span_fraction,
    file_block_masks,
    keep_indices,
    span_mask,
)

rows = st.lists(st.integers(min_value=2, max_value=120), min_size=1, max_size=12)


def _runs(row: torch.Tensor) -> list[int]:
    """Lengths of the maximal runs of True in a 1-D bool tensor."""
    out, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


@settings(max_examples=60, deadline=None)
@given(
    valid=rows,
    extra=st.integers(0, 30),
    prob=st.floats(0.05, 0.95),
    length=st.integers(1, 10),
    kind=st.sampled_from(["spans", "block"]),
    seed=st.integers(0, 2**31),
)
def test_mask_invariants(valid, extra, prob, length, kind, seed):
    """Same count in every row, padding never masked, at least one visible frame per row."""
    max_len = max(valid) + extra
    cfg = MaskConfig(mask_prob=prob, mask_length=length, mask_type=kind)
    mask = compute_mask(valid, max_len, cfg, torch.Generator().manual_seed(seed))
    assert mask.shape == (len(valid), max_len)
    counts = mask.sum(1)
    assert bool((counts == counts[0]).all())
    for i, v in enumerate(valid):
        assert not mask[i, v:].any(), "a padded frame was masked"
        assert int((~mask[i, :v]).sum()) >= 1, "a row lost every visible frame"
    keep = keep_indices(mask)
    assert keep.shape == (len(valid), max_len - int(counts[0]))
    assert not torch.gather(mask, 1, keep).any()
    assert bool((keep[:, 1:] > keep[:, :-1]).all()) if keep.shape[1] > 1 else True


@settings(max_examples=40, deadline=None)
@given(valid=st.integers(20, 300), length=st.integers(2, 8), seed=st.integers(0, 2**31))
def test_single_row_spans_have_the_span_length(valid, length, seed):
    """Without count equalisation (one row, no thinning), every masked run is made of whole
    spans: at least ``mask_length`` frames."""
    mask = span_mask(
        [valid],
        valid,
        mask_prob=0.5,
        mask_length=length,
        generator=torch.Generator().manual_seed(seed),
    )
    runs = _runs(mask[0])
    assert runs, "at least min_masks=1 span"
    assert min(runs) >= length


def test_span_fraction_matches_the_data2vec_formula():
    """mask_prob * T / mask_length starts per row; overlapping spans cover
    1 - (1 - p / l) ** l of the frames (0.41 for p = 0.5, l = 5)."""
    g = torch.Generator().manual_seed(0)
    valid = [400] * 200
    mask = span_mask(valid, 400, mask_prob=0.5, mask_length=5, same_count=False, generator=g)
    fraction = float(mask.float().mean())
    assert abs(fraction - expected_span_fraction(0.5, 5)) < 0.02
    assert abs(expected_span_fraction(0.5, 5) - 0.40951) < 1e-4
    # other probabilities follow the same law
    mask = span_mask(valid, 400, mask_prob=0.2, mask_length=5, same_count=False, generator=g)
    assert abs(float(mask.float().mean()) - expected_span_fraction(0.2, 5)) < 0.02


def test_equal_counts_take_the_smallest_row():
    g = torch.Generator().manual_seed(1)
    free = span_mask([300] * 16, 300, mask_prob=0.5, mask_length=5, same_count=False, generator=g)
    g = torch.Generator().manual_seed(1)
    same = span_mask([300] * 16, 300, mask_prob=0.5, mask_length=5, generator=g)
    assert int(same[0].sum()) == int(free.sum(1).min())
    # thinning only removes masked frames: the equal-count mask is inside the free one
    assert not (same & ~free).any()


def test_block_masks_mask_exactly_p():
    g = torch.Generator().manual_seed(0)
    mask = block_mask([200, 200, 200], 200, mask_prob=0.5, mask_length=5, generator=g)
    assert mask.sum(1).tolist() == [100, 100, 100]
    # padding: the count is set by the shortest row, and padding stays visible
    mask = block_mask([200, 120], 200, mask_prob=0.5, mask_length=5, generator=g)
    assert mask.sum(1).tolist() == [60, 60]
    assert not mask[1, 120:].any()


def test_masks_are_reproducible_and_rows_differ():
    cfg = MaskConfig()
    a = compute_mask([100] * 4, 100, cfg, torch.Generator().manual_seed(5))
    b = compute_mask([100] * 4, 100, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    # clones of an utterance are separate rows and get independent masks
    assert not torch.equal(a[0], a[1])


def test_keep_indices_follow_row_zero_like_the_authors_make_maskinfo():
    mask = torch.tensor(
        [
            [True, False, False, True],  # row 0: 2 masked -> every row keeps 2 frames
            [True, True, True, False],  # 3 masked: keeps its unmasked frame and 1 masked one
            [False, False, False, True],  # 1 masked: keeps 2 of its 3 unmasked frames
        ]
    )
    keep = keep_indices(mask)
    assert keep.tolist() == [[1, 2], [3, 0], [0, 1]]
    # a row 0 masked entirely still leaves every row one frame
    assert keep_indices(torch.ones(2, 3, dtype=torch.bool)).tolist() == [[0], [0]]


def test_file_block_masks_mask_exactly_p_of_the_whole_file():
    g = torch.Generator().manual_seed(3)
    rows = file_block_masks(503, 8, mask_prob=0.5, mask_length=5, generator=g)
    assert rows.shape == (8, 503)
    assert rows.sum(1).tolist() == [251] * 8
    assert len({tuple(r.tolist()) for r in rows}) == 8  # clones get their own masks


def test_cropped_block_masks_are_about_half_and_unequal_across_rows():
    g = torch.Generator().manual_seed(0)
    files, crop, clone = [1000, 700, 400], 400, 8
    mask = cropped_block_masks(
        files, [crop] * 3, crop, clone, mask_prob=0.5, mask_length=5, generator=g
    )
    assert mask.shape == (3 * clone, crop)
    counts = mask.sum(1).float()
    # the uncropped file (400 frames) keeps exactly int(0.5 * 400) per row
    assert counts[2 * clone :].tolist() == [200.0] * clone
    # cropped windows of a 50% mask: about half, not all equal
    assert abs(counts[: 2 * clone].mean().item() / crop - 0.5) < 0.03
    assert len(set(counts[: 2 * clone].tolist())) > 1


def test_block_masks_are_the_default_and_follow_the_file_length():
    cfg = MaskConfig()
    assert cfg.mask_type == "block"
    g = torch.Generator().manual_seed(1)
    mask = compute_mask([50] * 4, 50, cfg, g, file_frames=[80, 50], clone_batch=2)
    assert mask.shape == (4, 50)
    assert mask[2:].sum(1).tolist() == [25, 25]
