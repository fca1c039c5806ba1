"""What the Pets workbench shows around the images: the first screen before a dataset is
open (where to get the data, how to open it, recent datasets) and the Files tab of an open
one (where it is, its layout and counts, what was skipped)."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.pets.dataset import KAGGLE_DOWNLOAD, DatasetListing
from core.pets.labelstore import LabelStore
from gui.widgets.common import CommandBox, heading, paragraph

_MAX_SKIPPED_SHOWN = 500


class EmptyState(QWidget):
    """What to do before there is a dataset: where to get it and how to open it."""

    open_requested = Signal()
    open_zip_requested = Signal()
    recent_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petsEmpty")
        self.zip_button = QPushButton("Open the zip…")
        self.zip_button.setObjectName("petsOpenZip")
        self.zip_button.setDefault(True)
        self.zip_button.clicked.connect(self.open_zip_requested)
        self.open_button = QPushButton("Open a folder…")
        self.open_button.setObjectName("petsOpen")
        self.open_button.clicked.connect(self.open_requested)
        self.recent_box = QGroupBox("Recent datasets")
        self.recent_layout = QVBoxLayout(self.recent_box)

        column = QVBoxLayout()
        column.addWidget(heading("Dogs vs. Cats"))
        column.addWidget(
            paragraph(
                "Browse the 25,000 labelled and 12,500 test images of the Kaggle "
                "<i>Dogs vs. Cats Redux</i> competition, find the outliers and wrong labels, "
                "train a classifier and export a submission."
            )
        )
        column.addSpacing(8)
        column.addWidget(
            paragraph(
                "<b>1.</b> Download the data with the Kaggle command-line tool (accept the "
                "competition's rules on its Kaggle page first):"
            )
        )
        self.command = CommandBox(KAGGLE_DOWNLOAD)
        column.addWidget(self.command)
        column.addWidget(
            paragraph(
                "<b>2.</b> No need to unzip anything: open the downloaded zip itself, or the "
                "folder it is in. Unzipped <tt>train/</tt> and <tt>test/</tt> folders, or "
                "<tt>cats/</tt> and <tt>dogs/</tt> subfolders, work too. Labelscope only "
                "reads your images: it never moves, renames or changes them."
            )
        )
        row = QHBoxLayout()
        row.addWidget(self.zip_button)
        row.addWidget(self.open_button)
        row.addStretch(1)
        column.addLayout(row)
        column.addSpacing(12)
        column.addWidget(self.recent_box)
        column.addStretch(1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 8)
        outer.addStretch(1)
        self.set_recent([])

    def set_recent(self, folders: list[str]) -> None:
        while self.recent_layout.count():
            widget = self.recent_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for folder in folders:
            button = QPushButton(folder)
            button.setFlat(True)
            button.setStyleSheet("text-align: left")
            button.setToolTip(f"Open {folder}")
            button.clicked.connect(partial(self.recent_requested.emit, folder))
            self.recent_layout.addWidget(button)
        self.recent_box.setVisible(bool(folders))


class DatasetOverview(QWidget):
    """An opened dataset: where it is, its layout and counts, and what was skipped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petsOverview")
        self.title = heading("")
        self.path_label = QLabel()
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.layout_label = QLabel()
        self.counts_label = QLabel()
        self.skipped_list = QListWidget()
        self.skipped_list.setObjectName("petsSkipped")
        self.skipped_box = QGroupBox("Skipped files")
        skipped_layout = QVBoxLayout(self.skipped_box)
        skipped_layout.addWidget(self.skipped_list)
        form = QFormLayout()
        form.addRow("Folder:", self.path_label)
        form.addRow("Layout:", self.layout_label)
        form.addRow("Images:", self.counts_label)
        self.store_label = QLabel()
        self.store_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Edits saved in:", self.store_label)
        column = QVBoxLayout(self)
        column.addWidget(self.title)
        column.addLayout(form)
        column.addWidget(self.skipped_box, 1)
        column.addStretch(0)

    def show_listing(self, listing: DatasetListing, store: LabelStore | None = None) -> None:
        self.title.setText(listing.root.name or str(listing.root))
        self.path_label.setText(str(listing.root))
        self.layout_label.setText(
            "Kaggle (train/ and test/)" if listing.layout == "kaggle" else "class folders"
        )
        if listing.zipped:
            self.layout_label.setText(self.layout_label.text() + ", read from the zip files")
        self.counts_label.setText(listing.summary())
        if store is not None:
            self.store_label.setText(str(store.path))
        self.skipped_list.clear()
        for path, reason in listing.skipped[:_MAX_SKIPPED_SHOWN]:
            self.skipped_list.addItem(f"{path} — {reason}")
        extra = len(listing.skipped) - _MAX_SKIPPED_SHOWN
        if extra > 0:
            self.skipped_list.addItem(f"… and {extra:,} more")
        self.skipped_box.setVisible(bool(listing.skipped))
