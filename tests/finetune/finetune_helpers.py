"""Helpers of the fine-tuning tests: a separable synthetic task and micro models."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from emotion2vec import Emotion2vecModel
from emotion2vec.config import EncoderConfig, ModelConfig

#: The brief's micro conv spec (64 channels, official kernels and strides).
MICRO_CONV = ((64, 10, 5),) + ((64, 3, 2),) * 4 + ((64, 2, 2),) * 2
#: One pure-ish tone per class: far apart, so a random encoder already separates them.
CLASS_HZ = {"low": 180.0, "mid": 900.0, "high": 3000.0}


def micro_model(seed: int = 0, labels: tuple[str, ...] = ()) -> Emotion2vecModel:
    """A seeded micro model without decoder (PyTorch default init)."""
    torch.manual_seed(seed)
    config = ModelConfig(
        encoder=EncoderConfig(
            conv_layers=MICRO_CONV, embed_dim=64, num_heads=4, context_depth=1, depth=2
        ),
        decoder=None,
        labels=labels,
    )
    return Emotion2vecModel(config).eval()


def tone(hz: float, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A tone of ``hz`` (+-5%) with a random phase, amplitude and a little noise."""
    t = np.arange(num_samples) / 16000
    f = hz * rng.uniform(0.95, 1.05)
    x = np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) * rng.uniform(0.2, 0.8)
    x = x + 0.02 * rng.standard_normal(num_samples)
    return x.astype(np.float32)


def write_task(root: Path, per_class: int, seed: int, name: str) -> Path:
    """Write ``per_class`` wavs per class (0.4-0.9 s) and a manifest ``root/name.csv``."""
    rng = np.random.default_rng(seed)
    audio = root / name
    audio.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, hz in CLASS_HZ.items():
        for i in range(per_class):
            n = int(rng.integers(6400, 14400))
            path = audio / f"{label}_{i}.wav"
            sf.write(path, tone(hz, n, rng), 16000)
            rows.append({"path": f"{name}/{path.name}", "label": label})
    manifest = root / f"{name}.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label"])
        w.writeheader()
        w.writerows(rows)
    return manifest
