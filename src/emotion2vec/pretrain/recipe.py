"""The authors' pre-training run as data, and the recipe presets derived from it.

:data:`AUTHORS_RUN` lists every setting of the run behind emotion2vec_base (github
ddlBoJack/fairseq, branch ``emotion2vec``, commit 47cc7d53: the launch script
``examples/data2vec/scripts/pretrain/audio_base_ls_cp_iemocap_meld_cmumosei_msppodcast_mead_cls.sh``,
``examples/data2vec/config/v2/base_audio_only_task.yaml`` and the code they run) with the
:class:`PretrainConfig` field that holds it. The defaults of :class:`PretrainConfig` are these
values (a test checks every row), and ``docs/pretraining.md`` opens with the same table.

Presets (``emotion2vec pretrain --preset NAME``):

* ``base``: the full-scale run (emotion2vec_base's architecture, 600,000 samples per GPU
  micro-batch, ``update_freq`` 6 on 4 GPUs, 100,000 updates, 5,000 warm-up, EMA annealed over
  20,000 updates). Start it from data2vec 2.0 with ``--init base_libri.pt`` as the authors did.
* ``tiny``: the same recipe scaled down for CPUs: a 6M-parameter model, 96,000-sample
  micro-batches, 1,200 updates; warm-up, EMA annealing and the collapse guards keep their
  fractions of the run, the EMA starts at 0.99 and ends at 0.999 (0.999 -> 0.99999 over a few
  hundred updates would leave the teacher where it started) and the peak learning rate is 5e-4
  (a small model from scratch). Masks, losses, their weighting, dropout, layer drop, weight decay,
  clipping and precision are the run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .config import PretrainConfig


@dataclass(frozen=True)
class RunSetting:
    """One setting of the authors' run."""

    field: str
    """Dotted path of the :class:`PretrainConfig` field (``model.*``: the model preset's config)."""
    value: Any
    """The run's value, in our units."""
    theirs: str
    """How the run states it."""
    where: str
    """Where in their code or scripts."""
    ours: Any = None
    """Our default when it differs from the run's (None: the same)."""
    why: str = ""
    """Why our default differs."""

    @property
    def default(self) -> Any:
        """Our default value."""
        return self.value if self.ours is None else self.ours


#: Every setting of the run behind emotion2vec_base that a pre-training config controls.
AUTHORS_RUN: tuple[RunSetting, ...] = (
    RunSetting("data.min_samples", 8_000, "task.min_sample_size=8000 (0.5 s)", "launch script"),
    RunSetting("data.max_samples", 320_000, "task.max_sample_size: 320000 (20 s)", "yaml"),
    RunSetting(
        "data.crop_to_shortest",
        True,
        "pad: false: crop every item to the shortest",
        "raw_audio_dataset.collater",
    ),
    RunSetting("data.max_tokens", 600_000, "dataset.max_tokens=600000 per GPU", "launch script"),
    RunSetting(
        "masking.mask_type",
        "block",
        "task.precompute_mask_config: {} -> compute_block_mask_1d per file, then cropped",
        "yaml, audio_pretraining.py, raw_audio_dataset.py",
    ),
    RunSetting("masking.mask_prob", 0.5, "mask_prob: 0.5", "yaml"),
    RunSetting("masking.mask_prob_adjust", 0.05, "mask_prob_adjust: 0.05", "yaml"),
    RunSetting("masking.mask_length", 5, "mask_length: 5", "yaml"),
    RunSetting("masking.precompute", True, "masks made by the dataset", "raw_audio_dataset.py"),
    RunSetting("objective.clone_batch", 8, "clone_batch: 8", "yaml"),
    RunSetting("objective.average_top_k_layers", 8, "average_top_k_layers: 8", "yaml"),
    RunSetting(
        "objective.instance_norm_targets",
        True,
        "instance_norm_target_layer: true",
        "yaml, data2vec2.make_targets",
    ),
    RunSetting(
        "objective.loss_scale",
        None,
        "loss_scale: null (1/sqrt(D)), loss_beta: 0 (L2)",
        "yaml, data2vec2.d2v_loss",
    ),
    RunSetting("objective.decoder_noise_std", 0.01, "mask_noise_std: 0.01", "yaml, base.py"),
    RunSetting(
        "objective.utterance_loss",
        "chunk",
        "+model.cls_type=chunk (10 extra tokens)",
        "launch script",
    ),
    RunSetting(
        "objective.utterance_alpha", 1.0, "+model.cls_loss=1, +model.d2v_loss=1", "launch script"
    ),
    RunSetting(
        "objective.utterance_weighting",
        "sum",
        "cls loss x cls_loss x sample_size, then / sample_size: a sum over rows",
        "data2vec2.forward",
    ),
    RunSetting(
        "objective.utterance_reads_dropout",
        True,
        "decoder input_dropout 0.1 in place, before cls_pred reads x",
        "base.decoder_input, data2vec2.forward",
    ),
    RunSetting(
        "objective.chunk_pooling", "mean", "x[:, :extra_tokens].mean(dim=1)", "data2vec2.forward"
    ),
    RunSetting(
        "objective.token_index", -1, "cls_type single: x[:, extra_tokens - 1]", "data2vec2.forward"
    ),
    RunSetting("objective.ema_decay", 0.999, "ema_decay: 0.999", "yaml"),
    RunSetting("objective.ema_end_decay", 0.99999, "ema_end_decay: 0.99999", "yaml"),
    RunSetting(
        "objective.ema_anneal_end_step", 20_000, "model.ema_anneal_end_step=20000", "launch script"
    ),
    RunSetting("objective.min_target_var", 0.1, "min_target_var: 0.1", "data2vec2 defaults"),
    RunSetting("objective.min_pred_var", 0.01, "min_pred_var: 0.01", "data2vec2 defaults"),
    RunSetting("objective.var_check_after", 5_000, "num_updates > 5000", "data2vec2.forward"),
    RunSetting(
        "objective.extra_tokens_if_missing",
        10,
        "+model.modalities.audio.num_extra_tokens=10",
        "launch script",
    ),
    RunSetting(
        "objective.init_layout",
        "authors",
        "restore_file=base_libri.pt, load_state_dict(strict=False)",
        "launch script, data2vec2.load_state_dict",
    ),
    RunSetting(
        "objective.init_context_depth", 4, "model.modalities.audio.prenet_depth=4", "launch script"
    ),
    RunSetting("objective.init_depth", 8, "model.depth=8", "launch script"),
    RunSetting(
        "objective.teacher_from_checkpoint",
        True,
        "_ema restored by ema.restore",
        "data2vec2._load_from_state_dict",
    ),
    RunSetting("optim.lr", 7.5e-5, "optimization.lr=[0.000075]", "launch script"),
    RunSetting("optim.betas", (0.9, 0.98), "adam_betas: [0.9, 0.98]", "yaml"),
    RunSetting("optim.eps", 1e-6, "adam_eps: 1e-06", "yaml"),
    RunSetting("optim.weight_decay", 0.01, "weight_decay: 0.01", "yaml"),
    RunSetting(
        "optim.adam",
        "fairseq",
        "optimizer: adam (eps added before the bias correction)",
        "fairseq/optim/adam.py",
    ),
    RunSetting(
        "optim.decay_all",
        True,
        "plain adam: optim_overrides (no decay on biases/norms) never read",
        "fairseq/optim/adam.py",
    ),
    RunSetting("optim.max_updates", 100_000, "optimization.max_update=100000", "launch script"),
    RunSetting(
        "optim.warmup_fraction",
        0.05,
        "lr_scheduler.warmup_updates=5000 (of 100000)",
        "launch script",
    ),
    RunSetting("optim.final_lr_ratio", 0.0, "cosine min_lr: 0", "cosine_lr_scheduler.py"),
    RunSetting("optim.clip_norm", 0.0, "clip_norm: 0 (fairseq default)", "fairseq defaults"),
    RunSetting(
        "optim.update_freq",
        6,
        "optimization.update_freq=[6] on 4 GPUs",
        "launch script",
        ours=1,
        why="depends on the GPU count: 24 micro-batches per update in all; "
        "preset base sets 6 (for 4 GPUs)",
    ),
    RunSetting("run.precision", "auto", "common.fp16: true (auto = fp16 on GPUs)", "yaml"),
    RunSetting("model.encoder.layerdrop", 0.05, "layerdrop: 0.05", "yaml"),
    RunSetting("model.encoder.context_layerdrop", 0.05, "prenet_layerdrop: 0.05", "yaml"),
    RunSetting("model.encoder.context_dropout", 0.1, "prenet_dropout: 0.1", "yaml"),
    RunSetting("model.decoder.input_dropout", 0.1, "decoder.input_dropout: 0.1", "yaml"),
    RunSetting("model.decoder.dim", 384, "decoder_dim: 384", "yaml"),
    RunSetting("model.decoder.layers", 4, "decoder_layers: 4", "yaml"),
    RunSetting("model.decoder.kernel", 7, "decoder_kernel: 7", "yaml"),
    RunSetting("model.decoder.groups", 16, "decoder_groups: 16", "yaml"),
)

#: GPUs of the authors' run; ``update_freq`` of the base preset assumes them.
AUTHORS_GPUS = 4
#: Micro-batches per update across the run (4 GPUs x update_freq 6).
AUTHORS_MICRO_BATCHES_PER_UPDATE = 24


def _base() -> PretrainConfig:
    config = PretrainConfig(preset="base")
    config.optim.update_freq = AUTHORS_MICRO_BATCHES_PER_UPDATE // AUTHORS_GPUS
    return config


def _tiny() -> PretrainConfig:
    config = PretrainConfig(preset="tiny")
    config.data.max_tokens = 96_000
    config.optim.lr = 5e-4
    config.optim.max_updates = 1_200
    o = config.objective
    o.ema_decay, o.ema_end_decay = 0.99, 0.999
    # the run anneals over 20% of its updates and guards from 5%; so does the tiny one
    o.ema_anneal_end_step = config.optim.max_updates // 5
    o.var_check_after = config.optim.max_updates // 4
    return config


RECIPES = {"base": _base, "tiny": _tiny}


def recipe_config(name: str) -> PretrainConfig:
    """The pre-training config of preset ``name``: a recipe preset of :data:`RECIPES`, or any
    model preset name with the run's defaults."""
    if name in RECIPES:
        return RECIPES[name]()
    from ..config import PRESETS

    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}; choose one of {', '.join([*RECIPES, *PRESETS])}"
        )
    return PretrainConfig(preset=name)


def recipe_table_markdown() -> str:
    """The table that opens docs/pretraining.md: setting / the run / our default / why."""
    lines = [
        "| setting | the authors' run | where | our default | why any difference |",
        "|---|---|---|---|---|",
    ]
    for row in AUTHORS_RUN:
        ours = "same" if row.ours is None else f"`{row.ours!r}`"
        lines.append(
            f"| `{row.field}` | `{row.value!r}`: {row.theirs} | {row.where} | {ours} | {row.why} |"
        )
    return "\n".join(lines) + "\n"


def lookup(config: PretrainConfig, field: str, model_config: Any = None) -> Any:
    """The value of dotted ``field`` in ``config`` (``model.*`` in ``model_config``)."""
    head, *rest = field.split(".")
    obj = model_config if head == "model" else getattr(config, head)
    for part in rest:
        obj = getattr(obj, part)
    return obj
