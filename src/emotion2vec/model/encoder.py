"""The emotion2vec speech encoder (official: ``Data2VecMultiModel`` with its AUDIO modality encoder)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import EncoderConfig
from .feature_extractor import ConvFeatureExtractor, FeatureProjection
from .positional import Alibi, PositionalConv, alibi_slopes
from .transformer import TransformerBlock


@dataclass
class EncoderOutput:
    """What the encoder returns.

    frames: (B, T, D) output of the last block, extra tokens removed.
    padding_mask: (B, T) bool, True = padding; None when no row is padded.
    extra_tokens: (B, E, D) last-block outputs at the extra-token positions.
    hidden_states: when requested, 1 + num_layers tensors (B, T, D): index 0 is the input of the
        first block (after the context LayerNorm), index i the output of block i (context blocks
        first, then main blocks); the last one equals ``frames``.
    ffn_outputs: when requested, the FFN output (before residual) of each main block, (B, T, D),
        extra tokens removed: the teacher targets of pre-training.
    """

    frames: torch.Tensor
    padding_mask: torch.Tensor | None
    extra_tokens: torch.Tensor
    hidden_states: list[torch.Tensor] | None = None
    ffn_outputs: list[torch.Tensor] | None = None


class Emotion2vecEncoder(nn.Module):
    """Waveform -> conv features -> projection -> (+ positional conv) -> extra tokens -> blocks."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c = config
        self.feature_extractor = ConvFeatureExtractor(c.conv_layers, c.norm_eps)
        self.feature_projection = FeatureProjection(c.conv_dim, c.embed_dim, c.norm_eps)
        self.positional_conv = PositionalConv(
            c.embed_dim, c.pos_conv_kernel, c.pos_conv_layers, c.pos_conv_groups
        )
        self.alibi = Alibi()
        self.alibi_scale = nn.Parameter(torch.ones(c.num_heads))
        self.register_buffer(
            "alibi_slopes", torch.tensor(alibi_slopes(c.num_heads)), persistent=False
        )
        self.extra_tokens = nn.Parameter(torch.zeros(c.num_extra_tokens, c.embed_dim))
        self.context_norm = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)
        self.context_dropout = nn.Dropout(c.context_dropout)

        def block() -> TransformerBlock:
            return TransformerBlock(
                c.embed_dim,
                c.num_heads,
                c.mlp_ratio,
                c.norm_eps,
                c.attention_dropout,
                c.dropout,
                c.activation_dropout,
                c.post_mlp_dropout,
            )

        self.context_blocks = nn.ModuleList(block() for _ in range(c.context_depth))
        self.blocks = nn.ModuleList(block() for _ in range(c.depth))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation of the parameters that PyTorch's defaults do not cover."""
        with torch.no_grad():
            self.alibi_scale.fill_(1.0)
            # official: init_extra_token_zero -> token 0 zeros, others N(0, 1)
            nn.init.normal_(self.extra_tokens)
            if self.extra_tokens.shape[0]:
                self.extra_tokens[0].zero_()

    def frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """(B,) samples -> (B,) frames."""
        return self.feature_extractor.output_lengths(sample_lengths)

    def local_features(
        self, waves: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """waves (B, N), lengths (B,) or None -> projected conv features (B, T, D) and the frame
        padding mask (B, T) (True = padding; None when every row is full length)."""
        feats, frames = self.feature_extractor(waves, lengths)
        x = self.feature_projection(feats)
        if lengths is None or bool((frames == x.shape[1]).all()):
            return x, None
        padding_mask = torch.arange(x.shape[1], device=x.device).unsqueeze(0) >= frames.unsqueeze(1)
        return x, padding_mask

    def forward(
        self,
        waves: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_ffn: bool = False,
    ) -> EncoderOutput:
        """waves: (B, N) normalised 16 kHz waveforms, zero-padded; lengths: (B,) valid samples."""
        x, padding_mask = self.local_features(waves, lengths)
        return self.contextualize(
            x, padding_mask, output_hidden_states=output_hidden_states, output_ffn=output_ffn
        )

    def contextualize(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None,
        *,
        keep_index: torch.Tensor | None = None,
        visible_features: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_ffn: bool = False,
    ) -> EncoderOutput:
        """Positional conv, extra tokens and the transformer on projected features.

        x: (B, T, D); padding_mask: (B, T) or None. keep_index: (B, T_keep) frames to keep after
        the positional conv (pre-training removes masked frames there; ALiBi keeps their true
        distances). visible_features: (B, T, D) features to keep at ``keep_index`` instead of
        ``x`` (pre-training: ``x`` has its masked frames zeroed for the positional conv, the kept
        frames read the unzeroed features). Returned frames are (B, T or T_keep, D).
        """
        pos = self.positional_conv(x, padding_mask)
        positions = None
        if keep_index is None:
            x = x + pos
        else:
            index = keep_index.unsqueeze(-1).expand(-1, -1, x.shape[-1])
            source = x if visible_features is None else visible_features
            x = torch.gather(source, 1, index) + torch.gather(pos, 1, index)
            if padding_mask is not None:
                padding_mask = torch.gather(padding_mask, 1, keep_index)
            positions = keep_index
        batch, length, _ = x.shape
        n_extra = self.extra_tokens.shape[0]

        bias = self.alibi(
            self.alibi_slopes,
            self.alibi_scale,
            length,
            positions=positions,
            num_extra_tokens=n_extra,
            key_padding_mask=padding_mask,
        )
        if n_extra:
            x = torch.cat([self.extra_tokens.unsqueeze(0).expand(batch, -1, -1).to(x.dtype), x], 1)

        x = self.context_dropout(self.context_norm(x))
        hidden = [x[:, n_extra:]] if output_hidden_states else None
        ffn_outputs: list[torch.Tensor] | None = [] if output_ffn else None
        c = self.config
        stacks = (
            (self.context_blocks, c.context_layerdrop, False),
            (self.blocks, c.layerdrop, True),
        )
        for stack, layerdrop, is_main in stacks:
            for blk in stack:
                if self.training and layerdrop > 0 and torch.rand(()) < layerdrop:
                    continue
                x, ffn = blk(x, bias)
                if hidden is not None:
                    hidden.append(x[:, n_extra:])
                if ffn_outputs is not None and is_main:
                    ffn_outputs.append(ffn[:, n_extra:])
        return EncoderOutput(
            frames=x[:, n_extra:],
            padding_mask=padding_mask,
            extra_tokens=x[:, :n_extra],
            hidden_states=hidden,
            ffn_outputs=ffn_outputs,
        )
