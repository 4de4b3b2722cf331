"""Fixtures of the pre-training tests (helpers live in pretrain_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pretrain_helpers import write_corpus


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Six wavs of 0.8 to 1.3 s."""
    root = tmp_path / "corpus"
    write_corpus(root, [12800, 14400, 16000, 17600, 19200, 20800])
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    """Micro models gain nothing from a second thread, and on a loaded 2-core machine OpenMP
    threads waiting for each other make steps 10-50x slower; restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
