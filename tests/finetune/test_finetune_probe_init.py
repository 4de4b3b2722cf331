"""Linear-probe initialisation of a fresh head (LP-FT)."""

from __future__ import annotations

import json

import numpy as np
import torch
from finetune_helpers import micro_model, write_task

from emotion2vec.evaluate.metrics import unweighted_accuracy
from emotion2vec.finetune import FinetuneConfig, finetune
from emotion2vec.finetune.probe_init import fit_linear_head


def test_fit_linear_head_on_offset_dominated_embeddings():
    """Embeddings like a weak pre-trained model's: a large common offset, a tiny spread that
    carries the class. The probe separates them and its folded head equals the standardised
    logistic regression on raw inputs."""
    g = torch.Generator().manual_seed(0)
    n, d, c = 300, 16, 3
    y = torch.arange(n) % c
    centres = torch.randn(c, d, generator=g, dtype=torch.float64)
    x = 0.4 + 0.01 * (centres[y] + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64))
    weight, bias = fit_linear_head(x, y, c, l2=1e-3)
    assert weight.shape == (c, d) and bias.shape == (c,)
    accuracy = ((x @ weight.T + bias).argmax(1) == y).double().mean().item()
    assert accuracy >= 0.95
    # a fresh Linear head trained the usual way has not left chance after as many Adam steps
    # as L-BFGS iterations: the reason this initialisation exists
    head = torch.nn.Linear(d, c).double()
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x), y).backward()
        opt.step()
    assert (head(x).argmax(1) == y).double().mean().item() < 0.7


def _config(task, head_init: str) -> FinetuneConfig:
    train, valid = task
    config = FinetuneConfig(
        manifest=str(train), valid=str(valid), train="head", head_init=head_init
    )
    config.optim.max_updates = 1
    config.optim.lr = 1e-12  # the update changes nothing: what is measured is the start
    config.data.max_tokens = 4 * 16000
    config.data.workers = 1
    config.run.device = "cpu"
    config.run.progress = False
    config.eval_every = 1
    return config


def test_probe_init_starts_fine_tuning_at_the_probe(tmp_path):
    torch.set_num_threads(1)
    task = (write_task(tmp_path, 8, 0, "train"), write_task(tmp_path, 4, 1, "valid"))
    probe = finetune(_config(task, "probe"), tmp_path / "probe", model=micro_model(0))
    assert probe.best_ua >= 0.9  # separable tones; chance is 1/3
    log = (tmp_path / "probe" / "train.log").read_text()
    assert "linear-probe init on 24 items" in log
    # the start's validation reuses the probe's predictions: they are the model's own
    first = json.loads((tmp_path / "probe" / "valid.jsonl").read_text().splitlines()[0])
    assert first["step"] == 0
    root = task[1].parent / "valid"
    names = [
        (label, root / f"{label}_{i}.wav") for label in ("high", "low", "mid") for i in range(4)
    ]
    preds = probe.model.predict([str(path) for _, path in names])
    ua = unweighted_accuracy([label for label, _ in names], [pr.label for pr in preds])
    assert first["valid_ua"] == ua

    plain = finetune(_config(task, "random"), tmp_path / "random", model=micro_model(0))
    assert "linear-probe init" not in (tmp_path / "random" / "train.log").read_text()
    w_probe = probe.model.head.linear.weight.detach()
    w_plain = plain.model.head.linear.weight.detach()
    assert not torch.allclose(w_probe, w_plain)
    assert np.isfinite(w_probe.numpy()).all()


def test_a_start_head_with_the_same_labels_is_kept(tmp_path):
    torch.set_num_threads(1)
    task = (write_task(tmp_path, 4, 0, "train"), write_task(tmp_path, 2, 1, "valid"))
    start = micro_model(0, labels=("high", "low", "mid"))
    before = start.head.linear.weight.detach().clone()
    result = finetune(_config(task, "probe"), tmp_path / "run", model=start)
    assert "linear-probe init" not in (tmp_path / "run" / "train.log").read_text()
    torch.testing.assert_close(result.model.head.linear.weight.detach(), before)
