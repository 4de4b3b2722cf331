"""emotion2vec's pre-training objective: online distillation with frame and utterance losses, as
the authors' code computes it (github ddlBoJack/fairseq, branch emotion2vec; step parity in
``tests/pretrain/test_fairseq_parity.py``).

Per micro-batch of B files (clone batch C, R = B * C rows):

1. Student CNN + projection on the waveforms once: (B, T, D) features; the teacher reads these
   (detached, unmasked); the student repeats them C times.
2. Student: masked frames are zeroed for the positional conv, every row keeps ``T - (masked
   count of row 0)`` frames (:func:`~emotion2vec.pretrain.masking.keep_indices`), which read the
   unzeroed features; extra tokens are prepended and the blocks run on the kept frames only.
3. Decoder: the decoder's input dropout acts on the whole student output (extra tokens too), the
   kept outputs go back to their positions, noise fills the others, the conv decoder predicts
   every frame.
4. Teacher (EMA, eval mode, no gradients): targets are the average of its top-k blocks' FFN
   outputs, each instance-normalised over time.
5. Frame loss: scaled squared error summed over masked frames (``sample_size`` = their count).
   Utterance loss: the student's utterance prediction (read after the dropout) against the
   time-mean of the targets, per row; with ``utterance_weighting="sum"`` (the run) the micro-batch
   adds ``alpha * sample_size * sum_rows(row_loss)``, so once the engine divides by the update's
   sample size the utterance term is a sum over rows; "mean" adds ``alpha * sum_rows(masked
   frames of the row * row_loss)``, a mean over rows after the division.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints.native import save_pretrained
from ..config import ModelConfig
from ..errors import ConfigError
from ..fast import accelerate
from ..model import Emotion2vecModel, masked_mean
from ..training.batches import Batch
from ..training.protocols import StepOutput
from ..training.seeding import derive_seed, generator
from ..training.trainer import TrainingError
from .config import MaskConfig, ObjectiveConfig
from .ema import EmaTeacher, ema_decay_at
from .losses import (
    loss_scale,
    mean_channel_std,
    regression_loss,
    teacher_targets,
    utterance_loss,
    utterance_prediction,
)
from .masking import compute_mask, keep_indices

log = logging.getLogger("emotion2vec.pretrain")

#: Seed stream of the masks (micro-batch seeds use stream 0).
MASK_STREAM = 1


class CollapseError(TrainingError):
    """Targets or predictions lost their variance: the representation collapsed."""


class MaskedStudent(nn.Module):
    """The trainable part of pre-training (what DDP wraps): the student on masked input.

    ``forward(waves, lengths, mask)`` returns a dict: ``decoded`` (R, T, D) decoder predictions,
    ``frames`` (R, T_keep, D) and ``extra_tokens`` (R, E, D) student outputs after the decoder's
    input dropout (what the utterance loss reads, as in the authors' code), ``clean_frames`` /
    ``clean_extra_tokens`` the same before that dropout, ``frames_padding_mask`` (R, T_keep) or
    None, ``local`` (B, T, D) detached unmasked features for the teacher and ``padding_mask``
    (B, T) or None.
    """

    def __init__(self, model: Emotion2vecModel, clone_batch: int, noise_std: float):
        super().__init__()
        self.model = model
        self.clone_batch = clone_batch
        self.noise_std = noise_std

    def decoder_noise(self, like: torch.Tensor, frames: int) -> torch.Tensor:
        """N(0, noise_std) stand-ins for every frame position: (R, T, D) (masked ones are used).
        A method so that parity tests can substitute the reference run's noise."""
        rows, _, dim = like.shape
        return torch.randn(rows, frames, dim, device=like.device, dtype=like.dtype) * self.noise_std

    def forward(
        self, waves: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, Any]:
        encoder, clone = self.model.encoder, self.clone_batch
        x, padding_mask = encoder.local_features(waves, lengths)
        rows, frames, dim = x.shape[0] * clone, x.shape[1], x.shape[2]
        if tuple(mask.shape) != (rows, frames):
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {(rows, frames)}")
        xs = x.repeat_interleave(clone, 0) if clone > 1 else x
        pads = padding_mask
        if pads is not None and clone > 1:
            pads = pads.repeat_interleave(clone, 0)
        keep = keep_indices(mask)
        # masked frames are zeroed for the positional conv (official encoder_zero_mask); the
        # kept frames read the unzeroed features (only differs for masked frames a row keeps
        # when its masked count exceeds row 0's, see masking.keep_indices)
        zeroed = xs.masked_fill(mask.unsqueeze(-1), 0.0)
        out = encoder.contextualize(zeroed, pads, keep_index=keep, visible_features=xs)
        n_extra = out.extra_tokens.shape[1]
        clean = torch.cat([out.extra_tokens, out.frames], dim=1)
        # the decoder's input dropout acts on the whole student output, extra tokens included,
        # before the noise is inserted (the authors drop in place, so the utterance loss reads
        # the dropped outputs too)
        dropped = self.model.decoder.input_dropout(clean)
        visible = dropped[:, n_extra:]
        full = self.decoder_noise(visible, frames).to(visible.dtype)
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, dim), visible)
        decoded = self.model.decoder(full, pads)
        return {
            "decoded": decoded,
            "frames": visible,
            "extra_tokens": dropped[:, :n_extra],
            "clean_frames": out.frames,
            "clean_extra_tokens": out.extra_tokens,
            "frames_padding_mask": out.padding_mask,
            "local": x.detach(),
            "padding_mask": padding_mask,
            "keep": keep,
        }


class PretrainObjective:
    """Online distillation (see the module docstring). Implements the engine's ``Objective``."""

    stat_names = ("frame_loss", "utt_loss", "target_var", "pred_var", "masked_fraction")

    def __init__(
        self,
        model: Emotion2vecModel,
        masking: MaskConfig,
        config: ObjectiveConfig,
        *,
        seed: int = 1,
        teacher: dict[str, torch.Tensor] | None = None,
    ):
        if model.decoder is None:
            raise ConfigError(
                "pre-training needs the model's decoder; start points without one get a fresh "
                "decoder from emotion2vec.pretrain.start.prepare_model"
            )
        enc_cfg = model.config.encoder
        n_extra = enc_cfg.num_extra_tokens
        if config.utterance_loss in ("token", "chunk") and n_extra == 0:
            raise ConfigError(
                f"the {config.utterance_loss!r} utterance loss needs extra tokens; this model has "
                "none (use --utterance-loss global, or start from a model with extra tokens)"
            )
        if config.utterance_loss == "chunk" and (config.chunk_tokens or 0) > n_extra:
            raise ConfigError(
                f"chunk_tokens={config.chunk_tokens} exceeds the model's {n_extra} extra tokens"
            )
        if config.utterance_loss == "token" and not -n_extra <= config.token_index < n_extra:
            raise ConfigError(f"token_index={config.token_index} out of range ({n_extra} tokens)")
        # Training runs the fast modules: the code paths the fairseq parity tests were established
        # on, and faster on CPU (emotion2vec.fast explains the choice).
        self.model = model = accelerate(model)
        self.masking = masking
        self.config = config
        self.seed = seed
        if model.head is not None:
            # pre-training does not train the emotion head; it is kept, frozen, in checkpoints
            model.head.requires_grad_(False)
        self.module = MaskedStudent(model, config.clone_batch, config.decoder_noise_std)
        self.teacher = EmaTeacher(model.encoder)
        if teacher:
            # the start checkpoint's EMA teacher (fairseq restores ``_ema`` over the copy)
            self.teacher.restore(teacher)
        self.top_k = min(config.average_top_k_layers, enc_cfg.depth)
        self.scale = loss_scale(enc_cfg.embed_dim, config.loss_scale)
        self.ema_decay = ema_decay_at(
            0, config.ema_decay, config.ema_end_decay, config.ema_anneal_end_step
        )

    @property
    def model_config(self) -> ModelConfig:
        """The student's model config."""
        return self.model.config

    def to(self, device: torch.device) -> None:
        """Move student and teacher."""
        self.module.to(device)
        self.teacher.to(device)

    # ---------------------------------------------------------------- masks

    def mask_for(self, batch: Batch) -> torch.Tensor:
        """The student mask of a batch: (B * clone, T) bool on the CPU. Depends only on the run
        seed and the batch number, so precomputed and in-step masks are the same."""
        encoder = self.model.encoder
        lengths = batch.lengths.cpu()
        clone = self.config.clone_batch
        total = int(encoder.frame_lengths(torch.tensor([batch.waves.shape[1]]))[0])
        valid = encoder.frame_lengths(lengths).repeat_interleave(clone)
        file_frames = None
        if batch.file_samples is not None:
            file_frames = encoder.frame_lengths(batch.file_samples.cpu())
        g = generator(derive_seed(self.seed, batch.index, MASK_STREAM))
        return compute_mask(
            valid, total, self.masking, g, file_frames=file_frames, clone_batch=clone
        )

    def precompute(self, batch: Batch) -> Batch:
        """The batch with its mask (run in the data workers when masks are precomputed)."""
        return replace(batch, mask=self.mask_for(batch))

    # ---------------------------------------------------------------- step

    def step(self, module: nn.Module, batch: Batch) -> StepOutput:
        """Loss sum and stats of one micro-batch; ``module`` is :attr:`module` or its DDP wrapper."""
        cfg = self.config
        mask = batch.mask if batch.mask is not None else self.mask_for(batch)
        mask = mask.to(batch.waves.device)
        out = module(batch.waves, batch.lengths, mask)
        padding_mask = out["padding_mask"]
        with torch.no_grad():
            teacher_out = self.teacher(out["local"], padding_mask)
            targets = teacher_targets(
                teacher_out.ffn_outputs, padding_mask, self.top_k, cfg.instance_norm_targets
            )
        clone = cfg.clone_batch
        repeated = targets.repeat_interleave(clone, 0) if clone > 1 else targets
        prediction = out["decoded"][mask]
        target = repeated[mask]
        frame_losses = regression_loss(prediction, target, self.scale)
        n_masked = mask.sum()
        loss = frame_losses.sum()
        rows = mask.shape[0]
        stats: dict[str, tuple[Any, Any]] = {
            "frame_loss": (loss.detach(), n_masked),
            "target_var": (mean_channel_std(target), 1.0),
            "pred_var": (mean_channel_std(prediction), 1.0),
        }
        if padding_mask is None:
            valid_frames: Any = rows * mask.shape[1]
        else:
            valid_frames = (~padding_mask).sum() * clone
        stats["masked_fraction"] = (n_masked, valid_frames)
        if cfg.utterance_loss != "none":
            utt_target = masked_mean(targets, padding_mask)
            if clone > 1:
                utt_target = utt_target.repeat_interleave(clone, 0)
            dropped = cfg.utterance_reads_dropout
            utt_pred = utterance_prediction(
                cfg.utterance_loss,
                extra_tokens=out["extra_tokens" if dropped else "clean_extra_tokens"],
                frames=out["frames" if dropped else "clean_frames"],
                frames_padding_mask=out["frames_padding_mask"],
                chunk_pooling=cfg.chunk_pooling,
                chunk_tokens=cfg.chunk_tokens,
                token_index=cfg.token_index,
            )
            per_row = utterance_loss(utt_pred, utt_target, self.scale)
            if cfg.utterance_weighting == "sum":
                # the authors: cls loss x sample_size, so after the division by the sample
                # size the utterance term is a sum over the micro-batch's rows
                weighted = per_row.sum() * n_masked.to(per_row.dtype)
            else:
                # the paper's form: each row weighted by its masked frames, i.e. after the
                # division a mean over rows
                weighted = (per_row * mask.sum(dim=1).to(per_row.dtype)).sum()
            loss = loss + cfg.utterance_alpha * weighted
            stats["utt_loss"] = (per_row.detach().sum(), rows)
        if batch.weight == 0:
            # a placeholder batch (all its files failed): it ran so every process steps together
            return StepOutput(loss * 0.0, 0.0, {})
        return StepOutput(loss, float(n_masked), stats)

    # ---------------------------------------------------------------- update hooks

    def after_update(self, step: int) -> dict[str, float]:
        """EMA step of the teacher with the decay of update ``step``."""
        cfg = self.config
        self.ema_decay = ema_decay_at(
            step, cfg.ema_decay, cfg.ema_end_decay, cfg.ema_anneal_end_step
        )
        self.teacher.update(self.model.encoder, self.ema_decay)
        return {"ema_decay": self.ema_decay}

    def check(self, stats: dict[str, float], step: int) -> None:
        """Collapse guards (data2vec 2.0's min_target_var / min_pred_var), after
        ``var_check_after`` updates."""
        cfg = self.config
        if step <= cfg.var_check_after:
            return
        for key, threshold, what in (
            ("target_var", cfg.min_target_var, "the teacher's targets"),
            ("pred_var", cfg.min_pred_var, "the student's predictions"),
        ):
            value = stats.get(key)
            if value is not None and value == value and value < threshold:
                raise CollapseError(
                    f"training collapsed at update {step}: {key} = {value:.4g} fell below "
                    f"min_{key} = {threshold:g}, i.e. {what} became (nearly) constant across "
                    "frames and utterances. The checkpoints written before this point are kept. "
                    "Resume from an earlier checkpoint with a lower learning rate, a longer "
                    "warm-up or a slower EMA, or raise var_check_after if this happens on "
                    "purpose early in training."
                )

    # ---------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """The EMA teacher (fp32) and the current decay."""
        return {
            "teacher": {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()},
            "ema_decay": float(self.ema_decay),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.teacher.load_state_dict(state["teacher"])
        self.ema_decay = float(state["ema_decay"])

    def save_model(self, directory: Path) -> None:
        """The student, in our model format."""
        save_pretrained(self.model, directory)
