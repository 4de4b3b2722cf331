"""Compatibility name: the int8 mode lives in :mod:`emotion2vec.fast.int8`."""

from .fast.int8 import quantize_int8

__all__ = ["quantize_int8"]
