"""Shared fixtures: micro model configs, seeded random models, test waveforms, fixture paths.

The micro model has every module of the published models at toy widths (the layout of the
FunASR parity fixture): the official 7-layer conv spec with 64 channels, embed_dim 64, 4 heads,
1 context block + 2 main blocks, 5 positional conv layers of kernel 19 in 16 groups, 10 extra
tokens, a 4-layer decoder of width 32. It runs 30 s of audio in a fraction of a second on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotion2vec import Emotion2vecModel

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "funasr_parity"

from model_factory import MICRO_CONV, build_micro_config, build_model, randomize_  # noqa: E402,F401


def speech_like(num_samples: int, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """Deterministic float32 signal in [-1, 1]: harmonics with a moving pitch, an amplitude
    envelope and some coloured noise (enough structure to give non-trivial features)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    f0 = 120.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = sum(np.sin(h * phase + rng.uniform(0, 6.28)) / h for h in range(1, 8))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3.7 * t + rng.uniform(0, 6.28)))
    x = x + 0.3 * np.convolve(rng.standard_normal(num_samples), np.ones(5) / 5, mode="same")
    x = x / (np.max(np.abs(x)) + 1e-9) * 0.6
    return x.astype(np.float32)


# ------------------------------------------------------------------------------------------
# Fixtures (the helpers above, handed to tests)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def micro_config():
    """Factory: ``micro_config(labels=..., decoder=..., **encoder_overrides) -> ModelConfig``."""
    return build_micro_config


@pytest.fixture(scope="session")
def make_model():
    """Factory: ``make_model(seed=0, labels=..., decoder=..., config=None, **encoder_overrides)``."""
    return build_model


@pytest.fixture(scope="session")
def make_wave():
    """Factory: ``make_wave(num_samples, seed=0) -> float32 (N,)`` speech-like waveform."""
    return speech_like


@pytest.fixture(scope="module")
def plus_model() -> Emotion2vecModel:
    """A micro model with the 9-class head and no decoder (plus layout), shared per module."""
    return build_model(1, decoder=False)


@pytest.fixture(scope="module")
def base_model() -> Emotion2vecModel:
    """A micro model with the pre-training decoder and no head (emotion2vec_base layout)."""
    return build_model(2, labels=())


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """tests/fixtures/funasr_parity."""
    return FIXTURE_DIR
