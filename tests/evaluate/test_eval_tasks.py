"""Task data: conversation contexts (order, no future turns), sentiment, regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotion2vec.errors import DataError
from emotion2vec.evaluate.folds import Fold
from emotion2vec.evaluate.manifest import LabeledItem
from emotion2vec.evaluate.probe import TrainConfig, run_probe
from emotion2vec.evaluate.tasks import (
    categorical_task,
    context_inputs,
    conversation_contexts,
    sentiment_binary_task,
    sentiment_regression_task,
    task_data,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def dialogue_items():
    """Two dialogues listed out of order, with a gap at turn 3 of d1."""
    spec = [("d1", 4), ("d2", 1), ("d1", 0), ("d1", 2), ("d2", 0), ("d1", 1), ("d1", 5)]
    spec += [("d1", t) for t in range(6, 12)]
    return [
        LabeledItem(path=f"/x/{d}_{t}.wav", label="happy", dialogue_id=d, turn=t) for d, t in spec
    ]


def test_contexts_hold_previous_turns_in_order_then_the_current_one():
    items = dialogue_items()
    contexts = conversation_contexts(items, k=3)
    for i, ctx in enumerate(contexts):
        assert ctx[-1] == i
        turns = [items[j].turn for j in ctx]
        assert turns == sorted(turns) and len(set(turns)) == len(turns)
        assert all(items[j].dialogue_id == items[i].dialogue_id for j in ctx)
        assert all(items[j].turn < items[i].turn for j in ctx[:-1])  # nothing from the future
        assert len(ctx) <= 4
    by_name = {(it.dialogue_id, it.turn): i for i, it in enumerate(items)}
    assert [items[j].turn for j in contexts[by_name[("d1", 0)]]] == [0]
    # turn 3 is missing: the previous listed turns of turn 4 are 0, 1, 2
    assert [items[j].turn for j in contexts[by_name[("d1", 4)]]] == [0, 1, 2, 4]
    assert [items[j].turn for j in contexts[by_name[("d1", 11)]]] == [8, 9, 10, 11]
    assert [items[j].turn for j in contexts[by_name[("d2", 1)]]] == [0, 1]
    assert conversation_contexts(items, k=0)[5] == [5]


def test_context_inputs_stack_embeddings_in_context_order():
    items = dialogue_items()
    embeddings = [np.full(3, 100 * (it.dialogue_id == "d2") + it.turn, np.float32) for it in items]
    contexts = conversation_contexts(items, k=6)
    stacked = context_inputs(embeddings, contexts)
    for i, x in enumerate(stacked):
        assert x.shape == (len(contexts[i]), 3)
        assert x[-1, 0] == embeddings[i][0]
        assert list(x[:, 0]) == sorted(x[:, 0])  # earlier turns first
        assert x[:, 0].max() == embeddings[i][0]  # no later turn leaks in


def test_contexts_need_dialogue_and_turn_and_unique_turns():
    with pytest.raises(DataError, match="dialogue"):
        conversation_contexts([LabeledItem("/a.wav", "x")])
    twice = [LabeledItem(f"/{i}.wav", "x", dialogue_id="d", turn=0) for i in range(2)]
    with pytest.raises(DataError, match="two items at turn 0"):
        conversation_contexts(twice)


def test_sentiment_binary_drops_neutral_values_and_labels():
    by_value = [LabeledItem(f"/{i}.wav", value=v) for i, v in enumerate([1.2, 0.0, -0.4, 2.0])]
    task = sentiment_binary_task(by_value)
    assert task.targets == ["positive", None, "negative", "positive"]
    assert task.labels == ["negative", "positive"] and task.kind == "classification"
    by_label = [
        LabeledItem(f"/{i}.wav", label=lab)
        for i, lab in enumerate(["positive", "neutral", "negative", "Neutral", None])
    ]
    task = task_data("sentiment", by_label)
    assert task.targets == ["positive", None, "negative", None, None]
    assert task.n_targets == 2
    with pytest.raises(DataError, match="positive and negative"):
        sentiment_binary_task([LabeledItem("/a.wav", label="positive")])


def test_sentiment_regression_and_categorical_filters():
    items = [
        LabeledItem(f"/{i}.wav", label=lab, value=v)
        for i, (lab, v) in enumerate([("a", 1.0), ("b", None), ("c", -2.0), (None, 0.5)])
    ]
    reg = sentiment_regression_task(items)
    assert reg.targets == [1.0, None, -2.0, 0.5] and reg.kind == "regression"
    cat = categorical_task(items, labels=["c", "a"])
    assert cat.targets == ["a", None, "c", None] and cat.labels == ["c", "a"]
    assert any("outside" in note for note in cat.notes)


def test_regression_probe_reports_mae_ccc_and_binary_scores():
    rng = np.random.default_rng(0)
    n = 90
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.clip(x[:, 0] * 1.5 + 0.1 * rng.normal(size=n), -3, 3)
    inputs = [row[None, :] for row in x]  # one "frame" per item
    idx = np.arange(n)
    folds = [
        Fold("a", "custom", idx[:60], idx[60:75], idx[75:]),
        Fold("b", "custom", idx[30:], idx[15:30], idx[:15]),
    ]
    cfg = TrainConfig.paper(epochs=30, batch_size=16, lr=3e-3, cyclic_lr=None)
    result = run_probe(
        inputs, list(y), folds, head="paper", kind="regression", config=cfg, progress=False
    )
    assert result.kind == "regression" and result.labels is None and result.confusion is None
    assert {"mae", "ccc", "pearson_r", "acc2", "f1_weighted"} <= set(result.summary)
    assert result.summary["ccc"]["mean"] > 0.6
    logreg = run_probe(
        [row for row in x], list(y), folds, head="logreg", kind="regression", progress=False
    )
    assert logreg.summary["pearson_r"]["mean"] > 0.9
    assert "alpha" in logreg.folds[0].selected


def test_items_without_target_are_left_out_of_every_split():
    rng = np.random.default_rng(0)
    x = [rng.normal(size=4).astype(np.float32) for _ in range(40)]
    targets = [("a" if i % 2 else "b") if i % 5 else None for i in range(40)]
    idx = np.arange(40)
    folds = [Fold("f", "custom", idx[:25], idx[25:30], idx[30:])]
    result = run_probe(x, targets, folds, head="logreg", progress=False)
    fold = result.folds[0]
    assert fold.n_train == 20 and fold.n_valid == 4 and fold.n_test == 8
    assert all(targets[i] is not None for i in fold.test_idx)
    assert any("without a target" in note for note in fold.notes)
