"""Linear-probe initialisation of a fresh classification head (LP-FT).

A fresh head starts from the multinomial logistic regression of the frozen start model's
utterance embeddings, so fine-tuning begins where a linear probe ends (Kumar et al. 2022,
"Fine-Tuning can Distort Pretrained Features": probe first, then fine-tune).

Why it matters here: utterance embeddings are means over frames, and their spread across
utterances can be tiny next to their common offset (0.015 against 0.4 per channel for our tiny
RAVDESS pre-training run). A randomly initialised Linear head trained with Adam then spends
hundreds of updates learning the offset and predicts one class meanwhile, which is what our
first fine-tuning runs did. The probe is fitted on standardised embeddings (full-batch L-BFGS,
L2 penalty chosen on the validation set when there is one) and the standardisation is folded
into the Linear layer, so the model format does not change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluate.metrics import unweighted_accuracy
from ..inference import extract

log = logging.getLogger("emotion2vec.finetune")

#: L2 penalties tried (on the mean cross-entropy, standardised inputs); 1e-3 is about
#: scikit-learn's C = 1 for a thousand utterances. Without a validation set: the default.
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
DEFAULT_L2 = 1e-3
#: Files per extraction call (bounds the decoded audio held at once).
CHUNK_FILES = 256


def utterance_embeddings(model, paths: Sequence[str], batch_seconds: float) -> torch.Tensor:
    """(N, D) float64 utterance embeddings of ``paths`` (the inference path, padding-exact)."""
    rows = []
    for start in range(0, len(paths), CHUNK_FILES):
        chunk = [str(p) for p in paths[start : start + CHUNK_FILES]]
        rows.extend(extract(model, chunk, batch_seconds=batch_seconds))
    return torch.from_numpy(np.stack(rows)).double()


def fit_linear_head(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    l2: float = DEFAULT_L2,
    class_weights: torch.Tensor | None = None,
    max_iter: int = 500,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on standardised ``x`` (N, D), folded back to raw inputs.

    Returns ``(weight (C, D), bias (C,))`` such that ``x @ weight.T + bias`` are the probe's
    logits for raw ``x``.
    """
    x = x.double()
    mean = x.mean(dim=0)
    std = x.std(dim=0).clamp_min(1e-8)
    z = (x - mean) / std
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    cw = None if class_weights is None else class_weights.double()
    opt = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, y, weight=cw) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    folded = weight.detach() / std
    return folded, bias.detach() - folded @ mean


def probe_init_head(
    model,
    train_paths: Sequence[str],
    train_labels: np.ndarray,
    *,
    valid: tuple[Sequence[np.ndarray], np.ndarray] | None,
    class_weights: torch.Tensor | None,
    batch_seconds: float,
) -> dict:
    """Set ``model.head`` to the linear probe of its frozen embeddings; returns what was done
    (items, chosen L2, train / valid UA of the probe, the model's validation classes
    ``valid_pred`` (None without a validation set), seconds)."""
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    num_classes = len(model.labels)
    x = utterance_embeddings(model, train_paths, batch_seconds)
    y = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    candidates = [(DEFAULT_L2, None)]
    xv = None
    if valid is not None and len(valid[1]):
        waves, valid_ids = valid
        xv = torch.from_numpy(np.stack(extract(model, list(waves), sample_rate=16000))).double()
        candidates = [(l2, (xv, np.asarray(valid_ids))) for l2 in L2_GRID]
    best = None
    for l2, held_out in candidates:
        weight, bias = fit_linear_head(x, y, num_classes, l2=l2, class_weights=class_weights)
        score = None
        if held_out is not None:
            xv, yv = held_out
            score = unweighted_accuracy(yv, (xv @ weight.T + bias).argmax(1).numpy())
        if best is None or (score is not None and score > best[0]):
            best = (score, l2, weight, bias)
    score, l2, weight, bias = best
    head = model.head.linear
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight.dtype))
        head.bias.copy_(bias.to(head.bias.dtype))
        # the model's own validation classes now (its head, its dtype), for the caller to reuse
        valid_pred = None
        if xv is not None:
            logits = model.head(xv.to(device=head.weight.device, dtype=head.weight.dtype))
            valid_pred = logits.argmax(-1).cpu().numpy()
    model.train(was_training)
    train_ua = unweighted_accuracy(y.numpy(), (x @ weight.T + bias).argmax(1).numpy())
    info = {
        "items": len(train_paths),
        "l2": l2,
        "train_ua": train_ua,
        "valid_ua": score,
        "valid_pred": valid_pred,
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info(
        "head: linear-probe init on %d items (L2 %g): train UA %.4f%s [%.1f s]",
        info["items"],
        l2,
        train_ua,
        "" if score is None else f", valid UA {score:.4f}",
        info["seconds"],
    )
    return info
