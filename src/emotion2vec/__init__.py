"""emotion2vec: universal speech emotion representations.

Load a published model exactly, extract features, predict emotions::

    import emotion2vec
    model = emotion2vec.load_model("emotion2vec_plus_large")
    model.predict("speech.wav")          # Prediction(label='happy', score=0.93, scores={...})
    model.extract("speech.wav")          # (1024,) utterance embedding
    fast = emotion2vec.quantize_int8(model)  # approximate int8 CPU copy (README: fidelity)
"""

from .config import EMOTION_LABELS, ModelConfig, preset
from .errors import AudioError, CheckpointError, ConfigError, DataError, Emotion2vecError
from .fast.int8 import quantize_int8
from .inference import Prediction
from .pipeline import Emotion2vec, load_model
from .version import __version__

#: The class users load and build (the network plus extract / predict / save_pretrained).
Emotion2vecModel = Emotion2vec


__all__ = [
    "EMOTION_LABELS",
    "Emotion2vec",
    "AudioError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Emotion2vecError",
    "Emotion2vecModel",
    "ModelConfig",
    "Prediction",
    "__version__",
    "load_model",
    "preset",
    "quantize_int8",
]
