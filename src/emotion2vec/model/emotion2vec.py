"""The whole model: encoder, optional pre-training decoder, optional emotion head."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .decoder import Decoder
from .encoder import Emotion2vecEncoder, EncoderOutput
from .heads import EmotionHead, masked_mean


class Emotion2vecModel(nn.Module):
    """emotion2vec as published: the network alone, working on prepared tensors.

    What ``emotion2vec.load_model`` returns is :class:`emotion2vec.pipeline.Emotion2vec`, this
    class plus the user-facing ``extract`` / ``predict`` / ``save_pretrained``; training uses
    this class directly."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = Emotion2vecEncoder(config.encoder)
        self.decoder = (
            Decoder(config.decoder, config.encoder.embed_dim)
            if config.decoder is not None
            else None
        )
        self.head = (
            EmotionHead(config.encoder.embed_dim, config.num_classes) if config.labels else None
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names of the emotion head, in output order (empty without a head)."""
        return self.config.labels

    def forward(
        self,
        waves: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
    ) -> tuple[EncoderOutput, torch.Tensor, torch.Tensor | None]:
        """waves: (B, N) normalised, zero-padded; lengths: (B,) valid samples.

        Returns the encoder output, the utterance embeddings (B, D) (mean of valid frames) and the
        head's logits (B, C) or None.
        """
        out = self.encoder(waves, lengths, output_hidden_states=output_hidden_states)
        embedding = masked_mean(out.frames, out.padding_mask)
        logits = self.head(embedding) if self.head is not None else None
        return out, embedding, logits
