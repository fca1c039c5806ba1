"""core/ computes, gui/ shows: importing every core module must load no Qt at all."""

import json
import os
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


_NO_TORCH = r"""
import io, contextlib, json, sys
from gui.launcher import main
out = {}
with contextlib.redirect_stdout(io.StringIO()):
    main(["--version"])
out["version"] = "torch" in sys.modules
from core.cli import build_parser
build_parser()  # what --help and every command build first
out["parser"] = "torch" in sys.modules
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    main(["pets", "info", sys.argv[1]])
    main(["formula", "check", "6*(3+7)=76"])
out["commands"] = "torch" in sys.modules
print(json.dumps(out))
"""


def test_the_version_the_parser_and_pets_info_load_no_torch(tmp_path):
    """torch costs seconds and hundreds of MB: what never computes with it never loads it."""
    from tests.pets_data import make_pets

    root = make_pets(tmp_path / "pets", cats=2, dogs=2, tests=1)
    loaded = _probe(_NO_TORCH, str(root))
    assert loaded == {"version": False, "parser": False, "commands": False}


def _probe(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run `script` in a fresh Python (nothing loaded yet) and read the JSON it prints last."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


_WINDOW = r"""
import json, os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
app = QApplication([])
from gui.app import configure_identity
configure_identity()
from gui.main_window import MainWindow
window = MainWindow(save_settings=False)
window.show()
painted = "torch" in sys.modules
pets = window.workbenches["pets"]
pets.open_dataset(sys.argv[1])
deadline = time.monotonic() + 60
while pets.store is None and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.01)
pets.browser.view.scrollToBottom()
for _ in range(50):
    app.processEvents()
    time.sleep(0.01)
browsed = "torch" in sys.modules
window.show_workbench("formulas")
while window.workbenches["formulas"].recognizer is None and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.01)
read = window.workbenches["formulas"].recognizer is not None
print(json.dumps({"painted": painted, "browsed": browsed, "formulas": read}))
window.close()
"""


def test_the_window_paints_and_browses_without_torch(tmp_path):
    """The window is built and a dataset browsed with no torch loaded; showing the
    Formulas workbench loads it (in the background) and its model."""
    from tests.pets_data import make_pets

    root = make_pets(tmp_path / "pets", cats=4, dogs=4, tests=2)
    env = {
        **os.environ,
        "LABELSCOPE_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    loaded = _probe(_WINDOW, str(root), env=env)
    assert loaded == {"painted": False, "browsed": False, "formulas": True}
