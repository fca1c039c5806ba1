"""The Folder tab: every image of a folder with what the model reads, and where the folder
has a labels file, right or wrong per image and the folder's accuracy."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.formula import preprocess
from core.formula.evaluation import FolderReading, read_images
from core.formula.recognizer import Recognizer
from gui.widgets.common import WARNING_COLOUR, check_quietly, heading, paragraph, row_table
from gui.widgets.job_controls import FollowsJob, JobControls, job_row, reading_and_time_left
from gui.workers import JobHandle, JobRunner

_RIGHT, _WRONG = QColor(47, 158, 68), QColor(201, 42, 42)


class FolderPanel(FollowsJob, QWidget):
    """Open a folder, read it in the background, list the readings; a click opens one."""

    #: an image to open on the Read tab, and the steps its reading here went through
    image_chosen = Signal(str, frozenset)

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.recognizer: Recognizer | None = None
        self.reading: FolderReading | None = None
        self.folder: Path | None = None
        self.open_button = QPushButton("Open folder…")
        self.open_button.setObjectName("formulaOpenFolder")
        self.open_button.clicked.connect(self.choose_folder)
        self.again_button = QPushButton("Read again")
        self.again_button.setToolTip("Read the folder again with the model now loaded")
        self.again_button.clicked.connect(lambda: self.folder and self.open_folder(self.folder))
        self.again_button.setEnabled(False)
        self.grammar = QCheckBox("Grammar")
        self.grammar.setObjectName("formulaFolderGrammar")
        self.grammar.setToolTip(
            "Read each image as the most probable well-formed formula (grammar-constrained "
            "beam search) instead of the greedy reading"
        )
        self.grammar.toggled.connect(lambda: self.folder and self.open_folder(self.folder))
        self.look_again = QCheckBox("Look again")
        self.look_again.setObjectName("formulaFolderLookAgain")
        self.look_again.setChecked(True)
        self.look_again.setToolTip(
            "Read an image whose reading (greedy, or the grammar's) is unsure again at "
            "other widths, and take the reading they together find likeliest; where they "
            "disagree, the shipped small model asks the large one too (as the Read tab does)"
        )
        self.look_again.toggled.connect(lambda: self.folder and self.open_folder(self.folder))
        self.steps_button = QToolButton()
        self.steps_button.setObjectName("formulaFolderSteps")
        self.steps_button.setText("Steps")
        self.steps_button.setToolTip(
            "The preprocessing every image goes through, as on the Read tab: the model's "
            "defaults, or optional steps turned on and default ones off"
        )
        self.steps_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.steps_button)
        menu.setToolTipsVisible(True)
        self.step_actions: dict[str, QAction] = {}
        for step in preprocess.STEPS:
            if step.name in preprocess.ALWAYS:
                continue
            action = menu.addAction(step.title)
            action.setCheckable(True)
            action.setChecked(step.default)
            action.setToolTip(step.help)
            action.toggled.connect(self._steps_changed)
            self.step_actions[step.name] = action
        menu.addSeparator()
        menu.addAction("Model's defaults", self.reset_steps)
        self.steps_button.setMenu(menu)
        self.steps_note = QLabel()
        self.steps_note.setObjectName("formulaFolderStepsNote")
        self.steps_note.setWordWrap(True)
        self.steps_note.setVisible(False)
        self.shown_steps = preprocess.DEFAULT  # what the readings in the table went through
        self.mistakes_only = QCheckBox("Only mistakes")
        self.mistakes_only.toggled.connect(self._filter)
        self.summary = QLabel("No folder is open.")
        self.summary.setObjectName("formulaFolderSummary")
        self.summary.setWordWrap(True)
        self.table = row_table(
            ["Image", "Label", "Reading", ""],
            "formulaFolderTable",
            "Double-click (or Enter) to open the image on the Read tab",
        )
        self.table.cellActivated.connect(self._activated)
        self.table.cellDoubleClicked.connect(self._activated)
        self.controls = JobControls("formulaFolder", self.summary, describe=reading_and_time_left)
        self.cancel_button, self.progress, _summary = self.controls.widgets()

        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.again_button)
        buttons.addWidget(self.grammar)
        buttons.addWidget(self.look_again)
        buttons.addWidget(self.steps_button)
        buttons.addWidget(self.mistakes_only)
        buttons.addStretch(1)
        job = job_row(self.cancel_button, progress=self.progress)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Read a folder", 1.2))
        layout.addWidget(
            paragraph(
                "Reads every image of a folder. With a Baidu-format <tt>labels.txt</tt> "
                "(line <i>i</i> describes <tt>i.png</tt>) each reading is marked right or "
                "wrong and the folder's sequence accuracy is shown."
            )
        )
        layout.addLayout(buttons)
        layout.addWidget(self.steps_note)
        layout.addLayout(job)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def set_recognizer(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def options(self) -> dict[str, object]:
        """The reading options, as the window remembers them."""
        return {
            "folder_grammar": self.grammar.isChecked(),
            "folder_look_again": self.look_again.isChecked(),
            "folder_steps": [name for name in preprocess.STEP_NAMES if name in self.steps()],
        }

    def option_setters(self) -> dict[str, object]:
        """For each key of `options`, what puts a remembered value back (step names this
        version does not know are left out)."""
        return {
            "folder_grammar": lambda v: self.grammar.setChecked(bool(v)),
            "folder_look_again": lambda v: self.look_again.setChecked(bool(v)),
            "folder_steps": lambda v: self.set_steps(frozenset(map(str, v))),
        }

    def steps(self) -> frozenset[str]:
        """The preprocessing chosen in the Steps menu, the model's own last steps included."""
        on = {name for name, action in self.step_actions.items() if action.isChecked()}
        return frozenset(on | preprocess.ALWAYS)

    def set_steps(self, steps: frozenset[str]) -> None:
        """Check exactly `steps` in the Steps menu (names it does not hold are left out); the
        folder is read again if they changed."""
        if steps | preprocess.ALWAYS == self.steps():
            return
        check_quietly(self.step_actions, steps)
        self._steps_changed()

    def reset_steps(self) -> None:
        self.set_steps(preprocess.DEFAULT)

    def _steps_changed(self) -> None:
        """Say which steps differ from the model's defaults and what the costly ones do to
        accuracy; read the folder again with them."""
        steps = self.steps()
        changed = steps != preprocess.DEFAULT
        self.steps_button.setText("Steps (changed)" if changed else "Steps")
        lines = []
        if changed:
            lines.append(f"Steps: {preprocess.named(steps)}")
            lines += [
                f'<span style="color: {WARNING_COLOUR};">{note}</span>'
                for note in preprocess.costly(steps)
            ]
        self.steps_note.setText("<br>".join(lines))
        self.steps_note.setVisible(changed)
        if self.folder is not None:
            self.open_folder(self.folder)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of formula images")
        if folder:
            self.open_folder(folder)

    def open_folder(
        self, folder: str | Path, recognizer: Recognizer | None = None
    ) -> JobHandle | None:
        recognizer = recognizer or self.recognizer
        self.folder = Path(folder)
        self.again_button.setEnabled(True)
        if recognizer is None:
            self.summary.setText("No recognition model is loaded yet: try again in a moment.")
            return None
        self.table.setRowCount(0)
        steps = self.steps()
        handle = self.runner.start(
            f"Reading {self.folder.name}",
            partial(
                read_images,
                partial(
                    recognizer.read_batch,
                    grammar=self.grammar.isChecked(),
                    look_again=self.look_again.isChecked(),
                    steps=None if steps == preprocess.DEFAULT else steps,
                ),
                self.folder,
            ),
        )
        return self.controls.follow(
            handle,
            f"Reading {self.folder} …",
            succeeded=partial(self.show_reading, steps=steps),
            failed="Cannot read the folder",
        )

    def show_reading(
        self, reading: FolderReading, steps: frozenset[str] = preprocess.DEFAULT
    ) -> None:
        self.reading, self.shown_steps = reading, steps
        report = reading.report
        count = len(reading.paths)
        parts = [f"{count:,} image{'' if count == 1 else 's'} in {reading.root}"]
        if report is not None:
            parts.append(
                f"sequence accuracy <b>{report.accuracy:.2%}</b> "
                f"({report.correct:,} of {report.total:,}), character error rate "
                f"{report.cer:.2%}"
            )
        else:
            parts.append("no labels file: readings only")
        if self.grammar.isChecked():
            parts.append("read with the formula grammar")
        if steps != preprocess.DEFAULT:
            parts.append("read with the steps named above")
        if reading.failures:
            parts.append(f"{len(reading.failures):,} could not be decoded")
        if reading.problems:
            parts.append(f"{len(reading.problems):,} labels-file problems")
        self.summary.setText(" · ".join(parts))
        self.summary.setToolTip("\n".join(reading.problems[:30]))
        self.table.setRowCount(len(reading.paths))
        for row, path in enumerate(reading.paths):
            truth = reading.truths[row] if reading.truths is not None else ""
            text = reading.texts[row]
            failure = reading.failures.get(row)
            right = reading.correct(row)
            mark = "" if right is None else ("✓" if right else "✗")
            cells = [path.name, truth, failure or text or "∅", mark]
            for column, value in enumerate(cells):
                item = QTableWidgetItem(value)
                if column == 3 and right is not None:
                    item.setForeground(QBrush(_RIGHT if right else _WRONG))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if column == 2 and failure:
                    item.setForeground(QBrush(_WRONG))
                self.table.setItem(row, column, item)
        self._filter()

    def _filter(self) -> None:
        reading = self.reading
        for row in range(self.table.rowCount()):
            hide = (
                self.mistakes_only.isChecked()
                and reading is not None
                and reading.correct(row) is not False
            )
            self.table.setRowHidden(row, hide)

    def _activated(self, row: int, _column: int) -> None:
        if self.reading is not None and 0 <= row < len(self.reading.paths):
            self.image_chosen.emit(str(self.reading.paths[row]), self.shown_steps)
