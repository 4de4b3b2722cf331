"""The objective-agnostic engine: a toy objective, data order, schedule, optimizer groups."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from emotion2vec.training import OptimConfig, RunConfig, StepOutput, Trainer, read_metrics
from emotion2vec.training.optim import build_optimizer, no_weight_decay
from emotion2vec.training.schedule import lr_at
from emotion2vec.training.trainer import micro_batch_indices


@dataclass
class ToyBatch:
    index: int
    x: torch.Tensor
    y: torch.Tensor
    audio_seconds: float = 1.0

    def to(self, device):
        return ToyBatch(self.index, self.x.to(device), self.y.to(device))


class ToySource:
    """Linear-regression batches, a pure function of their number."""

    def __init__(self):
        self.weight = torch.tensor([[2.0, -1.0, 0.5]])
        self.seen: list[int] = []

    def iterate(self, indices):
        for i in indices:
            self.seen.append(i)
            g = torch.Generator().manual_seed(i)
            x = torch.randn(16, 3, generator=g)
            yield ToyBatch(i, x, x @ self.weight.T)

    def epoch_of(self, index):
        return index / 10


class ToyObjective:
    stat_names = ("mse",)

    def __init__(self):
        torch.manual_seed(0)
        self.module = nn.Linear(3, 1)
        self.updates = []

    def to(self, device):
        self.module.to(device)

    def step(self, module, batch):
        err = ((module(batch.x) - batch.y) ** 2).sum()
        return StepOutput(err, float(batch.x.shape[0]), {"mse": (err.detach(), batch.x.shape[0])})

    def after_update(self, step):
        self.updates.append(step)
        return {"custom": float(step)}

    def check(self, stats, step):
        assert math.isfinite(stats["mse"])

    def state_dict(self):
        return {"updates": list(self.updates)}

    def load_state_dict(self, state):
        self.updates = list(state["updates"])

    def save_model(self, directory):
        torch.save(self.module.state_dict(), directory / "toy.pt")


def test_engine_trains_any_objective(tmp_path):
    objective, source = ToyObjective(), ToySource()
    optim = OptimConfig(lr=0.1, weight_decay=0.0, max_updates=60, warmup_updates=2, update_freq=2)
    run = RunConfig(device="cpu", log_every=10, save_every=30, progress=False)
    result = Trainer(objective, source, optim=optim, run=run, run_dir=tmp_path).fit()
    assert result.finished and result.step == 60 and result.data_position == 120
    assert objective.updates == list(range(1, 61))
    assert source.seen[:120] == list(range(120))  # prefetch may read ahead, never skips
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50, 60]
    assert records[-1]["mse"] < 0.02 * records[0]["mse"] and records[-1]["custom"] == 60.0
    torch.testing.assert_close(objective.module.weight.detach(), source.weight, atol=0.1, rtol=0)
    assert (tmp_path / "final" / "toy.pt").is_file()
    assert (tmp_path / "checkpoints" / "step_0000030" / "trainer_state.pt").is_file()


def test_micro_batch_indices_partition_the_stream():
    def take(rank, world, freq, n):
        return list(itertools.islice(micro_batch_indices(10, rank, world, freq), n))

    assert take(0, 1, 2, 6) == [10, 11, 12, 13, 14, 15]
    r0, r1 = take(0, 2, 2, 4), take(1, 2, 2, 4)
    assert r0 == [10, 12, 14, 16] and r1 == [11, 13, 15, 17]
    # per update, two ranks x one step read what one rank x two steps reads
    assert sorted(take(0, 2, 1, 3) + take(1, 2, 1, 3)) == take(0, 1, 2, 6)


def test_warmup_cosine_schedule():
    # fairseq's stepping: update k runs at the schedule of k - 1 completed updates
    cfg = OptimConfig(lr=1e-3, max_updates=100, warmup_fraction=0.1, final_lr_ratio=0.0)
    assert lr_at(1, cfg) == 0.0
    assert lr_at(2, cfg) == pytest.approx(1e-4)
    assert lr_at(11, cfg) == pytest.approx(1e-3)
    assert lr_at(56, cfg) == pytest.approx(5e-4)
    assert lr_at(101, cfg) == pytest.approx(0.0, abs=1e-12)
    values = [lr_at(u, cfg) for u in range(11, 102)]
    assert values == sorted(values, reverse=True)
    assert lr_at(51, OptimConfig(lr=1.0, max_updates=100, warmup_updates=0)) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.5))
    )


def test_no_weight_decay_on_biases_norms_and_alibi_scale():
    from pretrain_helpers import micro_model

    model = micro_model(0)
    opt = build_optimizer(model, OptimConfig(weight_decay=0.01, decay_all=False))
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 0.01
    assert opt.param_groups[1]["weight_decay"] == 0.0
    for name, p in model.named_parameters():
        exempt = name.endswith(".bias") or "norm" in name or "alibi_scale" in name
        assert (id(p) not in decayed) == exempt, name
        assert no_weight_decay(name, p) == exempt


def test_the_runs_adam_decays_every_parameter():
    from pretrain_helpers import micro_model

    model = micro_model(0)
    opt = build_optimizer(model, OptimConfig(weight_decay=0.01))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.01
    assert {id(p) for p in opt.param_groups[0]["params"]} == {
        id(p) for p in model.parameters() if p.requires_grad
    }
