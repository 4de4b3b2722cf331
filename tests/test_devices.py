"""Device names are checked against this machine and this PyTorch build before anything loads."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from emotion2vec.checkpoints import load_model
from emotion2vec.cli import main
from emotion2vec.devices import checked_device
from emotion2vec.errors import ConfigError


@pytest.fixture
def cuda_build(monkeypatch):
    """Pretend this PyTorch is a CUDA build that sees ``count`` GPUs."""

    def see(count: int) -> None:
        monkeypatch.setattr(torch.version, "cuda", "12.4")
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return see


def test_cpu_and_device_objects_pass_through():
    assert checked_device("cpu") == torch.device("cpu")
    assert checked_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["foo", "gpu0", "cuda:x"])
def test_unknown_names_are_refused_with_the_name(name):
    with pytest.raises(ConfigError, match=f"device '{name}' is not a device name"):
        checked_device(name)


def test_a_known_torch_device_type_we_do_not_run_on_is_refused():
    with pytest.raises(ConfigError, match="runs on cpu, cuda or mps, not meta"):
        checked_device("meta")


def test_cuda_on_a_build_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    with pytest.raises(
        ConfigError, match=r"device 'cuda:1': this PyTorch build .* no CUDA support"
    ):
        checked_device("cuda:1")


def test_cuda_build_without_a_visible_gpu(cuda_build):
    cuda_build(0)
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        checked_device("cuda")


def test_cuda_index_is_checked_against_the_visible_gpus(cuda_build):
    cuda_build(2)
    assert checked_device("cuda") == torch.device("cuda")
    assert checked_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"sees 2 CUDA GPU\(s\), numbered 0-1"):
        checked_device("cuda:2")


def test_mps_only_where_it_is_available(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="MPS is not available here"):
        checked_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert checked_device("mps") == torch.device("mps")


def test_load_model_checks_the_device_before_reading_the_checkpoint(tmp_path):
    # the checkpoint does not exist: the device error must come first, not the missing file
    with pytest.raises(ConfigError, match="device 'foo'"):
        load_model(tmp_path / "missing", device="foo")


def test_cli_reports_an_unusable_device_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    code = main(["predict", str(wav), "--model", str(tmp_path / "missing"), "--device", "mps"])
    err = capsys.readouterr().err
    assert code == 2
    assert "device 'mps': MPS is not available here" in err
    assert "Traceback" not in err
