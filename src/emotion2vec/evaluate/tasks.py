"""Evaluation tasks on top of the probe machinery.

* ``categorical`` -- emotion classes from ``LabeledItem.label`` (speech and song corpora are
  just different manifests).
* ``sentiment`` -- binary positive / negative with neutral removed: from the sign of
  ``value`` when the manifest has values (CMU-MOSI/MOSEI; 0 = neutral), else from the
  labels ``positive`` / ``negative`` (MELD sentiment; ``neutral`` dropped).
* ``sentiment_regression`` -- ``value`` regressed by a one-output head (L1 loss); reports
  MAE, CCC, Pearson r and the binary acc2 / F1 from signs (zeros removed).
* ``conversation`` -- emotion in conversation (IEMOCAP layout: ``dialogue_id`` and ``turn``):
  the utterance embeddings of the previous ``k`` turns of the same dialogue (k = 6 by
  default) and of the current turn, in turn order, go through a 2-layer GRU and a linear
  layer. Only *earlier* turns are used, never later ones; items without a label serve as
  context only.

:func:`run_evaluation` does everything: targets, features through the cache, inputs shaped
for the head, the probe, and timing / provenance in ``result.info``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emotion2vec.errors import DataError, Emotion2vecError
from emotion2vec.evaluate.cache import (
    EgemapsExtractor,
    FeatureCache,
    FeatureExtractor,
    LogMelExtractor,
    ModelFeatureExtractor,
)
from emotion2vec.evaluate.folds import Fold
from emotion2vec.evaluate.manifest import LabeledItem
from emotion2vec.evaluate.probe import ProbeResult, TrainConfig, run_probe

__all__ = [
    "BASELINE_FEATURES",
    "TASKS",
    "TaskData",
    "categorical_task",
    "context_inputs",
    "conversation_contexts",
    "make_extractor",
    "run_evaluation",
    "sentiment_binary_task",
    "sentiment_regression_task",
    "shape_for_head",
    "task_data",
    "utterance_embeddings",
]

TASKS: tuple[str, ...] = ("categorical", "sentiment", "sentiment_regression", "conversation")
BASELINE_FEATURES: tuple[str, ...] = ("logmel", "egemaps")

_POSITIVE = {"positive", "pos", "+"}
_NEGATIVE = {"negative", "neg", "-"}


@dataclass
class TaskData:
    """Targets of a task, one per manifest item (None = not a target)."""

    name: str
    kind: str
    """``classification`` or ``regression``."""
    targets: list[Any]
    labels: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_targets(self) -> int:
        """Items that are targets."""
        return sum(t is not None for t in self.targets)


def categorical_task(
    items: Sequence[LabeledItem], *, labels: Sequence[str] | None = None
) -> TaskData:
    """Targets from ``item.label``; with ``labels``, other labels are left out."""
    keep = set(labels) if labels is not None else None
    targets = [
        it.label if it.label is not None and (keep is None or it.label in keep) else None
        for it in items
    ]
    notes = []
    dropped = sum(1 for it, t in zip(items, targets, strict=True) if t is None and it.label)
    if dropped:
        notes.append(f"{dropped} item(s) with a label outside {sorted(keep or [])} left out")
    unlabeled = sum(1 for it in items if it.label is None)
    if unlabeled:
        notes.append(f"{unlabeled} unlabelled item(s) left out")
    present = sorted({t for t in targets if t is not None})
    order = [c for c in labels if c in present] if labels is not None else present
    return TaskData("categorical", "classification", targets, order, notes)


def sentiment_binary_task(items: Sequence[LabeledItem]) -> TaskData:
    """Positive / negative with neutral removed (see the module docstring)."""
    if any(it.value is not None for it in items):
        targets = [
            None
            if it.value is None or it.value == 0
            else ("positive" if it.value > 0 else "negative")
            for it in items
        ]
        source = "sign of value"
    else:
        targets = []
        for it in items:
            label = (it.label or "").strip().lower()
            targets.append(
                "positive" if label in _POSITIVE else "negative" if label in _NEGATIVE else None
            )
        source = "labels"
    removed = sum(t is None for t in targets)
    notes = [f"binary sentiment from the {source}; {removed} neutral/unlabelled item(s) removed"]
    if not any(t == "positive" for t in targets) or not any(t == "negative" for t in targets):
        raise DataError("sentiment: need both positive and negative items (value sign or label)")
    return TaskData("sentiment", "classification", targets, ["negative", "positive"], notes)


def sentiment_regression_task(items: Sequence[LabeledItem]) -> TaskData:
    """Targets from ``item.value``; items without a value are left out."""
    targets = [it.value for it in items]
    if all(t is None for t in targets):
        raise DataError("sentiment_regression: no item has a value column")
    missing = sum(t is None for t in targets)
    notes = [f"{missing} item(s) without a value left out"] if missing else []
    return TaskData("sentiment_regression", "regression", targets, None, notes)


def conversation_contexts(items: Sequence[LabeledItem], k: int = 6) -> list[list[int]]:
    """For each item, the manifest indices of up to ``k`` previous turns of its dialogue
    followed by the item itself, in increasing ``turn`` order.

    Only turns with a smaller ``turn`` count as previous; turns missing from the manifest
    are simply absent (the contexts are the previous turns *that are listed*).

    Raises:
        DataError: an item without ``dialogue_id`` or ``turn``, or two items at the same
            turn of one dialogue.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    dialogues: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, it in enumerate(items):
        if it.dialogue_id is None or it.turn is None:
            raise DataError(
                f"{it.path}: the conversation task needs 'dialogue' and 'turn' for every item"
            )
        dialogues[it.dialogue_id].append((it.turn, i))
    contexts: list[list[int]] = [[] for _ in items]
    for name, turns in dialogues.items():
        turns.sort()
        for (a, _), (b, _) in zip(turns, turns[1:], strict=False):
            if a == b:
                raise DataError(f"dialogue {name!r}: two items at turn {a}")
        order = [i for _, i in turns]
        for position, i in enumerate(order):
            contexts[i] = order[max(0, position - k) : position] + [i]
    return contexts


def context_inputs(
    embeddings: Sequence[np.ndarray | None], contexts: Sequence[Sequence[int]]
) -> list[np.ndarray]:
    """Stack each context's utterance embeddings: ``(len(context), D)`` per item."""
    out = []
    for ctx in contexts:
        rows = [embeddings[j] for j in ctx]
        if any(r is None for r in rows):
            raise DataError("context_inputs: a context refers to an item without features")
        out.append(np.stack([np.asarray(r, dtype=np.float32).reshape(-1) for r in rows]))
    return out


def task_data(name: str, items: Sequence[LabeledItem], **kwargs: Any) -> TaskData:
    """Targets of the task ``name`` (one of :data:`TASKS`)."""
    if name in ("categorical", "conversation"):
        data = categorical_task(items, **kwargs)
        data.name = name
        return data
    if name == "sentiment":
        return sentiment_binary_task(items)
    if name == "sentiment_regression":
        return sentiment_regression_task(items)
    raise Emotion2vecError(f"unknown task {name!r}; use one of {', '.join(TASKS)}")


# --------------------------------------------------------------------------------------
# Features for a head
# --------------------------------------------------------------------------------------


def make_extractor(
    *,
    model=None,
    features: str | None = None,
    head: str = "paper",
    layer: int | Sequence[int] | None = None,
    dtype: str = "float16",
    batch_seconds: float = 60.0,
    fingerprint: str | None = None,
) -> FeatureExtractor:
    """The extractor a head needs: the paper head reads frames of one layer (default the
    last), SUPERB the per-layer utterance means of all layers, logreg and the GRU the
    utterance embedding of one layer. Several layers (e.g. the last four, the paper's
    sentiment input) are extracted together and averaged by :func:`run_evaluation`.
    ``features`` = ``logmel`` / ``egemaps`` instead of a model gives the classic baselines
    (utterance-level, whatever the head)."""
    if features is not None:
        if model is not None:
            raise Emotion2vecError("pass either a model or baseline features, not both")
        if features == "logmel":
            return LogMelExtractor()
        if features == "egemaps":
            return EgemapsExtractor()
        raise Emotion2vecError(f"unknown features {features!r}; use logmel or egemaps")
    if model is None:
        raise Emotion2vecError("pass a model, or features='logmel' / 'egemaps'")
    layers = None if layer is None else [layer] if isinstance(layer, int) else list(layer)
    if head == "paper":
        return ModelFeatureExtractor(
            model,
            layers=layers,
            granularity="frame",
            dtype=dtype,
            batch_seconds=batch_seconds,
            fingerprint=fingerprint,
        )
    if head == "superb":
        if layer is not None:
            raise Emotion2vecError("the superb head weighs all layers: do not pass a layer")
        return ModelFeatureExtractor(
            model,
            layers="all",
            granularity="utterance",
            batch_seconds=batch_seconds,
            fingerprint=fingerprint,
        )
    if head in ("logreg", "gru"):
        return ModelFeatureExtractor(
            model,
            layers=layers,
            granularity="utterance",
            batch_seconds=batch_seconds,
            fingerprint=fingerprint,
        )
    raise Emotion2vecError(f"unknown head {head!r}; use paper, superb, logreg or gru")


def shape_for_head(array: np.ndarray, head: str, baseline: bool) -> np.ndarray:
    """A cached array as ``head`` reads it: baselines as one "frame" ``(1, F)`` (paper,
    superb) or a vector; model features ``(L, T, D)`` -> ``(T, D)`` (paper), ``(L, D)`` ->
    ``(D,)`` (logreg, GRU), several layers averaged; SUPERB keeps ``(L, D)``."""
    if baseline:
        vector = np.asarray(array, dtype=np.float32).reshape(-1)
        return vector[None, :] if head in ("paper", "superb") else vector
    if head == "superb":
        return array  # (L, D)
    # paper: (L, T, D) -> (T, D); logreg / GRU: (L, D) -> (D,); several layers are averaged
    if array.shape[0] == 1:
        return array[0]
    return array.mean(axis=0, dtype=np.float32).astype(array.dtype)


def utterance_embeddings(
    items: Sequence[LabeledItem],
    *,
    model=None,
    features: str | None = None,
    layer: int | Sequence[int] | None = None,
    cache: FeatureCache | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """(N, D) utterance embeddings (mean of one layer's frames, default the last; several
    layers are averaged) or baseline vectors, through the cache."""
    extractor = make_extractor(model=model, features=features, head="logreg", layer=layer)
    got = (cache or FeatureCache(None)).get(
        extractor, [it.source() for it in items], progress=progress
    )
    baseline = features is not None
    return np.stack([shape_for_head(a, "logreg", baseline).reshape(-1) for a in got.arrays])


def _dialogue_leaks(folds: Sequence[Fold], items: Sequence[LabeledItem]) -> list[str]:
    notes = []
    for fold in folds:
        train = {items[i].dialogue_id for i in fold.train_idx.tolist()}
        test = {items[i].dialogue_id for i in fold.test_idx.tolist()}
        shared = train & test
        if shared:
            notes.append(
                f"fold {fold.name}: {len(shared)} dialogue(s) have turns in both train and test "
                "(context audio of training turns reaches test items); prefer "
                "leave-one-session-out"
            )
    return notes


def run_evaluation(
    items: Sequence[LabeledItem],
    folds: Sequence[Fold],
    *,
    model=None,
    features: str | None = None,
    head: str = "paper",
    task: str = "categorical",
    layer: int | Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    cache: FeatureCache | None = None,
    config: TrainConfig | None = None,
    context: int = 6,
    dtype: str = "float16",
    batch_seconds: float = 60.0,
    progress: bool | None = None,
    info: dict[str, Any] | None = None,
) -> ProbeResult:
    """Evaluate a model (or a classic baseline) on a task and protocol.

    Args:
        items: the manifest.
        folds: its folds (:mod:`emotion2vec.evaluate.folds`).
        model: an emotion2vec model (frozen), or None with ``features``.
        features: ``logmel`` or ``egemaps`` for the classic baselines.
        head: ``paper`` (default), ``superb`` or ``logreg``; the conversation task always
            uses the GRU.
        task: one of :data:`TASKS`.
        layer: hidden-state index for paper / logreg / GRU (default: the last block), or
            several indices whose features are averaged (the paper's sentiment setting
            uses the last four: ``[-4, -3, -2, -1]``).
        labels: categorical tasks: keep only these classes, in this order.
        cache: where features live (default: nothing kept on disk).
        config: training recipe (default: :meth:`TrainConfig.paper`, or
            :meth:`TrainConfig.superb` for the superb head).
        context: previous turns of the conversation task.
        dtype: storage dtype of cached frame features.
        progress: progress bars (None: only on a terminal).
        info: extra provenance recorded in ``result.info`` (manifest path...).
    """
    start = time.perf_counter()
    if task not in TASKS:
        raise Emotion2vecError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if task == "conversation":
        head = "gru"
    elif head not in ("paper", "superb", "logreg"):
        raise Emotion2vecError(f"unknown head {head!r}; use paper, superb or logreg")
    kwargs = {"labels": labels} if task in ("categorical", "conversation") and labels else {}
    data = task_data(task, items, **kwargs)
    if config is None:
        config = TrainConfig.superb() if head == "superb" else TrainConfig.paper()
    cache = cache or FeatureCache(None)
    baseline = features is not None

    contexts = conversation_contexts(items, context) if task == "conversation" else None
    needed = sorted(
        {
            j
            for i, t in enumerate(data.targets)
            if t is not None
            for j in (contexts[i] if contexts else [i])
        }
    )
    extractor = make_extractor(
        model=model,
        features=features,
        head="logreg" if head == "gru" else head,
        layer=layer,
        dtype=dtype,
        batch_seconds=batch_seconds,
    )
    got = cache.get(extractor, [items[i].source() for i in needed], progress=progress)
    extract_seconds = got.seconds
    per_item: list[np.ndarray | None] = [None] * len(items)
    for i, array in zip(needed, got.arrays, strict=True):
        per_item[i] = array

    if contexts is not None:
        vectors = [None if a is None else shape_for_head(a, "gru", baseline) for a in per_item]
        inputs = [
            context_inputs(vectors, [contexts[i]])[0]
            if data.targets[i] is not None
            else np.zeros((1, 1), np.float32)
            for i in range(len(items))
        ]
    else:
        placeholder = np.zeros((1, 1), np.float32)
        inputs = [placeholder if a is None else shape_for_head(a, head, baseline) for a in per_item]
    result = run_probe(
        inputs,
        data.targets,
        folds,
        head=head,
        kind=data.kind,
        labels=data.labels,
        config=config,
        standardise=baseline,
        task=task,
        progress=progress,
    )
    notes = list(data.notes)
    if contexts is not None:
        notes += _dialogue_leaks(folds, items)
        result.config["context"] = context
    result.info.update(
        {
            "features": extractor.identity(),
            "feature_key": got.key,
            "items": len(items),
            "targets": data.n_targets,
            "extracted": len(got.computed),
            "reused_from_cache": len(got.reused),
            "cache_dir": str(cache.root) if cache.root is not None else None,
            "notes": notes,
        }
    )
    if layer is not None:
        result.config["layer"] = layer if isinstance(layer, int) else list(layer)
    result.info.update(info or {})
    result.timing.update(
        {"extract_seconds": extract_seconds, "total_seconds": time.perf_counter() - start}
    )
    return result
