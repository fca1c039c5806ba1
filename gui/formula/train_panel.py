"""The Formulas Train tab: generate data, train a recogniser with live curves, evaluate it on
a folder with an error gallery, and choose which model the Read tab uses."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core import devices
from core.formula.evaluation import FolderReading, gallery, read_images
from core.formula.model_config import CRNNConfig
from core.formula.recognizer import SHIPPED_LARGE_MODEL, SHIPPED_MODEL, Recognizer
from core.formula.runs import RunInfo, list_runs, new_run_dir, read_log, runs_root
from core.formula.train_config import TrainConfig, default_workers
from core.images import read_image
from core.jobs import Progress
from gui.widgets.common import DeviceChoice, heading, paragraph, to_qimage
from gui.widgets.job_controls import FollowsJob, JobControls
from gui.workers import JobHandle, JobRunner

_LOSS, _ACC = "#e8590c", "#1971c2"


def _folder_row(edit: QLineEdit, title: str, parent: QWidget) -> QHBoxLayout:
    def browse() -> None:
        folder = QFileDialog.getExistingDirectory(parent, title, edit.text())
        if folder:
            edit.setText(folder)

    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


def _plot(title: str, y_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color="#333", size="10pt")
    plot.setLabel("bottom", "step")
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMinimumHeight(170)
    return plot


def _describe_step(progress: Progress, left: str | None) -> str:
    """A training report: step, loss, validation accuracy and CER, lr, speed, time left."""
    metrics = progress.metrics
    parts = [progress.message]
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4f}")
    if "val_acc" in metrics:
        parts.append(f"validation accuracy {metrics['val_acc']:.2%}")
    if "val_cer" in metrics:
        parts.append(f"CER {metrics['val_cer']:.2%}")
    if "lr" in metrics:
        parts.append(f"lr {metrics['lr']:.2g}")
    if "images/s" in metrics:
        parts.append(f"{metrics['images/s']:.0f} images/s")
    if left is not None:
        parts.append(f"{left} left")
    return " · ".join(parts)


class FormulaTrainPanel(FollowsJob, QWidget):
    use_model = Signal(str)  # a checkpoint the Read tab should load
    generate_requested = Signal()
    survey_requested = Signal(str)  # a folder to open on the Dataset tab

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("formulaTrain")
        self.runner = runner
        self.eval_job: JobHandle | None = None
        self.run_dir: Path | None = None
        self.runs: list[RunInfo] = []
        self._curves: dict[str, tuple[list[float], list[float]]] = {}

        models_box = self._make_models()
        train_box = self._make_training()
        eval_box = self._make_evaluation()
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Train and evaluate", 1.2))
        layout.addWidget(models_box)
        layout.addWidget(train_box)
        layout.addWidget(eval_box)
        layout.addStretch(1)
        self.recognizer: Recognizer | None = None
        self.models.currentIndexChanged.connect(self._update_buttons)
        self._add_shipped_models()
        self._update_buttons()  # runs are read from disk when the tab is first shown

    def _make_models(self) -> QGroupBox:
        """The model in use, the runs and the shipped model to choose from, a model file."""
        self.current = QLabel("Model: loading…")
        self.current.setObjectName("formulaCurrentModel")
        self.current.setWordWrap(True)
        self.models = QComboBox()
        self.models.setObjectName("formulaModels")
        # long run descriptions must not widen the page past the window
        self.models.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.models.setMinimumContentsLength(30)
        self.use_button = QPushButton("Use this model")
        self.use_button.setObjectName("formulaUseModel")
        self.use_button.clicked.connect(self._use_selected)
        self.open_model_button = QPushButton("Open model file…")
        self.open_model_button.clicked.connect(self._open_model)
        models_row = QHBoxLayout()
        models_row.addWidget(self.models, 1)
        models_row.addWidget(self.use_button)
        models_row.addWidget(self.open_model_button)
        models_box = QGroupBox("Model")
        models_layout = QVBoxLayout(models_box)
        models_layout.addWidget(self.current)
        models_layout.addLayout(models_row)
        return models_box

    def _make_training(self) -> QGroupBox:
        """Data, options, Train / Resume / Cancel, progress, status and the live curves."""
        self.generate_button = QPushButton("Generate training data…")
        self.generate_button.setObjectName("formulaGenerate")
        self.generate_button.clicked.connect(self.generate_requested)
        self.look_button = QPushButton("Look at it")
        self.look_button.setToolTip("Open the mix-in folder on the Dataset tab")
        self.look_button.clicked.connect(
            lambda: self.data.text() and self.survey_requested.emit(self.data.text())
        )
        data_row = QHBoxLayout()
        data_row.addWidget(self.generate_button)
        data_row.addWidget(self.look_button)
        data_row.addStretch(1)

        # ------------------------------------------------------------ training
        self.size = QComboBox()
        self.size.setObjectName("formulaModelSize")
        self.size.addItem("Small (0.4M parameters, for the CPU)", "small")
        self.size.addItem("Large (3M parameters, for a GPU)", "large")
        self.steps = QSpinBox()
        self.steps.setObjectName("formulaSteps")
        self.steps.setRange(4, 1_000_000)
        self.steps.setSingleStep(1000)
        self.steps.setValue(20_000)
        self.batch = QSpinBox()
        self.batch.setRange(1, 1024)
        self.batch.setValue(64)
        self.workers = QSpinBox()
        self.workers.setObjectName("formulaWorkers")
        self.workers.setRange(-1, 16)
        self.workers.setSpecialValueText("Automatic: 1 on a CPU, every core but two on a GPU")
        self.workers.setValue(-1)
        self.workers.setToolTip(
            "Processes drawing training images beside the training (0: draw them in between). "
            "On a GPU, drawing sets the pace: one process draws about 220 images a second."
        )
        self.device = DeviceChoice("formulaDevice")
        self.data = QLineEdit()
        self.data.setObjectName("formulaMixFolder")
        self.data.setPlaceholderText("optional: a Baidu-format folder mixed into each batch")
        self._make_job_controls()
        self._make_curves()
        form = QFormLayout()
        form.addRow("Model size", self.size)
        form.addRow("Steps", self.steps)
        form.addRow("Batch size", self.batch)
        form.addRow("Device", self.device)
        form.addRow("Data workers", self.workers)
        form.addRow("Mix in", _folder_row(self.data, "A Baidu-format folder", self))
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.acc_plot)
        train_box = QGroupBox("Train")
        train_layout = QVBoxLayout(train_box)
        train_layout.addWidget(
            paragraph(
                "Trains on freshly drawn synthetic formulas (a new image every step). Each run "
                "keeps <tt>best.pt</tt> (best validation accuracy), <tt>final.pt</tt> (the "
                "model at the last step) and <tt>last.pt</tt> (to resume after a cancel or a "
                "crash)."
            )
        )
        train_layout.addLayout(data_row)
        train_layout.addLayout(form)
        train_layout.addLayout(buttons)
        train_layout.addWidget(self.progress)
        train_layout.addWidget(self.status)
        train_layout.addLayout(plots)
        return train_box

    def _make_curves(self) -> None:
        """The loss and validation accuracy curves of the run being trained."""
        self.loss_plot = _plot("Training loss (CTC)", "loss")
        self.acc_plot = _plot("Validation sequence accuracy", "accuracy")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(_LOSS, width=2))
        self.acc_plot.setYRange(0, 1)
        self.acc_plot.getAxis("left").enableAutoSIPrefix(False)
        self.loss_plot.getAxis("left").enableAutoSIPrefix(False)
        self.acc_curve = self.acc_plot.plot(
            [], [], pen=pg.mkPen(_ACC, width=2), symbol="o", symbolSize=6, symbolBrush=_ACC
        )

    def _make_job_controls(self) -> None:
        """Train, Resume and Cancel, the progress bar and the status line, bound by JobControls."""
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("formulaTrainButton")
        self.train_button.clicked.connect(self.start)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("formulaResume")
        self.resume_button.setToolTip("Continue the run chosen in the list above where it stopped")
        self.resume_button.clicked.connect(self.resume)
        self.controls = JobControls(
            "formulaTrain",
            f"New runs go to {runs_root()}",
            self._update_buttons,
            cancelling="Cancelling… (the steps made are saved; Resume continues)",
            describe=_describe_step,
        )
        self.cancel_button, self.progress, self.status = self.controls.widgets()
        self.controls.progressed.connect(self._show_progress)

    def _make_evaluation(self) -> QGroupBox:
        """A labelled folder read by the model in use: accuracy, CER and the error gallery."""
        self.eval_folder = QLineEdit()
        self.eval_folder.setObjectName("formulaEvalFolder")
        self.eval_folder.setPlaceholderText("a folder with labels.txt")
        self.eval_button = QPushButton("Evaluate the model in use")
        self.eval_button.setObjectName("formulaEvaluate")
        self.eval_button.clicked.connect(self.evaluate)
        self.eval_result = QLabel()
        self.eval_result.setObjectName("formulaEvalResult")
        self.eval_result.setWordWrap(True)
        self.eval_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.gallery = QLabel()
        self.gallery.setObjectName("formulaErrorGallery")
        eval_box = QGroupBox("Evaluate")
        eval_layout = QVBoxLayout(eval_box)
        eval_row = _folder_row(self.eval_folder, "A labelled folder", self)
        eval_row.addWidget(self.eval_button)
        eval_layout.addLayout(eval_row)
        eval_layout.addWidget(self.eval_result)
        eval_layout.addWidget(self.gallery)
        return eval_box

    # ---------------------------------------------------------------- models
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self.runs:
            self.refresh_models(select=Path(self.models.currentData()))

    def refresh_models(self, select: Path | None = None) -> None:
        self.runs = list_runs()
        self.models.clear()
        self._add_shipped_models()
        for run in self.runs:
            self.models.addItem(run.describe(), str(run.path))
            if run.final_model.exists():
                self.models.addItem(
                    f"{run.path.name} — the model at its last step (final.pt)",
                    str(run.final_model),
                )
        if select is not None:
            index = self.models.findData(str(select))
            if index >= 0:
                self.models.setCurrentIndex(index)
        self._update_buttons()

    def _add_shipped_models(self) -> None:
        self.models.addItem(f"Shipped model ({SHIPPED_MODEL.name})", str(SHIPPED_MODEL))
        if SHIPPED_LARGE_MODEL.exists():
            self.models.addItem(
                f"Shipped large model ({SHIPPED_LARGE_MODEL.name}): reads binarised and "
                "filtered images better, about ten times slower on a CPU",
                str(SHIPPED_LARGE_MODEL),
            )

    def selected_run(self) -> RunInfo | None:
        path = self.models.currentData()
        return next((r for r in self.runs if str(r.path) == path), None)

    def set_current_model(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        metrics = recognizer.meta.get("metrics") or {}
        acc = metrics.get("val_acc")
        step = recognizer.meta.get("step")  # none for a mean of models
        facts = [f"step {step:,}"] if isinstance(step, int) else []
        if isinstance(acc, float):
            facts.append(f"validation accuracy {acc:.2%}")
        details = f" — {', '.join(facts)}" if facts else ""
        self.current.setText(f"In use: <b>{recognizer.path}</b>{details}")

    def _use_selected(self) -> None:
        run = self.selected_run()
        if run is None:  # a shipped model, or a run's final.pt
            self.use_model.emit(self.models.currentData() or str(SHIPPED_MODEL))
        elif run.best_model.exists():
            self.use_model.emit(str(run.best_model))
        else:
            self.status.setText(f"{run.path.name} has no validated model yet.")

    def _open_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a formula model", str(runs_root()), "Checkpoints (*.pt);;All files (*)"
        )
        if path:
            self.use_model.emit(path)

    # ---------------------------------------------------------------- training
    def config(self, device: devices.Device | None = None) -> TrainConfig:
        """The run the form describes; "Automatic" workers are chosen for `device` (the
        panel's device when None)."""
        steps = self.steps.value()
        workers = self.workers.value()
        if workers < 0:
            workers = default_workers(device or devices.choose(self.device.choice()))
        return TrainConfig(
            steps=steps,
            batch_size=self.batch.value(),
            data=(self.data.text().strip(),) if self.data.text().strip() else (),
            val_every=max(2, min(500, steps // 10)),
            val_size=min(1000, max(64, steps * 2)),
            workers=workers,
            model=CRNNConfig.preset(self.size.currentData()),
        )

    def start(self) -> JobHandle | None:
        try:
            device = devices.choose(self.device.choice())
            config = self.config(device)
        except (ValueError, devices.DeviceError) as error:
            self.status.setText(str(error))
            return None
        out = new_run_dir()
        self._curves = {}
        return self._run(out, f"Training a formula model ({config.steps:,} steps)", config, device)

    def resume(self) -> JobHandle | None:
        run = self.selected_run()
        if run is None or not run.can_resume:
            self.status.setText("Choose an unfinished run in the Model list to resume it.")
            return None
        try:
            device = devices.choose(self.device.choice())
        except devices.DeviceError as error:
            self.status.setText(str(error))
            return None
        log = read_log(run.path)
        self._curves = {
            "loss": (log.get("step:loss", []), log.get("loss", [])),
            "val_acc": (log.get("step:val_acc", []), log.get("val_acc", [])),
        }
        return self._run(run.path, f"Resuming {run.path.name}", None, device)

    def _run(
        self, out: Path, title: str, config: TrainConfig | None, device: devices.Device
    ) -> JobHandle:
        self.run_dir = out
        resume = config is None
        from core.formula.training import train  # torch: loaded when training starts

        job = partial(train, out, config or TrainConfig(), device, resume=resume)
        handle = self.runner.start(title, lambda token: job(token=token))
        self._draw_curves()
        return self.controls.follow(
            handle,
            f"{title} into {out} on {device.describe()} …",
            succeeded=self._trained,
            failed=lambda message, _details: self.status.setText(message),
            cancelled=self._cancelled,
        )

    def _show_progress(self, progress: Progress) -> None:
        metrics = progress.metrics
        if "loss" in metrics:
            xs, ys = self._curves.setdefault("loss", ([], []))
            xs.append(float(progress.done))
            ys.append(float(metrics["loss"]))
        if "val_acc" in metrics and progress.milestone:
            xs, ys = self._curves.setdefault("val_acc", ([], []))
            xs.append(float(progress.done))
            ys.append(float(metrics["val_acc"]))
        if metrics:
            self._draw_curves()

    def _draw_curves(self) -> None:
        for key, item in (("loss", self.loss_curve), ("val_acc", self.acc_curve)):
            xs, ys = self._curves.get(key, ([], []))
            item.setData(xs, ys)

    def _trained(self, result: dict) -> None:
        best = result.get("best_acc", 0.0)
        self.status.setText(
            f"Finished {self.run_dir.name if self.run_dir else ''}: best validation accuracy "
            f"{best:.2%}. Use it from the Model list."
        )
        if self.run_dir is not None:
            self.refresh_models(select=self.run_dir)

    def _cancelled(self) -> None:
        run = self.run_dir
        if run is not None and (run / "last.pt").exists():
            self.status.setText(
                f"Cancelled. {run.name} keeps every step it made: choose it and Resume."
            )
        else:
            self.status.setText("Cancelled before the first step: nothing to keep.")
        self.refresh_models(select=run if run is not None and run.exists() else None)

    def _update_buttons(self) -> None:
        running = self.job is not None
        self.train_button.setEnabled(not running)
        run = self.selected_run()
        self.resume_button.setEnabled(not running and run is not None and run.can_resume)

    def data_generated(self, folder: str) -> None:
        """A set was generated: offer it for mixing in and evaluating."""
        self.data.setText(folder)
        if not self.eval_folder.text():
            self.eval_folder.setText(folder)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self) -> JobHandle | None:
        folder = self.eval_folder.text().strip()
        recognizer = self.recognizer
        if not folder or recognizer is None:
            self.eval_result.setText("Choose a labelled folder (and wait for the model to load).")
            return None
        self.eval_result.setText(f"Reading {folder} …")
        handle = self.runner.start(
            f"Evaluating on {Path(folder).name}",
            partial(read_images, recognizer.read_batch, folder),
        )
        self.eval_job = handle
        handle.progress.connect(lambda p: self.eval_result.setText(f"Reading … {p.message}"))
        handle.succeeded.connect(self._evaluated)
        handle.failed.connect(lambda message, _d: self.eval_result.setText(message))
        handle.cancelled.connect(lambda: self.eval_result.setText("Cancelled."))
        return handle

    def _evaluated(self, reading: FolderReading) -> None:
        report = reading.report
        if report is None:
            self.eval_result.setText(f"{reading.root} has no labels file: nothing to score.")
            self.gallery.clear()
            return
        self.eval_result.setText("<br>".join(report.lines()))
        shown = report.errors[:24]
        if not shown:
            self.gallery.clear()
            return
        sheet = gallery(
            [read_image(reading.paths[i]) for i, _, _ in shown],
            [f"{truth} -> {read or '(nothing)'}" for _, truth, read in shown],
        )
        pixmap = QPixmap.fromImage(to_qimage(sheet))
        if pixmap.width() > 900:
            pixmap = pixmap.scaledToWidth(900, Qt.TransformationMode.SmoothTransformation)
        self.gallery.setPixmap(pixmap)
        self.gallery.setToolTip(f"The first {len(shown)} of {len(report.errors):,} mistakes")
