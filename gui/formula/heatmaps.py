"""What the CTC model sees at each time step, drawn as heatmaps that line up in columns.

`PosteriorView`: the image as the model reads it, and under it the posteriors (time steps
× symbols, the blank row apart), each column under the band of the image it reads.
`AlignmentView`: the occupancy γ of one labelling over its blank-interleaved states, with the
Viterbi path drawn on it. Both share their margins, so a time step is the same column in
each; hovering one highlights the step in both and the image region it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.formula.alphabet import BLANK_CHAR, SYMBOLS
from core.formula.ctc import Alignment
from gui.widgets.common import to_qimage

LEFT = 30  # row labels
RIGHT = 64  # colour bar and its ticks
LOG_FLOOR = -8.0  # natural log: the log scale runs from e^-8 (3e-4) to 1
ROW = 12
STRIP = 64  # height of the model-input strip above the posteriors
_LUT: np.ndarray | None = None


def colour_table() -> np.ndarray:
    """(256, 3) uint8: the viridis map, dark for 0, yellow for 1."""
    global _LUT
    if _LUT is None:
        import pyqtgraph as pg

        _LUT = np.asarray(pg.colormap.get("viridis").getLookupTable(nPts=256, alpha=False))
        _LUT = _LUT.astype(np.uint8)
    return _LUT


def colourise(values: np.ndarray) -> QImage:
    """A QImage of `values` in [0, 1] (rows, columns) through the colour table."""
    index = np.clip(np.round(values * 255), 0, 255).astype(np.intp)
    return to_qimage(np.ascontiguousarray(colour_table()[index]))


def scaled(probabilities: np.ndarray, log_scale: bool) -> np.ndarray:
    """Probabilities as colour positions: linear, or log from e^LOG_FLOOR to 1."""
    if not log_scale:
        return probabilities
    with np.errstate(divide="ignore"):
        logs = np.log(np.maximum(probabilities, 1e-30))
    return np.clip(1 - logs / LOG_FLOOR, 0, 1)


def _mono(size: float = 0.9) -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSizeF(max(6.0, font.pointSizeF() * size))
    return font


class StepPlot(QWidget):
    """Columns for time steps between fixed margins; tracks the step under the mouse."""

    hovered = Signal(int)  # time step, -1 when the mouse leaves

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.steps = 0
        self.highlight = -1
        self.log_scale = False

    def plot_width(self) -> float:
        return max(1.0, self.width() - LEFT - RIGHT)

    def column(self, step: int) -> tuple[float, float]:
        """The x-range of time step `step`."""
        width = self.plot_width() / max(self.steps, 1)
        return LEFT + step * width, LEFT + (step + 1) * width

    def step_at(self, x: float) -> int:
        if not self.steps or not LEFT <= x < LEFT + self.plot_width():
            return -1
        return min(self.steps - 1, int((x - LEFT) / self.plot_width() * self.steps))

    def set_highlight(self, step: int) -> None:
        if step != self.highlight:
            self.highlight = step
            self.update()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = on
        self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        step = self.step_at(event.position().x())
        self.setToolTip(self.describe(step) if step >= 0 else "")
        self.set_highlight(step)
        self.hovered.emit(step)

    def leaveEvent(self, event: object) -> None:
        self.set_highlight(-1)
        self.hovered.emit(-1)

    def describe(self, step: int) -> str:
        return f"time step {step}"

    def _draw_highlight(self, painter: QPainter, top: float, bottom: float) -> None:
        if 0 <= self.highlight < self.steps:
            x0, x1 = self.column(self.highlight)
            painter.setPen(QPen(QColor(255, 255, 255), 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(x0, top, max(x1 - x0, 2.0), bottom - top))

    def _draw_colour_bar(self, painter: QPainter, top: float, bottom: float) -> None:
        if bottom - top < 20:
            return
        x = self.width() - RIGHT + 8
        bar = np.linspace(1, 0, 64)[:, None]
        painter.drawImage(QRectF(x, top, 10, bottom - top), colourise(bar))
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        painter.setFont(_mono(0.75))
        ticks = (
            [(1.0, "1"), (0.5, "e⁻⁴"), (0.0, "e⁻⁸")]
            if self.log_scale
            else [(1.0, "1"), (0.5, "0.5"), (0.0, "0")]
        )
        for position, label in ticks:
            y = bottom - position * (bottom - top)
            painter.drawLine(QPointF(x + 10, y), QPointF(x + 13, y))
            painter.drawText(QPointF(x + 15, y + 4), label)


class PosteriorView(StepPlot):
    """The model's input image above its posterior heatmap (blank row on top, apart)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("posteriorHeatmap")
        self.probs: np.ndarray | None = None  # (T, 17)
        self.model_input: QImage | None = None
        self.region: Callable[[int], tuple[float, float]] | None = None
        self.input_width = 1
        self.setFixedHeight(STRIP + 17 * ROW + 14)

    def sizeHint(self) -> QSize:
        return QSize(600, self.height())

    def clear(self) -> None:
        self.probs, self.model_input, self.steps = None, None, 0
        self.update()

    def set_data(
        self,
        log_probs: np.ndarray,
        model_input: np.ndarray,
        region: Callable[[int], tuple[float, float]] | None = None,
    ) -> None:
        """`model_input`: float (H, W), ink 1; `region(step)`: the input x-range a step reads."""
        self.probs = np.exp(np.asarray(log_probs, dtype=np.float64))
        self.steps = len(self.probs)
        paper = np.clip(255 * (1 - model_input), 0, 255).astype(np.uint8)
        self.model_input = to_qimage(paper)
        self.input_width = model_input.shape[1]
        self.region = region
        self.highlight = -1
        self.update()

    def describe(self, step: int) -> str:
        if self.probs is None or not 0 <= step < self.steps:
            return ""
        row = self.probs[step]
        top = np.argsort(-row)[:3]
        names = [BLANK_CHAR + " (blank)" if c == 0 else SYMBOLS[c - 1] for c in top]
        return f"time step {step}: " + ", ".join(
            f"{name} {row[c]:.3f}" for name, c in zip(names, top, strict=True)
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        text = self.palette().color(QPalette.ColorRole.Text)
        if self.probs is None or self.model_input is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                QRectF(self.rect()),
                Qt.AlignmentFlag.AlignCenter,
                "The posterior heatmap appears here once an image is read.",
            )
            return
        strip = STRIP
        plot = QRectF(LEFT, 0, self.plot_width(), strip)
        painter.drawImage(plot, self.model_input)  # columns line up with the time steps
        painter.setPen(QPen(QColor(180, 180, 180), 1))
        painter.drawRect(plot)
        if 0 <= self.highlight < self.steps and self.region is not None:
            x0, x1 = self.region(self.highlight)
            scale = self.plot_width() / self.input_width
            left = LEFT + max(0.0, x0) * scale
            right = LEFT + min(float(self.input_width), x1) * scale
            painter.fillRect(QRectF(left, 0, right - left, strip), QColor(255, 140, 0, 70))
            painter.setPen(QPen(QColor(255, 140, 0), 1.5))
            painter.drawRect(QRectF(left, 0, right - left, strip))

        top = strip + 6
        values = scaled(self.probs.T, self.log_scale)  # (17, T)
        blank_rect = QRectF(LEFT, top, self.plot_width(), ROW)
        symbols_rect = QRectF(LEFT, top + ROW + 4, self.plot_width(), 16 * ROW)
        painter.drawImage(blank_rect, colourise(values[:1]))
        painter.drawImage(symbols_rect, colourise(values[1:]))
        painter.setFont(_mono())
        painter.setPen(text)
        labels = [(BLANK_CHAR, blank_rect.top())] + [
            (symbol, symbols_rect.top() + i * ROW) for i, symbol in enumerate(SYMBOLS)
        ]
        for label, y in labels:
            painter.drawText(QRectF(0, y, LEFT - 6, ROW), Qt.AlignmentFlag.AlignRight, label)
        self._draw_highlight(painter, top, symbols_rect.bottom())
        self._draw_colour_bar(painter, top, symbols_rect.bottom())


class AlignmentView(StepPlot):
    """γ_t(s) of one labelling (states down, time steps across) with its Viterbi path."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alignmentHeatmap")
        self.alignment: Alignment | None = None
        self.message = "Pick a reading or type a text to see how it aligns."
        self._fit_rows(0)

    def _row(self) -> float:
        return ROW if self.alignment is None or len(self.alignment.states) <= 31 else 9.0

    def _fit_rows(self, rows: int) -> None:
        self.setFixedHeight(int(max(rows, 3) * self._row() + 8))

    def sizeHint(self) -> QSize:
        return QSize(600, self.height())

    def set_alignment(self, alignment: Alignment | None, message: str = "") -> None:
        self.alignment = alignment
        self.message = message or self.message
        if alignment is not None:
            self.steps = len(alignment.path)
        self._fit_rows(len(alignment.states) if alignment else 0)
        self.update()

    def describe(self, step: int) -> str:
        a = self.alignment
        if a is None or not 0 <= step < self.steps:
            return ""
        state = int(a.path[step])
        best = int(np.argmax(a.gamma[step]))
        return (
            f"time step {step}: Viterbi path at state {state} ({a.states[state]}); "
            f"most occupied state {best} ({a.states[best]}, γ = {a.gamma[step, best]:.3f})"
        )

    def path_points(self) -> list[QPointF]:
        """The Viterbi path through the cell centres, in widget coordinates."""
        a = self.alignment
        if a is None:
            return []
        row = self._row()
        return [
            QPointF(sum(self.column(t)) / 2, 4 + (int(s) + 0.5) * row) for t, s in enumerate(a.path)
        ]

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        a = self.alignment
        if a is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, self.message)
            return
        row = self._row()
        rect = QRectF(LEFT, 4, self.plot_width(), len(a.states) * row)
        painter.drawImage(rect, colourise(scaled(a.gamma.T, self.log_scale)))
        painter.setFont(_mono(0.8 if row < ROW else 0.9))
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        for s, label in enumerate(a.states):
            painter.drawText(
                QRectF(0, 4 + s * row, LEFT - 6, row), Qt.AlignmentFlag.AlignRight, label
            )
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(240, 60, 60), 2))
        painter.drawPolyline(QPolygonF(self.path_points()))
        self._draw_highlight(painter, rect.top(), rect.bottom())
        self._draw_colour_bar(painter, rect.top(), rect.bottom())


def probability_text(log_prob: float) -> str:
    """p as a number people can read: 0.973, 2.1e-05, or e^-812 when it underflows."""
    if log_prob < -700:
        return f"e^{log_prob:.0f}"
    p = math.exp(log_prob)
    return f"{p:.4f}" if p >= 1e-3 else f"{p:.2e}"
