"""Tests of emotion2vec.checkpoints: official fairseq / FunASR layouts, our safetensors format,
strict loading, safe unpickling, config inference and label files."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from official_layouts import save_fairseq_checkpoint, save_plus_folder, to_official_state
from safetensors.torch import load_file, save_file

import emotion2vec
from emotion2vec import Emotion2vecModel
from emotion2vec.audio import normalize_waveform
from emotion2vec.checkpoints import keymap, native, official
from emotion2vec.checkpoints.official import (
    OFFICIAL_TOKENS,
    config_from_official,
    parse_conv_spec,
    read_tokens,
    strip_plus_prefix,
)
from emotion2vec.checkpoints.safe_load import load_pt
from emotion2vec.config import (
    EMOTION_LABELS,
    OFFICIAL_CONV_LAYERS,
    emotion2vec_base,
    emotion2vec_plus_base,
    emotion2vec_plus_large,
)
from emotion2vec.errors import CheckpointError

AUDIO = "modality_encoders.AUDIO."
PLUS = "d2v_model."


def outputs(model: Emotion2vecModel, seed: int = 0) -> list[torch.Tensor]:
    """Frames, embedding and (if any) logits of a fixed 0.7 s input, plus the decoder output."""
    gen = torch.Generator().manual_seed(seed)
    x = normalize_waveform(torch.randn(11200, generator=gen) * 0.2)[None]
    with torch.no_grad():
        out, emb, logits = model(x)
        result = [out.frames, out.extra_tokens, emb]
        if logits is not None:
            result.append(logits)
        if model.decoder is not None:
            result.append(model.decoder(out.frames))
    return result


def assert_identical(a: Emotion2vecModel, b: Emotion2vecModel) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k
    for x, y in zip(outputs(a), outputs(b), strict=True):
        assert torch.equal(x, y)


def edit_state(path: Path, fn) -> None:
    """Load an official .pt, let ``fn`` edit its ``model`` dict in place, save it back."""
    ckpt = torch.load(path, weights_only=True)
    fn(ckpt["model"])
    torch.save(ckpt, path)


def error_of(path) -> str:
    with pytest.raises(CheckpointError) as info:
        emotion2vec.load_model(path)
    return str(info.value)


# ------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------


def test_fairseq_round_trip(base_model, tmp_path):
    path = tmp_path / "emotion2vec_base.pt"
    save_fairseq_checkpoint(base_model, path)
    ckpt = torch.load(path, weights_only=True)  # plain containers only
    assert ckpt["cfg"]["model"]["_name"] == "data2vec_multi"
    assert ckpt["cfg"]["task"]["normalize"] is True
    assert not any(k.startswith(PLUS) for k in ckpt["model"])
    loaded = emotion2vec.load_model(path)
    assert not loaded.training
    assert loaded.config == base_model.config
    assert_identical(loaded, base_model)


def test_fairseq_round_trip_with_head(make_model, tmp_path):
    model = make_model(30, labels=EMOTION_LABELS, decoder=True)
    path = tmp_path / "m.pt"
    save_fairseq_checkpoint(model, path)
    assert "proj.weight" in torch.load(path, weights_only=True)["model"]
    loaded = emotion2vec.load_model(path)
    assert loaded.config == model.config
    assert_identical(loaded, model)


def test_plus_folder_round_trip(plus_model, tmp_path):
    folder = tmp_path / "plus"
    save_plus_folder(plus_model, folder)
    assert {p.name for p in folder.iterdir()} == {"model.pt", "config.yaml", "tokens.txt"}
    state = torch.load(folder / "model.pt", weights_only=True)["model"]
    assert all(k.startswith(PLUS) or k.startswith("proj.") for k in state)
    assert {k for k in state if k.startswith("proj.")} == {"proj.weight", "proj.bias"}
    assert (folder / "tokens.txt").read_text(encoding="utf-8").splitlines() == list(OFFICIAL_TOKENS)
    for target in (folder, folder / "model.pt"):
        loaded = emotion2vec.load_model(target)
        assert loaded.config == plus_model.config
        assert loaded.labels == EMOTION_LABELS
        assert_identical(loaded, plus_model)


def test_plus_folder_drops_the_decoder(make_model, tmp_path):
    model = make_model(31, decoder=True)
    save_plus_folder(model, tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)["model"]
    assert not any(".decoder." in k for k in state)
    loaded = emotion2vec.load_model(tmp_path)
    assert loaded.decoder is None and loaded.config.decoder is None
    assert loaded.config.encoder == model.config.encoder
    for x, y in zip(outputs(loaded)[:4], outputs(model)[:4], strict=True):
        assert torch.equal(x, y)


def test_plus_folder_custom_labels(make_model, tmp_path):
    labels = ("calm", "excited", "unknown")
    model = make_model(32, labels=labels, decoder=False)
    save_plus_folder(model, tmp_path)
    assert (tmp_path / "tokens.txt").read_text(encoding="utf-8").split() == [
        "calm",
        "excited",
        "<unk>",
    ]
    loaded = emotion2vec.load_model(tmp_path)
    assert loaded.labels == labels
    assert_identical(loaded, model)


def test_native_round_trip(make_model, tmp_path):
    model = make_model(33, labels=("a", "b"), decoder=True, dropout=0.2)
    folder = tmp_path / "native"
    model.save_pretrained(folder)
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "config.json"}
    doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert doc["format"] == "emotion2vec" and doc["model"]["encoder"]["dropout"] == 0.2
    assert set(load_file(folder / "model.safetensors")) == set(model.state_dict())
    for target in (folder, folder / "model.safetensors", folder / "config.json"):
        loaded = emotion2vec.load_model(target)
        assert loaded.config == model.config
        assert_identical(loaded, model)
    loaded = Emotion2vecModel.from_pretrained(folder)
    assert_identical(loaded, model)


def test_native_save_overwrites_and_leaves_no_temp_files(plus_model, make_model, tmp_path):
    native.save_pretrained(make_model(34, decoder=False), tmp_path)
    native.save_pretrained(plus_model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert_identical(emotion2vec.load_model(tmp_path), plus_model)


def test_conversion_chain_is_lossless(base_model, tmp_path):
    """fairseq -> ours -> native -> ours -> fairseq gives the same tensors."""
    save_fairseq_checkpoint(base_model, tmp_path / "a.pt")
    emotion2vec.load_model(tmp_path / "a.pt").save_pretrained(tmp_path / "native")
    save_fairseq_checkpoint(emotion2vec.load_model(tmp_path / "native"), tmp_path / "b.pt")
    a = torch.load(tmp_path / "a.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------
# Official layouts: key counts and shapes (full-size presets on the meta device)
# ------------------------------------------------------------------------------------------


def meta_state(config, *, plus_layout: bool) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = Emotion2vecModel(config)
    return to_official_state(model, plus_layout=plus_layout)


def test_base_layout_has_193_tensors():
    state = meta_state(emotion2vec_base(), plus_layout=False)
    assert len(state) == 193
    decoder = [k for k in state if k.startswith(AUDIO + "decoder.")]
    assert len(decoder) == 10
    assert len(state) - len(decoder) == 183
    assert not any(k.startswith(PLUS) or k.startswith("proj.") for k in state)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes[AUDIO + "extra_tokens"] == (1, 10, 768)
    assert shapes[AUDIO + "alibi_scale"] == (1, 1, 12, 1, 1)
    assert shapes[AUDIO + "local_encoder.conv_layers.0.0.weight"] == (512, 1, 10)
    assert shapes[AUDIO + "local_encoder.conv_layers.6.0.weight"] == (512, 512, 2)
    assert shapes[AUDIO + "local_encoder.conv_layers.3.2.1.weight"] == (512,)
    assert shapes[AUDIO + "project_features.1.weight"] == (512,)
    assert shapes[AUDIO + "project_features.2.weight"] == (768, 512)
    for i in range(1, 6):
        assert shapes[AUDIO + f"relative_positional_encoder.{i}.0.weight"] == (768, 48, 19)
        assert shapes[AUDIO + f"relative_positional_encoder.{i}.0.bias"] == (768,)
    assert AUDIO + "relative_positional_encoder.0.0.weight" not in shapes
    assert shapes[AUDIO + "context_encoder.norm.weight"] == (768,)
    assert shapes[AUDIO + "context_encoder.blocks.3.attn.qkv.weight"] == (2304, 768)
    assert shapes[AUDIO + "decoder.blocks.0.0.weight"] == (384, 48, 7)
    for i in (1, 2, 3):
        assert shapes[AUDIO + f"decoder.blocks.{i}.0.weight"] == (384, 24, 7)
    assert shapes[AUDIO + "decoder.proj.weight"] == (768, 384)
    assert shapes["blocks.7.mlp.fc1.weight"] == (3072, 768)
    assert shapes["blocks.7.mlp.fc2.weight"] == (768, 3072)
    assert "blocks.8.norm1.weight" not in shapes
    # conv layers: weight + LN weight/bias each, no conv bias
    conv = [k for k in state if ".local_encoder." in k]
    assert len(conv) == 21 and not any(k.endswith(".0.bias") for k in conv)


def test_plus_large_layout_has_185_tensors():
    state = meta_state(emotion2vec_plus_large(), plus_layout=True)
    assert len(state) == 185
    head = [k for k in state if k.startswith("proj.")]
    assert sorted(head) == ["proj.bias", "proj.weight"]
    backbone = [k for k in state if k.startswith(PLUS)]
    assert len(backbone) == 183 and len(backbone) + len(head) == len(state)
    assert not any(".decoder." in k for k in state)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes[PLUS + "blocks.7.attn.qkv.weight"] == (3072, 1024)
    assert shapes[PLUS + AUDIO + "relative_positional_encoder.5.0.weight"] == (1024, 64, 19)
    assert shapes[PLUS + AUDIO + "extra_tokens"] == (1, 10, 1024)
    assert shapes[PLUS + AUDIO + "alibi_scale"] == (1, 1, 16, 1, 1)
    assert shapes[PLUS + AUDIO + "project_features.2.weight"] == (1024, 512)
    assert shapes["proj.weight"] == (9, 1024)


def test_plus_base_layout():
    state = meta_state(emotion2vec_plus_base(), plus_layout=True)
    assert len(state) == 185
    base = meta_state(emotion2vec_base(), plus_layout=False)
    stripped = strip_plus_prefix(state)
    assert set(stripped) - {"proj.weight", "proj.bias"} == {
        k for k in base if not k.startswith(AUDIO + "decoder.")
    }


def test_keymap_is_a_bijection_on_every_parameter(make_model):
    with torch.device("meta"):
        big = Emotion2vecModel(emotion2vec_base())
        large = Emotion2vecModel(emotion2vec_plus_large())
    for model in (make_model(), big, large):
        seen = set()
        for key in model.state_dict():
            off = keymap.ours_to_official(key)
            assert off is not None, key
            assert keymap.official_to_ours(off) == key
            seen.add(off)
        assert len(seen) == len(model.state_dict())
    assert keymap.official_to_ours("blocks.0.attn.qkv.weightx") is None
    assert keymap.official_to_ours(AUDIO + "relative_positional_encoder.0.0.weight") is None
    assert keymap.official_to_ours("foo") is None


def test_parse_conv_spec():
    spec = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"
    assert parse_conv_spec(spec) == OFFICIAL_CONV_LAYERS
    assert parse_conv_spec([[8, 3, 2]]) == ((8, 3, 2),)
    with pytest.raises(CheckpointError, match="unsupported expression"):
        parse_conv_spec("__import__('os').getcwd()")
    with pytest.raises(CheckpointError, match="cannot parse"):
        parse_conv_spec("[(1, 2, 3)")


# ------------------------------------------------------------------------------------------
# Config inference and old layouts
# ------------------------------------------------------------------------------------------


def test_config_inferred_without_cfg(fixture_dir, tmp_path):
    with_cfg = emotion2vec.load_model(fixture_dir / "emotion2vec_base.pt")
    ckpt = torch.load(fixture_dir / "emotion2vec_base.pt", weights_only=True)
    del ckpt["cfg"]
    path = tmp_path / "nocfg.pt"  # no config.yaml next to it either
    torch.save(ckpt, path)
    inferred = emotion2vec.load_model(path)
    a, b = inferred.config.encoder, with_cfg.config.encoder
    dims = (
        "conv_layers",
        "embed_dim",
        "num_heads",
        "mlp_ratio",
        "context_depth",
        "depth",
        "pos_conv_kernel",
        "pos_conv_layers",
        "pos_conv_groups",
        "num_extra_tokens",
        "norm_eps",
    )
    for name in dims:
        assert getattr(a, name) == getattr(b, name), name
    assert (a.embed_dim, a.num_heads, a.context_depth, a.depth) == (64, 4, 1, 2)
    assert inferred.config.decoder == with_cfg.config.decoder
    assert inferred.config.decoder.dim == 32 and inferred.config.decoder.groups == 16
    assert inferred.config.labels == ()
    assert inferred.config.normalize_waveform is True
    assert_identical(inferred, with_cfg)


def test_config_inferred_for_other_shapes(make_model, tmp_path):
    model = make_model(35, num_heads=8, mlp_ratio=2.0, context_depth=2, depth=3, labels=())
    save_fairseq_checkpoint(model, tmp_path / "m.pt")
    edit = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.save({"model": edit["model"]}, tmp_path / "bare.pt")
    loaded = emotion2vec.load_model(tmp_path / "bare.pt")
    assert loaded.config == model.config
    assert_identical(loaded, model)


def test_plus_model_pt_without_config_yaml(fixture_dir, tmp_path):
    shutil.copy(fixture_dir / "plus" / "model.pt", tmp_path / "model.pt")
    loaded = emotion2vec.load_model(tmp_path)
    ref = emotion2vec.load_model(fixture_dir / "plus")
    assert loaded.labels == EMOTION_LABELS  # 9 outputs -> the published labels
    assert loaded.config == ref.config
    assert_identical(loaded, ref)


def test_head_of_unknown_size_gets_generic_labels(make_model, tmp_path):
    model = make_model(36, labels=("x", "y", "z"), decoder=False)
    save_plus_folder(model, tmp_path)
    (tmp_path / "tokens.txt").unlink()
    (tmp_path / "config.yaml").unlink()
    loaded = emotion2vec.load_model(tmp_path)
    assert loaded.labels == ("class_0", "class_1", "class_2")


def test_old_4d_alibi_scale_loads(base_model, tmp_path):
    path = tmp_path / "old.pt"
    save_fairseq_checkpoint(base_model, path)

    def to_4d(state):
        key = AUDIO + "alibi_scale"
        assert state[key].shape == (1, 1, 4, 1, 1)
        state[key] = state[key].reshape(1, 4, 1, 1).clone()

    edit_state(path, to_4d)
    assert_identical(emotion2vec.load_model(path), base_model)
    # also without any cfg: the head count comes from the tensor
    ckpt = torch.load(path, weights_only=True)
    torch.save({"model": ckpt["model"]}, tmp_path / "bare.pt")
    loaded = emotion2vec.load_model(tmp_path / "bare.pt")
    assert loaded.config.encoder.num_heads == 4
    assert_identical(loaded, base_model)


def test_state_dict_under_other_keys(base_model, tmp_path):
    save_fairseq_checkpoint(base_model, tmp_path / "a.pt")
    state = torch.load(tmp_path / "a.pt", weights_only=True)["model"]
    for wrap in ({"state_dict": state}, {"model_state_dict": state}, state):
        torch.save(wrap, tmp_path / "w.pt")
        assert_identical(emotion2vec.load_model(tmp_path / "w.pt"), base_model)


def test_configuration_json_names_the_checkpoint(base_model, plus_model, tmp_path):
    save_fairseq_checkpoint(base_model, tmp_path / "emotion2vec_base.pt")
    save_fairseq_checkpoint(plus_model, tmp_path / "other.pt")
    meta = {"file_path_metas": {"init_param": "other.pt", "config": "config.yaml"}}
    (tmp_path / "configuration.json").write_text(json.dumps(meta), encoding="utf-8")
    assert official.find_official_file(tmp_path) == tmp_path / "other.pt"
    assert_identical(emotion2vec.load_model(tmp_path), plus_model)
    (tmp_path / "configuration.json").unlink()
    assert_identical(emotion2vec.load_model(tmp_path), base_model)


def test_config_from_official_needs_the_core_tensors():
    with pytest.raises(CheckpointError, match="extra_tokens"):
        config_from_official({"blocks.0.norm1.weight": torch.zeros(4)})


# ------------------------------------------------------------------------------------------
# Strict loading: errors name the offending key as the user's file names it
# ------------------------------------------------------------------------------------------


LAYOUTS = ["fairseq", "plus"]
LAYOUTS_PREFIX_BUG = LAYOUTS


@pytest.fixture
def official_file(request, base_model, plus_model, tmp_path):
    """(path to load, path of the .pt, key prefix of backbone keys in that file) for the
    ``layout`` parameter of the test."""
    if request.param == "fairseq":
        path = tmp_path / "emotion2vec_base.pt"
        save_fairseq_checkpoint(base_model, path)
        return path, path, ""
    folder = tmp_path / "plus"
    save_plus_folder(plus_model, folder)
    return folder, folder / "model.pt", PLUS


@pytest.mark.parametrize("official_file", LAYOUTS, indirect=True)
def test_missing_key(official_file):
    target, pt, prefix = official_file
    edit_state(pt, lambda s: s.pop(prefix + "blocks.1.mlp.fc2.bias"))
    msg = error_of(target)
    assert str(pt) in msg
    assert re.search(r"missing keys \(1\): " + re.escape(prefix + "blocks.1.mlp.fc2.bias"), msg)


@pytest.mark.parametrize("official_file", LAYOUTS, indirect=True)
def test_missing_conv_norm_key(official_file):
    target, pt, prefix = official_file
    key = prefix + AUDIO + "local_encoder.conv_layers.4.2.1.bias"
    edit_state(pt, lambda s: s.pop(key))
    msg = error_of(target)
    assert "missing keys (1): " + key in msg


@pytest.mark.parametrize("official_file", LAYOUTS, indirect=True)
def test_misshaped_key(official_file):
    target, pt, prefix = official_file
    key = prefix + "blocks.0.mlp.fc1.weight"

    def shrink(state):
        state[key] = state[key][:, :10].clone()

    edit_state(pt, shrink)
    msg = error_of(target)
    assert str(pt) in msg
    assert f"mis-shaped: {key} has shape [256, 10], model expects [256, 64]" in msg


@pytest.mark.parametrize("official_file", LAYOUTS, indirect=True)
def test_extra_key_known_pattern(official_file):
    """A key of a block the config does not have (blocks.2 with depth 2)."""
    target, pt, prefix = official_file
    key = prefix + "blocks.2.norm1.weight"
    edit_state(pt, lambda s: s.__setitem__(key, torch.ones(64)))
    msg = error_of(target)
    assert "unexpected keys (1): " + key in msg


@pytest.mark.parametrize("official_file", LAYOUTS_PREFIX_BUG, indirect=True)
def test_extra_key_unknown_name(official_file):
    target, pt, prefix = official_file
    key = prefix + "foo.bar"
    edit_state(pt, lambda s: s.__setitem__(key, torch.ones(3)))
    msg = error_of(target)
    assert str(pt) in msg
    assert re.search(r"unexpected keys \(1\): " + re.escape(key) + r"(\s|$)", msg)


@pytest.mark.parametrize("official_file", LAYOUTS_PREFIX_BUG, indirect=True)
def test_renamed_key_names_the_new_name(official_file):
    target, pt, prefix = official_file
    old, new = prefix + "blocks.0.attn.qkv.weight", prefix + "blocks.0.attn.qkv.weights"
    edit_state(pt, lambda s: s.__setitem__(new, s.pop(old)))
    msg = error_of(target)
    assert re.search(r"unexpected keys \(1\): " + re.escape(new) + r"(\s|$)", msg)


@pytest.mark.parametrize("official_file", LAYOUTS, indirect=True)
def test_renamed_key_also_reports_the_missing_one(official_file):
    target, pt, prefix = official_file
    old, new = prefix + "blocks.0.attn.qkv.weight", prefix + "blocks.0.attn.qkv.weights"
    edit_state(pt, lambda s: s.__setitem__(new, s.pop(old)))
    msg = error_of(target)
    assert "missing keys (1): " + old in msg


def test_renamed_head_key(tmp_path, plus_model):
    save_plus_folder(plus_model, tmp_path)
    edit_state(tmp_path / "model.pt", lambda s: s.__setitem__("proj.b", s.pop("proj.bias")))
    msg = error_of(tmp_path)
    assert "proj.b" in msg and "d2v_model.proj" not in msg


def test_missing_core_key_in_plus_file(tmp_path, plus_model):
    save_plus_folder(plus_model, tmp_path)
    key = PLUS + AUDIO + "extra_tokens"
    edit_state(tmp_path / "model.pt", lambda s: s.pop(key))
    msg = error_of(tmp_path)
    assert str(tmp_path / "model.pt") in msg and key in msg


def test_all_problems_are_listed_together(tmp_path, base_model):
    path = tmp_path / "m.pt"
    save_fairseq_checkpoint(base_model, path)

    def damage(state):
        del state["blocks.0.norm2.bias"]
        del state["blocks.1.norm1.weight"]
        state["blocks.0.mlp.fc2.bias"] = torch.zeros(7)

    edit_state(path, damage)
    msg = error_of(path)
    assert "missing keys (2): blocks.0.norm2.bias, blocks.1.norm1.weight" in msg
    assert "mis-shaped: blocks.0.mlp.fc2.bias" in msg


def test_integer_tensor_is_refused(tmp_path, base_model):
    path = tmp_path / "m.pt"
    save_fairseq_checkpoint(base_model, path)
    edit_state(
        path, lambda s: s.__setitem__("blocks.0.norm1.bias", torch.zeros(64, dtype=torch.long))
    )
    assert "blocks.0.norm1.bias has dtype torch.int64" in error_of(path)


def test_native_strict_errors(plus_model, tmp_path):
    plus_model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    state["encoder.bogus"] = torch.zeros(1)
    del state["head.linear.bias"]
    save_file(state, weights)
    msg = error_of(tmp_path)
    assert str(weights) in msg
    assert "missing keys (1): head.linear.bias" in msg
    assert "unexpected keys (1): encoder.bogus" in msg


# ------------------------------------------------------------------------------------------
# Safe loading
# ------------------------------------------------------------------------------------------

RAN: list[str] = []


class Payload:
    """An object whose unpickling runs code (records that it ran)."""

    def __init__(self):
        self.value = 1

    def __setstate__(self, state):
        RAN.append("setstate")


class FileToucher:
    """Unpickling this calls open(target, 'w'), creating the file."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_custom_class_instance_is_refused(tmp_path):
    RAN.clear()
    path = tmp_path / "model.pt"
    state = {"blocks.0.norm1.weight": torch.ones(4)}
    torch.save({"model": state, "extra_state": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused") as info:
        emotion2vec.load_model(path)
    assert str(path) in str(info.value)
    assert RAN == []
    # the payload is real: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert RAN == ["setstate"]


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_reduce_payload_is_refused_and_does_not_run(tmp_path, writer):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    ckpt = {"model": {"x": torch.zeros(2)}, "cfg": FileToucher(str(target))}
    if writer == "torch.save":
        torch.save(ckpt, path)
    else:
        path.write_bytes(pickle.dumps(ckpt, protocol=2))
    assert not target.exists()
    with pytest.raises(CheckpointError, match="refused") as info:
        emotion2vec.load_model(path)
    assert "never executes" in str(info.value)
    assert not target.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_pt(path)
    assert not target.exists()
    # the payload is real: plain unpickling creates the file
    decoy = tmp_path / "decoy.txt"
    pickle.loads(pickle.dumps(FileToucher(str(decoy)), protocol=2))
    assert decoy.exists()


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "random",
        "zip",
        "text",
        "wav",
    ],
)
def test_non_checkpoint_file(tmp_path, kind):
    path = tmp_path / "model.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "hello")
    elif kind == "text":
        path.write_text("hello world\n", encoding="utf-8")
    elif kind == "wav":
        sf.write(path, np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    with pytest.raises(CheckpointError) as info:
        emotion2vec.load_model(path)
    assert str(path) in str(info.value)


def test_checkpoint_that_is_not_a_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a dict at the top level, found list"):
        emotion2vec.load_model(tmp_path / "list.pt")
    torch.save({"epoch": 3, "note": "hi"}, tmp_path / "nostate.pt")
    with pytest.raises(CheckpointError, match="no state dict found"):
        emotion2vec.load_model(tmp_path / "nostate.pt")


def test_missing_paths_and_empty_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="no such file or folder.*emotion2vec_plus_large"):
        emotion2vec.load_model(tmp_path / "nothing_here")
    with pytest.raises(CheckpointError, match="not a model folder"):
        emotion2vec.load_model(tmp_path)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_pt(tmp_path / "x.pt")
    (tmp_path / "a.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="needs its config.json"):
        emotion2vec.load_model(tmp_path / "a.safetensors")


# ------------------------------------------------------------------------------------------
# Our format: tampered config.json
# ------------------------------------------------------------------------------------------


def _tamper(folder: Path, fn) -> None:
    path = folder / "config.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    fn(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_tampered_embed_dim(plus_model, tmp_path):
    plus_model.save_pretrained(tmp_path)
    _tamper(tmp_path, lambda d: d["model"]["encoder"].__setitem__("embed_dim", 128))
    msg = error_of(tmp_path)
    assert str(tmp_path / "model.safetensors") in msg
    assert "does not match the model" in msg
    assert "mis-shaped: encoder.extra_tokens has shape [10, 64], model expects [10, 128]" in msg


def test_tampered_invalid_config(plus_model, tmp_path):
    plus_model.save_pretrained(tmp_path)
    _tamper(tmp_path, lambda d: d["model"]["encoder"].__setitem__("embed_dim", 66))
    msg = error_of(tmp_path)
    assert str(tmp_path / "config.json") in msg and "divisible" in msg


def test_tampered_unknown_field(plus_model, tmp_path):
    plus_model.save_pretrained(tmp_path)
    _tamper(tmp_path, lambda d: d["model"]["encoder"].__setitem__("embed_dimm", 64))
    msg = error_of(tmp_path)
    assert str(tmp_path / "config.json") in msg and "embed_dimm" in msg


def test_tampered_wrong_type(plus_model, tmp_path):
    plus_model.save_pretrained(tmp_path)
    _tamper(tmp_path, lambda d: d["model"]["encoder"].__setitem__("embed_dim", "64"))
    msg = error_of(tmp_path)
    assert str(tmp_path / "config.json") in msg


def test_config_json_format_checks(plus_model, tmp_path):
    plus_model.save_pretrained(tmp_path)
    _tamper(tmp_path, lambda d: d.__setitem__("format_version", 99))
    assert "newer emotion2vec" in error_of(tmp_path)
    _tamper(tmp_path, lambda d: d.pop("format"))
    assert "not an emotion2vec config.json" in error_of(tmp_path)
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    msg = error_of(tmp_path)
    assert "cannot read config" in msg and str(tmp_path / "config.json") in msg


def test_corrupt_safetensors(plus_model, tmp_path):
    plus_model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 100)
    msg = error_of(tmp_path)
    assert "cannot read safetensors" in msg and str(tmp_path / "model.safetensors") in msg


# ------------------------------------------------------------------------------------------
# Labels (tokens.txt)
# ------------------------------------------------------------------------------------------


def test_plus_folder_tokens_give_the_published_labels(fixture_dir):
    model = emotion2vec.load_model(fixture_dir / "plus")
    assert model.labels == (
        "angry",
        "disgusted",
        "fearful",
        "happy",
        "neutral",
        "other",
        "sad",
        "surprised",
        "unknown",
    )
    assert read_tokens(fixture_dir / "plus" / "tokens.txt") == EMOTION_LABELS


def test_read_tokens(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("生气/angry\n\n  开心/happy  \nunuse_3\n<unk>\n", encoding="utf-8")
    assert read_tokens(path) == ("angry", "happy", "unuse_3", "unknown")


def test_unuse_labels_are_excluded_from_predictions(fixture_dir, tmp_path, make_wave):
    folder = tmp_path / "plus"
    shutil.copytree(fixture_dir / "plus", folder)
    tokens = [
        "生气/angry",
        "unuse_1",
        "unuse_2",
        "开心/happy",
        "中立/neutral",
        "unuse_5",
        "难过/sad",
        "unuse_7",
        "<unk>",
    ]
    (folder / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    model = emotion2vec.load_model(folder)
    assert model.labels[1] == "unuse_1" and len(model.labels) == 9
    wave = make_wave(24000, 7)
    pred = model.predict(wave, sample_rate=16000)
    assert list(pred.scores) == ["angry", "happy", "neutral", "sad", "unknown"]
    assert sum(pred.scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert pred.label == max(pred.scores, key=pred.scores.get)
    assert pred.score == pred.scores[pred.label]
    # the kept labels are renormalised among themselves (unuse logits removed, not zeroed)
    with torch.no_grad():
        _, _, logits = model(normalize_waveform(torch.from_numpy(wave))[None])
    keep = [0, 3, 4, 6, 8]
    want = torch.softmax(logits[0, keep].double(), 0).numpy()
    assert np.allclose(list(pred.scores.values()), want, atol=1e-6)
    full = emotion2vec.load_model(fixture_dir / "plus").predict(wave, sample_rate=16000)
    assert len(full.scores) == 9
    assert full.scores["angry"] < pred.scores["angry"]


def test_the_official_field_table_covers_every_config_field():
    """Each encoder / decoder field is read from an official config through one table entry."""
    import dataclasses

    from emotion2vec.config import DecoderConfig, EncoderConfig

    ours = [f for _, _, f in official.OFFICIAL_FIELDS]
    assert len(ours) == len(set(ours))
    wanted = [f"encoder.{f.name}" for f in dataclasses.fields(EncoderConfig)]
    wanted += [f"decoder.{f.name}" for f in dataclasses.fields(DecoderConfig)]
    assert sorted(ours) == sorted(wanted)


def test_every_table_field_is_read_from_an_official_config(make_model):
    """A config whose every field differs from what shapes or defaults would give comes back
    exactly from the official config written for it (so no table entry is ignored)."""
    import dataclasses

    from official_layouts import official_model_cfg, to_official_state

    model = make_model(decoder=True)
    enc = dataclasses.replace(
        model.config.encoder,
        norm_eps=2e-5,
        dropout=0.21,
        attention_dropout=0.22,
        activation_dropout=0.23,
        post_mlp_dropout=0.24,
        context_dropout=0.25,
        layerdrop=0.26,
        context_layerdrop=0.27,
    )
    dec = dataclasses.replace(model.config.decoder, input_dropout=0.28)
    config = dataclasses.replace(model.config, encoder=enc, decoder=dec)
    cfg = official_model_cfg(config)
    given = official.official_values(cfg)
    assert set(given) == {f for _, _, f in official.OFFICIAL_FIELDS}
    state = to_official_state(model, plus_layout=False)
    got = config_from_official(state, cfg, labels=config.labels)
    assert got.encoder == enc and got.decoder == dec
