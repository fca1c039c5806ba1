"""The QApplication: identity, style, logging, the main window, and --screenshot."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, Qt, QtMsgType, qInstallMessageHandler
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from assets import icon_path
from core import APP_NAME, __version__
from core.paths import data_dir, is_writable
from gui.main_window import MainWindow

ORGANIZATION = "Labelscope"


def configure_identity() -> None:
    """Names QSettings and the data directories use; call before any QSettings()."""
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setApplicationVersion(__version__)


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication, set up once: identity, high-DPI, style that follows the system's
    light or dark palette, and the window icon."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:
        # Fractional scale factors (125%, 150%) as they are, not rounded: crisp on Windows.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(argv if argv is not None else sys.argv[:1])
    configure_identity()
    QGuiApplication.setDesktopFileName("labelscope")
    # Fusion draws with the palette, which Qt takes from the system's light/dark scheme.
    app.setStyle("Fusion")
    app.setWindowIcon(QIcon(str(icon_path("labelscope"))))
    return app


def configure_logging() -> Path | None:
    """Warnings to stderr, and everything from INFO up to a rotating file in the data
    directory, where a bug report can pick it up. Returns the log file, if any."""
    root = logging.getLogger()
    if root.handlers:
        return None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    directory = data_dir()
    if not is_writable(directory):
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        log_file = directory / "labelscope.log"
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=2_000_000, backupCount=2, encoding="utf-8"
        )
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.handlers[0].setLevel(logging.WARNING)
    return log_file


#: Qt messages that say nothing to a user: the offscreen platform cannot resize to hints.
_QT_NOISE = ("This plugin does not support propagateSizeHints",)
_QT_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _qt_message(kind: QtMsgType, context: object, message: str) -> None:
    if not message.startswith(_QT_NOISE):
        logging.getLogger("qt").log(_QT_LEVELS.get(kind, logging.WARNING), "%s", message)


def take_screenshot(
    window: MainWindow,
    path: str | Path,
    size: tuple[int, int] | None = None,
    settle: float = 10.0,
) -> bool:
    """Render the window as it would appear on screen to a PNG, once the jobs it started
    (loading the model) are done or `settle` seconds have passed; True on success."""
    if size is not None:
        window.resize(*size)
    window.show()
    deadline = time.monotonic() + settle
    QApplication.processEvents()
    while window.runner.active() and time.monotonic() < deadline:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
    QApplication.processEvents()
    window.repaint()
    QApplication.processEvents()
    return window.grab().save(str(path), "PNG")


def run_app(args: argparse.Namespace) -> int:
    """Open the main window (or render it with --screenshot) and run until it closes."""
    configure_logging()
    qInstallMessageHandler(_qt_message)
    app = create_application()
    window = MainWindow(device_preference=args.device, save_settings=not args.screenshot)
    if args.workbench:
        window.show_workbench(args.workbench)
    if args.screenshot:
        ok = take_screenshot(window, args.screenshot, args.size)
        window.close()
        if not ok:
            print(f"labelscope: cannot write {args.screenshot}", file=sys.stderr)
            return 1
        print(args.screenshot)
        return 0
    window.show()
    return app.exec()
