"""The readings panel: what the recogniser read, how sure it is, and whether it holds."""

from __future__ import annotations

import html
import math

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.formula.decoding import FormulaGrammar, Hypothesis, SymbolSpan
from core.formula.recognizer import LOOK_AGAIN_BELOW, LOOK_AGAIN_WIDTHS, Recognition
from gui.formula.heatmaps import probability_text
from gui.widgets.common import row_table


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
    """Greedy reading, the beam n-best (plain or grammar-constrained), the verdict, and a
    field to align any text. Picking a row or typing a text asks for its alignment."""

    options_changed = Signal()  # beam width, n-best, grammar or truth weight
    alignment_requested = Signal(str)  # a labelling to align: picked or typed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Readings", parent)
        self.setObjectName("formulaReadings")
        self.status = QLabel()
        self.status.setObjectName("formulaReadingsStatus")
        self.status.setWordWrap(True)
        self.reading = QLabel()
        self.reading.setObjectName("formulaReading")
        self.reading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSizeF(font.pointSizeF() * 2)
        font.setWeight(QFont.Weight.Bold)
        self.reading.setFont(font)
        self.confidence = QLabel()
        self.confidence.setObjectName("formulaConfidence")
        self.confidence.setWordWrap(True)
        self.verdict = QLabel()
        self.verdict.setObjectName("formulaVerdict")
        self.verdict.setWordWrap(True)
        self.second_look = QLabel()
        self.second_look.setObjectName("formulaSecondLook")
        self.second_look.setWordWrap(True)

        option_rows = self._make_options()

        self.table = row_table(
            ["Beam search", "log p", "p", "valid"],
            "formulaBeams",
            "Pick a reading to see its alignment",
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._picked)
        self.table.setMinimumHeight(120)

        own_row = self._make_own_text()
        self.alignment_info = QLabel()
        self.alignment_info.setObjectName("formulaAlignmentInfo")
        self.alignment_info.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.reading)
        layout.addWidget(self.confidence)
        layout.addWidget(self.second_look)
        layout.addWidget(self.verdict)
        for row in option_rows:
            layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addLayout(own_row)
        layout.addWidget(self.alignment_info)
        self.shown: list[Hypothesis] = []
        self._filling = False
        self.show_message("<b>No recognition model is loaded.</b>")

    def _make_own_text(self) -> QHBoxLayout:
        """A field to type any text and see how it aligns."""
        self.own_text = QLineEdit()
        self.own_text.setObjectName("formulaOwnText")
        self.own_text.setPlaceholderText("type a text, e.g. 6*(3+7)=60, and press Enter")
        self.own_text.setValidator(
            QRegularExpressionValidator(QRegularExpression(r"[0-9+\-*()= ]*"), self.own_text)
        )
        self.own_text.returnPressed.connect(self._typed)
        own_row = QHBoxLayout()
        own_row.addWidget(QLabel("Align:"))
        own_row.addWidget(self.own_text, 1)
        return own_row

    def _make_options(self) -> list[QHBoxLayout]:
        """Beam width, n-best, the grammar switch and the weight of true equations."""
        self.beam_width = QSpinBox()
        self.beam_width.setObjectName("formulaBeamWidth")
        self.beam_width.setRange(1, 200)
        self.beam_width.setValue(10)
        self.beam_width.setToolTip("Prefixes the beam search keeps at each time step")
        self.nbest = QSpinBox()
        self.nbest.setRange(1, 50)
        self.nbest.setValue(5)
        self.nbest.setToolTip("Readings listed")
        self.grammar = QCheckBox("Grammar-constrained")
        self.grammar.setObjectName("formulaGrammar")
        self.grammar.setToolTip(
            "Only prefixes of valid formulas survive the search; only complete ones end it"
        )
        self.truth_weight = QDoubleSpinBox()
        self.truth_weight.setObjectName("formulaTruthWeight")
        self.truth_weight.setRange(0.0, 50.0)
        self.truth_weight.setSingleStep(0.5)
        self.truth_weight.setSuffix(" nats")
        self.truth_weight.setToolTip(
            "Constrained search: add this to the log-probability of equations that hold"
        )
        self.truth_weight.setEnabled(False)
        self.grammar.toggled.connect(self.truth_weight.setEnabled)
        self.look_again = QCheckBox("Read again at other widths when unsure")
        self.look_again.setObjectName("formulaLookAgain")
        self.look_again.setChecked(True)
        self.look_again.setToolTip(
            f"When the greedy reading's p(text | image) is below {LOOK_AGAIN_BELOW:g}, the "
            "image is read again at "
            + ", ".join(f"{w:.0%}" for w in LOOK_AGAIN_WIDTHS)
            + " of its width; the reading that all the widths together find likeliest is "
            "the reading. Where the widths disagree, the shipped small model asks the "
            "shipped large one, whose reading weighs as much as all the widths together. "
            "On binarised images it reads a point better on average than one look and "
            "up to three on the hardest; an unsure image takes about 10 ms more, and 10 ms "
            "more again when the large model is asked"
        )
        for signal in (
            self.beam_width.valueChanged,
            self.nbest.valueChanged,
            self.grammar.toggled,
            self.truth_weight.valueChanged,
            self.look_again.toggled,
        ):
            signal.connect(self.options_changed)
        options = QHBoxLayout()
        options.addWidget(QLabel("Beam width"))
        options.addWidget(self.beam_width)
        options.addWidget(QLabel("n-best"))
        options.addWidget(self.nbest)
        options.addStretch(1)
        grammar_row = QHBoxLayout()
        grammar_row.addWidget(self.grammar)
        grammar_row.addStretch(1)
        look_row = QHBoxLayout()
        look_row.addWidget(self.look_again)
        look_row.addStretch(1)
        truth_row = QHBoxLayout()
        truth_row.addWidget(QLabel("Prefer true equations by"))
        truth_row.addWidget(self.truth_weight)
        truth_row.addStretch(1)
        return [options, look_row, grammar_row, truth_row]

    def decoder_options(self) -> dict[str, object]:
        """Keyword arguments for Recognizer.recognize from the controls."""
        grammar: object = True
        if self.truth_weight.value() > 0:
            grammar = FormulaGrammar(truth_weight=self.truth_weight.value())
        return {
            "beam_width": self.beam_width.value(),
            "nbest": self.nbest.value(),
            "grammar": grammar,
            "look_again": self.look_again.isChecked(),
        }

    def show_message(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(True)
        self.reading.clear()
        self.confidence.clear()
        self.second_look.clear()
        self.verdict.clear()
        self.alignment_info.clear()
        self.shown = []
        self.table.setRowCount(0)

    def show_recognition(self, result: Recognition, model_name: str) -> None:
        how = "Reading" if result.second_look and result.second_look.changed else "Greedy reading"
        self.status.setText(
            f"{how} by {html.escape(model_name)} in {result.timings['total']:.1f} ms"
            " (doubtful symbols underlined):"
        )
        self.reading.setText(confidence_html(result.symbols) or "∅")
        self.reading.setToolTip("  ".join(f"{s.symbol} {s.confidence:.3f}" for s in result.symbols))
        self.confidence.setText(sequence_confidence(result))
        self.second_look.setText(second_look_html(result))
        constrained = result.constrained[0].text if result.constrained else None
        how = "The grammar-constrained search reads"
        if result.grammar_look is not None and result.grammar_look.changed:
            # its unsure top reading, read again at other widths as the greedy one is
            constrained = result.grammar_look.text
            how = "The grammar-constrained search, read again at other widths, reads"
        text = verdict(result.text)
        if constrained is not None and constrained != result.text:
            text += f"<br>{how} <b>{html.escape(constrained)}</b>: {verdict(constrained)}"
        elif not result.constrained and result.beams:
            text += "<br>No complete formula survives the grammar-constrained search."
        self.verdict.setText(text)
        self.shown = result.constrained if self.grammar.isChecked() else result.beams
        valid = {h.text for h in result.constrained}
        self.table.horizontalHeaderItem(0).setText(
            "Constrained search" if self.grammar.isChecked() else "Beam search"
        )
        self._filling = True
        self.table.setRowCount(len(self.shown))
        for row, hypothesis in enumerate(self.shown):
            cells = [
                hypothesis.text or "∅",
                f"{hypothesis.log_prob:.3f}",
                probability_text(hypothesis.log_prob),
                _validity(hypothesis.text) if hypothesis.text in valid else "✗",
            ]
            for column, value in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self._filling = False

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def _picked(self) -> None:
        if self._filling:
            return
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.shown):
            self.alignment_requested.emit(self.shown[rows[0].row()].text)

    def _typed(self) -> None:
        self.table.clearSelection()
        self.alignment_requested.emit(self.own_text.text().replace(" ", ""))

    def show_alignment(self, text: str, log_prob: float | None, problem: str = "") -> None:
        if problem:
            self.alignment_info.setText(f"Cannot align {html.escape(text or '∅')}: {problem}")
            return
        assert log_prob is not None
        self.alignment_info.setText(
            f"Alignment of <b>{html.escape(text or '∅')}</b>: exact log p(text | x) = "
            f"{log_prob:.3f}, p = {probability_text(log_prob)}"
        )


def second_look_html(result: Recognition) -> str:
    """What the second look at an unsure reading read at each width, and what won."""
    look = result.second_look
    if look is None:
        return ""
    widths = ", ".join(
        f"{share:.0%} <b>{html.escape(text) or '∅'}</b>"
        for share, text in zip(look.widths[1:], look.readings[1:], strict=True)
    )
    first = html.escape(look.readings[0]) or "∅"
    chosen = html.escape(look.text) or "∅"
    over = f"over all {len(look.widths)} widths"
    asked = ""
    if look.referee is not None:
        asked = (
            f"; they disagree, so {html.escape(look.referee_model or 'the referee')} read it "
            f"too: <b>{html.escape(look.referee) or '∅'}</b>"
        )
        over += ", with its log p weighed as much as theirs together,"
    elif look.referee_problem:
        asked = "; they disagree, but the large model could not be asked: " + html.escape(
            look.referee_problem
        )
    said = (
        f"the likeliest {over} is <b>{chosen}</b> "
        f"(summed log p {_score(look.total(look.text))}, against "
        f"{_score(look.total(look.readings[0]))} for the greedy reading)"
        if look.changed
        else f"the greedy reading stays the likeliest {over.rstrip(',')}"
    )
    return (
        f"Unsure (p({first} | image) = {probability_text(look.first_log_prob)}), so the "
        f"image was read again at other widths: "
        f"{widths}{asked}; {said}."
    )


def _score(log_prob: float) -> str:
    return f"{log_prob:.2f}" if math.isfinite(log_prob) else "−∞"


def _validity(text: str) -> str:
    from core.formula.grammar import parse

    formula = parse(text)
    if not formula.is_equation:
        return "✓"
    return "true" if formula.is_true else "false"


def sequence_confidence(result: Recognition) -> str:
    """How sure the model is of its top reading: the exact p(text | x), and that reading's
    share of the probability the n-best hold."""
    if not result.beams or result.sequence_log_prob is None or result.nbest_share is None:
        return ""
    top, exact, share = result.beams[0], result.sequence_log_prob, result.nbest_share
    said = (
        f"Sequence confidence: p({html.escape(top.text) or '∅'} | image) = "
        f"<b>{probability_text(exact)}</b> (exact); {share:.1%} of the probability of the "
        f"{len(result.beams)} best readings."
    )
    if top.text != result.text and result.second_look is not None:
        said += " The reading above is the second look's (below)."
    return said
