"""Test set-up: Qt offscreen, settings and data directories isolated per test, torch's
cache pointed at an empty temporary folder so no test sees (or downloads) real weights."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

import core  # noqa: F401 - first, as in the app: OpenCV's decoder limit is set before cv2 loads

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.pop("LABELSCOPE_DEVICE", None)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Per-test data directory and torch hub directory."""
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LABELSCOPE_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    if "torch.hub" in sys.modules:
        import torch.hub

        monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return base


@pytest.fixture(autouse=True)
def ui_thread_garbage_collection(request: pytest.FixtureRequest):
    """In Qt tests, cycles are collected on the UI thread only, as in the app (whose main
    window does this itself): a job's thread must never run a widget's destructor."""
    if "qapp" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("qapp")
    from gui.workers import collect_garbage_on_ui_thread

    collector = None
    if "make_window" not in request.fixturenames:
        collector = collect_garbage_on_ui_thread(0.2)
    yield
    if collector is not None:
        collector.timer.stop()
    gc.enable()
    gc.collect()


@pytest.fixture
def settings_dir(qapp, tmp_path: Path) -> Path:
    """QSettings in an INI file under a fresh temporary folder."""
    from PySide6.QtCore import QSettings

    from gui.app import configure_identity

    configure_identity()
    directory = tmp_path / "settings"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(directory))
    return directory


@pytest.fixture
def make_window(qtbot, settings_dir):
    """Creates real main windows; each is closed (jobs cancelled) at the end of the test."""
    from gui.main_window import MainWindow

    windows = []

    def make(**kwargs) -> MainWindow:
        window = MainWindow(**kwargs)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)  # keyboard shortcuts go to the active window
        windows.append(window)
        return window

    yield make

    def closed(window) -> bool:
        try:
            return not window.isVisible()
        except RuntimeError:  # deleted on close
            return True

    for window in windows:
        if not closed(window):
            window.close()  # cancels the jobs; the window closes once they have stopped
            qtbot.waitUntil(lambda w=window: closed(w), timeout=120000)
