"""core/ computes, gui/ shows: importing every core module must load no Qt at all."""

import json
import subprocess
import sys

from tests.conftest import ROOT

_PROBE = r"""
import importlib, json, pkgutil, sys
import core
names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "core."))
for name in names:
    importlib.import_module(name)
forbidden = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy", "gui")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"modules": names, "qt": loaded}))
"""


def test_core_imports_no_qt_and_no_gui():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "core.jobs" in report["modules"] and "core.cli" in report["modules"]
    assert report["qt"] == []


def test_headless_command_does_not_load_qt():
    """`labelscope doctor` goes through the launcher without touching Qt."""
    probe = (
        "import sys, io, contextlib\n"
        "from gui.launcher import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['pets'])\n"
        "print(code, any(m.startswith('PySide6') for m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["2", "False"]
