"""End to end: `probe` and `plot` through the CLI's main on a fake corpus of tones with a
micro random model; report files, cache reuse across runs, baselines, conversation."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from eval_fakes import make_corpus, micro_model

from emotion2vec.cli import main
from emotion2vec.evaluate.folds import make_folds
from emotion2vec.evaluate.manifest import read_manifest


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    _, manifest = make_corpus(root / "corpus", speakers=4, per_class=2)
    model_dir = root / "model"
    micro_model(0).save_pretrained(model_dir)
    return {"root": root, "manifest": manifest, "model": model_dir, "cache": root / "cache"}


def cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def probe(setup, out, *extra):
    return cli(
        "probe",
        "--manifest",
        setup["manifest"],
        "--cache-dir",
        setup["cache"],
        "--output",
        out,
        "--quiet",
        *extra,
    )


def test_probe_paper_head_writes_reports_and_reuses_the_cache(setup, tmp_path):
    common = ("--model", setup["model"], "--protocol", "loso", "--epochs", "3")
    assert probe(setup, tmp_path / "one", *common) == 0
    out = tmp_path / "one"
    for name in ("results.json", "results.md", "confusion.png", "folds.json"):
        assert (out / name).is_file(), name
    assert (out / "confusion.png").stat().st_size > 5000
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == "leave_one_session_out" and doc["head"] == "paper"
    assert [f["name"] for f in doc["folds"]] == ["S0", "S1"]
    for fold in doc["folds"]:
        assert {"wa", "ua", "macro_f1", "weighted_f1", "confusion"} <= set(fold["metrics"])
        assert 0 <= fold["best_epoch"] < 3 and fold["n_test"] == 16
        assert len(fold["predictions"]) == len(fold["test_idx"]) == 16
    wa = [f["metrics"]["wa"] for f in doc["folds"]]
    assert doc["summary"]["wa"]["mean"] == pytest.approx(np.mean(wa))
    assert doc["summary"]["wa"]["std"] == pytest.approx(np.std(wa, ddof=1))
    assert np.array(doc["confusion"]).sum() == 32
    assert doc["labels"] == ["angry", "happy", "neutral", "sad"]
    assert doc["config"]["epochs"] == 3 and doc["config"]["optimizer"] == "rmsprop"
    assert doc["info"]["extracted"] == 32 and len(doc["info"]["model_fingerprint"]) == 64
    assert doc["info"]["features"]["granularity"] == "frame"
    assert doc["timing"]["total_seconds"] > 0
    table = (out / "results.md").read_text()
    assert "mean ± std" in table and "| S0 |" in table

    # same model and layer: nothing is extracted again, and the numbers are identical
    assert probe(setup, tmp_path / "two", *common) == 0
    again = json.loads((tmp_path / "two" / "results.json").read_text())
    assert again["info"]["extracted"] == 0 and again["info"]["reused_from_cache"] == 32
    assert again["summary"] == doc["summary"]


def test_probe_superb_and_logreg_heads(setup, tmp_path):
    rc = probe(
        setup, tmp_path / "s", "--model", setup["model"], "--protocol", "kfold:2",
        "--head", "superb", "--epochs", "2",
    )  # fmt: skip
    assert rc == 0
    doc = json.loads((tmp_path / "s" / "results.json").read_text())
    assert doc["protocol"] == "speaker_kfold" and doc["config"]["optimizer"] == "adam"
    weights = doc["folds"][0]["selected"]["layer_weights"]
    assert len(weights) == 4 and sum(weights) == pytest.approx(1.0)
    rc = probe(
        setup, tmp_path / "l", "--model", setup["model"], "--protocol", "lospk",
        "--head", "logreg", "--layer", "1",
    )  # fmt: skip
    assert rc == 0
    doc = json.loads((tmp_path / "l" / "results.json").read_text())
    assert len(doc["folds"]) == 4 and "C" in doc["folds"][0]["selected"]
    assert doc["info"]["features"]["layers"] == [1]


def test_logmel_baseline_separates_the_tones(setup, tmp_path):
    rc = probe(
        setup, tmp_path / "b", "--features", "logmel", "--protocol", "predefined",
        "--session-column", "speaker", "--head", "logreg", "--valid", "utterances",
    )  # fmt: skip
    assert rc == 0
    doc = json.loads((tmp_path / "b" / "results.json").read_text())
    assert doc["protocol"] == "predefined_folds" and len(doc["folds"]) == 4
    assert doc["summary"]["wa"]["mean"] > 0.9  # chance: 0.25
    assert doc["folds"][0]["valid_strategy"] == "utterances"


def test_conversation_task_runs_a_gru_over_previous_turns(setup, tmp_path):
    rc = probe(
        setup, tmp_path / "c", "--features", "logmel", "--protocol", "loso",
        "--task", "conversation", "--context", "3", "--epochs", "5",
    )  # fmt: skip
    assert rc == 0
    doc = json.loads((tmp_path / "c" / "results.json").read_text())
    assert doc["head"] == "gru" and doc["task"] == "conversation"
    assert doc["config"]["context"] == 3


def test_probe_errors_are_reported_not_raised(setup, tmp_path, capsys):
    assert probe(setup, tmp_path / "x", "--model", setup["model"], "--protocol", "bogus") == 2
    assert "unknown --protocol" in capsys.readouterr().err
    rc = probe(setup, tmp_path / "x", "--protocol", "loso", "--model", "m", "--features", "logmel")
    assert rc == 2 and "--model and --features" in capsys.readouterr().err


def test_make_folds_predefined_split_by_split_names(setup):
    items = read_manifest(setup["manifest"])
    for it in items:
        it.session = {"spk0": "train", "spk1": "train", "spk2": "dev", "spk3": "test"}[it.speaker]
    folds = make_folds(items, "predefined")
    assert len(folds) == 1 and folds[0].valid_strategy == "predefined"
    assert len(folds[0].test_idx) == 8


def test_plot_tsne_and_umap_fallback(setup, tmp_path, monkeypatch):
    import emotion2vec.evaluate.plots as plots

    args = ("plot", "--manifest", setup["manifest"], "--features", "logmel", "--quiet")
    assert (
        cli(*args, "--cache-dir", setup["cache"], "--out", tmp_path / "p", "--method", "tsne") == 0
    )
    png = tmp_path / "p" / "tsne.png"
    assert png.is_file() and png.stat().st_size > 20_000

    # umap-learn missing: falls back to t-SNE with a warning
    monkeypatch.setattr(plots, "umap_available", lambda: False)
    with pytest.warns(UserWarning, match="umap-learn"):
        drawn = plots.plot_embeddings(
            np.random.default_rng(0).normal(size=(12, 5)), ["angry", "sad"] * 6, tmp_path / "f",
            method="both",
        )  # fmt: skip
    assert list(drawn) == ["tsne"] and drawn["tsne"].is_file()


def test_plot_umap_path_with_a_stand_in_reducer(tmp_path, monkeypatch):
    # the real umap-learn JIT-compiles for ~30 s; its API is stood in for here
    import emotion2vec.evaluate.plots as plots

    class UMAP:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def fit_transform(self, x):
            return x[:, :2]

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=UMAP))
    labels = ["angry", "calm", "sad", "happy", "frustrated", "disgust"] * 3
    drawn = plots.plot_embeddings(
        np.random.default_rng(0).normal(size=(18, 4)), labels, tmp_path, method="umap"
    )
    assert drawn["umap"].name == "umap.png" and drawn["umap"].stat().st_size > 20_000


def test_arousal_groups():
    from emotion2vec.evaluate.plots import arousal_group

    assert [arousal_group(x) for x in ("Angry", "disgust", "surprised", "fear", "exc")] == [
        "high"
    ] * 5
    assert [arousal_group(x) for x in ("neutral", "calm", "sad", "boredom")] == ["low"] * 4
    assert arousal_group("frustrated") == "other" and arousal_group(None) == "other"
