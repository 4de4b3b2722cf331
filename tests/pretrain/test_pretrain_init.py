"""Starting from data2vec 2.0 as the authors did: block layouts and the EMA teacher."""

from __future__ import annotations

import pytest
import torch
from official_layouts import save_fairseq_checkpoint, to_official_state
from pretrain_helpers import micro_model

from emotion2vec.errors import CheckpointError
from emotion2vec.pretrain.config import MaskConfig, ObjectiveConfig, PretrainConfig
from emotion2vec.pretrain.objective import PretrainObjective
from emotion2vec.pretrain.start import load_start_model, prepare_start


def write_d2v2(tmp_path, depth=6, ema_encoder_only=False):
    """A data2vec 2.0 layout: 0 context + ``depth`` main blocks, no extra tokens, an _ema."""
    d2v = micro_model(2, context_depth=0, depth=depth)
    teacher = micro_model(3, context_depth=0, depth=depth)  # a different teacher
    path = tmp_path / "d2v.pt"
    save_fairseq_checkpoint(d2v, path)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model"]["modality_encoders.AUDIO.extra_tokens"]
    ema = {
        k: v
        for k, v in to_official_state(teacher, plus_layout=False).items()
        if "decoder" not in k
        and "local_encoder" not in k
        and "project_features" not in k
        and "extra_tokens" not in k
    }
    if ema_encoder_only:
        ema = {k[len("blocks.") :]: v for k, v in ema.items() if k.startswith("blocks.")}
    ckpt["model"]["_ema"] = ema
    ckpt["cfg"]["model"]["modalities"]["audio"]["num_extra_tokens"] = 0
    torch.save(ckpt, path)
    return path, d2v, teacher


def test_authors_layout_is_their_strict_false_load(tmp_path):
    path, d2v, teacher = write_d2v2(tmp_path, depth=6)
    start = load_start_model(path, extra_tokens=3, layout="authors", context_depth=2, depth=4)
    model = start.model
    enc = model.config.encoder
    assert (enc.context_depth, enc.depth, enc.num_extra_tokens) == (2, 4, 3)
    # blocks 0..3 of the checkpoint are the main blocks; blocks 4, 5 are dropped
    for i in range(4):
        for a, b in zip(
            model.encoder.blocks[i].parameters(), d2v.encoder.blocks[i].parameters(), strict=True
        ):
            assert torch.equal(a, b)
    # the context blocks are freshly initialised (not any checkpoint block)
    fresh = model.encoder.context_blocks[0].attn.qkv.weight
    assert all(not torch.equal(fresh, blk.attn.qkv.weight) for blk in d2v.encoder.blocks)
    assert 0.015 < float(fresh.detach().std()) < 0.025  # init_bert_params: N(0, 0.02)
    # everything else of the checkpoint is loaded
    assert torch.equal(
        model.encoder.positional_conv.convs[0].weight, d2v.encoder.positional_conv.convs[0].weight
    )
    assert torch.equal(model.decoder.proj.weight, d2v.decoder.proj.weight)
    # the teacher: the checkpoint's _ema, mapped the same way (main blocks 0..3, no context)
    t = start.teacher
    assert torch.equal(t["blocks.3.mlp.fc2.weight"], teacher.encoder.blocks[3].mlp.fc2.weight)
    assert "blocks.4.mlp.fc2.weight" not in t and not any(k.startswith("context_blocks") for k in t)
    assert torch.equal(
        t["positional_conv.convs.1.weight"], teacher.encoder.positional_conv.convs[1].weight
    )


def test_split_layout_puts_the_first_blocks_in_the_context_encoder(tmp_path):
    path, d2v, _ = write_d2v2(tmp_path, depth=6)
    model = load_start_model(path, extra_tokens=3, layout="split", context_depth=2, depth=4).model
    assert torch.equal(
        model.encoder.context_blocks[1].mlp.fc1.weight, d2v.encoder.blocks[1].mlp.fc1.weight
    )
    assert torch.equal(model.encoder.blocks[0].mlp.fc1.weight, d2v.encoder.blocks[2].mlp.fc1.weight)
    assert torch.equal(model.encoder.blocks[3].mlp.fc1.weight, d2v.encoder.blocks[5].mlp.fc1.weight)


def test_too_few_blocks_is_a_clear_error(tmp_path):
    path, _, _ = write_d2v2(tmp_path, depth=3)
    with pytest.raises(CheckpointError, match="too few blocks"):
        load_start_model(path, layout="authors", context_depth=2, depth=4)


@pytest.mark.parametrize("encoder_only", [False, True])
def test_teacher_starts_from_the_checkpoints_ema(tmp_path, encoder_only):
    path, d2v, teacher = write_d2v2(tmp_path, depth=6, ema_encoder_only=encoder_only)
    config = PretrainConfig(init=str(path))
    config.objective.extra_tokens_if_missing = 3
    config.objective.init_context_depth, config.objective.init_depth = 2, 4
    start = prepare_start(config)
    obj = PretrainObjective(start.model, MaskConfig(), ObjectiveConfig(), teacher=start.teacher)
    tenc, senc = obj.teacher.encoder, start.model.encoder
    assert torch.equal(tenc.blocks[2].attn.qkv.weight, teacher.encoder.blocks[2].attn.qkv.weight)
    assert not torch.equal(tenc.blocks[2].attn.qkv.weight, senc.blocks[2].attn.qkv.weight)
    # what the _ema lacks is the student's: context blocks, extra tokens
    assert torch.equal(
        tenc.context_blocks[0].attn.qkv.weight, senc.context_blocks[0].attn.qkv.weight
    )
    assert torch.equal(tenc.extra_tokens, senc.extra_tokens)
    if encoder_only:  # an encoder-only _ema has no positional conv: the student's
        assert torch.equal(
            tenc.positional_conv.convs[0].weight, senc.positional_conv.convs[0].weight
        )
    else:
        assert torch.equal(
            tenc.positional_conv.convs[0].weight, teacher.encoder.positional_conv.convs[0].weight
        )
    # switched off: the teacher copies the student
    config.objective.teacher_from_checkpoint = False
    start = prepare_start(config)
    assert start.teacher is None
