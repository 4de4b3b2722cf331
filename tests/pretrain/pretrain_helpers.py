"""Helpers of the pre-training tests (imported by the tests and by spawned DDP workers).

The micro model has the suite's shape: official conv spec at 64 channels, D = 64, 4 heads,
1 context + 2 main blocks, 10 extra tokens, decoder width 32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from emotion2vec import Emotion2vecModel
from emotion2vec.config import OFFICIAL_CONV_LAYERS, DecoderConfig, EncoderConfig, ModelConfig
from emotion2vec.pretrain import PretrainConfig

MICRO_CONV = tuple((64, kernel, stride) for _, kernel, stride in OFFICIAL_CONV_LAYERS)


def micro_model_config(*, decoder: bool = True, labels=(), **encoder) -> ModelConfig:
    """The micro model config; ``encoder`` overrides EncoderConfig fields."""
    fields = dict(conv_layers=MICRO_CONV, embed_dim=64, num_heads=4, context_depth=1, depth=2)
    fields.update(encoder)
    return ModelConfig(
        encoder=EncoderConfig(**fields),
        decoder=DecoderConfig(dim=32) if decoder else None,
        labels=tuple(labels),
    )


def micro_model(seed: int = 0, **kwargs) -> Emotion2vecModel:
    """A seeded micro model (PyTorch default init)."""
    torch.manual_seed(seed)
    return Emotion2vecModel(micro_model_config(**kwargs))


def tone_wave(num_samples: int, seed: int) -> np.ndarray:
    """A voiced-speech-like signal with a per-file pitch, vibrato and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16000
    f0 = rng.uniform(90, 260) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    x = sum(np.sin(h * phase) / h for h in range(1, 6))
    x = x * (0.5 + 0.5 * np.abs(np.sin(2 * np.pi * rng.uniform(1, 4) * t)))
    x = x + 0.05 * rng.standard_normal(num_samples)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def write_corpus(root: Path, lengths: list[int], seed: int = 0) -> list[Path]:
    """Write one wav per length under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(lengths):
        path = root / f"utt{i:03d}.wav"
        sf.write(path, tone_wave(n, seed * 1000 + i), 16000)
        paths.append(path)
    return paths


def micro_run_config(paths, **overrides) -> PretrainConfig:
    """A PretrainConfig for micro runs: 1 s crops, clone batch 2, few updates, no plot."""
    cfg = PretrainConfig()
    cfg.data.paths = tuple(str(p) for p in paths)
    cfg.data.min_samples = 8000
    cfg.data.max_samples = 16000
    cfg.data.max_tokens = 48000
    cfg.data.workers = 1
    cfg.data.prefetch = 2
    cfg.objective.clone_batch = 2
    cfg.optim.lr = 2e-3
    cfg.optim.max_updates = 4
    cfg.optim.warmup_updates = 1
    cfg.run.device = "cpu"
    cfg.run.log_every = 1
    cfg.run.save_every = 2
    cfg.run.plot = False
    cfg.run.progress = False
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        setattr(getattr(cfg, section) if name else cfg, name or section, value)
    return cfg


def ddp_run_config(root, update_freq: int) -> PretrainConfig:
    """The run of the DDP test: 4 updates over the micro corpus, one thread per process."""
    cfg = micro_run_config([root])
    cfg.optim.max_updates = 3
    cfg.optim.update_freq = update_freq
    cfg.run.threads = 1
    cfg.run.save_every = 1000
    return cfg


def ddp_worker(rank: int, world: int, init_file: str, root: str, run_dir: str, out: str) -> None:
    """One process of the 2-process gloo job (started by torch.multiprocessing.spawn)."""
    import torch.distributed as dist

    from emotion2vec.pretrain import DistInfo, pretrain

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = pretrain(
            ddp_run_config(root, update_freq=1),
            run_dir,
            model=micro_model(0),
            dist=DistInfo(rank=rank, world_size=world, local_rank=rank),
        )
        torch.save(
            {k: v.detach().clone() for k, v in result.model.state_dict().items()},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()
