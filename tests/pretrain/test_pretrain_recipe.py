"""The authors' run as our defaults: every row of recipe.AUTHORS_RUN against the configs, the
presets and the table in docs/pretraining.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotion2vec.config import preset
from emotion2vec.errors import ConfigError
from emotion2vec.pretrain import PretrainConfig
from emotion2vec.pretrain.recipe import (
    AUTHORS_RUN,
    lookup,
    recipe_config,
    recipe_table_markdown,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pretraining.md"


@pytest.mark.parametrize("row", AUTHORS_RUN, ids=[r.field for r in AUTHORS_RUN])
def test_every_default_is_the_runs_or_says_why_not(row):
    value = lookup(PretrainConfig(), row.field, preset("emotion2vec_base"))
    assert value == row.default
    if row.ours is not None:
        assert row.ours != row.value and row.why, row.field


@pytest.mark.parametrize("row", AUTHORS_RUN, ids=[r.field for r in AUTHORS_RUN])
def test_the_base_preset_is_the_full_scale_run(row):
    value = lookup(recipe_config("base"), row.field, preset("emotion2vec_base"))
    assert value == row.value


def test_the_tiny_preset_keeps_the_nature_of_the_run():
    tiny, base = recipe_config("tiny"), recipe_config("base")
    assert tiny.preset == "tiny"
    scaled = {
        "data.max_tokens",
        "optim.lr",
        "optim.max_updates",
        "optim.update_freq",
        "objective.ema_decay",
        "objective.ema_end_decay",
        "objective.ema_anneal_end_step",
        "objective.var_check_after",
        "model.decoder.dim",  # a smaller model: its width, not the recipe
    }
    model = preset("tiny")
    for row in AUTHORS_RUN:
        if row.field in scaled:
            continue
        assert lookup(tiny, row.field, model) == lookup(
            base, row.field, preset("emotion2vec_base")
        ), row.field
    # the schedule keeps its proportions
    assert tiny.objective.ema_anneal_end_step / tiny.optim.max_updates == pytest.approx(
        0.2, abs=0.01
    )
    assert tiny.optim.warmup_fraction == base.optim.warmup_fraction


def test_unknown_preset_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        recipe_config("huge")
    assert recipe_config("emotion2vec_plus_large").preset == "emotion2vec_plus_large"


def test_docs_open_with_the_recipe_table():
    text = DOCS.read_text(encoding="utf-8")
    table = recipe_table_markdown()
    assert table in text
    # the table comes before any other section of the page
    assert text.index(table) < text.index("\n## Commands")
    assert "never released" not in text


def test_cli_preset_starts_from_the_recipe(tmp_path):
    import argparse

    from emotion2vec.cli.train import configure_pretrain
    from emotion2vec.cli.train import pretrain_config as build_config

    parser = configure_pretrain(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--data", "x", "--output", str(tmp_path), "--preset", "tiny", "--lr", "1e-3"]
    )
    config = build_config(args)
    assert (
        config.preset == "tiny" and config.data.max_tokens == recipe_config("tiny").data.max_tokens
    )
    assert config.optim.lr == 1e-3  # options override the preset
    args = parser.parse_args(["--data", "x", "--output", str(tmp_path)])
    assert build_config(args).optim.clip_norm == 0.0
