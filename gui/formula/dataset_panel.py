"""The Dataset tab: the first look at a formula dataset — label lengths, symbol counts, true
and false equations, a grid of samples with their labels, and the problems found."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.formula.survey import SAMPLE_HEIGHT, Survey, survey
from gui.widgets.common import heading, paragraph, to_qimage
from gui.widgets.job_controls import FollowsJob, JobControls, job_row, reading_and_time_left
from gui.workers import JobHandle, JobRunner

_BAR = "#4263eb"


def _bar_plot(title: str, x_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color="#333", size="10pt")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", "images")
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMinimumHeight(180)
    return plot


class DatasetPanel(FollowsJob, QWidget):
    """Open a Baidu-format folder (or a generated set) and describe it."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.survey: Survey | None = None
        self.open_button = QPushButton("Open dataset folder…")
        self.open_button.setObjectName("formulaOpenDataset")
        self.open_button.clicked.connect(self.choose_folder)
        self.summary = QLabel("No dataset is open.")
        self.summary.setObjectName("formulaDatasetSummary")
        self.summary.setWordWrap(True)
        self.lengths_plot = _bar_plot("Label length", "symbols")
        self.symbols_plot = _bar_plot("Symbol counts", "symbol")
        self.symbols_plot.setLabel("left", "occurrences")
        self.samples = QListWidget()
        self.samples.setObjectName("formulaSamples")
        self.samples.setViewMode(QListView.ViewMode.IconMode)
        self.samples.setResizeMode(QListView.ResizeMode.Adjust)
        self.samples.setIconSize(QSize(3 * SAMPLE_HEIGHT, SAMPLE_HEIGHT))
        self.samples.setGridSize(QSize(3 * SAMPLE_HEIGHT + 16, SAMPLE_HEIGHT + 28))
        self.samples.setMovement(QListView.Movement.Static)
        self.samples.setMinimumHeight(2 * (SAMPLE_HEIGHT + 28) + 8)
        self.problems = QListWidget()
        self.problems.setObjectName("formulaDatasetProblems")
        self.problems.setMaximumHeight(140)

        plots = QHBoxLayout()
        plots.addWidget(self.lengths_plot)
        plots.addWidget(self.symbols_plot)
        samples_box = QGroupBox("Samples with their labels")
        QVBoxLayout(samples_box).addWidget(self.samples)
        self.problems_box = QGroupBox("Problems")
        QVBoxLayout(self.problems_box).addWidget(self.problems)
        self.problems_box.setVisible(False)
        self.controls = JobControls("formulaDataset", self.summary, describe=reading_and_time_left)
        self.cancel_button, self.progress, _summary = self.controls.widgets()
        top = job_row(self.open_button, self.cancel_button, progress=self.progress)
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Look at a dataset", 1.2))
        layout.addWidget(
            paragraph(
                "Open a folder of images with a <tt>labels.txt</tt> (the Baidu format, or a set "
                "made with <i>Generate training data…</i>) to see what it holds before training."
            )
        )
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addLayout(plots)
        layout.addWidget(samples_box, 1)
        layout.addWidget(self.problems_box)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a formula dataset folder")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> JobHandle:
        folder = Path(folder)
        self.clear()  # an error about this folder must not sit under the last one's plots
        handle = self.runner.start(f"Looking at {folder.name}", partial(survey, folder))
        return self.controls.follow(
            handle,
            f"Reading {folder} …",
            succeeded=self.show_survey,
            failed="Cannot open the dataset",
        )

    def clear(self) -> None:
        self.survey = None
        self.lengths_plot.clear()
        self.symbols_plot.clear()
        self.samples.clear()
        self.problems.clear()
        self.problems_box.setVisible(False)

    def show_survey(self, result: Survey) -> None:
        self.survey = result
        self.summary.setText("<br>".join(result.lines()))
        self.lengths_plot.clear()
        lengths = sorted(result.lengths.items())
        if lengths:
            self.lengths_plot.addItem(
                pg.BarGraphItem(
                    x=[n for n, _ in lengths], height=[c for _, c in lengths], width=0.8, brush=_BAR
                )
            )
        self.symbols_plot.clear()
        counts = result.symbol_counts
        self.symbols_plot.addItem(
            pg.BarGraphItem(
                x=list(range(len(counts))), height=[c for _, c in counts], width=0.8, brush=_BAR
            )
        )
        self.symbols_plot.getAxis("bottom").setTicks([[(i, s) for i, (s, _) in enumerate(counts)]])
        self.samples.clear()
        for image, label in result.samples:
            item = QListWidgetItem(QIcon(QPixmap.fromImage(to_qimage(image))), label)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            item.setToolTip(label)
            self.samples.addItem(item)
        self.problems.clear()
        for problem in result.problems[:500]:
            self.problems.addItem(str(problem))
        if len(result.problems) > 500:
            self.problems.addItem(f"… and {len(result.problems) - 500:,} more")
        self.problems_box.setTitle(f"Problems ({len(result.problems):,})")
        self.problems_box.setVisible(bool(result.problems))
