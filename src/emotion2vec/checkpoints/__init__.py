"""Reading and writing checkpoints: official fairseq/FunASR layouts, our safetensors format, hub names."""

from .loading import load_model

__all__ = ["load_model"]
