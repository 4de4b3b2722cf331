"""The options of ``pretrain`` and ``finetune`` that map one-to-one onto fields of their
dataclass configs, as tables of ``(flags, section ("" = top level), field, argparse kwargs)``,
and the plumbing that turns given options into a config.

Every table option defaults to None ("not given"), so that it overrides a stored run config
(``--resume``) or ``--config FILE.json`` only when the user gave it. Help texts end with the
config's default in parentheses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..argtypes import positive_int

Options = tuple[tuple[tuple[str, ...], str, str, dict], ...]

_PRECISION = dict(
    choices=["auto", "fp32", "bf16", "fp16"],
    help="autocast precision: auto is fp32 on CPUs and fp16 with loss scaling on GPUs (auto)",
)

PRETRAIN_OPTIONS: Options = (
    (
        ("--preset",),
        "",
        "preset",
        dict(
            help='recipe preset: "base" (the authors\' full-scale run, the default), "tiny" (the '
            "same recipe scaled down for CPUs), or any model preset with the run's settings"
        ),
    ),
    (
        ("--init",),
        "",
        "init",
        dict(
            help="start from a model: published name (emotion2vec_base), official .pt or folder, "
            "data2vec 2.0 checkpoint, our model folder, or a previous run folder (default: "
            "random initialisation)"
        ),
    ),
    (("--layerdrop",), "", "layerdrop", dict(type=float, help="override the model's layer drop")),
    (("--min-samples",), "data", "min_samples", dict(type=int, help="skip shorter files (8000)")),
    (("--max-samples",), "data", "max_samples", dict(type=int, help="crop longer files (320000)")),
    (
        ("--max-tokens",),
        "data",
        "max_tokens",
        dict(type=int, help="padded samples per micro-batch and process (600000)"),
    ),
    (("--max-batch-size",), "data", "max_batch_size", dict(type=int, help="utterances per batch")),
    (
        ("--pad-batches",),
        "data",
        "crop_to_shortest",
        dict(action="store_const", const=False, help="pad to the longest instead of cropping"),
    ),
    (("--workers",), "data", "workers", dict(type=positive_int, help="decoding threads (2)")),
    (
        ("--mask-prob",),
        "masking",
        "mask_prob",
        dict(type=float, help="masked fraction of the frames if spans did not overlap (0.5)"),
    ),
    (("--mask-length",), "masking", "mask_length", dict(type=int, help="frames per span (5)")),
    (
        ("--mask-type",),
        "masking",
        "mask_type",
        dict(choices=["block", "spans"], help="block masks (the run) or random spans (block)"),
    ),
    (
        ("--in-step-masks",),
        "masking",
        "precompute",
        dict(action="store_const", const=False, help="compute masks in the training step"),
    ),
    (
        ("--clone-batch",),
        "objective",
        "clone_batch",
        dict(type=int, help="copies of each utterance with independent masks (8)"),
    ),
    (
        ("--top-k",),
        "objective",
        "average_top_k_layers",
        dict(type=int, help="teacher blocks averaged into the targets (8)"),
    ),
    (
        ("--utterance-loss",),
        "objective",
        "utterance_loss",
        dict(
            choices=["chunk", "token", "global", "none"],
            help="utterance-level loss: pooled extra tokens, one extra token, mean of the "
            "outputs, or none (chunk)",
        ),
    ),
    (
        ("--alpha",),
        "objective",
        "utterance_alpha",
        dict(type=float, help="utterance loss weight (1.0)"),
    ),
    (
        ("--utterance-weighting",),
        "objective",
        "utterance_weighting",
        dict(choices=["sum", "mean"], help="sum (the run) or mean (the paper's formula)"),
    ),
    (
        ("--init-layout",),
        "objective",
        "init_layout",
        dict(
            choices=["authors", "split", "keep"],
            help="how a data2vec 2.0 --init maps onto 4 + 8 blocks (authors)",
        ),
    ),
    (
        ("--init-context-depth",),
        "objective",
        "init_context_depth",
        dict(type=int, help="context blocks of a model built from data2vec 2.0 (4)"),
    ),
    (
        ("--init-depth",),
        "objective",
        "init_depth",
        dict(type=int, help="main blocks of a model built from data2vec 2.0 (8)"),
    ),
    (
        ("--chunk-pooling",),
        "objective",
        "chunk_pooling",
        dict(
            choices=["mean", "each"],
            help="chunk loss: regress the mean of the chunk tokens, or each token (mean)",
        ),
    ),
    (
        ("--chunk-tokens",),
        "objective",
        "chunk_tokens",
        dict(type=int, help="chunk loss: extra tokens in the chunk (all of the model's)"),
    ),
    (("--ema-decay",), "objective", "ema_decay", dict(type=float, help="first EMA decay (0.999)")),
    (
        ("--ema-end-decay",),
        "objective",
        "ema_end_decay",
        dict(type=float, help="final EMA decay (0.99999)"),
    ),
    (
        ("--ema-anneal-end-step",),
        "objective",
        "ema_anneal_end_step",
        dict(type=int, help="updates over which the EMA decay rises (20000)"),
    ),
    (
        ("--min-target-var",),
        "objective",
        "min_target_var",
        dict(type=float, help="collapse guard: stop below this target std (0.1)"),
    ),
    (
        ("--min-pred-var",),
        "objective",
        "min_pred_var",
        dict(type=float, help="collapse guard: stop below this prediction std (0.01)"),
    ),
    (
        ("--var-check-after",),
        "objective",
        "var_check_after",
        dict(type=int, help="collapse guards start after this update (5000)"),
    ),
    (("--lr",), "optim", "lr", dict(type=float, help="peak learning rate (7.5e-5)")),
    (("--weight-decay",), "optim", "weight_decay", dict(type=float, help="weight decay (0.01)")),
    (
        ("--adam",),
        "optim",
        "adam",
        dict(choices=["fairseq", "torch"], help="fairseq (the run's update rule) or torch (AdamW)"),
    ),
    (
        ("--decay-exemptions",),
        "optim",
        "decay_all",
        dict(action="store_const", const=False, help="no decay on biases, norms, ALiBi scale"),
    ),
    (("--max-updates",), "optim", "max_updates", dict(type=int, help="schedule length (100000)")),
    (
        ("--warmup-fraction",),
        "optim",
        "warmup_fraction",
        dict(type=float, help="warm-up as a fraction of --max-updates (0.05)"),
    ),
    (
        ("--warmup-updates",),
        "optim",
        "warmup_updates",
        dict(type=int, help="warm-up in updates; replaces --warmup-fraction"),
    ),
    (("--clip-norm",), "optim", "clip_norm", dict(type=float, help="0 (off, the run)")),
    (("--update-freq",), "optim", "update_freq", dict(type=int, help="accumulation steps (1)")),
    (("--precision",), "run", "precision", _PRECISION),
    (("--seed",), "run", "seed", dict(type=int, help="seed of everything random (1)")),
    (
        ("--log-every",),
        "run",
        "log_every",
        dict(type=int, help="metrics line every N updates (10)"),
    ),
    (("--save-every",), "run", "save_every", dict(type=int, help="checkpoint interval (1000)")),
    (("--keep-last",), "run", "keep_last", dict(type=int, help="checkpoints kept (3)")),
    (
        ("--no-plot",),
        "run",
        "plot",
        dict(action="store_const", const=False, help="do not draw OUTPUT/loss.png"),
    ),
    (
        ("--tensorboard",),
        "run",
        "tensorboard",
        dict(action="store_const", const=True, help="also write TensorBoard logs"),
    ),
    (("--stop-after",), "run", "stop_after", dict(type=int, help="stop after this update")),
)

FINETUNE_OPTIONS: Options = (
    (("--manifest",), "", "manifest", dict(help="labeled training manifest (csv/tsv/jsonl)")),
    (("--valid",), "", "valid", dict(help="labeled validation manifest (early stopping on UA)")),
    (("--path-column",), "", "path_column", dict(help="manifest column of the paths (path)")),
    (("--label-column",), "", "label_column", dict(help="manifest column of the labels (label)")),
    (
        ("--train",),
        "",
        "train",
        dict(choices=["head", "top", "all"], help="what trains: head, top N blocks, all (all)"),
    ),
    (("--top-blocks",), "", "top_blocks", dict(type=int, help="N for --train top (2)")),
    (
        ("--train-cnn",),
        "",
        "freeze_cnn",
        dict(action="store_const", const=False, help="with --train all, also train the CNN"),
    ),
    (("--layer-decay",), "", "layer_decay", dict(type=float, help="layer-wise lr decay (1.0)")),
    (("--head-lr-scale",), "", "head_lr_scale", dict(type=float, help="head lr factor (1.0)")),
    (
        ("--head-init",),
        "",
        "head_init",
        dict(choices=["probe", "random"], help="fresh head: linear-probe fit (probe) or random"),
    ),
    (
        ("--class-weights",),
        "",
        "class_weights",
        dict(action="store_const", const=True, help="inverse-frequency class weights"),
    ),
    (("--label-smoothing",), "", "label_smoothing", dict(type=float, help="label smoothing (0)")),
    (("--layerdrop",), "", "layerdrop", dict(type=float, help="layer drop while training (0)")),
    (("--eval-every",), "", "eval_every", dict(type=int, help="validate every N updates (100)")),
    (("--patience",), "", "patience", dict(type=int, help="evaluations without gain (10)")),
    (("--min-delta",), "", "min_delta", dict(type=float, help="UA gain that counts (0)")),
    (("--max-samples",), "data", "max_samples", dict(type=int, help="crop longer files (480000)")),
    (("--max-tokens",), "data", "max_tokens", dict(type=int, help="padded samples per batch")),
    (("--max-batch-size",), "data", "max_batch_size", dict(type=int, help="utterances per batch")),
    (("--workers",), "data", "workers", dict(type=positive_int, help="decoding threads (2)")),
    (("--lr",), "optim", "lr", dict(type=float, help="peak learning rate (5e-5)")),
    (("--weight-decay",), "optim", "weight_decay", dict(type=float, help="weight decay (0.01)")),
    (("--max-updates",), "optim", "max_updates", dict(type=int, help="schedule length (2000)")),
    (
        ("--warmup-fraction",),
        "optim",
        "warmup_fraction",
        dict(type=float, help="warm-up as a fraction of --max-updates (0.1)"),
    ),
    (
        ("--warmup-updates",),
        "optim",
        "warmup_updates",
        dict(type=int, help="warm-up in updates; replaces --warmup-fraction"),
    ),
    (("--clip-norm",), "optim", "clip_norm", dict(type=float, help="1.0 (0: off)")),
    (("--update-freq",), "optim", "update_freq", dict(type=int, help="accumulation steps (1)")),
    (("--precision",), "run", "precision", _PRECISION),
    (("--seed",), "run", "seed", dict(type=int, help="seed of everything random (1)")),
    (
        ("--log-every",),
        "run",
        "log_every",
        dict(type=int, help="metrics line every N updates (10)"),
    ),
    (("--save-every",), "run", "save_every", dict(type=int, help="checkpoint interval (500)")),
    (("--keep-last",), "run", "keep_last", dict(type=int, help="checkpoints kept (3)")),
    (("--stop-after",), "run", "stop_after", dict(type=int, help="stop after this update")),
)


def _dest(section: str, name: str, prefix: str) -> str:
    return f"{prefix}__{section or 'top'}__{name}"


def add_config_options(p: argparse.ArgumentParser, table: Options, prefix: str) -> None:
    """One option per row of ``table``; unset ones stay None."""
    for flags, section, name, kwargs in table:
        if "action" not in kwargs and "choices" not in kwargs:
            kwargs = {"metavar": flags[0].lstrip("-").upper().replace("-", "_"), **kwargs}
        p.add_argument(*flags, dest=_dest(section, name, prefix), default=None, **kwargs)


def apply_config_options(args: argparse.Namespace, config, table: Options, prefix: str) -> None:
    """Copy the options the user gave (see :func:`add_config_options`) into ``config``, and the
    shared ``--device`` / ``--threads`` / ``--quiet`` into its run section."""
    for _, section, name, _ in table:
        value = getattr(args, _dest(section, name, prefix))
        if value is not None:
            setattr(getattr(config, section) if section else config, name, value)
    if args.device is not None:
        config.run.device = args.device
    if args.threads is not None:
        config.run.threads = args.threads
    if args.quiet:
        config.run.progress = False


def starting_config(
    config_cls, args: argparse.Namespace, stored: Path, table: Options, prefix: str, defaults=None
):
    """The config a training command starts from, with the options the user gave applied:
    the run's stored config with ``--resume`` (its one-off ``stop_after`` dropped), else
    ``--config FILE``, else ``defaults()`` (e.g. a recipe preset) or ``config_cls()``."""
    if args.resume and stored.is_file():
        config = config_cls.load(stored)
        config.run.stop_after = None  # a stop point belongs to one invocation, not to the run
    elif args.config:
        config = config_cls.load(args.config)
    else:
        config = defaults() if defaults is not None else config_cls()
    apply_config_options(args, config, table, prefix)
    return config
