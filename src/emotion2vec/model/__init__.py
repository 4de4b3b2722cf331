"""Model components; the user-facing class is :class:`Emotion2vecModel`."""

from .decoder import Decoder
from .emotion2vec import Emotion2vecModel
from .encoder import Emotion2vecEncoder, EncoderOutput
from .heads import EmotionHead, masked_mean

__all__ = [
    "Decoder",
    "Emotion2vecEncoder",
    "Emotion2vecModel",
    "EmotionHead",
    "EncoderOutput",
    "masked_mean",
]
