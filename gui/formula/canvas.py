"""The drawing canvas: write a formula with the mouse (or a pen) and hand it to the reader.

Strokes are QPainterPaths smoothed through the midpoints of the mouse positions; each one
is an undo step, and so is clearing the canvas. `image()` renders them, black ink on white,
as the gray uint8 array the recogniser's canvas preprocessing expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.widgets.common import from_qimage

INK = QColor(20, 20, 20)
PAPER = QColor(255, 255, 255)
DEFAULT_PEN = 9.0
PEN_RANGE = (2.0, 40.0)


@dataclass
class Stroke:
    path: QPainterPath
    width: float
    eraser: bool = False


def _pen(stroke: Stroke) -> QPen:
    pen = QPen(PAPER if stroke.eraser else INK, stroke.width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


class DrawingCanvas(QWidget):
    """A white page to write on. `changed` is emitted after each finished stroke, undo,
    redo and clear; `stroke_finished` only after a stroke."""

    changed = Signal()
    stroke_finished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("formulaCanvas")
        self.setMinimumSize(240, 90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.strokes: list[Stroke] = []
        # undo history: ("stroke", [stroke]) or ("clear", the strokes cleared)
        self._undo: list[tuple[str, list[Stroke]]] = []
        self._redo: list[tuple[str, list[Stroke]]] = []
        self._current: Stroke | None = None
        self._last = QPointF()
        self.pen_width = DEFAULT_PEN
        self.eraser = False

    def sizeHint(self) -> QSize:
        return QSize(640, 200)

    # ---------------------------------------------------------------- editing
    def is_empty(self) -> bool:
        return not any(not s.eraser for s in self.strokes)

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def set_pen_width(self, width: float) -> None:
        self.pen_width = float(min(max(width, PEN_RANGE[0]), PEN_RANGE[1]))

    def set_eraser(self, on: bool) -> None:
        self.eraser = on
        self.setCursor(Qt.CursorShape.PointingHandCursor if on else Qt.CursorShape.CrossCursor)

    def undo(self) -> None:
        if not self._undo:
            return
        kind, strokes = self._undo.pop()
        if kind == "stroke":
            self.strokes.pop()
        else:
            self.strokes = list(strokes)
        self._redo.append((kind, strokes))
        self._edited()

    def redo(self) -> None:
        if not self._redo:
            return
        kind, strokes = self._redo.pop()
        if kind == "stroke":
            self.strokes.extend(strokes)
        else:
            self.strokes = []
        self._undo.append((kind, strokes))
        self._edited()

    def clear(self) -> None:
        """Clears the page; undo brings the strokes back."""
        if not self.strokes:
            return
        self._undo.append(("clear", self.strokes))
        self._redo.clear()
        self.strokes = []
        self._edited()

    def add_stroke(self, points: list[tuple[float, float]], width: float | None = None) -> None:
        """A whole stroke at once (widget coordinates), as if drawn with the mouse."""
        if not points:
            return
        self._begin(QPointF(*points[0]), width)
        for point in points[1:]:
            self._extend(QPointF(*point))
        self._finish(QPointF(*points[-1]))

    def _edited(self) -> None:
        self.update()
        self.changed.emit()

    # ---------------------------------------------------------------- strokes
    def _begin(self, point: QPointF, width: float | None = None) -> None:
        path = QPainterPath(point)
        path.lineTo(point + QPointF(0.01, 0))  # a click leaves a dot
        self._current = Stroke(path, width or self.pen_width, self.eraser)
        self._last = point

    def _extend(self, point: QPointF) -> None:
        if self._current is None:
            return
        middle = (self._last + point) / 2
        self._current.path.quadTo(self._last, middle)
        self._last = point
        self.update()

    def _finish(self, point: QPointF) -> None:
        if self._current is None:
            return
        self._current.path.lineTo(point)
        stroke, self._current = self._current, None
        self.strokes.append(stroke)
        self._undo.append(("stroke", [stroke]))
        self._redo.clear()
        self._edited()
        self.stroke_finished.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._begin(event.position())
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._extend(event.position())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._finish(event.position())

    # ---------------------------------------------------------------- output
    @staticmethod
    def _paint_strokes(painter: QPainter, strokes: list[Stroke]) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for stroke in strokes:
            painter.setPen(_pen(stroke))
            painter.drawPath(stroke.path)

    def image(self) -> np.ndarray:
        """The drawing as gray uint8 (H, W) at the canvas's size: ink dark on white."""
        size = self.size()
        image = QImage(max(1, size.width()), max(1, size.height()), QImage.Format.Format_RGB32)
        image.fill(PAPER)
        painter = QPainter(image)
        self._paint_strokes(painter, self.strokes)  # finished strokes only
        painter.end()
        return from_qimage(image, QImage.Format.Format_Grayscale8)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), PAPER)
        baseline = self.height() * 0.78
        guide = QColor(self.palette().color(QPalette.ColorRole.Highlight))
        guide.setAlpha(40)
        painter.setPen(QPen(guide, 1, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(8, baseline), QPointF(self.width() - 8, baseline))
        if self.is_empty() and self._current is None:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(
                QRectF(self.rect()),
                Qt.AlignmentFlag.AlignCenter,
                "Draw a formula here with the mouse, e.g. 6*(3+7)=60",
            )
        self._paint_strokes(painter, [*self.strokes, *([self._current] if self._current else [])])
        if self.hasFocus():
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 2))
            painter.drawRect(QRectF(self.rect()).adjusted(1, 1, -1, -1))
        painter.end()
