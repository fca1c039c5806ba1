"""The Train panel: choose a mode and its settings, train in the background with live loss
and accuracy curves, compare every run in one table, and export a Kaggle submission."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.jobs import JobError, Progress
from core.pets import backbones, classic
from core.pets.labelstore import LabelStore
from core.pets.runs import MODES, RunResult, TrainRequest, list_runs, unfinished_runs
from core.pets.sources import Source
from core.pets.submission import write_submission
from core.pets.training import (
    CleaningComparison,
    compare_cleaning,
    default_feature_models,
    train_run,
)
from gui.pets.explore import _plot
from gui.pets.grid import CAT_COLOUR, DOG_COLOUR
from gui.widgets.common import DeviceChoice, to_qimage
from gui.widgets.job_controls import FollowsJob, JobControls, job_row, rate_and_time_left
from gui.workers import JobHandle, JobRunner

COLUMNS = ("Run", "Mode", "Log loss (clipped)", "Log loss", "Accuracy", "ROC AUC", "Place", "Time")


class TrainPanel(FollowsJob, QWidget):
    """Train, follow, compare, submit."""

    problem = Signal(str, str, str)
    message = Signal(str)
    show_worst = Signal()  # show the validation images with the highest loss in the grid

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petsTrain")
        self.runner = runner
        self.store: LabelStore | None = None
        self.runs: list[RunResult] = []

        settings = self._make_settings()
        plots = self._make_plots()
        runs_box = self._make_runs()
        layout = QVBoxLayout(self)
        layout.addWidget(settings)
        layout.addLayout(plots, 3)
        layout.addWidget(runs_box, 2)

        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.start_button.clicked.connect(self.start)
        self.resume_button.clicked.connect(self.resume)
        self.export_button.clicked.connect(self.export_submission)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self._mode_changed()
        self.attach(None)

    def _make_settings(self) -> QGroupBox:
        """The options, Train / Resume / Cancel with the progress bar, the status line."""
        self._make_cnn_options()
        self._make_head_options()
        self.start_button = QPushButton("Train")
        self.start_button.setObjectName("trainStart")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("trainResume")
        self.resume_button.setToolTip("Continue the run cancelled last, from its last epoch")
        self.resume_button.setEnabled(False)
        self.controls = JobControls(
            "train",
            "Train a model on the effective labels (edits applied, exclusions left out).",
            self._refresh_start,
            describe=lambda progress, _left: rate_and_time_left(progress, None),
        )
        self.cancel_button, self.progress, self.status = self.controls.widgets()
        self.controls.progressed.connect(self._show_progress)

        form = QFormLayout()
        form.addRow("Mode:", self.mode)
        form.addRow("Device:", self.device)
        form.addRow("Backbone:", self.backbone)
        form.addRow("", self.random_weights)
        form.addRow("", self.gradual)
        form.addRow("Epochs:", self.epochs)
        form.addRow("Learning rate:", self.lr)
        self._size_row = QHBoxLayout()
        self._size_row.addWidget(self.image_size, 1)
        self._size_row.addWidget(self.preview_button)
        form.addRow("Image size:", self._size_row)
        form.addRow("Classifier:", self.classic_model)
        form.addRow("Embeddings of:", self.scans)
        form.addRow("Folds:", self.folds)
        form.addRow("", self.compare)
        self._form = form
        buttons = job_row(
            self.start_button, self.resume_button, self.cancel_button, progress=self.progress
        )
        settings = QGroupBox("Training")
        settings_layout = QVBoxLayout(settings)
        settings_layout.addLayout(form)
        settings_layout.addLayout(buttons)
        settings_layout.addWidget(self.status)
        settings_layout.addWidget(self.preview)
        return settings

    def _make_cnn_options(self) -> None:
        """Mode, device, backbone and what fine-tuning and training from scratch use."""
        self.mode = QComboBox()
        self.mode.setObjectName("trainMode")
        for key, text in MODES.items():
            self.mode.addItem(f"{key} — {text}", key)
        self.device = DeviceChoice("trainDevice")
        self.backbone = QComboBox()
        self.backbone.setObjectName("trainBackbone")
        for key, b in backbones.BACKBONES.items():
            self.backbone.addItem(
                f"{b.title} ({'installed' if b.installed else 'downloaded'})", key
            )
        self.backbone.setCurrentIndex(self.backbone.findData(TrainRequest.backbone))
        self.random_weights = QCheckBox("Random weights (no ImageNet)")
        self.random_weights.setObjectName("trainRandomWeights")
        self.gradual = QCheckBox("Unfreeze one stage per epoch after the head's first epoch")
        self.gradual.setObjectName("trainGradual")
        self.epochs = QSpinBox()
        self.epochs.setObjectName("trainEpochs")
        self.epochs.setRange(1, 200)
        self.epochs.setValue(5)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.00001, 1.0)
        self.lr.setSingleStep(0.0001)
        self.lr.setValue(0.001)
        self.image_size = QSpinBox()
        self.image_size.setObjectName("trainImageSize")
        self.image_size.setRange(32, 512)
        self.image_size.setSingleStep(16)
        self.image_size.setValue(128)

    def _make_head_options(self) -> None:
        """The classic models, the embeddings heads' scans and folds, the cleaning comparison,
        the augmentation preview."""
        self.classic_model = QComboBox()
        self.classic_model.setObjectName("trainClassic")
        for key, text in classic.MODELS.items():
            self.classic_model.addItem(text, key)
        self.scans = QListWidget()
        self.scans.setObjectName("trainScans")
        self.scans.setMaximumHeight(80)
        self.scans.setToolTip(
            "The scans whose embeddings the head reads; several are concatenated, as the "
            "strongest public solutions did"
        )
        self.folds = QSpinBox()
        self.folds.setObjectName("trainFolds")
        self.folds.setRange(1, 10)
        self.folds.setValue(5)
        self.folds.setToolTip("Average the heads trained on k folds of the train images")
        self.compare = QCheckBox("Also without the flagged images: did cleaning help?")
        self.compare.setObjectName("trainCompare")
        self.compare.setToolTip(
            "Train twice on the same validation split: with every image, then without the "
            "ones flagged (F), by the scan, or as likely mislabelled"
        )
        self.preview_button = QPushButton("Preview augmentation")
        self.preview_button.setObjectName("trainPreview")
        self.preview_button.setToolTip(
            "Random training crops of a few images: flips, resized crops and colour jitter, "
            "never anything that would change the class"
        )
        self.preview_button.clicked.connect(self.preview_augmentation)
        self.preview = QLabel()
        self.preview.setObjectName("trainPreviewImages")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)

    def _make_plots(self) -> QHBoxLayout:
        """Loss and accuracy curves of the running job, reliability of the selected run."""
        self.loss_plot = _plot("Loss", "step", "log loss")
        self.accuracy_plot = _plot("Accuracy", "step", "share right")
        self.reliability_plot = _plot("Reliability (selected run)", "predicted P(dog)", "dogs")
        for plot in (self.loss_plot, self.accuracy_plot, self.reliability_plot):
            plot.setMinimumHeight(180)
        for plot in (self.loss_plot, self.accuracy_plot):
            plot.getAxis("left").enableAutoSIPrefix(False)
        self.loss_plot.addLegend(offset=(-10, 10))
        self.train_loss = self.loss_plot.plot(
            [], [], pen=pg.mkPen(DOG_COLOUR, width=2), name="train"
        )
        self.val_loss = self.loss_plot.plot(
            [], [], pen=pg.mkPen(CAT_COLOUR, width=2), symbol="o", name="validation"
        )
        self.train_accuracy = self.accuracy_plot.plot([], [], pen=pg.mkPen(DOG_COLOUR, width=2))
        self.val_accuracy = self.accuracy_plot.plot(
            [], [], pen=pg.mkPen(CAT_COLOUR, width=2), symbol="o"
        )
        self._curves: dict[str, tuple[list[float], list[float]]] = {}
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.accuracy_plot)
        plots.addWidget(self.reliability_plot)
        return plots

    def _make_runs(self) -> QGroupBox:
        """The runs table, its details, the worst images and the submission export."""
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("trainRuns")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(90)
        self.worst_button = QPushButton("Show the worst in the grid")
        self.worst_button.setObjectName("trainWorst")
        self.worst_button.setToolTip(
            "The latest run's validation images, highest log loss first: wrong labels and "
            "odd photos gather there; relabel or exclude them with C, D and X"
        )
        self.worst_button.clicked.connect(self.show_worst)
        self.export_button = QPushButton("Export submission…")
        self.export_button.setObjectName("trainExport")
        self.export_button.setEnabled(False)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        runs_box = QGroupBox("Runs")
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.detail, 1)
        row.addWidget(self.worst_button)
        row.addWidget(self.export_button)
        runs_layout.addLayout(row)
        return runs_box

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh_scans()  # a scan may have finished since

    # ---------------------------------------------------------------- state
    def attach(self, store: LabelStore | None) -> None:
        self.store = store
        self._refresh_start()
        self.refresh_scans()
        self.refresh_runs()

    def refresh_scans(self) -> None:
        """The scans to choose embeddings from (at first those features mode would take by
        default: the latest, and the installed models' that cover the images)."""
        checked = set(self.chosen_scans())
        self.scans.clear()
        if self.store is not None and not checked:
            checked = set(default_feature_models(self.store, self.store.effective_rows()))
        for record in self.store.scans() if self.store is not None else []:
            item = QListWidgetItem(f"{record.model} ({record.images:,} images)")
            item.setData(Qt.ItemDataRole.UserRole, record.model)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = record.model in checked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.scans.addItem(item)

    def chosen_scans(self) -> list[str]:
        return [
            self.scans.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.scans.count())
            if self.scans.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _mode_changed(self) -> None:
        mode = self.mode.currentData()
        cnn_mode = mode in ("scratch", "finetune")
        for widget, visible in (
            (self.backbone, mode == "finetune"),
            (self.random_weights, mode == "finetune"),
            (self.gradual, mode == "finetune"),
            (self.epochs, cnn_mode),
            (self.lr, cnn_mode),
            (self._size_row, cnn_mode),
            (self.classic_model, mode == "classic"),
            (self.scans, mode == "features"),
            (self.folds, mode == "features"),
        ):
            self._form.setRowVisible(widget, visible)
        # loss and accuracy curves exist only for the modes that train in steps
        self.loss_plot.setVisible(cnn_mode)
        self.accuracy_plot.setVisible(cnn_mode)
        if cnn_mode:
            self.lr.setValue(0.001 if mode == "scratch" else 0.0003)
            self.image_size.setValue(128 if mode == "scratch" else 224)

    def preview_augmentation(self) -> None:
        """Four random training crops each of four train images, in one strip per image."""
        if self.store is None:
            return
        rows = self.store.effective_rows()
        rows = rows[~self.store.unreadable[rows]][:: max(1, len(rows) // 4)][:4]
        if not len(rows):
            return
        source = Source(self.store.root)
        try:
            from core.pets.train_data import augmented_samples  # torch, when first shown

            samples = augmented_samples(
                source, [self.store.paths[r] for r in rows], self.image_size.value()
            )
        except JobError as error:
            self.problem.emit("Cannot preview", str(error), "")
            return
        finally:
            source.close()
        strips = [np.concatenate(images, axis=1) for images in samples]
        sheet = np.ascontiguousarray(np.concatenate(strips, axis=0))
        picture = QPixmap.fromImage(to_qimage(sheet))
        self.preview.setPixmap(
            picture.scaledToHeight(
                min(360, picture.height()), Qt.TransformationMode.SmoothTransformation
            )
        )

    def request(self) -> TrainRequest:
        mode = self.mode.currentData()
        return TrainRequest(
            mode=mode,
            device=self.device.choice(),
            epochs=self.epochs.value(),
            lr=self.lr.value(),
            image_size=self.image_size.value(),
            backbone=self.backbone.currentData(),
            weights="random" if self.random_weights.isChecked() else "imagenet",
            gradual=self.gradual.isChecked(),
            classic_model=self.classic_model.currentData(),
            models=tuple(self.chosen_scans()) if mode == "features" else (),
            folds=self.folds.value(),
        )

    # ---------------------------------------------------------------- training
    def start(self) -> JobHandle | None:
        if self.store is None or self.job is not None:
            return None
        request = self.request()
        job = compare_cleaning if self.compare.isChecked() else train_run
        return self._run(f"Training ({request.mode})", partial(job, self.store, request))

    def resume(self) -> JobHandle | None:
        """Continue the newest run that was cancelled after an epoch."""
        if self.store is None or self.job is not None:
            return None
        waiting = unfinished_runs(self.store)
        if not waiting:
            return None
        return self._run(
            f"Resuming {waiting[0]}",
            partial(train_run, self.store, self.request(), resume=waiting[0]),
        )

    def _run(self, title: str, job: object) -> JobHandle:
        self._curves = {key: ([], []) for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
        self._draw_curves()
        return self.controls.follow(
            self.runner.start(title, job),
            succeeded=self._trained,
            failed=self._failed,
            cancelled=self._cancelled,
        )

    def _refresh_start(self) -> None:
        idle = self.store is not None and self.job is None
        self.start_button.setEnabled(idle)
        self.resume_button.setEnabled(idle and bool(unfinished_runs(self.store)))

    def _show_progress(self, progress: Progress) -> None:
        metrics = progress.metrics
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in metrics and (key.startswith("val") or "epoch" not in metrics):
                xs, ys = self._curves.setdefault(key, ([], []))
                xs.append(float(progress.done))
                ys.append(float(metrics[key]))
        if metrics:
            self._draw_curves()

    def _draw_curves(self) -> None:
        for key, item in (
            ("loss", self.train_loss),
            ("val_loss", self.val_loss),
            ("accuracy", self.train_accuracy),
            ("val_accuracy", self.val_accuracy),
        ):
            xs, ys = self._curves.get(key, ([], []))
            item.setData(xs, ys)

    def _trained(self, result: RunResult | CleaningComparison) -> None:
        if isinstance(result, CleaningComparison):
            self.status.setText(result.describe())
            self.message.emit(result.describe())
            self.refresh_runs(select=result.without_flagged.id)
            return
        self.status.setText(result.describe())
        self.message.emit(f"Run {result.id}: validation log loss "
                          f"{result.evaluation['log_loss_clipped']:.4f}")  # fmt: skip
        self.refresh_runs(select=result.id)

    def _failed(self, message: str, details: str) -> None:
        self.status.setText(message.split("\n", 1)[0])
        self.problem.emit("Training stopped", message, details)

    def _cancelled(self) -> None:
        waiting = unfinished_runs(self.store) if self.store is not None else []
        if waiting:
            self.status.setText(f"Cancelled: {waiting[0]} kept its last epoch; Resume goes on.")
        else:
            self.status.setText("Cancelled before the first epoch ended: nothing was kept.")

    # ---------------------------------------------------------------- runs
    def refresh_runs(self, select: str | None = None) -> None:
        self.runs = list_runs(self.store) if self.store is not None else []
        self.table.setRowCount(len(self.runs))
        for line, run in enumerate(self.runs):
            e = run.evaluation
            place = run.placement.split(" on the")[0].removeprefix("would place ")
            cells = (
                run.id,
                run.title,
                f"{e['log_loss_clipped']:.4f}",
                f"{e['log_loss']:.4f}",
                f"{e['accuracy']:.2%}",
                "" if e.get("auc") is None else f"{e['auc']:.4f}",
                place,
                time.strftime("%H:%M:%S", time.gmtime(run.seconds)),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column >= 2:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(line, column, item)
        if self.runs:
            index = next((i for i, r in enumerate(self.runs) if r.id == select), 0)
            self.table.selectRow(index)
        self._selection_changed()

    def selected_run(self) -> RunResult | None:
        rows = self.table.selectionModel().selectedRows()
        return self.runs[rows[0].row()] if rows else None

    def _selection_changed(self) -> None:
        run = self.selected_run()
        self.export_button.setEnabled(run is not None and run.counts.get("test", 0) > 0)
        self.worst_button.setEnabled(bool(self.runs))
        self._draw_reliability(run)
        if run is None:
            self.detail.setText("No runs yet." if self.store is not None else "")
            return
        e = run.evaluation
        (tn, fp), (fn, tp) = e["confusion"]
        self.detail.setText(
            f"{run.describe()}.<br>Confusion (rows true cat, dog): [{tn}, {fp}] / [{fn}, {tp}]; "
            f"temperature {run.temperature:.2f} gives {run.calibrated_log_loss:.4f} "
            f"on the same split; trained on {run.counts['train']:,}, validated on "
            f"{run.counts['val']:,}."
        )

    def _draw_reliability(self, run: RunResult | None) -> None:
        """Predicted P(dog) against the share of dogs per bin; the diagonal is perfect."""
        plot = self.reliability_plot
        plot.clear()
        plot.plot([0, 1], [0, 1], pen=pg.mkPen("#999999", style=Qt.PenStyle.DashLine))
        plot.setXRange(0, 1, padding=0.02)
        plot.setYRange(0, 1, padding=0.02)
        if run is None or not run.reliability:
            return
        xs = [b[0] for b in run.reliability]
        ys = [b[1] for b in run.reliability]
        plot.plot(xs, ys, pen=pg.mkPen(DOG_COLOUR, width=2), symbol="o", symbolSize=6)
        plot.setXRange(0, 1, padding=0.02)
        plot.setYRange(0, 1, padding=0.02)

    def export_submission(self) -> Path | None:
        run = self.selected_run()
        if self.store is None or run is None:
            return None
        path, _ = QFileDialog.getSaveFileName(
            self, "Export submission", str(Path.home() / f"submission-{run.id}.csv"), "CSV (*.csv)"
        )
        if not path:
            return None
        try:
            count = write_submission(self.store, run, Path(path))
        except (JobError, OSError) as error:
            self.problem.emit("Cannot write the submission", str(error), "")
            return None
        self.message.emit(f"Wrote {count:,} predictions to {path} (checked)")
        return Path(path)
