"""Tests of emotion2vec.sources: directories, manifests, keys, duplicates and collisions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from emotion2vec.errors import DataError
from emotion2vec.sources import AudioSource, collect_sources, read_manifest


def touch(path: Path, data: bytes = b"RIFF") -> Path:
    # collect_sources never decodes, so any bytes will do.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def keys(sources: list[AudioSource]) -> list[str]:
    return [s.key for s in sources]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for rel in [
        "b.wav",
        "A/x.flac",
        "a/y.WAV",  # upper-case extension
        "sub/deep/z.ogg",
        "sub/c.Flac",
        "sub-2/d.aiff",
        ".hidden.wav",  # hidden file
        "._b.wav",  # macOS resource fork
        ".git/e.wav",  # hidden folder
        "notes.txt",
        "sub/transcript.json",
    ]:
        touch(root / rel)
    return root


def test_directory_scan(tree):
    sources = collect_sources([tree])
    # Sorted component by component: "sub" < "sub-2" although "sub-2/..." < "sub/..." as text.
    assert keys(sources) == [
        "A/x.flac",
        "a/y.WAV",
        "b.wav",
        "sub/c.Flac",
        "sub/deep/z.ogg",
        "sub-2/d.aiff",
    ]
    for s in sources:
        assert s.path.is_absolute()
        assert s.path == (tree / s.key).resolve()


def test_directory_scan_from_relative_path(tree, monkeypatch):
    monkeypatch.chdir(tree.parent)
    sources = collect_sources(["corpus/sub"])
    assert keys(sources) == ["c.Flac", "deep/z.ogg"]
    assert sources[1].path == (tree / "sub/deep/z.ogg").resolve()


def test_directory_order_is_deterministic(tmp_path):
    # Creation order should not matter.
    names = ["z.wav", "m.wav", "a.wav", "k/b.wav", "k/a.wav"]
    for name in names:
        touch(tmp_path / "one" / name)
    for name in reversed(names):
        touch(tmp_path / "two" / name)
    assert keys(collect_sources([tmp_path / "one"])) == keys(collect_sources([tmp_path / "two"]))


def test_directory_without_audio(tmp_path):
    touch(tmp_path / "d" / "a.mid")
    touch(tmp_path / "d" / "b.txt")
    with pytest.raises(DataError, match=r"no audio files.*\.mid"):
        collect_sources([tmp_path / "d"])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_directory_symlink_loop_terminates(tmp_path):
    touch(tmp_path / "d" / "a.wav")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    assert keys(collect_sources([tmp_path / "d"])) == ["a.wav"]


def test_case_insensitive_key_collision_in_directory(tmp_path):
    touch(tmp_path / "d" / "X.wav")
    touch(tmp_path / "d" / "x.wav")
    if len(list((tmp_path / "d").iterdir())) < 2:
        pytest.skip("case-insensitive file system")
    with pytest.raises(DataError, match="same output key"):
        collect_sources([tmp_path / "d"])


def test_single_files_and_string_input(tmp_path):
    a = touch(tmp_path / "x" / "a.wav")
    b = touch(tmp_path / "y" / "b.FLAC")
    sources = collect_sources([a, str(b)])
    assert sources == [AudioSource(a.resolve(), "a.wav"), AudioSource(b.resolve(), "b.FLAC")]
    assert collect_sources(str(a)) == [AudioSource(a.resolve(), "a.wav")]


def test_missing_command_line_input(tmp_path):
    with pytest.raises(DataError, match=r"nope\.wav: no such file or directory"):
        collect_sources([tmp_path / "nope.wav"])


def test_unknown_input_extension(tmp_path):
    p = touch(tmp_path / "wav.scp")
    with pytest.raises(DataError, match=r"wav\.scp: unknown input type '\.scp'"):
        collect_sources([p])


def test_key_collision_between_inputs(tmp_path):
    a = touch(tmp_path / "x" / "same.wav")
    b = touch(tmp_path / "y" / "same.wav")
    with pytest.raises(DataError) as ei:
        collect_sources([a, b])
    msg = str(ei.value)
    assert str(a.resolve()) in msg and str(b.resolve()) in msg and "'same.wav'" in msg


def test_duplicates_kept_once(tree, tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text("corpus/b.wav\ncorpus/./b.wav\n")
    sources = collect_sources([tree / "b.wav", tree, manifest, tree / "b.wav"])
    assert keys(sources).count("b.wav") == 1
    assert len(sources) == len({s.path for s in sources}) == 6
    assert sources[0] == AudioSource((tree / "b.wav").resolve(), "b.wav")


# ------------------------------------------------------------------------------------------
# Manifests
# ------------------------------------------------------------------------------------------


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    base = tmp_path / "data"
    touch(base / "spk1" / "a.wav")
    touch(base / "spk2" / "b.flac")
    touch(tmp_path / "outside" / "c.wav")
    return base


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    # Run from an unrelated folder: relative entries must resolve against the manifest.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_csv_manifest(audio_dir, elsewhere):
    outside = (audio_dir.parent / "outside" / "c.wav").resolve()
    manifest = audio_dir / "list.csv"
    manifest.write_text(
        "label,path,text\n"
        'happy,spk1/a.wav,"hello, world"\n'
        "\n"
        "sad,./spk2/b.flac,bye\n"
        f"angry,{outside},x\n"
        "neutral,../outside/c.wav,y\n"
        "calm,spk3/missing.wav,z\n"
    )
    sources = collect_sources([os.path.relpath(manifest)])
    assert sources[:2] == [
        AudioSource((audio_dir / "spk1/a.wav").resolve(), "spk1/a.wav"),
        AudioSource((audio_dir / "spk2/b.flac").resolve(), "spk2/b.flac"),
    ]
    # Absolute entry keyed by its file name; the "../" entry is the same file: kept once.
    assert sources[2] == AudioSource(outside, "c.wav")
    # Missing files listed in a manifest are kept for load_audio to report.
    assert sources[3] == AudioSource((audio_dir / "spk3/missing.wav").resolve(), "spk3/missing.wav")
    assert len(sources) == 4


def test_manifest_entry_leaving_its_folder_keyed_by_name(audio_dir, elsewhere):
    manifest = audio_dir / "m.list"
    manifest.write_text("../outside/c.wav\n")
    assert collect_sources([manifest]) == [
        AudioSource((audio_dir.parent / "outside/c.wav").resolve(), "c.wav")
    ]


def test_tsv_manifest_without_quoting(audio_dir, elsewhere):
    manifest = audio_dir / "list.tsv"
    manifest.write_text('path\ttext\nspk1/a.wav\tshe said "hi\nspk2/b.flac\t"quoted"\n')
    assert keys(collect_sources([manifest])) == ["spk1/a.wav", "spk2/b.flac"]


def test_csv_with_byte_order_mark(audio_dir):
    manifest = audio_dir / "excel.csv"
    manifest.write_bytes("path\r\nspk1/a.wav\r\n".encode("utf-8-sig"))
    assert keys(collect_sources([manifest])) == ["spk1/a.wav"]


def test_jsonl_manifest(audio_dir, elsewhere):
    manifest = audio_dir / "list.jsonl"
    lines = [
        json.dumps({"path": "spk1/a.wav", "label": "happy"}),
        "",
        json.dumps({"label": "sad", "path": "spk2/b.flac", "extra": [1, 2]}),
    ]
    manifest.write_text("\n".join(lines) + "\n")
    sources = collect_sources([manifest])
    assert keys(sources) == ["spk1/a.wav", "spk2/b.flac"]
    assert sources[1].path == (audio_dir / "spk2/b.flac").resolve()


@pytest.mark.parametrize("ext", [".txt", ".lst", ".list", ".TXT"])
def test_plain_list_manifest(audio_dir, elsewhere, ext):
    manifest = audio_dir / f"files{ext}"
    manifest.write_text("# a comment\n\n  spk1/a.wav  \n   # indented comment\nspk2/b.flac\n")
    assert keys(collect_sources([manifest])) == ["spk1/a.wav", "spk2/b.flac"]


def test_empty_manifests_give_no_sources(tmp_path):
    (tmp_path / "e.txt").write_text("# nothing yet\n")
    (tmp_path / "e.jsonl").write_text("")
    (tmp_path / "e.csv").write_text("path,label\n")
    assert collect_sources([tmp_path / "e.txt", tmp_path / "e.jsonl", tmp_path / "e.csv"]) == []


def test_read_manifest_keeps_duplicates(audio_dir):
    manifest = audio_dir / "d.txt"
    manifest.write_text("spk1/a.wav\nspk1/a.wav\n")
    assert len(read_manifest(manifest)) == 2
    assert len(collect_sources([manifest])) == 1


def test_manifest_key_collision(audio_dir, tmp_path):
    touch(tmp_path / "other" / "spk1" / "a.wav")
    m1 = audio_dir / "m1.txt"
    m1.write_text("spk1/a.wav\n")
    m2 = tmp_path / "other" / "m2.txt"
    m2.write_text("spk1/a.wav\n")
    with pytest.raises(DataError, match="same output key 'spk1/a.wav'"):
        collect_sources([m1, m2])


# ------------------------------------------------------------------------------------------
# Malformed manifests
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("m.csv", "file,label\na.wav,x\n", r"line 1: header has no 'path' column"),
        ("m.csv", "path,path\na.wav,b.wav\n", r"line 1: header has more than one 'path'"),
        ("m.csv", "path,label\na.wav,x\nb.wav\n", r"line 3: expected 2 fields .* got 1"),
        ("m.csv", "path,label\na.wav,x\nb.wav,y,z\n", r"line 3: expected 2 fields .* got 3"),
        ("m.csv", "path,label\n,x\n", r"line 2: empty 'path' value"),
        ("m.csv", "", r"empty manifest"),
        ("m.tsv", "path\tlabel\na.wav\n", r"line 2: expected 2 fields"),
        ("m.jsonl", '{"path": "a.wav"}\n\n{"path": "b.wav"\n', r"line 3: invalid JSON"),
        ("m.jsonl", '{"file": "a.wav"}\n', r"line 1: missing 'path' field"),
        ("m.jsonl", '["a.wav"]\n', r"line 1: expected a JSON object, got list"),
        ("m.jsonl", '{"path": 3}\n', r"line 1: 'path' must be a non-empty string"),
        ("m.jsonl", '{"path": ""}\n', r"line 1: 'path' must be a non-empty string"),
    ],
)
def test_malformed_manifest(tmp_path, name, content, pattern):
    manifest = tmp_path / name
    manifest.write_text(content)
    with pytest.raises(DataError, match=pattern) as ei:
        collect_sources([manifest])
    assert str(ei.value).startswith(str(manifest))


def test_line_numbers_count_multiline_csv_fields(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text('path,text\na.wav,"two\nlines"\nb.wav\n')
    with pytest.raises(DataError, match="line 4"):
        collect_sources([manifest])


def test_manifest_not_utf8(tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_bytes(b"caf\xe9.wav\n")
    with pytest.raises(DataError, match=r"m\.txt: not UTF-8"):
        collect_sources([manifest])


def test_read_manifest_rejects_other_extensions(tmp_path):
    p = touch(tmp_path / "a.wav")
    with pytest.raises(DataError, match="not a manifest"):
        read_manifest(p)
