"""The Folder tab: every image of a folder with what the model reads, and where the folder
has a labels file, right or wrong per image and the folder's accuracy."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.formula.evaluation import FolderReading, read_images
from core.formula.recognizer import Recognizer
from gui.widgets.common import heading, paragraph, row_table
from gui.widgets.job_controls import FollowsJob, JobControls, job_row, reading_and_time_left
from gui.workers import JobHandle, JobRunner

_RIGHT, _WRONG = QColor(47, 158, 68), QColor(201, 42, 42)


class FolderPanel(FollowsJob, QWidget):
    """Open a folder, read it in the background, list the readings; a click opens one."""

    image_chosen = Signal(str)

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
        layout.addLayout(job)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    def set_recognizer(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

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
        handle = self.runner.start(
            f"Reading {self.folder.name}",
            partial(
                read_images,
                partial(
                    recognizer.read_batch,
                    grammar=self.grammar.isChecked(),
                    look_again=self.look_again.isChecked(),
                ),
                self.folder,
            ),
        )
        return self.controls.follow(
            handle,
            f"Reading {self.folder} …",
            succeeded=self.show_reading,
            failed="Cannot read the folder",
        )

    def show_reading(self, reading: FolderReading) -> None:
        self.reading = reading
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
            self.image_chosen.emit(str(self.reading.paths[row]))
