"""Tests of emotion2vec.checkpoints.hub: published names resolved through a Hugging Face cache
built in tmp_path. The hub is forced offline, so no test touches the network."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest
import torch

import emotion2vec
from emotion2vec.checkpoints import hub
from emotion2vec.errors import CheckpointError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Hub offline (the env var and the constant huggingface_hub read from it at import), an
    empty default cache, and a working directory without model folders."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    empty = tmp_path / "empty_cache"
    empty.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(empty))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(empty))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


@pytest.fixture
def no_modelscope(monkeypatch):
    """Behave as if the optional 'modelscope' package were not installed."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "modelscope" or name.startswith("modelscope."):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def build_cache(root: Path, source: Path, name: str = "emotion2vec_plus_base") -> Path:
    """A Hugging Face hub cache holding ``source``'s files as emotion2vec/<name> at COMMIT."""
    repo = root / f"models--emotion2vec--{name}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for f in ("model.pt", "config.yaml", "tokens.txt"):
        shutil.copy(source / f, snapshot / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    return snapshot


def frames_of(model) -> torch.Tensor:
    x = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(x)[0].frames


# ------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("emotion2vec_base", ("hf", "emotion2vec/emotion2vec_base")),
        ("emotion2vec_plus_seed", ("hf", "emotion2vec/emotion2vec_plus_seed")),
        ("emotion2vec_plus_base", ("hf", "emotion2vec/emotion2vec_plus_base")),
        ("emotion2vec_plus_large", ("hf", "emotion2vec/emotion2vec_plus_large")),
        ("emotion2vec/emotion2vec_plus_large", ("hf", "emotion2vec/emotion2vec_plus_large")),
        ("iic/emotion2vec_plus_large", ("ms", "iic/emotion2vec_plus_large")),
        ("iic/emotion2vec_base", ("ms", "iic/emotion2vec_base")),
        ("emotion2vec_plus_huge", None),
        ("someone/emotion2vec_plus_base", None),
        ("iic/emotion2vec_plus", None),
        ("", None),
    ],
)
def test_split_name(name, expected):
    assert hub.split_name(name) == expected


# ------------------------------------------------------------------------------------------
# Resolving from the cache
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_base"])
def test_resolve_from_cache_dir(tmp_path, fixture_dir, name):
    cache = tmp_path / "hub"
    snapshot = build_cache(cache, fixture_dir / "plus")
    assert hub.resolve(name, cache_dir=cache) == snapshot
    assert hub.resolve(name, cache_dir=cache, local_files_only=True) == snapshot
    assert hub.resolve(name, cache_dir=cache, revision=COMMIT) == snapshot


def test_load_model_by_name_from_cache_dir(tmp_path, fixture_dir):
    cache = tmp_path / "hub"
    build_cache(cache, fixture_dir / "plus")
    model = emotion2vec.load_model("emotion2vec_plus_base", cache_dir=cache)
    ref = emotion2vec.load_model(fixture_dir / "plus")
    assert not model.training
    assert model.labels == ref.labels and model.config == ref.config
    assert torch.equal(frames_of(model), frames_of(ref))
    again = emotion2vec.load_model(
        "emotion2vec/emotion2vec_plus_base", cache_dir=cache, local_files_only=True
    )
    assert torch.equal(frames_of(again), frames_of(ref))


def test_load_model_by_name_from_hf_hub_cache_env(tmp_path, fixture_dir, monkeypatch):
    cache = tmp_path / "env_hub"
    build_cache(cache, fixture_dir / "plus")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    model = emotion2vec.load_model("emotion2vec_plus_base")
    ref = emotion2vec.load_model(fixture_dir / "plus")
    assert torch.equal(frames_of(model), frames_of(ref))


def test_other_model_is_not_picked_up(tmp_path, fixture_dir, no_modelscope):
    """A cached plus_base does not satisfy a request for plus_large."""
    cache = tmp_path / "hub"
    build_cache(cache, fixture_dir / "plus")
    with pytest.raises(CheckpointError, match="emotion2vec_plus_large"):
        emotion2vec.load_model("emotion2vec_plus_large", cache_dir=cache)


def test_local_folder_takes_precedence_over_a_name(tmp_path, fixture_dir, monkeypatch):
    """An existing path is loaded as a path even if it is spelled like a published name."""
    shutil.copytree(fixture_dir / "plus", Path.cwd() / "emotion2vec_plus_large")
    model = emotion2vec.load_model("emotion2vec_plus_large")
    assert model.config.encoder.embed_dim == 64


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("local_files_only", [False, True])
def test_offline_without_cache_says_how_to_pass_a_folder(tmp_path, no_modelscope, local_files_only):
    with pytest.raises(CheckpointError) as info:
        emotion2vec.load_model(
            "emotion2vec_plus_base",
            cache_dir=tmp_path / "nothing",
            local_files_only=local_files_only,
        )
    msg = str(info.value)
    assert "emotion2vec_plus_base" in msg
    assert "Hugging Face emotion2vec/emotion2vec_plus_base" in msg
    assert "emotion2vec.load_model('path/to/emotion2vec_plus_base')" in msg
    assert "--local-dir" in msg


def test_offline_error_from_resolve(tmp_path, no_modelscope):
    with pytest.raises(CheckpointError, match=r"load_model\('path/to/emotion2vec_base'\)"):
        hub.resolve("emotion2vec_base", cache_dir=tmp_path / "nothing")


def test_iic_name_without_modelscope(tmp_path, no_modelscope):
    with pytest.raises(CheckpointError) as info:
        emotion2vec.load_model("iic/emotion2vec_plus_large", cache_dir=tmp_path / "nothing")
    msg = str(info.value)
    assert "'modelscope' package is not installed" in msg
    assert "pip install modelscope" in msg
    assert "iic/emotion2vec_plus_large" in msg


def test_iic_name_local_only_with_modelscope_installed(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: object() if name == "modelscope" else real(name, *a, **k),
    )
    with pytest.raises(CheckpointError) as info:
        hub.resolve("iic/emotion2vec_plus_large", cache_dir=tmp_path, local_files_only=True)
    assert "not installed" not in str(info.value)


@pytest.mark.parametrize("name", ["emotion2vec_plus_huge", "emotion2vec/whatever", "iic/nope"])
def test_unknown_names(name):
    with pytest.raises(CheckpointError) as info:
        emotion2vec.load_model(name)
    msg = str(info.value)
    assert name in msg
    assert "not a published model" in msg
    for published in hub.PUBLISHED_MODELS:
        assert published in msg
    with pytest.raises(CheckpointError, match="neither a local path nor a published model"):
        hub.resolve(name)
