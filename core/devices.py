"""Which device the work runs on: CUDA, Apple's MPS or the CPU, and how to autocast there.

One `Device` value drives everything device-specific, so training code never asks torch
itself which accelerator it has.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: choosing a device needs it, but the window and the
# commands that never compute must not pay seconds and hundreds of MB to load it.

#: Environment variable that sets the default device for the CLI and the GUI.
DEVICE_ENV = "LABELSCOPE_DEVICE"
CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """The requested device does not exist on this machine, or the name is not one."""


@dataclass(frozen=True)
class Device:
    """A torch device with what the app needs to know about it."""

    kind: str  # "cpu", "cuda" or "mps"
    index: int | None
    name: str  # for people: "NVIDIA H200", "Apple MPS", "CPU (8 threads)"

    @property
    def spec(self) -> str:
        """ "cpu", "cuda:1", "mps": the device as torch names it, without loading torch."""
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    @property
    def torch(self) -> torch.device:
        import torch

        return torch.device(self.kind if self.index is None else f"{self.kind}:{self.index}")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The reduced precision autocast uses here, or None where it is not worth it.

        CUDA: bfloat16 where the GPU supports it (no GradScaler needed), else float16.
        MPS: float16. CPU: none, since CPU autocast is slower than float32 for our models.
        """
        import torch

        if self.kind == "cuda":
            with torch.cuda.device(self.index or 0):
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.kind == "mps":
            return torch.float16
        return None

    @property
    def needs_grad_scaler(self) -> bool:
        """Only float16 on CUDA underflows gradients enough to need a GradScaler."""
        import torch

        return self.kind == "cuda" and self.autocast_dtype == torch.float16

    def autocast(self, cpu_bf16: bool = False) -> contextlib.AbstractContextManager[Any]:
        """Autocast for this device, or a no-op where it does not help. `cpu_bf16`: also
        bfloat16 on a CPU that computes it natively, for models measured to gain from it
        (the formula recogniser trains 1.3× faster; the pets backbones do not)."""
        import torch

        if cpu_bf16 and self.kind == "cpu" and _cpu_has_bf16():
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.kind, dtype=dtype)

    def inference_autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast for inference: as for training, and bfloat16 on a CPU that computes it
        natively (AVX512-BF16 or AMX), where it roughly halves a CNN's time."""
        import torch

        if self.kind == "cpu":
            if _cpu_has_bf16():
                return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
            return contextlib.nullcontext()
        return self.autocast()

    def describe(self) -> str:
        """One line for the status bar and `doctor`."""
        if self.kind == "cpu":
            return self.name
        return f"{self.name} ({self.spec})"

    def __str__(self) -> str:
        return self.spec


def _cpu_has_bf16() -> bool:
    import torch

    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((check and check()) or (amx and amx()))


def _cpu_model() -> str:
    """The processor's marketing name where the OS tells it, else its architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def cpu() -> Device:
    """The CPU, known without loading torch (its thread count is torch's once it is loaded,
    else the cores this process may use, which is what torch will take)."""
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    else:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS and Windows
            threads = os.cpu_count() or 1
    return Device("cpu", None, f"CPU, {threads} threads ({_cpu_model()})")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available() -> list[Device]:
    """Every device torch can use here, accelerators first, the CPU last."""
    import torch

    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            devices.append(Device("cuda", index, torch.cuda.get_device_name(index)))
    if _mps_available():
        devices.append(Device("mps", None, "Apple GPU (MPS)"))
    devices.append(cpu())
    return devices


def choose(preference: str | None = None, found: list[Device] | None = None) -> Device:
    """The device to run on.

    `preference` is "auto", "cpu", "cuda", "cuda:N" or "mps"; None or "" falls back to the
    LABELSCOPE_DEVICE environment variable, then "auto" (the first GPU, else the CPU).
    `found` is what `available()` gave, where it is known already (it loads torch).
    Raises DeviceError with a plain message when the device is not here.
    """
    text = (preference or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    kind, _, index_text = text.partition(":")
    if kind not in CHOICES or (index_text and (kind != "cuda" or not index_text.isdigit())):
        raise DeviceError(
            f"Unknown device {text!r}: use auto, cpu, cuda, cuda:N (N a GPU number) or mps."
        )
    if kind == "cpu":  # the CPU is always there: no need to load torch to find it
        return cpu()
    devices = available() if found is None else found
    if kind == "auto":
        return devices[0]
    matching = [d for d in devices if d.kind == kind]
    if not matching:
        what = "CUDA GPU" if kind == "cuda" else "Apple MPS device"
        torch = sys.modules.get("torch")
        built = (
            f" (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})"
            if torch is not None
            else ""
        )
        raise DeviceError(f"No {what} is available here{built}. Use --device cpu or auto.")
    if index_text:
        index = int(index_text)
        for device in matching:
            if device.index == index:
                return device
        raise DeviceError(
            f"There is no cuda:{index}; this machine has {len(matching)} CUDA GPU(s), "
            f"numbered from 0."
        )
    return matching[0]
