"""The dataset's first look as plots: class balance, image widths and heights, aspect
ratios. The numbers come from the label store; measuring the images not decoded yet is a job."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from core.pets.explore import DatasetStats, dataset_stats
from core.pets.labelstore import LabelStore
from gui.pets.grid import CAT_COLOUR, DOG_COLOUR, PROBLEM_COLOUR


def _plot(title: str, x_label: str, y_label: str = "images") -> pg.PlotWidget:
    plot = pg.PlotWidget()
    plot.setBackground(None)
    plot.setTitle(title)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(110)
    return plot


class ExplorePanel(QWidget):
    """Four plots and a summary; `measure_requested` asks for the job that decodes the
    images whose size is not known yet."""

    measure_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petsExplore")
        self.stats: DatasetStats | None = None
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.measure_button = QPushButton("Measure every image")
        self.measure_button.setObjectName("petsMeasure")
        self.measure_button.setToolTip(
            "Decode every image not seen yet (in the background) to learn its size and "
            "whether it is readable"
        )
        self.measure_button.clicked.connect(self.measure_requested)
        self.balance = _plot("Class balance (train, after edits)", "")
        self.widths = _plot("Image width", "pixels")
        self.heights = _plot("Image height", "pixels")
        self.aspects = _plot("Aspect ratio (width / height)", "ratio")
        grid = QGridLayout()
        grid.addWidget(self.balance, 0, 0)
        grid.addWidget(self.aspects, 0, 1)
        grid.addWidget(self.widths, 1, 0)
        grid.addWidget(self.heights, 1, 1)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.measure_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(grid, 1)

    def show_store(self, store: LabelStore) -> None:
        self.show_stats(dataset_stats(store))

    def show_stats(self, stats: DatasetStats) -> None:
        self.stats = stats
        self.balance.clear()
        names = ["cats", "dogs", "excluded", "unreadable"]
        values = [stats.cats, stats.dogs, stats.excluded, stats.unreadable]
        colours = [CAT_COLOUR, DOG_COLOUR, pg.mkColor("#888888"), PROBLEM_COLOUR]
        self.balance.addItem(
            pg.BarGraphItem(x=np.arange(4), height=values, width=0.7, brushes=colours)
        )
        self.balance.getAxis("bottom").setTicks([list(enumerate(names))])
        for plot, data, bins in (
            (self.widths, stats.widths, 40),
            (self.heights, stats.heights, 40),
            (self.aspects, stats.aspects, 40),
        ):
            plot.clear()
            if data.size:
                counts, edges = np.histogram(data, bins=bins)
                plot.addItem(
                    pg.PlotDataItem(
                        edges, counts, stepMode="center", fillLevel=0, brush=(47, 127, 209, 140)
                    )
                )
        text = stats.summary()
        if stats.missing:
            text += f" — {stats.missing:,} images not measured yet."
        self.summary.setText(text)
        self.measure_button.setEnabled(stats.missing > 0)
