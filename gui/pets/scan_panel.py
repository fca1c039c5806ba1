"""The Scan panel: run an ImageNet model over the dataset in the background, then turn what
it stored into flags with a live top-N and counts that lead to the grid."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core import devices
from core.jobs import CancelToken, Progress
from core.pets import backbones
from core.pets.label_issues import ISSUE_SCORE, QUALITY_SCORE
from core.pets.labelstore import LabelStore
from core.pets.outliers import (
    DEFAULT_BATCH,
    TOP_K,
    Flags,
    FlagSettings,
    ScanOutcome,
    ScanRequest,
    compute_flags,
    scan_dataset,
    write_flags_csv,
)
from core.pets.results import ScanTable
from gui.widgets.common import DeviceChoice, heading, paragraph
from gui.widgets.job_controls import FollowsJob, JobControls, job_row
from gui.workers import JobHandle, JobRunner

if TYPE_CHECKING:  # torch: loaded when the Scan tab is first shown
    from core.pets.imagenet import ImportReport

#: (key, title, what it means) of the flag filters, in the order the grid offers them.
FLAG_FILTERS = (
    ("outlier", "Outliers", "no cat or dog class among the top N"),
    ("both", "Both", "strong cat and dog evidence together"),
    ("disagrees", "Disagrees", "ImageNet's cat and dog evidence contradicts the label"),
    ("mislabelled", "Likely mislabelled", "confident learning on the embeddings"),
)
#: The symbol each flag adds to a grid cell's purple badge.
FLAG_SYMBOLS = {"outlier": "?", "both": "&", "disagrees": "≠", "mislabelled": "✗"}


class ScanPanel(FollowsJob, QWidget):
    """Start, follow and cancel a scan; choose N and the class sets; see the counts."""

    flags_changed = Signal(object)  # ScanView or None
    show_requested = Signal(str)  # a FLAG_FILTERS key
    problem = Signal(str, str, str)
    message = Signal(str)

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petsScan")
        self.runner = runner
        self.store: LabelStore | None = None
        self.view: ScanView | None = None
        self._listed = False

        run_box = self._make_scan()
        results_box = self._make_flags()
        column = QVBoxLayout(self)
        column.addWidget(heading("Outliers and label issues", 1.25))
        column.addWidget(
            paragraph(
                "An ImageNet-pretrained model looks at every image. ImageNet has 118 dog "
                "breeds (classes 151–268) and 5 domestic cats (281–285): an image whose top "
                "N classes hold none of them is probably not a pet photo (logos, "
                "placeholders, people, text). The scan also keeps each image's embedding, "
                "and ranks the labels that look wrong by confident learning."
            )
        )
        column.addWidget(run_box)
        column.addWidget(results_box)
        column.addStretch(1)

        self.backbone.currentIndexChanged.connect(self._update_weights)
        self.import_button.clicked.connect(self.choose_weights_file)
        self.start_button.clicked.connect(self.start)
        self.model_combo.currentIndexChanged.connect(self._load_results)
        self.top_n.valueChanged.connect(self.recompute)
        self.wild_cats.toggled.connect(self.recompute)
        self.export_button.clicked.connect(self.export_csv)
        self._recompute_timer = QTimer(self, singleShot=True, interval=150)
        self._recompute_timer.timeout.connect(self.recompute)
        self.attach(None)  # the weights line is filled when the panel is first shown

    def _make_scan(self) -> QGroupBox:
        """Model, device, batch and weights; Start / Cancel, progress and status."""
        self.backbone = QComboBox()
        self.backbone.setObjectName("scanBackbone")
        for key, b in backbones.BACKBONES.items():
            self.backbone.addItem(f"{b.title} — {b.note}", key)
        self.device = DeviceChoice("scanDevice")
        default = backbones.default_backbone(devices.choose("cpu"))  # the same on a GPU
        self.backbone.setCurrentIndex(self.backbone.findData(default))
        self.batch = QSpinBox()
        self.batch.setRange(1, 1024)
        self.batch.setValue(DEFAULT_BATCH)
        self.include_test = QCheckBox("Test images too")
        self.include_test.setChecked(True)
        self.weights_label = QLabel()
        self.weights_label.setObjectName("scanWeights")
        self.weights_label.setWordWrap(True)
        # room for three lines: a wrapped label in a form row is not given its height
        self.weights_label.setMinimumHeight(self.weights_label.fontMetrics().lineSpacing() * 3)
        self.weights_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.import_button = QPushButton("Import weights file…")
        self.import_button.setObjectName("scanImport")
        self.start_button = QPushButton("Start scan")
        self.start_button.setObjectName("scanStart")
        self.start_button.setDefault(True)
        self.controls = JobControls(
            "scan",
            "Not scanned yet.",
            self._refresh_start,
            cancelling="Cancelling… (what is scanned is kept)",
        )
        self.cancel_button, self.progress, self.status = self.controls.widgets()
        self.controls.progressed.connect(self._show_progress)

        settings = QFormLayout()
        settings.addRow("Model:", self.backbone)
        settings.addRow("Device:", self.device)
        batch_row = QHBoxLayout()
        batch_row.addWidget(self.batch)
        batch_row.addWidget(self.include_test)
        batch_row.addStretch(1)
        settings.addRow("Batch size:", batch_row)
        weights_row = QHBoxLayout()
        weights_row.addWidget(self.weights_label, 1)
        weights_row.addWidget(self.import_button)
        settings.addRow("Weights:", weights_row)
        buttons = job_row(self.start_button, self.cancel_button, progress=self.progress)
        run_box = QGroupBox("Scan")
        run_layout = QVBoxLayout(run_box)
        run_layout.addLayout(settings)
        run_layout.addLayout(buttons)
        run_layout.addWidget(self.status)
        return run_box

    def _make_flags(self) -> QGroupBox:
        """Whose results, top N, wild cats, and each flag's count with Show; the CSV export."""
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("scanResults")
        self.top_n = QSlider(Qt.Orientation.Horizontal)
        self.top_n.setObjectName("scanTopN")
        self.top_n.setRange(1, TOP_K)
        self.top_n.setValue(FlagSettings.top_n)
        self.top_n.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.top_n_label = QLabel()
        self.wild_cats = QCheckBox("Count cougar and lynx as cats")
        self.wild_cats.setObjectName("scanWildCats")
        counts = self._make_counts()
        self.export_button = QPushButton("Export flags as CSV…")
        self.export_button.setObjectName("scanExport")
        top_row = QHBoxLayout()
        top_row.addWidget(self.top_n, 1)
        top_row.addWidget(self.top_n_label)
        results_form = QFormLayout()
        results_form.addRow("Results of:", self.model_combo)
        results_form.addRow("Top N:", top_row)
        results_form.addRow("", self.wild_cats)
        results_box = QGroupBox("Flags")
        results_layout = QVBoxLayout(results_box)
        results_layout.addLayout(results_form)
        results_layout.addLayout(counts)
        export_row = QHBoxLayout()
        export_row.addStretch(1)
        export_row.addWidget(self.export_button)
        results_layout.addLayout(export_row)
        return results_box

    def _make_counts(self) -> QGridLayout:
        """A row per flag: its name, how many images it marks, what it means, Show."""
        self.count_labels: dict[str, QLabel] = {}
        self.show_buttons: dict[str, QPushButton] = {}
        counts = QGridLayout()
        for line, (key, title, meaning) in enumerate(FLAG_FILTERS):
            meaning = f"{meaning} (grid badge {FLAG_SYMBOLS[key]})"
            count = QLabel("–")
            count.setObjectName(f"scanCount_{key}")
            count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            button = QPushButton("Show")
            button.setObjectName(f"scanShow_{key}")
            button.clicked.connect(partial(self.show_requested.emit, key))
            counts.addWidget(QLabel(f"<b>{title}</b>"), line, 0)
            counts.addWidget(count, line, 1)
            counts.addWidget(QLabel(meaning), line, 2)
            counts.addWidget(button, line, 3)
            self.count_labels[key], self.show_buttons[key] = count, button
        counts.setColumnStretch(2, 1)
        return counts

    # ---------------------------------------------------------------- a dataset
    def attach(self, store: LabelStore | None) -> None:
        if self.store is not None:
            self.store.unsubscribe(self._store_changed_any_thread)
        self.store = store
        self._refresh_start()
        if store is not None:
            store.subscribe(self._store_changed_any_thread)
        self._fill_models()

    def _store_changed_any_thread(self, _rows: object) -> None:
        QTimer.singleShot(0, self, self._recompute_timer.start)

    def _fill_models(self, select: str | None = None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for record in self.store.scans() if self.store is not None else []:
            title = backbones.BACKBONES.get(record.backbone)
            name = title.title if title else record.backbone
            self.model_combo.addItem(
                f"{name} ({record.model}), {record.images:,} images", record.model
            )
        if select is not None and self.model_combo.findData(select) >= 0:
            self.model_combo.setCurrentIndex(self.model_combo.findData(select))
        self.model_combo.blockSignals(False)
        self._load_results()

    def _load_results(self) -> None:
        model = self.model_combo.currentData()
        self._table = self.store.scan_table(model) if self.store and model else None
        self.recompute()

    def settings(self) -> FlagSettings:
        return FlagSettings(self.top_n.value(), count_wild_cats=self.wild_cats.isChecked())

    def recompute(self) -> None:
        """Flags from the stored results with the current N and class sets (instant)."""
        store, table = self.store, getattr(self, "_table", None)
        self.top_n_label.setText(f"{self.top_n.value()}")
        if store is None or table is None or len(table.classes) != len(store):
            self.view = None
            for label in self.count_labels.values():
                label.setText("–")
            for button in self.show_buttons.values():
                button.setEnabled(False)
            self.export_button.setEnabled(False)
            self.flags_changed.emit(None)
            return
        settings = self.settings()
        flags = compute_flags(table, store.label, store.split, settings)
        issue = store.scores(ISSUE_SCORE) == 1
        self.view = ScanView(table, flags, settings, issue, store.scores(QUALITY_SCORE))
        for key, count in self.view.counts().items():
            self.count_labels[key].setText(f"{count:,}")
            self.show_buttons[key].setEnabled(count > 0)
        self.export_button.setEnabled(True)
        self.flags_changed.emit(self.view)

    # ---------------------------------------------------------------- weights
    def current_backbone(self) -> backbones.Backbone:
        return backbones.BACKBONES[self.backbone.currentData()]

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._update_weights()

    def _update_weights(self) -> None:
        """Where the chosen backbone's weights come from (reads torchvision's metadata,
        whose import takes seconds: done when the panel is shown, not at start-up)."""
        if not self.isVisible():
            return
        from core.pets import imagenet  # torch: when the Scan tab is first shown

        state = imagenet.weights_state(self.current_backbone())
        self.weights_label.setText(state.message)
        self.weights_label.setToolTip(str(state.path or state.directory))

    def choose_weights_file(self) -> JobHandle | None:
        b = self.current_backbone()
        path, _ = QFileDialog.getOpenFileName(
            self,
            f"Import weights for {b.title}",
            str(Path.home()),
            f"PyTorch weights ({b.stem}-*.pth *.pth *.pt);;All files (*)",
        )
        return self.import_weights(Path(path)) if path else None

    def import_weights(self, path: Path) -> JobHandle:
        """Check `path` and copy it into the cache, in the background."""
        b = self.current_backbone()
        handle = self.runner.start(f"Importing {path.name}", partial(_import_weights, path, b))
        handle.succeeded.connect(self._imported)
        handle.failed.connect(
            lambda message, details: self.problem.emit(
                "Cannot import the weights", message, details
            )
        )
        return handle

    def _imported(self, report: ImportReport) -> None:
        self._update_weights()
        self.message.emit(f"Imported {report.path.name}: {report.message}")

    # ---------------------------------------------------------------- scanning
    def start(self) -> JobHandle | None:
        if self.store is None or self.job is not None:
            return None
        request = ScanRequest(
            backbone=self.backbone.currentData(),
            device=self.device.choice(),
            batch_size=self.batch.value(),
            splits=("train", "test") if self.include_test.isChecked() else ("train",),
        )
        store = self.store
        handle = self.runner.start(
            f"Scanning with {self.current_backbone().title}",
            partial(scan_dataset, store, request),
        )
        self._listed = False
        return self.controls.follow(
            handle, succeeded=self._scanned, failed=self._failed, cancelled=self._cancelled
        )

    def _refresh_start(self) -> None:
        self.start_button.setEnabled(self.store is not None and self.job is None)

    def _show_progress(self, progress: Progress) -> None:
        if progress.metrics.get("images/s") and not self._listed and self.store is not None:
            self._list_running_scan()

    def _list_running_scan(self) -> None:
        """Once the first batch is in, a new scan appears among the results (once per job:
        the list is read again when the scan ends)."""
        self._listed = True
        model_keys = [self.model_combo.itemData(i) for i in range(self.model_combo.count())]
        scans = self.store.scans() if self.store is not None else []
        if scans and scans[0].model not in model_keys:
            self._fill_models(select=scans[0].model)

    def _scanned(self, outcome: ScanOutcome) -> None:
        self.status.setText(outcome.describe())
        self.message.emit(outcome.summary.describe())
        self._fill_models(select=outcome.summary.model)
        self._update_weights()

    def _failed(self, message: str, details: str) -> None:
        self.status.setText(message.split("\n", 1)[0])
        self._update_weights()
        self.problem.emit("The scan stopped", message, details)

    def _cancelled(self) -> None:
        self.status.setText("Cancelled. The images scanned so far are kept: Start resumes.")
        self._fill_models(select=self.model_combo.currentData())

    # ---------------------------------------------------------------- export
    def export_csv(self) -> Path | None:
        if self.store is None or self.model_combo.currentData() is None:
            return None
        path, _ = QFileDialog.getSaveFileName(
            self, "Export flags", str(Path.home() / "flags.csv"), "CSV (*.csv)"
        )
        if not path:
            return None
        try:
            count = write_flags_csv(
                self.store, self.model_combo.currentData(), self.settings(), Path(path)
            )
        except OSError as error:
            self.problem.emit("Cannot write the flags", f"{path}: {error.strerror}", "")
            return None
        self.message.emit(f"Wrote {count:,} images to {path}")
        return Path(path)


def _import_weights(path: Path, b: backbones.Backbone, token: CancelToken) -> Iterator[Progress]:
    from core.pets import imagenet

    return (yield from imagenet.import_weights(path, b, token))


class ScanView:
    """What the grid and the inspector need of the current results: the table, the flags
    for the chosen settings, and the confident-learning issues."""

    def __init__(
        self,
        table: ScanTable,
        flags: Flags,
        settings: FlagSettings,
        issue: np.ndarray,
        quality: np.ndarray,
    ) -> None:
        self.table, self.flags, self.settings = table, flags, settings
        self.issue, self.quality = issue, quality

    def mask(self, key: str) -> np.ndarray:
        if key == "mislabelled":
            return self.issue
        return getattr(self.flags, key)

    def counts(self) -> dict[str, int]:
        return {key: int(self.mask(key).sum()) for key, _title, _m in FLAG_FILTERS}

    def symbols(self) -> list[str]:
        """Per row, the symbols of its flags (empty when none), for the grid's badge."""
        marks = np.full(len(self.issue), "", dtype=object)
        for key, _title, _meaning in FLAG_FILTERS:
            marks = np.where(self.mask(key), marks + FLAG_SYMBOLS[key], marks)
        return marks.tolist()

    def sort_scores(self) -> dict[str, np.ndarray]:
        """Sort keys the scan adds, beyond the stored scores."""
        return {"not_pet": self.flags.not_pet, "disagreement": self.flags.disagreement}
