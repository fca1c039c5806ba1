"""The readings panel: what the recogniser read, how sure it is, and whether it holds."""

from __future__ import annotations

import html
import math

from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QGroupBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.formula.decoding import SymbolSpan
from core.formula.recognizer import Recognition


def confidence_html(symbols: tuple[SymbolSpan, ...]) -> str:
    """Each symbol coloured by its confidence: sure symbols plain, doubtful ones orange to
    red, with the confidence in the tooltip of the whole text."""
    parts = []
    for span in symbols:
        if span.confidence >= 0.9:
            parts.append(html.escape(span.symbol))
        else:
            colour = "#d9480f" if span.confidence >= 0.5 else "#c92a2a"
            parts.append(
                f'<span style="color:{colour}; text-decoration: underline">'
                f"{html.escape(span.symbol)}</span>"
            )
    return "".join(parts)


def verdict(text: str) -> str:
    from core.formula.grammar import GrammarError, parse

    if not text:
        return "Nothing was read."
    try:
        formula = parse(text)
    except GrammarError as error:
        return f"Not a valid formula: {html.escape(error.reason)}."
    if not formula.is_equation:
        return f"{html.escape(text)} = <b>{formula.value}</b>"
    if formula.is_true:
        return "The equation is <b>true</b>."
    return (
        f"The equation is <b>false</b>: {html.escape(formula.expression)} = "
        f"<b>{formula.value}</b>, not {formula.written}."
    )


class ReadingsPanel(QGroupBox):
    """Greedy reading, the beam n-best, the grammar-constrained reading, the verdict."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Readings", parent)
        self.setObjectName("formulaReadings")
        self.status = QLabel()
        self.status.setObjectName("formulaReadingsStatus")
        self.status.setWordWrap(True)
        self.reading = QLabel()
        self.reading.setObjectName("formulaReading")
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSizeF(font.pointSizeF() * 2)
        font.setWeight(QFont.Weight.Bold)
        self.reading.setFont(font)
        self.verdict = QLabel()
        self.verdict.setObjectName("formulaVerdict")
        self.verdict.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("formulaBeams")
        self.table.setHorizontalHeaderLabels(["Beam search", "log p", "p", "valid"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.reading)
        layout.addWidget(self.verdict)
        layout.addWidget(self.table, 1)
        self.show_message("<b>No recognition model is loaded.</b>")

    def show_message(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(True)
        self.reading.clear()
        self.verdict.clear()
        self.table.setRowCount(0)

    def show_recognition(self, result: Recognition, model_name: str) -> None:
        self.status.setText(
            f"Greedy reading by {html.escape(model_name)} in {result.timings['total']:.1f} ms"
            " (doubtful symbols underlined):"
        )
        self.reading.setText(confidence_html(result.symbols) or "∅")
        self.reading.setToolTip("  ".join(f"{s.symbol} {s.confidence:.3f}" for s in result.symbols))
        constrained = result.constrained[0].text if result.constrained else None
        text = verdict(result.text)
        if constrained is not None and constrained != result.text:
            text += (
                f"<br>The grammar-constrained search reads "
                f"<b>{html.escape(constrained)}</b>: {verdict(constrained)}"
            )
        self.verdict.setText(text)
        valid = {h.text for h in result.constrained}
        self.table.setRowCount(len(result.beams))
        for row, hypothesis in enumerate(result.beams):
            cells = [
                hypothesis.text or "∅",
                f"{hypothesis.log_prob:.3f}",
                f"{math.exp(hypothesis.log_prob):.4f}",
                "yes" if hypothesis.text in valid else "no",
            ]
            for column, value in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(value))
