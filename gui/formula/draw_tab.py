"""The Draw tab: the drawing canvas with its tool bar (pen, eraser, width, undo, redo,
clear) and the actions that the help lists."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDoubleSpinBox, QLabel, QToolBar, QVBoxLayout, QWidget

from gui.formula.canvas import PEN_RANGE, DrawingCanvas


class DrawTab(QWidget):
    """The canvas with its tools: pen, eraser, width, undo/redo per stroke, clear."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = DrawingCanvas()
        self.toolbar = QToolBar()
        self.toolbar.setObjectName("drawToolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)

        def action(text: str, keys: list[str], slot: object, tip: str) -> QAction:
            act = QAction(text, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.setToolTip(f"{tip} ({', '.join(keys)})")
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.pen_action = action("Pen", ["P"], lambda: self.set_eraser(False), "Draw with the pen")
        self.eraser_action = action("Eraser", ["E"], lambda: self.set_eraser(True), "Erase")
        for act in (self.pen_action, self.eraser_action):
            act.setCheckable(True)
        self.pen_action.setChecked(True)
        self.undo_action = action("Undo stroke", ["Ctrl+Z"], self.canvas.undo, "Undo a stroke")
        self.redo_action = action(
            "Redo stroke", ["Ctrl+Shift+Z", "Ctrl+Y"], self.canvas.redo, "Redo a stroke"
        )
        self.clear_action = action(
            "Clear", ["Delete", "Backspace"], self.canvas.clear, "Clear the page (undoable)"
        )
        self.thinner_action = action("Thinner", ["["], lambda: self._widen(-2), "Thinner pen")
        self.thicker_action = action("Thicker", ["]"], lambda: self._widen(2), "Thicker pen")
        self.width = QDoubleSpinBox()
        self.width.setObjectName("penWidth")
        self.width.setRange(*PEN_RANGE)
        self.width.setDecimals(0)
        self.width.setSuffix(" px")
        self.width.setValue(self.canvas.pen_width)
        self.width.setToolTip("Pen width ([ and ])")
        self.width.valueChanged.connect(self.canvas.set_pen_width)
        for act in (self.pen_action, self.eraser_action):
            self.toolbar.addAction(act)
        self.toolbar.addWidget(QLabel(" Width "))
        self.toolbar.addWidget(self.width)
        self.toolbar.addSeparator()
        for act in (self.undo_action, self.redo_action, self.clear_action):
            self.toolbar.addAction(act)
        self.canvas.changed.connect(self._update_actions)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas, 1)
        self._update_actions()

    def actions_for_help(self) -> list[QAction]:
        return [
            self.pen_action,
            self.eraser_action,
            self.undo_action,
            self.redo_action,
            self.clear_action,
            self.thinner_action,
            self.thicker_action,
        ]

    def set_eraser(self, on: bool) -> None:
        self.canvas.set_eraser(on)
        self.pen_action.setChecked(not on)
        self.eraser_action.setChecked(on)

    def _widen(self, delta: float) -> None:
        self.width.setValue(self.width.value() + delta)

    def _update_actions(self) -> None:
        self.undo_action.setEnabled(self.canvas.can_undo())
        self.redo_action.setEnabled(self.canvas.can_redo())
        self.clear_action.setEnabled(bool(self.canvas.strokes))
