"""The reference network, readable top to bottom; :mod:`emotion2vec.fast` swaps in faster
modules with the same numbers. Knows nothing of loading, inference or training."""

from .decoder import Decoder
from .emotion2vec import Emotion2vecModel
from .encoder import Emotion2vecEncoder, EncoderOutput
from .feature_extractor import conv_output_length, frames_after
from .heads import EmotionHead, masked_mean

__all__ = [
    "Decoder",
    "Emotion2vecEncoder",
    "Emotion2vecModel",
    "EmotionHead",
    "EncoderOutput",
    "conv_output_length",
    "frames_after",
    "masked_mean",
]
