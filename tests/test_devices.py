"""Device choice: automatic, explicit, and clear errors for devices that are not here."""

import pytest
import torch

from core import devices


def test_auto_picks_an_available_device(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    device = devices.choose()
    assert device == devices.available()[0]
    assert torch.zeros(1, device=device.torch).device.type == device.kind


def test_cpu_is_always_there_and_has_no_autocast():
    device = devices.choose("cpu")
    assert device.kind == "cpu" and device.index is None
    assert device.autocast_dtype is None and not device.needs_grad_scaler
    with device.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert "CPU" in device.describe()


def test_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    assert devices.choose().kind == "cpu"
    assert devices.choose(None).kind == "cpu"


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cpu:0", "tpu", "mps:1"])
def test_unknown_names_are_refused(text):
    with pytest.raises(devices.DeviceError, match="Unknown device"):
        devices.choose(text)


def test_missing_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(devices.DeviceError, match="No CUDA GPU"):
        devices.choose("cuda")
    with pytest.raises(devices.DeviceError, match="No Apple MPS"):
        devices.choose("mps")
    assert devices.choose("auto").kind == "cpu"


def test_cuda_choice_and_autocast_dtype_without_a_gpu(monkeypatch):
    """The CUDA branch, with torch's answers replaced: two GPUs, no bfloat16 on the first."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Test GPU {i}")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "device", lambda index: _Null())
    assert devices.choose("auto") == devices.Device("cuda", 0, "Test GPU 0")
    second = devices.choose("cuda:1")
    assert second.name == "Test GPU 1" and str(second) == "cuda:1"
    assert second.autocast_dtype == torch.float16 and second.needs_grad_scaler
    with pytest.raises(devices.DeviceError, match="no cuda:2"):
        devices.choose("cuda:2")


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
