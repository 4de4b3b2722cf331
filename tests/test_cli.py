"""The command line as a whole: every option documented, shared options defined once, old
spellings still accepted, one error -> exit-code map, the default model and its offline error."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
import soundfile as sf
import torch

from emotion2vec import errors
from emotion2vec.cli import build_parser, main, options
from emotion2vec.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    exit_code,
)
from emotion2vec.cli.train import configure_finetune, configure_pretrain
from emotion2vec.pretrain.config import RunConfig
from emotion2vec.training.trainer import TrainingError

#: Options several commands share, with the commands that must have them.
SHARED = {
    "--model": {
        "predict",
        "extract",
        "finetune",
        "export-onnx",
        "probe",
        "plot",
        "emobox",
        "serve",
    },
    "--device": {"predict", "extract", "pretrain", "finetune", "probe", "plot", "emobox", "serve"},
    "--threads": {"predict", "extract", "pretrain", "finetune", "probe", "plot", "emobox", "serve"},
    "--batch-seconds": {"predict", "extract", "probe", "plot", "emobox", "serve"},
    "--quiet": {"predict", "extract", "pretrain", "finetune", "probe", "plot", "emobox"},
    "--quantize": {"predict", "extract", "serve"},
    "--overwrite": {"predict", "extract"},
    "--resume": {"pretrain", "finetune"},
}
#: Commands with one output, and the old spellings of --output they still accept.
OUTPUTS = {
    "predict": (),
    "extract": ("--output-dir",),
    "convert": (),
    "pretrain": ("--out",),
    "finetune": ("--out",),
    "export-onnx": (),
    "probe": ("--out",),
    "plot": ("--out",),
    "emobox": ("--out",),
}


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "speech.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    return path


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """No network and an empty Hugging Face cache; modelscope looks uninstalled."""
    empty = tmp_path / "hf_home"
    empty.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(empty))
    monkeypatch.setenv("HF_HUB_CACHE", str(empty / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(empty / "hub"))
    monkeypatch.delenv(options.MODEL_ENV, raising=False)
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == "modelscope" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------------
# Help and shared options
# ------------------------------------------------------------------------------------------


def test_the_commands_are_all_there():
    assert set(commands()) == set(OUTPUTS) | {"merge", "serve"}


@pytest.mark.parametrize("name", sorted(set(OUTPUTS) | {"merge", "serve"}))
def test_every_command_and_option_has_help(name):
    parser = commands()[name]
    assert parser.description and len(parser.description) > 20, name
    for a in parser._actions:
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
            continue
        assert a.help and a.help.strip(), f"{name}: {a.option_strings or a.dest} has no help"


def test_shared_options_are_the_same_everywhere():
    parsers = commands()
    for flag, expected in SHARED.items():
        having = {name for name, p in parsers.items() if action(p, flag) is not None}
        assert having == expected, flag
        found = [action(parsers[name], flag) for name in sorted(having)]
        first = found[0]
        for a in found[1:]:
            same = ("option_strings", "default", "type", "help", "choices", "metavar", "nargs")
            assert all(getattr(a, k) == getattr(first, k) for k in same), flag
    # --device and --model default to "not given", read through one resolver each
    assert action(parsers["predict"], "--device").default is None
    assert action(parsers["predict"], "--model").default is None


def test_training_device_default_is_the_same_auto():
    # the training commands leave --device unset so that --resume keeps a run's device; the
    # config they fall back to has the same default as every other command
    assert RunConfig().device == "auto"
    assert options.device(argparse.Namespace(device=None)) == options.device(
        argparse.Namespace(device="auto")
    )


def test_auto_device_is_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert options.device(argparse.Namespace(device=None)) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert options.device(argparse.Namespace(device=None)) == "cuda"
    assert options.device(argparse.Namespace(device="auto")) == "cuda"
    assert options.device(argparse.Namespace(device=None), cpu_only=True) == "cpu"
    assert options.device(argparse.Namespace(device="cuda:1"), cpu_only=True) == "cuda:1"


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_the_one_output_is_output_or_o(name):
    a = action(commands()[name], "--output")
    assert a is not None and a.option_strings == ["--output", "-o"]


@pytest.mark.parametrize(
    ("configure", "command"),
    [(configure_pretrain, "pretrain"), (configure_finetune, "finetune")],
)
def test_standalone_training_entry_points_have_the_command_options(configure, command):
    alone = configure(argparse.ArgumentParser())
    flags = {f for a in alone._actions for f in a.option_strings}
    assert flags == {f for a in commands()[command]._actions for f in a.option_strings}


def test_python_m_pretrain_reports_usage_errors_with_the_shared_codes(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "emotion2vec.pretrain", "--output", str(tmp_path), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == EXIT_USAGE
    assert "emotion2vec pretrain: error: --data is required" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "emotion2vec.finetune", "--outptu", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == EXIT_USAGE and "did you mean --output?" in run.stderr


# ------------------------------------------------------------------------------------------
# Old spellings
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "old"), [(n, o) for n, olds in OUTPUTS.items() for o in olds])
def test_old_output_spellings_still_work_and_say_so(name, old, capsys):
    required = {
        "extract": ["x.wav"],
        "probe": ["--manifest", "m.csv", "--protocol", "loso"],
        "plot": ["--manifest", "m.csv"],
        "emobox": ["--emobox-root", "e", "--corpus", "c", "--audio-root", "a"],
    }.get(name, [])
    from emotion2vec.cli.parser import parse

    args = parse(build_parser(), [name, *required, old, "somewhere"])
    assert args.output == "somewhere"
    err = capsys.readouterr().err
    assert f"{old} is deprecated; use --output" in err
    assert old not in re.findall(r"--[\w-]+", commands()[name].format_help())  # hidden


def test_missing_output_names_the_new_spelling(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["extract", "x.wav"])
    assert exc.value.code == EXIT_USAGE
    assert "required: --output/-o" in capsys.readouterr().err


def test_convert_takes_its_output_as_argument_or_option(capsys):
    from emotion2vec.cli.parser import parse

    assert parse(build_parser(), ["convert", "src", "dst"]).output == "dst"
    assert parse(build_parser(), ["convert", "src", "-o", "dst"]).output == "dst"
    with pytest.raises(SystemExit):
        parse(build_parser(), ["convert", "src", "dst", "--output", "other"])
    assert "not both" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# Errors and exit codes
# ------------------------------------------------------------------------------------------

ERRORS = [
    (errors.AudioError("a.wav", "empty"), EXIT_USAGE),
    (errors.CheckpointError("bad"), EXIT_USAGE),
    (errors.ConfigError("bad"), EXIT_USAGE),
    (errors.DataError("bad"), EXIT_USAGE),
    (errors.OutputConflictError("bad"), EXIT_USAGE),
    (errors.Emotion2vecError("bad"), EXIT_USAGE),
    (errors.OutputError("bad"), EXIT_OUTPUT),
    (errors.MismatchError("bad"), EXIT_FAILED),
    (TrainingError("bad"), EXIT_FAILED),
]


def test_every_error_type_is_in_the_table():
    listed = {type(e) for e, _ in ERRORS}
    ours = {
        v
        for v in vars(errors).values()
        if isinstance(v, type) and issubclass(v, errors.Emotion2vecError)
    }
    assert ours <= listed


@pytest.mark.parametrize(("error", "code"), ERRORS, ids=lambda x: type(x).__name__)
def test_error_types_map_to_their_exit_code(error, code, monkeypatch, capsys):
    assert exit_code(error) == code

    def convert(args):
        raise error

    monkeypatch.setattr("emotion2vec.cli.models.convert", convert)
    assert main(["convert", "src", "dst"]) == code
    err = capsys.readouterr().err
    assert err.startswith("emotion2vec convert: ") and str(error) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_interrupt_and_foreign_errors(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("emotion2vec.cli.infer.extract", interrupted)
    assert main(["extract", "x.wav", "-o", "f"]) == EXIT_INTERRUPTED
    assert "re-run to resume" in capsys.readouterr().err

    def bug(args):
        raise ZeroDivisionError

    monkeypatch.setattr("emotion2vec.cli.models.convert", bug)
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        main(["convert", "a", "b"])
    with pytest.raises(ZeroDivisionError):
        exit_code(ZeroDivisionError())


# ------------------------------------------------------------------------------------------
# The default model
# ------------------------------------------------------------------------------------------


def test_default_model_is_plus_large_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv(options.MODEL_ENV, raising=False)
    assert options.default_model() == "emotion2vec_plus_large"
    monkeypatch.setenv(options.MODEL_ENV, "emotion2vec_base")
    assert options.default_model() == "emotion2vec_base"
    assert options.model_name(argparse.Namespace(model="x")) == "x"


def test_predict_without_model_uses_the_environment_model(
    offline_hub, make_model, wav, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "my_model"
    make_model().save_pretrained(folder)
    monkeypatch.setenv(options.MODEL_ENV, str(folder))
    out = tmp_path / "scores.jsonl"
    assert main(["predict", str(wav), "-o", str(out), "-q", "--device", "cpu"]) == EXIT_OK
    assert "speech.wav" in capsys.readouterr().out  # offline: the hub model would have failed
    assert "speech.wav" in out.read_text()


def test_offline_default_model_says_how_to_pass_a_folder(offline_hub, wav, capsys):
    assert main(["predict", str(wav), "-q"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "emotion2vec_plus_large" in err
    assert "--model path/to/emotion2vec_plus_large" in err
    assert "EMOTION2VEC_MODEL" in err and "emotion2vec convert" in err
    assert "Traceback" not in err
