"""Small helpers both workbenches use: numpy images as QImage, headings, copyable text."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QFont, QFontDatabase, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QWidget,
)

if TYPE_CHECKING:
    pass


def make_action(
    parent: QWidget,
    text: str,
    slot: Any,
    shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
    tip: str = "",
) -> QAction:
    """A menu or toolbar action: its text, what it does, its keys and status-bar tip."""
    action = QAction(text, parent)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    return action


#: The colour of a warning that something lowers accuracy.
WARNING_COLOUR = "#b35c00"


def check_quietly(toggles: Mapping[str, QAction | QAbstractButton], names: Collection[str]) -> None:
    """Check exactly the toggles named in `names`, without their `toggled` signals: the
    caller says once that the choice changed."""
    for name, toggle in toggles.items():
        toggle.blockSignals(True)
        toggle.setChecked(name in names)
        toggle.blockSignals(False)


def to_qimage(image: np.ndarray) -> QImage:
    """An RGB (H, W, 3) or gray (H, W) uint8 array as a QImage that owns its pixels."""
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    height, width = array.shape[:2]
    if array.ndim == 2:
        qformat = QImage.Format.Format_Grayscale8
    elif array.ndim == 3 and array.shape[2] == 3:
        qformat = QImage.Format.Format_RGB888
    else:
        raise ValueError(f"expected (H, W) or (H, W, 3) pixels, got shape {array.shape}")
    view = QImage(array.data, width, height, array.strides[0], qformat)
    return view.copy()  # the view borrows numpy's buffer; the copy outlives it


def from_qimage(image: QImage, qformat: QImage.Format) -> np.ndarray:
    """A QImage as a uint8 array that owns its pixels, converted to `qformat`: Grayscale8
    (H, W), RGB888 (H, W, 3) or RGBA8888 (H, W, 4)."""
    depths = {
        QImage.Format.Format_Grayscale8: 1,
        QImage.Format.Format_RGB888: 3,
        QImage.Format.Format_RGBA8888: 4,
    }
    depth = depths[qformat]
    converted = image.convertToFormat(qformat)
    width, height = converted.width(), converted.height()
    line = converted.bytesPerLine()
    rows = np.frombuffer(converted.constBits(), np.uint8, line * height).reshape(height, line)
    pixels = rows[:, : width * depth].copy()
    return pixels if depth == 1 else pixels.reshape(height, width, depth)


def heading(text: str, scale: float = 1.5) -> QLabel:
    """A bold label, `scale` times the application font (keeps to the user's DPI and font)."""
    label = QLabel(text)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    label.setWordWrap(True)
    return label


def paragraph(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setOpenExternalLinks(False)
    return label


class CommandBox(QWidget):
    """A one-line shell command in a monospace field the user can select, with Copy."""

    def __init__(self, command: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.command = command
        self.field = QLineEdit(command)
        self.field.setReadOnly(True)
        self.field.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.field.setCursorPosition(0)
        self.field.setToolTip(command)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the command to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.field, 1)
        layout.addWidget(self.copy_button)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.command)


_BAR_STEPS = 1000


def show_fraction(bar: QProgressBar, fraction: float | None) -> None:
    """A progress bar at `fraction` of the way, or busy (moving) when it is None."""
    if fraction is None:
        bar.setRange(0, 0)
    else:
        bar.setRange(0, _BAR_STEPS)
        bar.setValue(int(fraction * _BAR_STEPS))


def scrolling(panel: QWidget, across: bool = True) -> QScrollArea:
    """`panel` in a scroll area: the window may be smaller than the panel wants. Without
    `across` it is fitted to the width and scrolls only up and down."""
    area = QScrollArea()
    if not across:
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(panel)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


def row_table(headers: list[str], name: str, tip: str) -> QTableWidget:
    """A read-only table whose rows are picked one at a time: the first column takes the
    room, the others fit their contents."""
    table = QTableWidget(0, len(headers))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for column in range(1, len(headers)):
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
    table.setToolTip(tip)
    return table


class DeviceChoice(QComboBox):
    """A panel's device: by default the app's own (Tools ▸ Device), shown as such and
    following it; or, for this panel only, one of the devices found. The devices are
    listed once the window has found them (`set_devices`: finding them loads torch)."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        from core import devices

        super().__init__(parent)
        self.setObjectName(name)
        self.addItem("", None)
        self._app = ""
        self.set_app_device(devices.choose("cpu"))

    def set_devices(self, found: list[Any]) -> None:
        """The devices this panel may choose for itself (core.devices.Device values)."""
        chosen = self.currentData()
        while self.count() > 1:
            self.removeItem(1)
        for device in found:
            self.addItem(f"{device.describe()} (this panel only)", device.spec)
        self.setCurrentIndex(max(0, self.findData(chosen)) if chosen else 0)

    def set_app_device(self, device: Any) -> None:
        """The device the app uses now (a core.devices.Device)."""
        self._app = device.spec
        self.setItemText(0, f"As the app: {device.describe()}")

    def choice(self) -> str:
        """The device to run on: this panel's own choice, else the app's."""
        data = self.currentData()
        return data if data is not None else self._app
