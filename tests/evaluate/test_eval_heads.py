"""Heads learn separable synthetic problems; best-epoch selection; batching; determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emotion2vec.evaluate.folds import Fold
from emotion2vec.evaluate.heads import ConversationGRU, LinearProbe, PaperHead, SuperbHead
from emotion2vec.evaluate.probe import (
    TrainConfig,
    collate,
    predict_head,
    run_probe,
    select_best_epoch,
    train_head,
)

CLASSES = ["a", "b", "c"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny heads: threads only add synchronisation cost (10x slower on a busy 2-core box)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def frame_data(n: int, seed: int, dim: int = 16):
    """Variable-length frame sequences whose class sets the mean of a few dimensions."""
    centres = np.random.default_rng(123).normal(0, 1.0, size=(len(CLASSES), dim))
    centres = centres.astype(np.float32)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        c = i % len(CLASSES)
        t = int(rng.integers(3, 12))
        xs.append(centres[c] + rng.normal(0, 1.0, size=(t, dim)).astype(np.float32))
        ys.append(c)
    return xs, np.array(ys)


def fast(**kw) -> TrainConfig:
    base = dict(epochs=15, batch_size=16)
    base.update(kw)
    return TrainConfig.paper(**base)


def accuracy(head, xs, ys) -> float:
    return float((predict_head(head, xs).argmax(1) == ys).mean())


def test_paper_head_learns_separable_frames():
    xs, ys = frame_data(90, 0)
    vx, vy = frame_data(30, 1)
    torch.manual_seed(0)
    head = PaperHead(16, 3, hidden=32)
    result = train_head(head, xs, ys, vx, vy, config=fast())
    tx, ty = frame_data(60, 2)
    assert accuracy(head, tx, ty) > 0.8  # chance: 1/3
    assert 0 <= result.best_epoch < 15 and len(result.history) == 15


def test_superb_head_finds_the_informative_layer():
    rng = np.random.default_rng(0)
    n, layers, dim = 150, 4, 8
    ys = np.arange(n) % 3
    centres = rng.normal(0, 2.0, size=(3, dim)).astype(np.float32)
    xs = rng.normal(0, 1.0, size=(n, layers, dim)).astype(np.float32)
    xs[:, 2] += centres[ys]  # only layer 2 carries the class
    torch.manual_seed(0)
    head = SuperbHead(layers, dim, 3, proj_dim=16)
    cfg = TrainConfig.superb(epochs=40, batch_size=16, lr=1e-2)
    train_head(head, list(xs[:100]), ys[:100], list(xs[100:]), ys[100:], config=cfg)
    assert accuracy(head, list(xs[100:]), ys[100:]) > 0.8
    weights = head.layer_weights_softmax()
    assert math.isclose(sum(weights), 1.0, rel_tol=1e-6)
    assert int(np.argmax(weights)) == 2


def test_gru_uses_the_order_of_the_turns():
    # the class is which of two turn patterns comes *last*: an order-blind model cannot tell
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 8).astype(np.float32), rng.normal(0, 1, 8).astype(np.float32)
    xs, ys = [], []
    for i in range(160):
        c = i % 2
        first, last = (a, b) if c else (b, a)
        length = int(rng.integers(2, 5))
        seq = [first + 0.1 * rng.normal(0, 1, 8)] * (length - 1) + [last]
        xs.append(np.stack(seq).astype(np.float32))
        ys.append(c)
    ys = np.array(ys)
    torch.manual_seed(0)
    head = ConversationGRU(8, 2, hidden=16)
    train_head(head, xs[:120], ys[:120], xs[120:], ys[120:], config=fast(epochs=20, lr=3e-3))
    assert accuracy(head, xs[120:], ys[120:]) > 0.9


def test_logreg_learns_and_picks_c_on_validation():
    xs, ys = frame_data(120, 0)
    x = np.stack([f.mean(0) for f in xs])
    probe = LinearProbe("classification", grid=(1e-4, 1.0))
    probe.fit(x[:80], ys[:80], x[80:], ys[80:])
    assert probe.chosen == 1.0 and set(probe.valid_scores) == {1e-4, 1.0}
    tx, ty = frame_data(60, 5)
    assert (probe.predict(np.stack([f.mean(0) for f in tx])) == ty).mean() > 0.8


def test_linear_probe_regression_with_ridge():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 5))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5, 0.0]) + 0.1 * rng.normal(size=100)
    probe = LinearProbe("regression").fit(x[:70], y[:70], x[70:85], y[70:85])
    assert probe.chosen in probe.grid
    assert np.corrcoef(probe.predict(x[85:]), y[85:])[0, 1] > 0.95


def test_select_best_epoch_is_the_earliest_maximum_and_skips_nan():
    assert select_best_epoch([0.1, 0.5, 0.5, 0.2]) == 1
    assert select_best_epoch([float("nan"), 0.3, 0.2]) == 1
    assert select_best_epoch([0.4, 0.3, 0.3], higher_is_better=False) == 1
    assert select_best_epoch([float("nan"), float("nan")]) == 1
    assert select_best_epoch([]) == -1


def test_train_head_keeps_the_weights_of_the_best_validation_epoch():
    xs, ys = frame_data(60, 0)
    vx, vy = frame_data(30, 1)
    torch.manual_seed(0)
    head = PaperHead(16, 3, hidden=8)
    # a high, constant learning rate makes validation accuracy wander from epoch to epoch
    cfg = fast(epochs=12, lr=3e-2, cyclic_lr=None)
    result = train_head(head, xs, ys, vx, vy, config=cfg)
    scores = [h["valid"] for h in result.history]
    assert result.best_epoch == select_best_epoch(scores)
    assert accuracy(head, vx, vy) == pytest.approx(scores[result.best_epoch])


def test_selection_by_ua_and_without_validation():
    xs, ys = frame_data(30, 0)
    head = PaperHead(16, 3, hidden=8)
    result = train_head(head, xs, ys, config=fast(epochs=3))
    assert result.best_epoch == 2 and all(math.isnan(h["valid"]) for h in result.history)
    result = train_head(head, xs, ys, xs, ys, config=fast(epochs=3, select_by="ua"))
    assert result.select_by == "ua"


def test_cyclic_lr_follows_the_paper_schedule():
    xs, ys = frame_data(10, 0)
    result = train_head(PaperHead(16, 3), xs, ys, config=fast(epochs=21, batch_size=128))
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == pytest.approx(5e-4)
    assert lrs[10] == pytest.approx(1e-3)  # peak after step_size_up = 10 epochs
    assert lrs[20] == pytest.approx(5e-4)


def test_collate_pads_and_masks():
    batch, mask = collate([np.ones((2, 3)), np.ones((4, 3))])
    assert batch.shape == (2, 4, 3) and batch.dtype == torch.float32
    assert mask.tolist() == [[False, False, True, True], [False] * 4]
    assert float(batch[0, 2:].abs().sum()) == 0.0
    same, none = collate([np.ones((2, 3)), np.zeros((2, 3))])
    assert none is None and same.shape == (2, 2, 3)
    framed, mask = collate([np.ones((2, 5, 3)), np.ones((2, 2, 3))], pad_axis=1)
    assert framed.shape == (2, 2, 5, 3) and mask.shape == (2, 5)


def test_paper_head_ignores_padding():
    torch.manual_seed(0)
    head = PaperHead(4, 2, hidden=8).eval()
    a = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    b = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    together = predict_head(head, [a, b])
    alone = np.concatenate([predict_head(head, [a]), predict_head(head, [b])])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_superb_head_frames_equal_utterance_means():
    torch.manual_seed(0)
    head = SuperbHead(3, 4, 2, proj_dim=5).eval()
    with torch.no_grad():
        head.layer_weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    frames = torch.randn(2, 3, 6, 4)
    mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    means = torch.stack([frames[0].mean(1), frames[1, :, :4].mean(1)])
    torch.testing.assert_close(head(frames, mask), head(means), atol=1e-6, rtol=1e-6)


def test_run_probe_is_deterministic_and_per_fold():
    xs, ys = frame_data(60, 0)
    labels = [CLASSES[y] for y in ys]
    idx = np.arange(60)
    folds = [
        Fold("f1", "custom", idx[:40], idx[40:50], idx[50:]),
        Fold("f2", "custom", idx[20:], idx[10:20], idx[:10]),
    ]
    cfg = fast(epochs=4)
    one = run_probe(xs, labels, folds, head="paper", config=cfg, progress=False)
    two = run_probe(xs, labels, folds, head="paper", config=cfg, progress=False)
    assert [f.predictions for f in one.folds] == [f.predictions for f in two.folds]
    assert [f.best_epoch for f in one.folds] == [f.best_epoch for f in two.folds]
    assert one.labels == CLASSES and one.confusion.sum() == 20
    assert set(one.summary) >= {"wa", "ua", "macro_f1", "weighted_f1"}
    assert one.summary["wa"]["n"] == 2
    # a fold's result does not depend on the folds before it
    alone = run_probe(xs, labels, folds[1:], head="paper", config=cfg, progress=False)
    assert alone.folds[0].predictions == one.folds[1].predictions
