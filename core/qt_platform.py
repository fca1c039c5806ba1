"""Whether Qt can open a window here, checked without loading Qt: on Linux its X11 platform
plugin needs system libraries that a fresh desktop may lack, and Qt then aborts the process
with a message that names the wrong package. This finds what is missing (with `ldd`) and
says which packages to install."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: The Debian/Ubuntu packages Qt's xcb platform needs beyond a base system (the README
#: lists them); each library's package where its name does not follow the usual rule.
XCB_PACKAGES = (
    "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0",
    "libxcb-render-util0", "libxcb-shape0", "libxcb-xkb1", "libxkbcommon-x11-0",
    "libxcb-randr0", "libxcb-xinerama0", "libegl1", "libgl1", "libfontconfig1",
    "libdbus-1-3",
)  # fmt: skip
_PACKAGE_OF = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11-xcb.so.1": "libx11-xcb1",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_HEADLESS = {"offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay", "minimalegl"}


def package_for(soname: str) -> str:
    """The Debian package that usually provides a library: libxcb-icccm.so.4 →
    libxcb-icccm4."""
    if soname in _PACKAGE_OF:
        return _PACKAGE_OF[soname]
    match = re.match(r"^(lib[\w+.-]*?)\.so\.(\d+)", soname)
    if not match:
        return soname
    name, major = match.groups()
    name = name.lower()
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def _qt_files() -> list[Path]:
    """The xcb platform plugin and the Qt library it is built on, where PySide6 is."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt"
    files = [
        qt / "plugins" / "platforms" / "libqxcb.so",
        *sorted((qt / "lib").glob("libQt6XcbQpa.so*")),
    ]
    return [f for f in files if f.is_file()]


def missing_libraries(run=subprocess.run) -> list[str]:
    """The shared libraries Qt's xcb platform needs that the system does not have (empty
    where nothing is missing, or where it cannot be told: no ldd, not Linux)."""
    if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        return []
    missing: list[str] = []
    for path in _qt_files():
        try:
            result = run(["ldd", str(path)], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        for name in _NOT_FOUND.findall(result.stdout):
            if name not in missing:
                missing.append(name)
    return missing


def expected_platform() -> str:
    """The platform Qt will try: QT_QPA_PLATFORM, else wayland in a Wayland session, else
    xcb on Linux."""
    chosen = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip()
    if chosen:
        return chosen
    if not sys.platform.startswith("linux"):
        return "native"
    if os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    return "xcb"


def window_problem(run=subprocess.run) -> str | None:
    """Why the app's window cannot open here, in one line that says what to do; None when
    nothing is known to stop it."""
    platform = expected_platform()
    if platform != "xcb":
        return None
    missing = missing_libraries(run)
    if missing:
        packages = " ".join(dict.fromkeys(package_for(n) for n in missing))
        return (
            f"Labelscope cannot open its window: Qt's X11 support needs {', '.join(missing)}, "
            f"which this system lacks. Install them (Debian/Ubuntu): sudo apt install {packages}"
        )
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return (
            "Labelscope cannot open its window: there is no display (DISPLAY is not set). Run "
            "it on a desktop, under xvfb-run, or use the command line (labelscope --help)."
        )
    return None
