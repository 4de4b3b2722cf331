"""Whole runs: learning, exact resume, checkpoints, collapse guard, bad files, start points."""

from __future__ import annotations

import json
import logging
import pickletools
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from official_layouts import save_fairseq_checkpoint, save_plus_folder
from pretrain_helpers import micro_model, micro_run_config, tone_wave, write_corpus
from safetensors.torch import load_file

import emotion2vec
from emotion2vec.errors import ConfigError
from emotion2vec.pretrain import CollapseError, PretrainConfig, pretrain, read_metrics
from emotion2vec.pretrain.start import load_start_model, prepare_model
from emotion2vec.training.checkpointing import latest_checkpoint, list_checkpoints


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_loss_decreases_on_a_tiny_overfit_problem(tmp_path):
    root = tmp_path / "c"
    write_corpus(root, [16000] * 2)
    cfg = micro_run_config([root], run__plot=True)
    cfg.data.max_tokens = 32000  # one batch of the two files
    cfg.optim.max_updates = 30
    cfg.optim.warmup_updates = 3
    cfg.run.save_every = 1000
    result = pretrain(cfg, tmp_path / "run", model=micro_model(0))
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 31))
    losses = [r["loss"] for r in records]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    utt = [r["utt_loss"] for r in records]
    assert np.mean(utt[-5:]) < np.mean(utt[:5])
    for key in (
        "frame_loss",
        "target_var",
        "pred_var",
        "ema_decay",
        "lr",
        "audio_seconds_per_second",
    ):
        assert all(isinstance(r[key], float) for r in records), key
    assert records[0]["ema_decay"] < records[-1]["ema_decay"] < 0.99999
    png = tmp_path / "run" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.finished and result.final == tmp_path / "run" / "final"


def test_exact_resume(tmp_path, corpus):
    cfg = micro_run_config([corpus])  # dropout and layer drop stay on
    cfg.optim.max_updates = 4
    straight = pretrain(cfg, tmp_path / "a", model=micro_model(0))
    assert straight.finished

    cfg.run.stop_after = 2
    first = pretrain(cfg, tmp_path / "b", model=micro_model(0))
    assert first.step == 2 and not first.finished and first.final is None
    assert not (tmp_path / "b" / "final").exists()
    cfg.run.stop_after = None
    with pytest.raises(ConfigError, match="--resume"):
        pretrain(cfg, tmp_path / "b", model=micro_model(0))
    resumed = pretrain(cfg, tmp_path / "b", resume=True)
    assert resumed.step == 4 and resumed.finished

    a, b = weights(tmp_path / "a" / "final"), weights(tmp_path / "b" / "final")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    state_a = torch.load(latest_checkpoint(tmp_path / "a") / "trainer_state.pt", weights_only=True)
    state_b = torch.load(latest_checkpoint(tmp_path / "b") / "trainer_state.pt", weights_only=True)
    for key, value in state_a["objective"]["teacher"].items():
        assert torch.equal(value, state_b["objective"]["teacher"][key]), key
    assert state_a["data_position"] == state_b["data_position"] == 4
    la = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl")]
    assert la == lb and len(la) == 4


def pickled_strings(path: Path) -> set[str]:
    """Every string in the pickle of a ``torch.save`` file, with the module of each class it
    references (``GLOBAL`` carries "module name")."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    strings = set()
    for op, arg, _ in pickletools.genops(data):
        if isinstance(arg, str):
            strings.update(arg.split(" ") if op.name == "GLOBAL" else [arg])
    return strings


def test_trainer_state_names_no_module_of_ours(tmp_path, corpus):
    # plain containers and tensors only: moving the engine's classes between modules (as
    # emotion2vec.pretrain -> emotion2vec.training did) can never break an older run's resume
    cfg = micro_run_config([corpus])
    cfg.optim.max_updates = 2
    pretrain(cfg, tmp_path / "run", model=micro_model(0))
    strings = pickled_strings(latest_checkpoint(tmp_path / "run") / "trainer_state.pt")
    assert "torch._utils" in strings  # the scan does see the pickle's module names
    assert not [s for s in strings if re.match(r"emotion2vec(\.|$)", s)]


def test_checkpoints_load_and_extract(tmp_path, corpus):
    cfg = micro_run_config([corpus])
    cfg.run.save_every = 1
    cfg.run.keep_last = 2
    pretrain(cfg, tmp_path / "run", model=micro_model(1))
    ckpts = list_checkpoints(tmp_path / "run")
    assert [s for s, _ in ckpts] == [3, 4]  # pruned to the last two
    pointer = (tmp_path / "run" / "checkpoints" / "last").read_text().strip()
    assert pointer == "step_0000004"
    state = torch.load(ckpts[-1][1] / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4 and "optimizer" in state and "rng" in state
    assert state["config"]["objective"]["clone_batch"] == 2
    for folder in (ckpts[-1][1], tmp_path / "run" / "final"):
        model = emotion2vec.load_model(folder)
        feats = model.extract(tone_wave(16000, 9), sample_rate=16000)
        assert feats.shape == (64,) and np.isfinite(feats).all()
        frames = model.extract(tone_wave(16000, 9), sample_rate=16000, granularity="frame")
        assert frames.shape == (49, 64)
    # the final model is the trained student: different from where it started
    start = micro_model(1).state_dict()
    final = weights(tmp_path / "run" / "final")
    assert not torch.equal(
        final["encoder.blocks.0.mlp.fc1.weight"], start["encoder.blocks.0.mlp.fc1.weight"]
    )


def test_collapse_guard_stops_with_a_clear_message(tmp_path, corpus):
    cfg = micro_run_config([corpus])
    cfg.objective.min_target_var = 100.0  # impossible: must trip as soon as it is checked
    cfg.objective.var_check_after = 2
    cfg.run.save_every = 1
    with pytest.raises(CollapseError, match="collapsed at update 3: target_var"):
        pretrain(cfg, tmp_path / "run", model=micro_model(0))
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [1, 2]
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]["step"] == 3


def test_bad_files_are_logged_and_skipped(tmp_path, caplog):
    root = tmp_path / "c"
    paths = write_corpus(root, [16000] * 4)
    (root / "garbage.wav").write_bytes(b"definitely not audio")
    cfg = micro_run_config([root])
    cfg.run.stop_after = 1
    with caplog.at_level(logging.WARNING, logger="emotion2vec.pretrain"):
        pretrain(cfg, tmp_path / "run", model=micro_model(0))
        assert "garbage.wav" in (tmp_path / "run" / "skipped_files.tsv").read_text()
        # a file that breaks after indexing fails at decode time: logged, skipped, not fatal
        with open(paths[0], "r+b") as f:
            f.write(b"JUNK")
        cfg.run.stop_after = None
        result = pretrain(cfg, tmp_path / "run", resume=True)
    assert result.finished
    assert "garbage.wav" in caplog.text and "failed to decode" in caplog.text
    assert str(paths[0]) in caplog.text


def test_start_points(tmp_path, caplog):
    # emotion2vec_base layout (fairseq file with the decoder): everything is carried over
    base = micro_model(0)
    save_fairseq_checkpoint(base, tmp_path / "base.pt")
    model = prepare_model(PretrainConfig(init=str(tmp_path / "base.pt")))
    for key, value in base.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    # a plus folder (no decoder, a head): fresh decoder, head kept
    plus = micro_model(1, decoder=False, labels=emotion2vec.EMOTION_LABELS)
    save_plus_folder(plus, tmp_path / "plus")
    with caplog.at_level(logging.INFO, logger="emotion2vec.pretrain"):
        model = prepare_model(PretrainConfig(init=str(tmp_path / "plus"), layerdrop=0.0))
    assert model.decoder is not None and model.head is not None
    assert torch.equal(model.head.linear.weight, plus.head.linear.weight)
    assert "created a fresh one" in caplog.text and "head" in caplog.text
    assert model.config.encoder.layerdrop == 0.0

    # a data2vec 2.0 layout (0 + 3 blocks, no extra tokens, an EMA entry): tokens are added
    d2v = micro_model(2, context_depth=0, depth=3)
    save_fairseq_checkpoint(d2v, tmp_path / "d2v.pt")
    ckpt = torch.load(tmp_path / "d2v.pt", weights_only=True)
    del ckpt["model"]["modality_encoders.AUDIO.extra_tokens"]
    ckpt["model"]["_ema"] = {"blocks.0.norm1.weight": torch.ones(64)}
    ckpt["cfg"]["model"]["modalities"]["audio"]["num_extra_tokens"] = 0
    torch.save(ckpt, tmp_path / "d2v.pt")
    model = load_start_model(tmp_path / "d2v.pt", extra_tokens=4, layout="keep").model
    assert model.config.encoder.num_extra_tokens == 4 and model.config.encoder.context_depth == 0
    assert torch.equal(model.encoder.blocks[2].mlp.fc2.weight, d2v.encoder.blocks[2].mlp.fc2.weight)
    assert "extra tokens" in caplog.text


def test_start_from_a_previous_run(tmp_path, corpus):
    cfg = micro_run_config([corpus])
    cfg.optim.max_updates = 2
    pretrain(cfg, tmp_path / "first", model=micro_model(0))
    model = load_start_model(tmp_path / "first").model
    expected = weights(tmp_path / "first" / "final")
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key])
    cfg2 = micro_run_config([corpus], init=str(tmp_path / "first"))
    cfg2.optim.max_updates = 1
    result = pretrain(cfg2, tmp_path / "second")
    assert result.finished


def test_cli(tmp_path, corpus, capsys):
    from emotion2vec.cli import main

    out = tmp_path / "run"
    micro_model(4).save_pretrained(tmp_path / "micro")
    common = ["--min-samples", "8000", "--max-samples", "16000", "--max-tokens", "48000"]
    argv = (
        ["pretrain", "--data", str(corpus), "--init", str(tmp_path / "micro"), "--out", str(out)]
        + ["--quiet"]
        + common
        + ["--clone-batch", "1", "--max-updates", "2", "--stop-after", "1", "--device", "cpu"]
        + ["--utterance-loss", "token", "--threads", "1", "--workers", "1", "--no-plot"]
    )
    assert main(argv) == 0
    stored = json.loads((out / "pretrain_config.json").read_text())
    assert stored["init"] == str(tmp_path / "micro")
    assert stored["objective"]["utterance_loss"] == "token"
    assert stored["data"]["paths"] == [str(corpus)]
    # resume reads the stored config; only the given options change
    assert main(["pretrain", "--output", str(out), "--resume", "--quiet", "--no-plot"]) == 0
    model = emotion2vec.load_model(out / "final")
    assert model.config.encoder.embed_dim == 64
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]
    assert main(["pretrain", "-o", str(out), "--plot-only", "--quiet"]) == 0
    assert (out / "loss.png").is_file()
    # usage errors are reported, not raised
    assert main(["pretrain", "--output", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--data is required" in capsys.readouterr().err
