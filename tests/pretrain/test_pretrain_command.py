"""The run-folder and command-line plumbing shared by ``pretrain`` and ``finetune``."""

from __future__ import annotations

import logging

import pytest

from emotion2vec.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    guarded,
)
from emotion2vec.cli.train import run_training
from emotion2vec.errors import ConfigError, Emotion2vecError, OutputError
from emotion2vec.training import TrainingError, checkpointing
from emotion2vec.training.logfile import add_file_log, remove_file_log


def _fake_checkpoint(run_dir, step):
    folder = run_dir / checkpointing.CHECKPOINTS / checkpointing.step_dir_name(step)
    folder.mkdir(parents=True)
    (folder / checkpointing.STATE_NAME).write_bytes(b"")
    return folder


def test_resume_point_refuses_empty_resume_and_mixing_runs(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        checkpointing.resume_point(tmp_path, resume=True)
    assert checkpointing.resume_point(tmp_path, resume=False) is None
    _fake_checkpoint(tmp_path, 100)
    newest = _fake_checkpoint(tmp_path, 200)
    with pytest.raises(ConfigError, match="already holds a run"):
        checkpointing.resume_point(tmp_path, resume=False)
    assert checkpointing.resume_point(tmp_path, resume=True) == newest


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (None, EXIT_OK, "done: 7"),
        (TrainingError("target variance collapsed"), EXIT_FAILED, "training stopped"),
        (Emotion2vecError("bad manifest"), EXIT_USAGE, "error: bad manifest"),
        (OutputError("disk full"), EXIT_OUTPUT, "error: disk full"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "resume with --resume"),
    ],
)
def test_run_training_maps_outcomes_to_exit_codes(capsys, raised, code, message):
    logger_name = "emotion2vec.test_command"

    def train():
        logging.getLogger(logger_name).info("inside the run")
        if raised is not None:
            raise raised
        return 7

    def run():
        return run_training([logger_name], False, train, lambda r: f"done: {r}")

    assert guarded("pretrain", run, "resume with --resume") == code
    err = capsys.readouterr().err
    assert message in err
    assert "inside the run" in err
    # the console handler is detached afterwards: nothing leaks into later runs
    assert not logging.getLogger(logger_name).handlers


def test_quiet_run_prints_nothing_but_the_file_log_gets_info(tmp_path, capsys):
    logger = logging.getLogger("emotion2vec.test_command_quiet")
    handler = add_file_log(logger, tmp_path / "train.log", enabled=True)
    try:
        code = run_training([logger.name], True, lambda: logger.info("step 1") or 1, str)
    finally:
        remove_file_log(logger, handler)
    assert code == EXIT_OK
    assert capsys.readouterr().err == ""
    assert "step 1" in (tmp_path / "train.log").read_text()
    assert add_file_log(logger, tmp_path / "other.log", enabled=False) is None
    assert not (tmp_path / "other.log").exists()
