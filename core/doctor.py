"""`labelscope doctor`: the facts about this installation that a bug report needs."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from core import __version__
from core.paths import data_dir, is_writable, torch_hub_dir, weights_cache_dir


def _dist_version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:,.1f} MiB"


def report(device_preference: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs, in the order they are printed."""
    import cv2
    import torch
    import torchvision

    from core import devices, weights

    rows: list[tuple[str, str]] = [
        ("Labelscope", __version__),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("Platform", platform.platform()),
        ("torch", f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'})"),
        ("torchvision", torchvision.__version__),
        ("Qt (PySide6)", _dist_version("PySide6-Essentials", "PySide6")),
        ("OpenCV", cv2.__version__),
        ("numpy", _dist_version("numpy")),
        ("pyqtgraph", _dist_version("pyqtgraph")),
    ]
    try:
        device = devices.choose(device_preference)
        rows.append(("Device", device.describe()))
        dtype = device.autocast_dtype
        rows.append(("Autocast", str(dtype).removeprefix("torch.") if dtype else "off (float32)"))
    except devices.DeviceError as error:
        rows.append(("Device", f"error: {error}"))
    from core.formula import decoding

    rows.append(
        (
            "CTC beam search",
            "compiled"
            if decoding.compiled_search()
            else "Python (the C part was not built: no C compiler at install)",
        )
    )
    others = [d.describe() for d in devices.available()]
    rows.append(("Devices here", "; ".join(others)))
    rows.append(("torch hub cache", str(torch_hub_dir())))
    cached = weights.cached_weights()
    if cached:
        for item in cached:
            name = item.torchvision_name or "not a torchvision weights file"
            rows.append(("  cached weights", f"{item.path.name}: {name}, {_size(item.size)}"))
    else:
        rows.append(("  cached weights", f"none in {weights_cache_dir()}"))
    from core import qt_platform

    platform_name = qt_platform.expected_platform()
    if platform_name == "xcb":
        missing = qt_platform.missing_libraries()
        packages = " ".join(dict.fromkeys(qt_platform.package_for(n) for n in missing))
        rows.append(
            (
                "Window (Qt xcb)",
                f"MISSING {', '.join(missing)}: sudo apt install {packages}"
                if missing
                else "the system libraries Qt needs are present",
            )
        )
    else:
        rows.append(("Window (Qt)", f"platform {platform_name}"))
    directory = data_dir()
    state = "writable" if is_writable(directory) else "NOT writable"
    exists = "" if directory.exists() else ", not created yet"
    rows.append(("Data directory", f"{directory} ({state}{exists})"))
    return rows


def format_report(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)
