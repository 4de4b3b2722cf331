"""The EMA teacher of online distillation.

The teacher is a copy of the student's encoder *without* the conv feature extractor and the
projection: as in data2vec 2.0 (``ema_local_encoder=false``), it reads the student's projected
conv features (computed once, unmasked, detached) and averages only the positional conv, the
ALiBi scale, the extra tokens, the context encoder and the blocks. The decoder is not copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..model import Emotion2vecEncoder, EncoderOutput

#: Student encoder submodules the teacher does not have (it reads their output from the student).
NOT_AVERAGED = ("feature_extractor", "feature_projection")


def ema_decay_at(step: int, start: float, end: float, anneal_end_step: int) -> float:
    """Decay used by the EMA update that follows optimizer update number ``step`` (1-based).

    Rises linearly from ``start`` (at step 0) to ``end`` (at ``anneal_end_step``), then stays
    at ``end`` (data2vec 2.0: ``end - (end - start) * (1 - step / anneal_end_step)``).
    """
    if step >= anneal_end_step:
        return end
    return end - (end - start) * (1.0 - step / anneal_end_step)


class EmaTeacher(nn.Module):
    """fp32 exponential moving average of the student encoder's contextual part, in eval mode.

    The teacher never trains: no dropout, no layer drop, no gradients.
    """

    def __init__(self, student: Emotion2vecEncoder):
        super().__init__()
        encoder = copy.deepcopy(student)
        for name in NOT_AVERAGED:
            delattr(encoder, name)
        encoder.float().requires_grad_(False)
        self.encoder = encoder.eval()

    def train(self, mode: bool = True) -> EmaTeacher:
        """The teacher stays in eval mode whatever its parent does."""
        super().train(False)
        return self

    @torch.no_grad()
    def restore(self, state: dict[str, torch.Tensor]) -> None:
        """Overwrite the teacher's tensors named in ``state`` (our encoder key names); the others
        stay as they are. Unknown names or shapes are an error."""
        own = self.encoder.state_dict()
        for name, value in state.items():
            if name not in own:
                raise KeyError(f"the teacher has no tensor {name!r}")
            if tuple(own[name].shape) != tuple(value.shape):
                raise ValueError(
                    f"teacher tensor {name}: shape {tuple(value.shape)}, expected "
                    f"{tuple(own[name].shape)}"
                )
            own[name].copy_(value.to(own[name].dtype))

    @torch.no_grad()
    def update(self, student: Emotion2vecEncoder, decay: float) -> None:
        """teacher <- decay * teacher + (1 - decay) * student, for every averaged parameter;
        buffers are copied. A decay of 1 leaves the teacher unchanged."""
        if decay >= 1.0:
            return
        source = dict(student.named_parameters())
        for name, param in self.encoder.named_parameters():
            value = source[name].detach().to(param.dtype)
            param.mul_(decay).add_(value, alpha=1.0 - decay)
        buffers = dict(student.named_buffers())
        for name, buf in self.encoder.named_buffers():
            buf.copy_(buffers[name])

    @torch.no_grad()
    def forward(self, features: torch.Tensor, padding_mask: torch.Tensor | None) -> EncoderOutput:
        """features: (B, T, D) the student's projected conv features (unmasked) -> the teacher's
        output with the per-block FFN outputs (``ffn_outputs``)."""
        return self.encoder.contextualize(features, padding_mask, output_ffn=True)
