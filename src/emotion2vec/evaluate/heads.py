"""Downstream heads trained on frozen features.

* :class:`PaperHead` -- the emotion2vec paper's head: ``Linear(D, 256) -> ReLU -> masked mean
  over frames -> Linear(256, C)`` (about 0.2M parameters for D = 768).
* :class:`SuperbHead` -- SUPERB's: a learned softmax-weighted sum of all hidden states, mean
  over frames, ``Linear(D, 256) -> Linear(256, C)`` (s3prl's projector + utterance-level
  linear; there is no non-linearity in between).
* :class:`ConversationGRU` -- emotion in conversation: utterance embeddings of the previous
  turns and the current one, in dialogue order -> 2-layer GRU -> linear on the last state.
* :class:`LinearProbe` -- scikit-learn logistic regression (ridge regression for continuous
  targets) on standardised utterance embeddings, its ``C`` (``alpha``) chosen on validation.

The torch heads take a padded batch ``(B, T, ...)`` and a padding mask ``(B, T)`` with
**True = padding** (the model's convention), and return ``(B, C)`` (``C = 1`` for
regression). Their ``pad_axis`` says which axis of one item's array is padded in a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from emotion2vec.errors import Emotion2vecError
from emotion2vec.evaluate.metrics import accuracy, ccc, macro_f1, mae, unweighted_accuracy
from emotion2vec.evaluate.metrics import weighted_f1 as _weighted_f1
from emotion2vec.model import masked_mean

__all__ = [
    "HEADS",
    "ConversationGRU",
    "LinearProbe",
    "PaperHead",
    "SuperbHead",
    "build_head",
]

#: Head names understood by :func:`build_head` and the probe.
HEADS: tuple[str, ...] = ("paper", "superb", "logreg", "gru")


class PaperHead(nn.Module):
    """``Linear(D, hidden) -> ReLU -> masked mean over frames -> Linear(hidden, C)``.

    Utterance-level inputs (baselines) are one "frame": ``(B, 1, D)``.
    """

    pad_axis = 0

    def __init__(self, in_dim: int, num_outputs: int, hidden: int = 256) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, num_outputs)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D), (B, T) True = padding -> (B, C)."""
        hidden = torch.relu(self.proj(x))
        return self.out(masked_mean(hidden, padding_mask))


class SuperbHead(nn.Module):
    """Softmax-weighted sum of ``L`` hidden states -> mean over frames -> ``Linear(D, proj)``
    -> ``Linear(proj, C)``; the layer weights start at zero (uniform), as in s3prl.

    Inputs are utterance-level ``(B, L, D)``: the per-layer means of the frames. Because the
    weighted sum, the mean and the projection are all linear, averaging the frames first
    gives exactly the same function as SUPERB's frame-level order, at a fraction of the
    memory. Frame-level ``(B, L, T, D)`` with a ``(B, T)`` mask is accepted too.
    ``proj_dim=None`` drops the projector (a single linear layer).
    """

    pad_axis = 1

    def __init__(
        self, num_layers: int, in_dim: int, num_outputs: int, proj_dim: int | None = 256
    ) -> None:
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(num_layers))
        self.proj = nn.Linear(in_dim, proj_dim) if proj_dim else nn.Identity()
        self.out = nn.Linear(proj_dim or in_dim, num_outputs)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) or (B, L, T, D) with (B, T) True = padding -> (B, C)."""
        if x.dim() == 4:
            mask = None if padding_mask is None else padding_mask
            x = torch.stack([masked_mean(x[:, i], mask) for i in range(x.shape[1])], dim=1)
        if x.dim() != 3 or x.shape[1] != self.layer_weights.numel():
            raise Emotion2vecError(
                f"SuperbHead expects (B, {self.layer_weights.numel()}, D) inputs, got "
                f"{tuple(x.shape)}"
            )
        weights = torch.softmax(self.layer_weights, dim=0)
        pooled = (x * weights[None, :, None]).sum(dim=1)
        return self.out(self.proj(pooled))

    def layer_weights_softmax(self) -> list[float]:
        """The learned layer weights (they sum to 1)."""
        return torch.softmax(self.layer_weights.detach(), dim=0).tolist()


class ConversationGRU(nn.Module):
    """Turns ``(B, K + 1, D)`` in dialogue order, the current turn last (right-padded, so a
    dialogue's first turns have shorter sequences) -> GRU -> linear on the final state."""

    pad_axis = 0

    def __init__(
        self,
        in_dim: int,
        num_outputs: int,
        hidden: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(
            in_dim,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out = nn.Linear(hidden, num_outputs)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, D), (B, S) True = padding -> (B, C) from the state after each last turn."""
        if padding_mask is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        else:
            lengths = (~padding_mask).sum(dim=1).to("cpu", torch.long)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.clamp_min(1), batch_first=True, enforce_sorted=False
        )
        _, h_n = self.gru(packed)  # (num_layers, B, H), back in batch order
        return self.out(h_n[-1])


def build_head(name: str, example: np.ndarray, num_outputs: int, **kwargs: Any) -> nn.Module:
    """A torch head for inputs shaped like ``example`` (one item's array).

    paper: (T, D); superb: (L, D) or (L, T, D); gru: (S, D).
    """
    if name == "paper":
        return PaperHead(example.shape[-1], num_outputs, **kwargs)
    if name == "superb":
        layers = example.shape[0] if example.ndim >= 2 else 1
        return SuperbHead(layers, example.shape[-1], num_outputs, **kwargs)
    if name == "gru":
        return ConversationGRU(example.shape[-1], num_outputs, **kwargs)
    raise Emotion2vecError(f"unknown torch head {name!r}; use paper, superb or gru")


# --------------------------------------------------------------------------------------
# scikit-learn
# --------------------------------------------------------------------------------------


def _score(kind: str, metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if kind == "classification":
        fn = {
            "wa": accuracy,
            "ua": unweighted_accuracy,
            "macro_f1": macro_f1,
            "weighted_f1": _weighted_f1,
        }[metric]
        return fn(y_true, y_pred)
    if metric == "mae":
        return -mae(y_true, y_pred)
    value = ccc(y_true, y_pred)
    return -math.inf if math.isnan(value) else value


class LinearProbe:
    """Standardise, then logistic regression (``kind="classification"``) or ridge
    regression (``kind="regression"``), with the regularisation chosen on validation.

    ``fit`` tries each value of ``grid`` (``C`` for logistic regression, ``alpha`` for
    ridge), trained on the training split only, and keeps the best on the validation split by
    ``select_by`` (``wa``/``ua``/``macro_f1``/``weighted_f1``; ``ccc``/``mae`` for
    regression; ties -> the first, i.e. the strongest regularisation). Without validation
    data the middle of the grid is used. The scaler is fitted on the training split.
    """

    def __init__(
        self,
        kind: str = "classification",
        *,
        grid: Sequence[float] | None = None,
        select_by: str | None = None,
        seed: int = 42,
        max_iter: int = 2000,
    ) -> None:
        if kind not in ("classification", "regression"):
            raise Emotion2vecError(f"kind must be classification or regression, got {kind!r}")
        self.kind = kind
        if grid is None:
            grid = (
                (0.001, 0.01, 0.1, 1.0, 10.0)
                if kind == "classification"
                else (
                    1.0,
                    10.0,
                    100.0,
                    1000.0,
                    10000.0,
                )
            )
        self.grid = tuple(float(g) for g in grid)
        self.select_by = select_by or ("wa" if kind == "classification" else "ccc")
        allowed = (
            ("wa", "ua", "macro_f1", "weighted_f1") if kind == "classification" else ("ccc", "mae")
        )
        if self.select_by not in allowed:
            raise Emotion2vecError(
                f"LinearProbe ({kind}): select_by must be one of {allowed}, got {select_by!r}"
            )
        self.seed = seed
        self.max_iter = max_iter
        self.chosen: float | None = None
        self.valid_scores: dict[float, float] = {}
        self._model = None

    def _make(self, value: float):
        try:
            from sklearn.linear_model import LogisticRegression, Ridge
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler
        except ImportError:
            raise Emotion2vecError(
                "the logreg head needs scikit-learn: pip install scikit-learn"
            ) from None
        if self.kind == "classification":
            estimator = LogisticRegression(C=value, max_iter=self.max_iter, random_state=self.seed)
        else:
            estimator = Ridge(alpha=value)
        return make_pipeline(StandardScaler(), estimator)

    def fit(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_valid: np.ndarray | None = None,
        y_valid: np.ndarray | None = None,
    ) -> LinearProbe:
        """(N, D) inputs; labels (classification) or floats (regression)."""
        x_train = np.asarray(x_train, dtype=np.float64)
        if self.kind == "classification" and len(np.unique(y_train)) < 2:
            raise Emotion2vecError("logreg: the training split has a single class")
        if x_valid is None or len(x_valid) == 0:
            self.chosen = self.grid[len(self.grid) // 2]
            self._model = self._make(self.chosen).fit(x_train, y_train)
            return self
        x_valid = np.asarray(x_valid, dtype=np.float64)
        best = None
        for value in self.grid:
            model = self._make(value).fit(x_train, y_train)
            score = _score(self.kind, self.select_by, np.asarray(y_valid), model.predict(x_valid))
            self.valid_scores[value] = score
            if best is None or score > best[0]:
                best = (score, value, model)
        assert best is not None
        _, self.chosen, self._model = best
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N,) labels or values."""
        if self._model is None:
            raise Emotion2vecError("LinearProbe.predict before fit")
        return self._model.predict(np.asarray(x, dtype=np.float64))
