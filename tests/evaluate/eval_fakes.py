"""Fakes shared by the evaluation tests: a tiny corpus of tones and a micro random model.

Not a test module (no ``test_`` prefix); imported as ``from eval_fakes import ...`` (pytest
puts this folder on ``sys.path``, as it has no ``__init__.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from emotion2vec import Emotion2vecModel
from emotion2vec.config import EncoderConfig, ModelConfig
from emotion2vec.evaluate.manifest import LabeledItem, write_manifest

#: One tone per class; speakers shift it by a few percent.
TONES = {"angry": 330.0, "happy": 660.0, "neutral": 1320.0, "sad": 2640.0}


def micro_model(seed: int = 0) -> Emotion2vecModel:
    """The 64-dim micro model (1 context + 2 main blocks, no decoder), seeded, eval mode."""
    encoder = EncoderConfig(
        conv_layers=((64, 10, 5),) + ((64, 3, 2),) * 4 + ((64, 2, 2),) * 2,
        embed_dim=64,
        num_heads=4,
        context_depth=1,
        depth=2,
    )
    torch.manual_seed(seed)
    return Emotion2vecModel(ModelConfig(encoder=encoder, decoder=None)).eval()


def tone(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A sine at ``freq`` with a little noise, float32 at 16 kHz."""
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.5 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.28))
    return (x + 0.03 * rng.standard_normal(t.size)).astype(np.float32)


def make_corpus(
    root: Path,
    *,
    speakers: int = 4,
    per_class: int = 2,
    seconds: tuple[float, float] = (0.3, 0.5),
    seed: int = 0,
) -> tuple[list[LabeledItem], Path]:
    """Wavs under ``root`` (tones per class, ``speakers`` speakers in 2 sessions) and a
    manifest ``root/manifest.csv``; each speaker's utterances form one dialogue whose turns
    cycle through the classes."""
    rng = np.random.default_rng(seed)
    items = []
    for s in range(speakers):
        turn = 0
        for j in range(per_class):
            for label, freq in TONES.items():
                path = root / f"spk{s}" / f"{label}_{j}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                length = rng.uniform(*seconds)
                sf.write(path, tone(freq * (1 + 0.02 * s), length, rng), 16000)
                items.append(
                    LabeledItem(
                        path=str(path),
                        label=label,
                        speaker=f"spk{s}",
                        session=f"S{s % 2}",
                        dialogue_id=f"dlg{s}",
                        turn=turn,
                    )
                )
                turn += 1
    manifest = write_manifest(items, root / "manifest.csv")
    return items, manifest
