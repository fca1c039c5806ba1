"""Help dialogs: keyboard shortcuts (read from the window's own actions) and About."""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core import APP_NAME, __version__


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip(".…")


class ShortcutsDialog(QDialog):
    """Every action of the window that has a shortcut, so the list is always true."""

    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        native = QKeySequence.SequenceFormat.NativeText
        rows = [
            (_plain(action.text()), action.shortcut().toString(native))
            for action in actions
            if not action.shortcut().isEmpty()
        ]
        self.table = QTableWidget(len(rows), 2)
        self.table.setObjectName("shortcutsTable")
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (name, keys) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(name))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.ResizeToContents
        )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        # compact rows, and tall enough for all of them without scrolling where the screen
        # allows
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.resizeColumnsToContents()
        rows_height = self.table.verticalHeader().length() + self.table.horizontalHeader().height()
        screen = self.screen().availableGeometry().height() if self.screen() else 800
        width = max(480, self.table.horizontalHeader().length() + 60)
        self.resize(width, min(int(screen * 0.85), rows_height + 90))


def about_text(device_description: str) -> str:
    import torch
    import torchvision

    return (
        f"<h3>{APP_NAME} {__version__}</h3>"
        "<p>A desktop workbench for two classic vision jobs: cleaning and learning the "
        "Dogs vs. Cats data, and reading arithmetic images with a CTC model.</p>"
        f"<p>Python {platform.python_version()} · torch {torch.__version__} · "
        f"torchvision {torchvision.__version__} · Qt {qVersion()} "
        f"(PySide6 {pyside_version})<br>Device: {device_description}</p>"
    )


def about_box(device_description: str, parent: QWidget) -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName("aboutBox")
    box.setWindowTitle(f"About {APP_NAME}")
    box.setIconPixmap(parent.windowIcon().pixmap(64, 64))
    box.setText(about_text(device_description))
    return box
