"""Train a head per fold on frozen features and test it: the probe machinery every task uses.

:func:`run_probe` takes one input array per manifest item (shaped for the head), one target
per item (a label, a float, or None for "not a target"), and the folds; per fold it trains on
``train_idx``, picks the best epoch (or regularisation) on ``valid_idx`` and reports the
test metrics of ``test_idx``. Items whose target is None are dropped from every split (the
fold's notes count them).

Determinism: each fold seeds torch with ``[seed, crc32(fold name)]``-derived values before
building its head and draws its batch order from its own generator, so a fold's result
depends only on the seed, its name and its data -- not on the folds run before it (the
official script seeds once for all folds). On CPU two runs give identical numbers.
"""

from __future__ import annotations

import copy
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emotion2vec.devices import checked_device
from emotion2vec.errors import DataError, Emotion2vecError
from emotion2vec.evaluate.folds import Fold
from emotion2vec.evaluate.heads import LinearProbe, build_head
from emotion2vec.evaluate.metrics import (
    aggregate_folds,
    binary_from_sign,
    classification_metrics,
    regression_metrics,
)

__all__ = [
    "SELECT_METRICS",
    "FoldResult",
    "ProbeResult",
    "TrainConfig",
    "TrainResult",
    "collate",
    "predict_head",
    "run_probe",
    "select_best_epoch",
    "train_head",
]

#: Validation metrics a run can select on, and whether higher is better.
SELECT_METRICS: dict[str, bool] = {
    "wa": True,
    "ua": True,
    "macro_f1": True,
    "weighted_f1": True,
    "ccc": True,
    "mae": False,
    "loss": False,
}


@dataclass
class TrainConfig:
    """Optimisation of a torch head. Defaults: the emotion2vec paper's recipe."""

    epochs: int = 100
    """Passes over the training split; the model is evaluated on validation after each."""
    batch_size: int = 128
    """Items per batch (the last batch may be smaller)."""
    optimizer: str = "rmsprop"
    """``rmsprop`` or ``adam``."""
    lr: float = 5e-4
    """Learning rate (the cyclic schedule's base when ``cyclic_lr`` is set)."""
    momentum: float = 0.9
    """RMSprop momentum (ignored by Adam)."""
    weight_decay: float = 0.0
    """L2 penalty (the official config's 1e-5 is never passed to its optimiser)."""
    cyclic_lr: tuple[float, float, int] | None = (5e-4, 1e-3, 10)
    """(base, max, step_size_up in epochs) of torch ``CyclicLR``, stepped once per epoch;
    None for a constant rate."""
    cycle_momentum: bool = True
    """torch ``CyclicLR`` default (the official script leaves it on): with RMSprop the
    momentum cycles between 0.8 and 0.9, opposite to the rate."""
    warmup_decay: tuple[int, int] | None = None
    """(warm-up epochs, total epochs) of SpeechBrain's ``LinearWarmupScheduler`` stepped the
    way EmoBox's recipe steps it: once per epoch, after validation, each call returning the
    value for its step count *before* counting it. Epoch 1 therefore runs at ``lr``, epoch 2
    at 0, and epoch ``e >= 2`` at ``lr * s / warmup`` for ``s = e - 2 < warmup``, then at
    ``lr * (total - s) / (total - warmup)``. None: no such schedule (``cyclic_lr`` or
    constant). Set at most one of the two."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value (SUPERB: 1.0)."""
    select_by: str | None = None
    """Validation metric picking the best epoch: wa (default for classification), ua,
    macro_f1, weighted_f1, loss; ccc (default for regression) or mae."""
    regression_loss: str = "l1"
    """Loss of regression heads: ``l1`` or ``mse``."""
    seed: int = 42
    """Seed of head initialisation and batch order."""
    device: str = "cpu"
    """Where heads train."""
    eval_batch_size: int = 256
    """Items per batch at evaluation."""

    @classmethod
    def paper(cls, **overrides: Any) -> TrainConfig:
        """The emotion2vec paper: RMSprop 5e-4 momentum 0.9, CyclicLR 5e-4..1e-3 over 10
        epochs, 100 epochs, batch 128, best validation WA, seed 42."""
        return cls(**overrides)

    @classmethod
    def superb(cls, **overrides: Any) -> TrainConfig:
        """SUPERB ER: Adam 1e-4, constant rate, batch 32 (s3prl: 4 x 8 accumulation),
        gradient clipping 1.0, best validation accuracy. s3prl counts 30k steps and
        evaluates every 1k; here training is counted in epochs (default 100)."""
        base = dict(
            optimizer="adam", lr=1e-4, batch_size=32, cyclic_lr=None, grad_clip=1.0, momentum=0.0
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def emobox(cls, epochs: int = 20, **overrides: Any) -> TrainConfig:
        """EmoBox's intra-corpus recipe (its SpeechBrain example): Adam 1e-4, batch 32,
        ``warmup_decay`` = (10, epochs), the last epoch's weights (every epoch is scored on
        the test set by :func:`emotion2vec.evaluate.emobox.intra_corpus`)."""
        base = dict(
            optimizer="adam",
            lr=1e-4,
            batch_size=32,
            cyclic_lr=None,
            momentum=0.0,
            epochs=epochs,
            warmup_decay=(10, epochs),
        )
        base.update(overrides)
        return cls(**base)

    def epoch_lr(self, epoch: int) -> float | None:
        """The rate of 0-based ``epoch`` under ``warmup_decay`` (None without one)."""
        if self.warmup_decay is None:
            return None
        if epoch == 0:
            return self.lr
        warmup, total = self.warmup_decay
        step = epoch - 1
        if step < warmup:
            return self.lr * step / max(1, warmup)
        return self.lr * max(0.0, (total - step) / max(1, total - warmup))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        d = asdict(self)
        d["cyclic_lr"] = list(self.cyclic_lr) if self.cyclic_lr is not None else None
        d["warmup_decay"] = list(self.warmup_decay) if self.warmup_decay is not None else None
        return d


# --------------------------------------------------------------------------------------
# Selection, batching
# --------------------------------------------------------------------------------------


def select_best_epoch(scores: Sequence[float], *, higher_is_better: bool = True) -> int:
    """Index of the best score; ties go to the **earliest** epoch (a later epoch must be
    strictly better to replace it), NaN scores never win. All-NaN or empty -> the last
    index (-1 for empty)."""
    best_index, best = len(scores) - 1, None
    for i, score in enumerate(scores):
        if score is None or (isinstance(score, float) and math.isnan(score)):
            continue
        if best is None or (score > best if higher_is_better else score < best):
            best_index, best = i, score
    return best_index


def collate(
    arrays: Sequence[np.ndarray], pad_axis: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack item arrays into a float32 batch, zero-padding ``pad_axis`` to the longest.

    Returns ``(B, ...)`` and a ``(B, T)`` padding mask (True = padding), or None when every
    item has the same shape.
    """
    # numpy does the float16 -> float32 widening (vectorised; torch's CPU cast of half
    # tensors is many times slower) while copying into the padded buffer.
    items = [np.asarray(a) for a in arrays]
    first = items[0].shape
    if all(a.shape == first for a in items):
        return torch.from_numpy(np.stack(items).astype(np.float32, copy=False)), None
    lengths = np.array([a.shape[pad_axis] for a in items])
    longest = int(lengths.max())
    shape = list(first)
    shape[pad_axis] = longest
    batch = np.zeros((len(items), *shape), dtype=np.float32)
    for row, a in enumerate(items):
        index = [row] + [slice(None)] * a.ndim
        index[1 + pad_axis] = slice(0, a.shape[pad_axis])
        batch[tuple(index)] = a
    mask = torch.arange(longest)[None, :] >= torch.from_numpy(lengths)[:, None]
    return torch.from_numpy(batch), mask


def _seed_for(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63 - 1)


# --------------------------------------------------------------------------------------
# Training a torch head
# --------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train_head` did."""

    best_epoch: int
    """0-based epoch whose weights were kept (the last one without validation)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch``, ``train_loss``, ``lr``, ``valid`` (selection score or NaN)."""
    select_by: str = "wa"
    """The validation metric used."""


def predict_head(
    head: nn.Module,
    inputs: Sequence[np.ndarray],
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Outputs ``(N, C)`` of a torch head over item arrays, in order."""
    head.eval()
    outs = []
    pad_axis = getattr(head, "pad_axis", 0)
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            x, mask = collate(inputs[start : start + batch_size], pad_axis)
            x = x.to(device)
            mask = None if mask is None else mask.to(device)
            outs.append(head(x, mask).float().cpu())
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outs).numpy()


def _validation_score(
    kind: str, metric: str, outputs: np.ndarray, targets: np.ndarray, loss: float
) -> float:
    if metric == "loss":
        return loss
    if kind == "classification":
        pred = outputs.argmax(axis=1)
        return float(classification_metrics(targets, pred, labels=None)[metric])
    values = regression_metrics(targets, outputs[:, 0])
    return float(values[metric])


def train_head(
    head: nn.Module,
    train_inputs: Sequence[np.ndarray],
    train_targets: np.ndarray,
    valid_inputs: Sequence[np.ndarray] | None = None,
    valid_targets: np.ndarray | None = None,
    *,
    kind: str = "classification",
    config: TrainConfig | None = None,
    generator: torch.Generator | None = None,
    progress: bool | None = False,
    on_epoch_end: Callable[[int, nn.Module], dict[str, Any]] | None = None,
    keep: str = "best",
) -> TrainResult:
    """Train ``head`` in place and leave it holding the weights of the best epoch.

    ``train_targets`` are class indices (int64) for ``kind="classification"`` or floats for
    ``kind="regression"`` (the head then has one output). After each epoch the head is
    scored on validation by ``config.select_by``; the best epoch's weights (earliest among
    equals, :func:`select_best_epoch`) are restored at the end. Without validation data,
    or with ``keep="last"``, the last epoch is kept.

    ``on_epoch_end(epoch, head)``, when given, runs after each epoch's validation (the head
    in eval mode, holding that epoch's weights); what it returns is stored in that epoch's
    ``history`` entry under ``"extra"`` (EmoBox scores every epoch on its test set).
    """
    if keep not in ("best", "last"):
        raise Emotion2vecError(f"keep must be 'best' or 'last', got {keep!r}")
    config = config or TrainConfig()
    metric = config.select_by or ("wa" if kind == "classification" else "ccc")
    if metric not in SELECT_METRICS:
        raise Emotion2vecError(f"select_by must be one of {sorted(SELECT_METRICS)}, got {metric!r}")
    if kind == "classification" and metric in ("ccc", "mae"):
        raise Emotion2vecError(f"select_by={metric!r} is a regression metric")
    if kind == "regression" and metric in ("wa", "ua", "macro_f1", "weighted_f1"):
        raise Emotion2vecError(f"select_by={metric!r} is a classification metric")
    higher = SELECT_METRICS[metric]
    device = checked_device(config.device)
    head.to(device)
    generator = generator or torch.Generator().manual_seed(config.seed)
    if config.optimizer == "rmsprop":
        opt = torch.optim.RMSprop(
            head.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    elif config.optimizer == "adam":
        opt = torch.optim.Adam(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        raise Emotion2vecError(f"optimizer must be rmsprop or adam, got {config.optimizer!r}")
    scheduler = None
    if config.cyclic_lr is not None and config.warmup_decay is not None:
        raise Emotion2vecError("set cyclic_lr or warmup_decay, not both")
    if config.cyclic_lr is not None:
        base, peak, up = config.cyclic_lr
        cycle = config.cycle_momentum and config.optimizer == "rmsprop" and config.momentum > 0
        scheduler = torch.optim.lr_scheduler.CyclicLR(
            opt, base_lr=base, max_lr=peak, step_size_up=int(up), cycle_momentum=cycle
        )
    if kind == "classification":
        criterion: Callable = nn.CrossEntropyLoss()
        y_train = torch.as_tensor(np.asarray(train_targets), dtype=torch.long)
    else:
        criterion = nn.L1Loss() if config.regression_loss == "l1" else nn.MSELoss()
        y_train = torch.as_tensor(np.asarray(train_targets), dtype=torch.float32)
    has_valid = valid_inputs is not None and len(valid_inputs) > 0
    pad_axis = getattr(head, "pad_axis", 0)
    n = len(train_inputs)
    if n == 0:
        raise DataError("train_head: empty training split")

    history: list[dict[str, float]] = []
    scores: list[float] = []
    best_state = None
    best_score: float | None = None
    bar = tqdm(
        range(config.epochs),
        desc="epochs",
        unit="ep",
        leave=False,
        disable=(not progress) if progress is not None else None,
    )
    for epoch in bar:
        head.train()
        scheduled = config.epoch_lr(epoch)
        if scheduled is not None:
            for group in opt.param_groups:
                group["lr"] = scheduled
        order = torch.randperm(n, generator=generator).tolist()
        total, count = 0.0, 0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            x, mask = collate([train_inputs[i] for i in idx], pad_axis)
            x = x.to(device)
            mask = None if mask is None else mask.to(device)
            target = y_train[idx].to(device)
            out = head(x, mask)
            if kind == "regression":
                out = out[:, 0]
            loss = criterion(out, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(head.parameters(), config.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        lr = float(opt.param_groups[0]["lr"])
        if scheduler is not None:
            scheduler.step()
        score = math.nan
        if has_valid:
            outputs = predict_head(
                head, valid_inputs, batch_size=config.eval_batch_size, device=device
            )
            valid_loss = math.nan
            if metric == "loss":
                y = torch.as_tensor(
                    np.asarray(valid_targets),
                    dtype=torch.long if kind == "classification" else torch.float32,
                )
                o = torch.from_numpy(outputs)
                valid_loss = float(criterion(o if kind == "classification" else o[:, 0], y))
            score = _validation_score(kind, metric, outputs, np.asarray(valid_targets), valid_loss)
        scores.append(score)
        history.append(
            {"epoch": epoch, "train_loss": total / max(count, 1), "lr": lr, "valid": score}
        )
        if on_epoch_end is not None:
            head.eval()
            history[-1]["extra"] = on_epoch_end(epoch, head)
        if keep == "best" and has_valid and not math.isnan(score):
            if best_score is None or (score > best_score if higher else score < best_score):
                best_score = score
                best_state = copy.deepcopy(head.state_dict())
    bar.close()
    best_epoch = (
        select_best_epoch(scores, higher_is_better=higher)
        if has_valid and keep == "best"
        else len(scores) - 1
    )
    if best_state is not None:
        head.load_state_dict(best_state)
    return TrainResult(best_epoch=best_epoch, history=history, select_by=metric)


# --------------------------------------------------------------------------------------
# Running a protocol
# --------------------------------------------------------------------------------------


@dataclass
class FoldResult:
    """Test results of one fold."""

    name: str
    metrics: dict[str, Any]
    """Test metrics (classification: wa, ua, macro_f1, weighted_f1, per_class_recall,
    confusion; regression: mae, ccc, pearson_r and the binary acc2 / f1 from signs)."""
    n_train: int
    n_valid: int
    n_test: int
    valid_strategy: str
    notes: list[str] = field(default_factory=list)
    best_epoch: int | None = None
    """0-based epoch kept (torch heads)."""
    selected: dict[str, Any] = field(default_factory=dict)
    """Other selections: the chosen ``C`` of logreg, SUPERB layer weights..."""
    valid_score: float | None = None
    """The selection metric on validation at the kept epoch / value."""
    history: list[dict[str, float]] = field(default_factory=list)
    test_idx: list[int] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ProbeResult:
    """A whole protocol: every fold, their mean and std, the summed confusion matrix."""

    protocol: str
    task: str
    head: str
    kind: str
    folds: list[FoldResult]
    summary: dict[str, dict[str, float]]
    """``aggregate_folds`` of the scalar test metrics: ``{metric: {mean, std, n}}``."""
    labels: list[str] | None = None
    confusion: np.ndarray | None = None
    """(K, K) test confusion summed over folds (rows true, columns predicted)."""
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    """Features, model fingerprint, manifest... whatever the caller records."""


def _standardise(inputs: Sequence[np.ndarray], train: np.ndarray) -> list[np.ndarray]:
    rows = np.concatenate(
        [np.asarray(inputs[i], dtype=np.float64).reshape(-1, inputs[i].shape[-1]) for i in train]
    )
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std[std < 1e-8] = 1.0
    return [((np.asarray(a, dtype=np.float64) - mean) / std).astype(np.float32) for a in inputs]


def _fold_metrics(kind: str, truth, pred, labels) -> dict[str, Any]:
    if kind == "classification":
        return classification_metrics(truth, pred, labels=labels)
    metrics: dict[str, Any] = regression_metrics(truth, pred)
    try:
        binary = binary_from_sign(truth, pred)
        metrics.update({k: v for k, v in binary.items() if k != "n"})
        metrics["n_binary"] = binary["n"]
    except ValueError:
        pass
    return metrics


def run_probe(
    inputs: Sequence[np.ndarray],
    targets: Sequence[Any],
    folds: Sequence[Fold],
    *,
    head: str = "paper",
    kind: str = "classification",
    labels: Sequence[str] | None = None,
    config: TrainConfig | None = None,
    head_kwargs: dict[str, Any] | None = None,
    logreg_grid: Sequence[float] | None = None,
    standardise: bool = False,
    task: str = "categorical",
    progress: bool | None = None,
) -> ProbeResult:
    """Train and test ``head`` on every fold.

    Args:
        inputs: one array per manifest item: ``(T, D)`` frames for ``paper``, ``(L, D)`` for
            ``superb``, ``(S, D)`` turn sequences for ``gru``, ``(D,)`` for ``logreg``.
        targets: per item a label (classification) or a float (regression); None excludes it.
        folds: from :mod:`emotion2vec.evaluate.folds`, indexing ``inputs``.
        head: ``paper``, ``superb``, ``gru`` (torch, trained with ``config``) or ``logreg``.
        kind: ``classification`` or ``regression``.
        labels: class order (default: sorted labels of all targets); fixes the confusion
            matrix layout across folds.
        config: :class:`TrainConfig` (default: the paper's recipe; its ``select_by`` also
            drives logreg's choice of ``C``).
        head_kwargs: extra arguments of the head's constructor (e.g. ``hidden``).
        logreg_grid: the ``C`` (``alpha``) grid of logreg.
        standardise: z-score inputs with the training split's statistics (per fold); the
            classic baselines need it, SSL features are used raw as in the paper.
        task: a name recorded in the result.
        progress: a bar across folds (None: only on a terminal).
    """
    start_all = time.perf_counter()
    config = config or TrainConfig()
    if kind not in ("classification", "regression"):
        raise Emotion2vecError(f"kind must be classification or regression, got {kind!r}")
    if len(inputs) != len(targets):
        raise DataError(f"{len(inputs)} inputs but {len(targets)} targets")
    if not folds:
        raise DataError("run_probe: no folds")
    usable = np.array([t is not None for t in targets], dtype=bool)
    class_list: list[str] | None = None
    if kind == "classification":
        present = sorted({str(t) for t in targets if t is not None})
        class_list = [str(c) for c in labels] if labels is not None else present
        unknown = sorted(set(present) - set(class_list))
        if unknown:
            raise DataError(f"targets {unknown} are not in labels={class_list}")
        if len(class_list) < 2:
            raise DataError(f"classification needs at least 2 classes, got {class_list}")
        position = {c: i for i, c in enumerate(class_list)}
        encoded = np.array(
            [position[str(t)] if t is not None else -1 for t in targets], dtype=np.int64
        )
    else:
        encoded = np.array([float(t) if t is not None else np.nan for t in targets])
    num_outputs = len(class_list) if class_list is not None else 1

    results: list[FoldResult] = []
    bar = tqdm(
        folds,
        desc=f"{head} folds",
        unit="fold",
        disable=(not progress) if progress is not None else None,
    )
    for fold in bar:
        bar.set_postfix_str(fold.name, refresh=False)
        t0 = time.perf_counter()
        parts = {}
        notes = list(fold.notes)
        for part in ("train", "valid", "test"):
            idx = getattr(fold, f"{part}_idx")
            kept = idx[usable[idx]]
            if len(kept) < len(idx):
                notes.append(f"{len(idx) - len(kept)} {part} item(s) without a target left out")
            parts[part] = kept
        if not len(parts["train"]) or not len(parts["test"]):
            raise DataError(f"fold {fold.name}: no training or test item with a target")
        fold_inputs = _standardise(inputs, parts["train"]) if standardise else inputs
        x = {p: [fold_inputs[i] for i in parts[p]] for p in parts}
        y = {p: encoded[parts[p]] for p in parts}
        selected: dict[str, Any] = {}
        best_epoch = None
        valid_score = None
        history: list[dict[str, float]] = []
        if head == "logreg":
            probe = LinearProbe(
                kind,
                grid=logreg_grid,
                select_by=None if config.select_by == "loss" else config.select_by,
                seed=config.seed,
            )
            flat = {p: np.stack([a.reshape(-1) for a in x[p]]) if x[p] else None for p in x}
            probe.fit(flat["train"], y["train"], flat["valid"], y["valid"])
            raw = probe.predict(flat["test"])
            selected["C" if kind == "classification" else "alpha"] = probe.chosen
            if probe.valid_scores:
                valid_score = probe.valid_scores[probe.chosen]
                selected["valid_scores"] = {str(k): v for k, v in probe.valid_scores.items()}
            pred = raw.astype(np.int64) if kind == "classification" else raw.astype(np.float64)
        else:
            seed = _seed_for(config.seed, fold.name)
            torch.manual_seed(seed)
            model = build_head(head, x["train"][0], num_outputs, **(head_kwargs or {}))
            trained = train_head(
                model,
                x["train"],
                y["train"],
                x["valid"],
                y["valid"],
                kind=kind,
                config=config,
                generator=torch.Generator().manual_seed(seed),
                progress=False,
            )
            best_epoch = trained.best_epoch
            history = trained.history
            if history and len(x["valid"]):
                valid_score = history[best_epoch]["valid"]
            if hasattr(model, "layer_weights_softmax"):
                selected["layer_weights"] = model.layer_weights_softmax()
            out = predict_head(
                model, x["test"], batch_size=config.eval_batch_size, device=config.device
            )
            pred = out.argmax(axis=1) if kind == "classification" else out[:, 0].astype(np.float64)
        if kind == "classification":
            truth = [class_list[i] for i in y["test"]]
            guess = [class_list[int(i)] for i in pred]
        else:
            truth, guess = y["test"].tolist(), pred.tolist()
        metrics = _fold_metrics(kind, truth, guess, class_list)
        if not len(parts["valid"]):
            notes.append("no validation items: the last epoch / middle of the grid was kept")
        results.append(
            FoldResult(
                name=fold.name,
                metrics=metrics,
                n_train=len(parts["train"]),
                n_valid=len(parts["valid"]),
                n_test=len(parts["test"]),
                valid_strategy=fold.valid_strategy,
                notes=notes,
                best_epoch=best_epoch,
                selected=selected,
                valid_score=valid_score,
                history=history,
                test_idx=parts["test"].tolist(),
                predictions=guess,
                seconds=time.perf_counter() - t0,
            )
        )
    bar.close()
    summary = aggregate_folds([r.metrics for r in results])
    confusion = None
    if kind == "classification":
        confusion = sum(np.asarray(r.metrics["confusion"]) for r in results)
    cfg = config.to_dict()
    cfg.update({"head": head, "head_kwargs": dict(head_kwargs or {}), "standardise": standardise})
    if head == "logreg":
        cfg["logreg_grid"] = list(logreg_grid) if logreg_grid is not None else None
    return ProbeResult(
        protocol=folds[0].protocol,
        task=task,
        head=head,
        kind=kind,
        folds=results,
        summary=summary,
        labels=class_list,
        confusion=confusion,
        config=cfg,
        timing={"probe_seconds": time.perf_counter() - start_all},
    )
