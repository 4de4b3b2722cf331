"""Functions of the approximate modes (:mod:`.int8`, :mod:`.bf16`) compiled on first use, with
the same maths uncompiled where the machine cannot compile."""

from __future__ import annotations

import warnings

import torch


class Compiled:
    """``fn`` compiled with ``torch.compile`` on first use; uncompiled when compiling is switched
    off or has failed once (for any function: the machine has no working compiler)."""

    #: Set by the first compiler failure; every compiled function runs uncompiled from then on.
    failed = False

    def __init__(self, fn):
        self.fn = fn
        self.compiled = None

    def __call__(self, *args, compile: bool = True, **kwargs):
        if not compile or Compiled.failed:
            return self.fn(*args, **kwargs)
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, dynamic=True)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back, same maths
            # An error of the inputs themselves raises again here, and compiling stays on.
            result = self.fn(*args, **kwargs)
            Compiled.failed = True
            warnings.warn(
                f"torch.compile is not available here ({type(exc).__name__}: {exc}); the int8 "
                "and bf16 modes run uncompiled (same maths, slower)",
                RuntimeWarning,
                stacklevel=3,
            )
            return result
