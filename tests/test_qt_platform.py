"""Starting the window on a desktop that lacks Qt's system libraries: one clear line that
names the packages to install, in the launcher and in `doctor`, instead of Qt's abort."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core import qt_platform

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007fe5)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibEGL.so.1 => not found
"""


def fake_ldd(args, **_kwargs):
    return subprocess.CompletedProcess(args, 0, LDD, "")


def test_package_names_follow_debian():
    assert qt_platform.package_for("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert qt_platform.package_for("libxcb-render-util.so.0") == "libxcb-render-util0"
    assert qt_platform.package_for("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert qt_platform.package_for("libEGL.so.1") == "libegl1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb is Linux only")
def test_missing_libraries_become_one_line_with_the_packages(monkeypatch, capsys):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    if not qt_platform._qt_files():
        pytest.skip("this PySide6 has no xcb plugin")
    problem = qt_platform.window_problem(run=fake_ldd)
    assert problem is not None and "\n" not in problem
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1 libegl1" in problem
    assert "libxcb-cursor" not in problem  # present: not asked for
    # the launcher prints it and stops before Qt can abort
    from gui import launcher

    monkeypatch.setattr(qt_platform, "missing_libraries", lambda run=None: ["libxcb-icccm.so.4"])
    assert launcher.main([]) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("sudo apt install libxcb-icccm4")
    # offscreen needs none of them
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert qt_platform.window_problem(run=fake_ldd) is None


def test_no_display_is_said_plainly(monkeypatch):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(qt_platform, "missing_libraries", lambda run=None: [])
    monkeypatch.setattr(sys, "platform", "linux")
    assert "there is no display" in qt_platform.window_problem()
