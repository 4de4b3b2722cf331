"""The fine-tuning objective: cross-entropy of the emotion head on the utterance embedding.

A plug-in of the generic engine (:class:`emotion2vec.training.Trainer`): it supplies
the trainable module, the loss of a micro-batch (a *sum* over utterances, class-weighted when
asked, with its matching sample size), the optimizer's parameter groups (layer-wise learning-rate
decay), and, after updates, the validation that drives early stopping.

The classifier is the model's own :class:`~emotion2vec.model.EmotionHead` (Linear on the mean of
the last block's valid frames), so the trained model is exactly an emotion2vec+-like model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.native import save_pretrained
from ..errors import Emotion2vecError
from ..evaluate.metrics import accuracy, unweighted_accuracy
from ..fast import accelerate
from ..inference import encode, plan_batches
from ..model import Emotion2vecModel, masked_mean
from ..training import checkpointing
from ..training.config import OptimConfig
from ..training.optim import no_weight_decay
from ..training.protocols import StepOutput
from .config import FinetuneConfig
from .data import LabeledBatch

log = logging.getLogger("emotion2vec.finetune")

VALID_LOG = "valid.jsonl"
BEST = checkpointing.BEST


class EarlyStop(Emotion2vecError):  # noqa: N818 - a signal, not a failure
    """Validation UA stopped improving: training ends (raised from ``check``)."""


def block_modules(model: Emotion2vecModel) -> list[nn.Module]:
    """All transformer blocks, bottom to top (context blocks first, then main blocks)."""
    enc = model.encoder
    return list(enc.context_blocks) + list(enc.blocks)


def layer_ids(model: Emotion2vecModel) -> dict[str, int]:
    """Parameter name -> layer id for layer-wise decay: 0 embeddings (CNN, projection,
    positional conv, ALiBi scales, extra tokens, context LayerNorm), 1..L the blocks bottom to
    top, L + 1 the head."""
    enc = model.encoder
    n_context = len(enc.context_blocks)
    total = n_context + len(enc.blocks)
    ids = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        if parts[0] == "head":
            ids[name] = total + 1
        elif parts[:2] == ["encoder", "context_blocks"]:
            ids[name] = 1 + int(parts[2])
        elif parts[:2] == ["encoder", "blocks"]:
            ids[name] = 1 + n_context + int(parts[2])
        else:
            ids[name] = 0
    return ids


class Classifier(nn.Module):
    """What the engine trains (and DDP wraps): ``forward(waves, lengths) -> logits (B, C)``.

    Frozen parts are kept in eval mode whatever ``train()`` says (no dropout or layer drop in
    a frozen block), and a fully frozen encoder runs without autograd.
    """

    def __init__(self, model: Emotion2vecModel, frozen: list[nn.Module], encoder_frozen: bool):
        super().__init__()
        self.model = model
        self._frozen = frozen  # plain list: not registered twice as submodules
        self.encoder_frozen = encoder_frozen

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        encoder = self.model.encoder
        if self.encoder_frozen:
            with torch.no_grad():
                out = encoder(waves, lengths)
        else:
            out = encoder(waves, lengths)
        return self.model.head(masked_mean(out.frames, out.padding_mask))


class FinetuneObjective:
    """Implements the engine's ``Objective`` for classification fine-tuning.

    Args:
        model: the model to train, with its head sized to the label set.
        config: the run's configuration (what trains, decay, class weights, validation).
        class_counts: (C,) training items per class (for class weights).
        valid: validation waveforms (16 kHz, not normalised) and their class ids, or None.
        run_dir: where ``valid.jsonl`` and ``best/`` go (main process only writes).
        is_main: whether this process writes files.
    """

    stat_names = ("accuracy",)

    def __init__(
        self,
        model: Emotion2vecModel,
        config: FinetuneConfig,
        *,
        class_counts: np.ndarray,
        valid: tuple[list[np.ndarray], np.ndarray] | None = None,
        run_dir: Path | None = None,
        is_main: bool = True,
    ):
        if model.head is None:
            raise Emotion2vecError("fine-tuning needs a model with a head sized to the labels")
        # Training runs the fast modules (same numbers, faster on CPU; emotion2vec.fast says why).
        self.model = model = accelerate(model)
        self.config = config
        self.valid = valid
        self.run_dir = run_dir
        self.is_main = is_main
        frozen = self._freeze()
        self.module = Classifier(model, frozen, encoder_frozen=config.train == "head")
        weights = None
        if config.class_weights:
            counts = np.asarray(class_counts, dtype=np.float64)
            present = counts > 0
            w = np.zeros_like(counts)
            w[present] = counts.sum() / (present.sum() * counts[present])
            weights = torch.tensor(w, dtype=torch.float32)
        self.class_weight = weights
        self.best_ua = -1.0
        self.best_step = 0
        self.bad_evals = 0
        self.last_eval: dict[str, float] = {}
        self.stop = False

    # ---------------------------------------------------------------- freezing

    def _freeze(self) -> list[nn.Module]:
        """Set ``requires_grad`` by the config; returns the modules to keep in eval mode."""
        cfg, model = self.config, self.model
        enc = model.encoder
        model.requires_grad_(True)
        if model.decoder is not None:
            model.decoder.requires_grad_(False)
        if cfg.train == "head":
            enc.requires_grad_(False)
            return [enc]
        if cfg.train == "top":
            blocks = block_modules(model)
            n = min(cfg.top_blocks, len(blocks))
            enc.requires_grad_(False)
            for blk in blocks[len(blocks) - n :]:
                blk.requires_grad_(True)
            frozen = [
                enc.feature_extractor,
                enc.feature_projection,
                enc.positional_conv,
                enc.context_dropout,
            ]
            return frozen + blocks[: len(blocks) - n]
        if cfg.freeze_cnn:
            enc.feature_extractor.requires_grad_(False)
            return [enc.feature_extractor]
        return []

    def build_optimizer(self, optim: OptimConfig) -> torch.optim.AdamW:
        """AdamW with one group per (layer, weight decay); each group's ``lr_scale`` is
        ``layer_decay ** (L + 1 - layer)`` (times ``head_lr_scale`` for the head)."""
        cfg = self.config
        ids = layer_ids(self.model)
        top = max(ids.values())
        groups: dict[tuple[int, bool], dict[str, Any]] = {}
        for name, param in self.module.named_parameters():
            if not param.requires_grad:
                continue
            key_name = name.removeprefix("model.")
            layer = ids[key_name]
            exempt = no_weight_decay(key_name, param)
            group = groups.get((layer, exempt))
            if group is None:
                scale = cfg.layer_decay ** (top - layer)
                if layer == top:
                    scale *= cfg.head_lr_scale
                group = {
                    "params": [],
                    "weight_decay": 0.0 if exempt else optim.weight_decay,
                    "lr_scale": scale,
                    "layer": layer,
                }
                groups[(layer, exempt)] = group
            group["params"].append(param)
        if not groups:
            raise Emotion2vecError("nothing to train: every parameter is frozen")
        ordered = [groups[k] for k in sorted(groups)]
        return torch.optim.AdamW(ordered, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)

    # ---------------------------------------------------------------- engine hooks

    def to(self, device: torch.device) -> None:
        """Move the model (and the class weights)."""
        self.module.to(device)
        if self.class_weight is not None:
            self.class_weight = self.class_weight.to(device)

    def step(self, module: nn.Module, batch: LabeledBatch) -> StepOutput:
        """Cross-entropy sum of one micro-batch over its sample size (utterances, or the sum
        of their class weights), and the accuracy."""
        logits = module(batch.waves, batch.lengths).float()
        labels = batch.labels
        loss = F.cross_entropy(
            logits,
            labels,
            weight=self.class_weight,
            reduction="sum",
            label_smoothing=self.config.label_smoothing,
        )
        if batch.weight == 0:
            return StepOutput(loss * 0.0, 0.0, {})
        if self.class_weight is not None:
            size = float(self.class_weight[labels].sum())
        else:
            size = float(labels.shape[0])
        correct = (logits.detach().argmax(-1) == labels).sum()
        return StepOutput(loss, size, {"accuracy": (correct, labels.shape[0])})

    def evaluate(self) -> dict[str, float]:
        """WA and UA of the current model on the validation set (eval mode, no autograd)."""
        return self.scores(self.predict_valid())

    def scores(self, pred: np.ndarray) -> dict[str, float]:
        """WA and UA of class predictions for the validation items."""
        truth = self.valid[1]
        return {
            "valid_ua": unweighted_accuracy(truth.tolist(), pred.tolist()),
            "valid_wa": accuracy(truth.tolist(), pred.tolist()),
        }

    def predict_valid(self) -> np.ndarray:
        """The current model's class of each validation item."""
        waves = self.valid[0]
        was_training = self.model.training
        self.model.eval()
        budget = int(self.config.valid_batch_seconds * self.model.config.sample_rate)
        pred = np.zeros(len(waves), dtype=np.int64)
        try:
            for idx in plan_batches([len(w) for w in waves], budget):
                _, _, logits = encode(self.model, [waves[i] for i in idx])
                pred[idx] = logits.argmax(-1).cpu().numpy()
        finally:
            self.model.train(was_training)
        return pred

    def after_update(self, step: int) -> dict[str, float]:
        """Every ``eval_every`` updates: validate, keep the best model in ``best/``, count
        evaluations without improvement. Returns the latest validation values."""
        if self.valid is None or step % self.config.eval_every:
            return dict(self.last_eval)
        return self.validate(step)

    def validate(self, step: int, predictions: np.ndarray | None = None) -> dict[str, float]:
        """Evaluate now (as after update ``step``) and update the early-stopping state.
        ``predictions``: the current model's validation classes when the caller already has
        them (the linear-probe start), so they are not computed a second time."""
        cfg = self.config
        start = time.perf_counter()
        result = self.evaluate() if predictions is None else self.scores(predictions)
        ua = result["valid_ua"]
        improved = ua > self.best_ua + cfg.min_delta
        if improved:
            self.best_ua, self.best_step, self.bad_evals = ua, step, 0
            if self.is_main and self.run_dir is not None:
                checkpointing.save_best(self.run_dir, lambda d: save_pretrained(self.model, d))
        else:
            self.bad_evals += 1
        if cfg.patience is not None and self.bad_evals >= cfg.patience:
            self.stop = True
        record = {"step": step, **result, "best_ua": self.best_ua, "best_step": self.best_step}
        log.info(
            "update %d: valid UA %.4f WA %.4f (best %.4f at %d)%s [%.1f s]",
            step,
            result["valid_ua"],
            result["valid_wa"],
            self.best_ua,
            self.best_step,
            "" if improved else f", {self.bad_evals} without improvement",
            time.perf_counter() - start,
        )
        if self.is_main and self.run_dir is not None:
            with open(self.run_dir / VALID_LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.last_eval = {**result, "best_ua": self.best_ua}
        return dict(self.last_eval)

    def check(self, stats: Mapping[str, float], step: int) -> None:
        """Raise :class:`EarlyStop` when validation UA has not improved for ``patience``
        evaluations (every process evaluates the same model on the same data, so all stop
        together)."""
        if self.stop:
            raise EarlyStop(
                f"early stop at update {step}: valid UA has not improved for "
                f"{self.config.patience} evaluations (best {self.best_ua:.4f} at update "
                f"{self.best_step})"
            )

    def state_dict(self) -> dict[str, Any]:
        """Early-stopping state."""
        return {
            "best_ua": float(self.best_ua),
            "best_step": int(self.best_step),
            "bad_evals": int(self.bad_evals),
            "last_eval": {k: float(v) for k, v in self.last_eval.items()},
            "stop": bool(self.stop),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best_ua = float(state["best_ua"])
        self.best_step = int(state["best_step"])
        self.bad_evals = int(state["bad_evals"])
        self.last_eval = dict(state.get("last_eval", {}))
        self.stop = bool(state.get("stop", False))

    def save_model(self, directory: Path) -> None:
        """The model (head included), in our format."""
        save_pretrained(self.model, directory)
