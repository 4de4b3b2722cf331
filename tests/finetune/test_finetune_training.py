"""Fine-tuning: learning, freezing, layer-wise decay, class weights, resume, early stop,
the output model folder and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from finetune_helpers import micro_model, write_task
from safetensors.torch import load_file

import emotion2vec
from emotion2vec.cli import main as cli_main
from emotion2vec.finetune import FinetuneConfig, FinetuneObjective, finetune, prepare_model
from emotion2vec.training.optim import set_lr

LABELS = ("high", "low", "mid")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    return write_task(root, 8, 0, "train"), write_task(root, 4, 1, "valid")


def _config(task, *, valid=True, updates=6, **fields) -> FinetuneConfig:
    train, val = task
    config = FinetuneConfig(manifest=str(train), valid=str(val) if valid else None, **fields)
    config.optim.max_updates = updates
    config.optim.lr = 1e-3
    config.data.max_tokens = 4 * 16000
    config.data.workers = 1
    config.run.device = "cpu"
    config.run.progress = False
    config.run.log_every = 1
    return config


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_learns_separable_task_and_output_loads(task, tmp_path):
    config = _config(task, updates=30, eval_every=10, patience=None)
    result = finetune(config, tmp_path / "run", model=micro_model(0))
    assert result.finished and not result.early_stopped and result.step == 30
    assert result.best_ua >= 0.8  # chance: 1/3
    model = emotion2vec.load_model(result.final)
    assert model.labels == LABELS and model.decoder is None
    _, val = task
    root = val.parent / "valid"
    preds = model.predict([str(root / f"{name}_{i}.wav") for name in LABELS for i in range(4)])
    assert {p.label for p in preds} <= set(LABELS)
    assert np.mean([p.label == n for p, n in zip(preds, np.repeat(LABELS, 4), strict=True)]) >= 0.8
    # final/ is the best checkpoint on the validation set
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    best = load_file(tmp_path / "run" / "best" / "model.safetensors")
    final = load_file(result.final / "model.safetensors")
    assert all(torch.equal(best[k], final[k]) for k in best)


def test_head_only_freezes_the_encoder(task, tmp_path):
    start = micro_model(1)
    before = _state(start)
    result = finetune(_config(task, valid=False, updates=3, train="head"), tmp_path, model=start)
    after = _state(result.model)
    for key, value in after.items():
        if key.startswith("encoder."):
            assert torch.equal(value, before[key]), key
    assert not torch.equal(
        after["head.linear.weight"], prepare_model(start, LABELS, 0.0).head.linear.weight
    )
    assert not any(p.requires_grad for p in result.model.encoder.parameters())


def test_top_n_trains_only_those_blocks(task, tmp_path):
    start = micro_model(2)
    before = _state(start)
    config = _config(task, valid=False, updates=3, train="top", top_blocks=1)
    after = _state(finetune(config, tmp_path, model=start).model)
    changed = {k for k, v in after.items() if k in before and not torch.equal(v, before[k])}
    assert changed and all(k.startswith("encoder.blocks.1.") for k in changed), changed
    trained = {k.rsplit(".", 1)[0] for k in changed}
    assert "encoder.blocks.1.attn.qkv" in trained


def test_all_freezes_cnn_by_default(task, tmp_path):
    start = micro_model(3)
    before = _state(start)
    after = _state(finetune(_config(task, valid=False, updates=2), tmp_path, model=start).model)
    cnn = [k for k in before if k.startswith("encoder.feature_extractor.")]
    assert cnn and all(torch.equal(after[k], before[k]) for k in cnn)
    assert not torch.equal(
        after["encoder.blocks.0.attn.qkv.weight"], before["encoder.blocks.0.attn.qkv.weight"]
    )


def test_layer_wise_lr_decay_groups(task):
    model = prepare_model(micro_model(0), LABELS, 0.0)
    config = _config(task, layer_decay=0.5, head_lr_scale=2.0, freeze_cnn=False)
    objective = FinetuneObjective(model, config, class_counts=np.array([8, 8, 8]))
    optimizer = objective.build_optimizer(config.optim)
    set_lr(optimizer, 1.0)
    # layers: 0 embeddings, 1 context block, 2..3 main blocks, 4 head (L = 3)
    expected = {0: 0.5**4, 1: 0.5**3, 2: 0.5**2, 3: 0.5, 4: 2.0}
    seen = {}
    ids = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(expected[group["layer"]])
        names = [ids[id(p)] for p in group["params"]]
        seen.setdefault(group["layer"], []).extend(names)
        if group["weight_decay"] == 0.0:
            assert all(model.get_parameter(n).ndim <= 1 for n in names)
    assert any(n.startswith("encoder.feature_extractor.") for n in seen[0])
    assert "encoder.extra_tokens" in seen[0] and "encoder.alibi_scale" in seen[0]
    assert all(n.startswith("encoder.context_blocks.0.") for n in seen[1])
    assert all(n.startswith("encoder.blocks.1.") for n in seen[3])
    assert all(n.startswith("head.") for n in seen[4])
    assert sum(len(v) for v in seen.values()) == len(list(model.parameters()))


def test_class_weights_inverse_frequency(task):
    model = prepare_model(micro_model(0), ("a", "b"), 0.0)
    config = _config(task, class_weights=True, labels=("a", "b"))
    objective = FinetuneObjective(model, config, class_counts=np.array([10, 30]))
    assert objective.class_weight.tolist() == pytest.approx([2.0, 2.0 / 3.0])


def test_resume_continues_exactly(task, tmp_path):
    config = _config(task, valid=True, updates=6, eval_every=2, patience=None)
    config.run.save_every = 2
    whole = finetune(config, tmp_path / "whole", model=micro_model(4))
    config.run.stop_after = 3
    part = finetune(config, tmp_path / "part", model=micro_model(4))
    assert not part.finished and part.step == 3
    config.run.stop_after = None
    resumed = finetune(config, tmp_path / "part", resume=True)
    assert resumed.finished and resumed.step == 6
    a, b = _state(whole.model), _state(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.best_ua == whole.best_ua and resumed.best_step == whole.best_step


def test_early_stopping(task, tmp_path):
    # min_delta 1: only the first evaluation (of the start model, before any update) can
    # improve, so patience 2 stops at update 2 and the start model is the result
    config = _config(task, updates=50, eval_every=1, patience=2, min_delta=1.0)
    result = finetune(config, tmp_path, model=micro_model(5))
    assert result.early_stopped and result.finished and result.step == 2
    assert result.best_step == 0 and result.final is not None
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "valid.jsonl").read_text().splitlines()
    ]
    assert steps == [0, 1, 2]
    best = load_file(tmp_path / "best" / "model.safetensors")
    final = load_file(result.final / "model.safetensors")
    assert all(torch.equal(best[k], final[k]) for k in best)


def test_cli_finetune(task, tmp_path):
    micro_model(6).save_pretrained(tmp_path / "start")
    train, val = task
    args = ["finetune", "--manifest", str(train), "--valid", str(val), "--model"]
    args += [str(tmp_path / "start"), "--out", str(tmp_path / "run"), "--labels", "low,high"]
    args += ["--max-updates", "2", "--eval-every", "1", "--device", "cpu", "--quiet"]
    assert cli_main(args) == 0
    model = emotion2vec.load_model(tmp_path / "run" / "final")
    assert model.labels == ("low", "high")
