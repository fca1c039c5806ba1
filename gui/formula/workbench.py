"""The Formulas workbench: read an image or a mouse drawing and see what the CTC model does
(Read), read a whole folder (Folder), look at a dataset (Dataset), train and evaluate (Train).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core import devices
from core.formula import ctc, preprocess
from core.formula.crnn import column_span
from core.formula.generate import generate
from core.formula.preprocess import MODEL_HEIGHT
from core.formula.recognizer import SHIPPED_MODEL, Recognition, Recognizer, shape_problem
from core.images import IMAGE_SUFFIXES, ImageProblem, read_image
from core.jobs import single_step
from gui.formula.dataset_panel import DatasetPanel
from gui.formula.draw_tab import DrawTab
from gui.formula.folder_panel import FolderPanel
from gui.formula.generate_dialog import GenerateDialog
from gui.formula.heatmaps import AlignmentView, PosteriorView
from gui.formula.image_view import ImageView
from gui.formula.preprocess_panel import PreprocessPanel
from gui.formula.readings import ReadingsPanel
from gui.formula.train_panel import FormulaTrainPanel
from gui.settings import Settings
from gui.widgets.common import heading, paragraph, scrolling, to_qimage
from gui.workbench import MenuEntry, Workbench
from gui.workers import JobHandle, JobRunner

#: Coalesces quick edits (a held Ctrl+Z) into one reading; a stroke is read at once after.
DEBOUNCE_MS = 25
#: Steps that keep the image's geometry: with only these, a time step's region can be shown
#: on the original image too.
_GEOMETRY_KEEPING = {"gray", "median", "gaussian", "otsu", "adaptive", "open", "close"}


def _dropped_image(mime: QMimeData) -> Path | None:
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in IMAGE_SUFFIXES:
                return path
    return None


class FormulaWorkbench(Workbench):
    """Formulas: the Read, Folder, Dataset and Train tabs around one loaded recogniser."""

    name = "formulas"
    title = "&Formulas"
    tip = "Formula recognition with CTC"

    recognized = Signal(str)  # the greedy reading of the current image or drawing
    readings_updated = Signal()  # readings, heatmaps and alignment all show the latest

    def __init__(self, runner: JobRunner, settings: Settings, parent: QWidget | None = None):
        super().__init__(runner, settings, parent)
        self.image_path: Path | None = None
        self.recognizer: Recognizer | None = None
        self.dialog: QWidget | None = None  # the open Generate dialog, if any
        self.model_problem = ""
        self.image: np.ndarray | None = None
        self.last_recognition: Recognition | None = None
        self.alignment: ctc.Alignment | None = None
        self._model_request: JobHandle | None = None
        self._reading: JobHandle | None = None
        self._pending = False

        self.toolbar = QToolBar()
        self.toolbar.setObjectName("formulaToolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.paste_action = QAction("Paste image", self)
        self.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
        self.paste_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.paste_action.setToolTip("Read an image from the clipboard (Ctrl+V)")
        self.paste_action.triggered.connect(self.paste)
        self.addAction(self.paste_action)

        # ------------------------------------------------------------ Read tab
        self.image_view = ImageView()
        self.caption = QLabel()
        self.caption.setObjectName("formulaCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        image_tab = QWidget()
        image_layout = QVBoxLayout(image_tab)
        image_layout.setContentsMargins(0, 0, 0, 0)
        image_layout.addWidget(self.image_view, 1)
        image_layout.addWidget(self.caption)
        self.draw = DrawTab()
        self.canvas = self.draw.canvas
        self.source_tabs = QTabWidget()
        self.source_tabs.setObjectName("formulaSource")
        self.image_tab = image_tab
        self.source_tabs.addTab(image_tab, "Image")
        self.source_tabs.addTab(self.draw, "Draw")
        # a fixed height: the page must not move under the pen when readings appear below
        self.source_tabs.setFixedHeight(250)
        self.source_tabs.currentChanged.connect(self._source_changed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.read_current)
        self.canvas.changed.connect(self._debounce.start)
        self.canvas.stroke_finished.connect(self._stroke_finished)

        self.preprocess = PreprocessPanel()
        self.preprocess.changed.connect(self.read_current)
        self.posterior = PosteriorView()
        self.alignment_view = AlignmentView()
        self.posterior.hovered.connect(self._hovered)
        self.alignment_view.hovered.connect(self._hovered)
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setObjectName("formulaLogScale")
        self.log_scale.setToolTip("Colour by log-probability, from e⁻⁸ to 1")
        self.log_scale.toggled.connect(self.posterior.set_log_scale)
        self.log_scale.toggled.connect(self.alignment_view.set_log_scale)
        self.hover_label = QLabel("Hover over the heatmaps to inspect a time step.")
        self.hover_label.setObjectName("formulaHover")
        maps = QGroupBox("What the model sees at each time step")
        maps_layout = QVBoxLayout(maps)
        row = QHBoxLayout()
        row.addWidget(self.hover_label, 1)
        row.addWidget(self.log_scale)
        maps_layout.addLayout(row)
        maps_layout.addWidget(self.posterior)
        maps_layout.addWidget(QLabel("Alignment γ of the chosen reading, Viterbi path in red:"))
        maps_layout.addWidget(self.alignment_view)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(heading("Formulas"))
        left_layout.addWidget(
            paragraph(
                "Recognise single-line arithmetic such as <tt>(1-9)-4=-12</tt>, written with "
                "<tt>0-9 + - * ( ) =</tt>. Open, drop or paste an image, or draw one, and see "
                "what the CTC model reads at each time step."
            )
        )
        left_layout.addWidget(self.source_tabs)
        left_layout.addWidget(self.preprocess)
        left_layout.addWidget(maps)
        left_layout.addStretch(1)

        self.readings = ReadingsPanel()
        self.readings.options_changed.connect(self.read_current)
        self.readings.alignment_requested.connect(self.show_alignment)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("formulaSplitter")
        self.splitter.addWidget(scrolling(left, across=False))
        self.splitter.addWidget(scrolling(self.readings, across=False))
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        # ------------------------------------------------------------ other tabs
        self.folder = FolderPanel(runner)
        self.folder.image_chosen.connect(self.load_image)
        self.dataset = DatasetPanel(runner)
        self.train = FormulaTrainPanel(runner)
        self.train.use_model.connect(self.load_model)
        self.train.survey_requested.connect(self.open_dataset)
        self.train.generate_requested.connect(self.generate_data_dialog)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("formulaTabs")
        self.tabs.setDocumentMode(True)
        # tabs are switched by widget, never by position; settings keep their names
        self.read_page = self.splitter
        self.dataset_page = scrolling(self.dataset)
        self.train_page = scrolling(self.train)
        self.pages = {
            "read": self.read_page,
            "folder": self.folder,
            "dataset": self.dataset_page,
            "train": self.train_page,
        }
        for title, page in zip(
            ("Read", "Folder", "Dataset", "Train"), self.pages.values(), strict=True
        ):
            self.tabs.addTab(page, title)
        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.tabs, 1)
        self.setAcceptDrops(True)
        self._make_actions()

    def _make_actions(self) -> None:
        def action(text: str, slot: object, keys: str | None, tip: str) -> QAction:
            made = QAction(text, self)
            if keys is not None:
                made.setShortcut(QKeySequence(keys))
            made.setStatusTip(tip)
            made.triggered.connect(slot)
            self.toolbar.addAction(made)
            return made

        self.open_image_action = action(
            "Open &image…", self.open_image_dialog, "Ctrl+Shift+O", "Open a formula image"
        )
        self.open_folder_action = action(
            "Open image &folder…",
            self.open_folder_dialog,
            "Ctrl+Shift+F",
            "Read every formula image of a folder (scored where it has labels.txt)",
        )
        self.draw_action = action(
            "&Draw a formula",
            self.show_drawing,
            "Ctrl+D",
            "Write a formula with the mouse and watch it being read",
        )
        self.generate_action = action(
            "&Generate training data…",
            self.generate_data_dialog,
            None,
            "Draw synthetic formula images and labels.txt into a folder",
        )
        self.toolbar.addAction(self.paste_action)

    # ------------------------------------------------------------ the contract
    def file_actions(self) -> list[MenuEntry]:
        return [self.open_image_action, self.open_folder_action, self.draw_action]

    def tool_actions(self) -> list[MenuEntry]:
        return [self.generate_action]

    def shortcut_actions(self) -> list[QAction]:
        """The workbench's own shortcuts, for the shortcuts dialog."""
        return [self.paste_action, *self.draw.actions_for_help()]

    def restore_state(self) -> None:
        try:
            options = json.loads(self.settings.text("formulas/options") or "{}")
        except ValueError:
            options = {}
        if isinstance(options, dict):
            self.restore_options(options)
        splitter = self.settings.bytes("formulas/read_splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def save_state(self) -> None:
        self.settings.set_bytes("formulas/read_splitter", self.splitter.saveState())
        self.settings.set_text("formulas/options", json.dumps(self.options()))

    def start(self) -> None:
        self.load_model()

    def options(self) -> dict[str, object]:
        """What the window remembers between sessions: decoder options, display, pen."""
        panel = self.readings
        return {
            "beam_width": panel.beam_width.value(),
            "nbest": panel.nbest.value(),
            "grammar": panel.grammar.isChecked(),
            "truth_weight": panel.truth_weight.value(),
            "log_scale": self.log_scale.isChecked(),
            "pen_width": self.draw.width.value(),
            "tab": self.current_page(),
            "steps_open": self.preprocess.toggle.isChecked(),
        }

    def restore_options(self, options: dict[str, object]) -> None:
        """Puts back what `options` gave; unknown or malformed entries are ignored."""
        panel = self.readings
        setters = {
            "beam_width": lambda v: panel.beam_width.setValue(int(v)),
            "nbest": lambda v: panel.nbest.setValue(int(v)),
            "grammar": lambda v: panel.grammar.setChecked(bool(v)),
            "truth_weight": lambda v: panel.truth_weight.setValue(float(v)),
            "log_scale": lambda v: self.log_scale.setChecked(bool(v)),
            "pen_width": lambda v: self.draw.width.setValue(float(v)),
            "tab": self.show_page,
            "steps_open": lambda v: self.preprocess.toggle.setChecked(bool(v)),
        }
        for key, value in options.items():
            if key in setters:
                try:
                    setters[key](value)
                except (TypeError, ValueError):
                    continue

    def current_page(self) -> str:
        """The name of the tab shown: read, folder, dataset or train."""
        return next(name for name, page in self.pages.items() if page is self.tabs.currentWidget())

    def show_page(self, name: object) -> None:
        """Show the tab of that name (a position from older settings is read too)."""
        names = list(self.pages)
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            name = names[int(name)] if 0 <= int(name) < len(names) else "read"
        page = self.pages.get(str(name))
        if page is not None:
            self.tabs.setCurrentWidget(page)

    # ---------------------------------------------------------------- sources
    def is_drawing(self) -> bool:
        return self.source_tabs.currentWidget() is self.draw

    def show_drawing(self) -> None:
        self.show_requested.emit()
        self.tabs.setCurrentWidget(self.read_page)
        self.source_tabs.setCurrentWidget(self.draw)
        self.canvas.setFocus()

    def _source_changed(self) -> None:
        self.preprocess.set_canvas_mode(self.is_drawing())  # reads again through `changed`

    @staticmethod
    def _trimmed(result: Recognition) -> bool:
        """Whether the step that trims loose margins cut the image it was given."""
        trim = next(step.title for step in preprocess.STEPS if step.name == "trim")
        shapes = [image.shape[:2] for _title, image in result.stages]
        titles = [title for title, _image in result.stages]
        if trim not in titles:
            return False
        index = titles.index(trim)
        before = shapes[index - 1] if index > 0 else tuple(result.image_size[::-1])
        return shapes[index] != before

    def load_image(self, path: str | Path) -> bool:
        """Show and read the image at `path`; a file that is not a usable image is reported."""
        path = Path(path)
        try:
            image = read_image(path)
        except ImageProblem as problem:
            self.problem.emit("Cannot open the image", str(problem), "")
            return False
        height = self.recognizer.config.height if self.recognizer else MODEL_HEIGHT
        problem = shape_problem(image.shape[1], image.shape[0], height)
        if problem:
            self.problem.emit("Cannot read the image", f"{path.name}: {problem}", "")
            return False
        self.image_path = path
        self._show_image(image, f"{path.name}")
        self._loaded(path.name)
        return True

    def _loaded(self, name: str) -> None:
        self.show_requested.emit()
        # replaces an earlier 'Cannot open the image', which would otherwise linger
        self.say(f"Reading {name}")

    def _show_image(self, image: np.ndarray, name: str) -> None:
        self.image = image
        self.image_view.set_image(QPixmap.fromImage(to_qimage(image)))
        height, width = image.shape[:2]
        self.caption.setText(f"{name} — {width}×{height} px")
        self.tabs.setCurrentWidget(self.read_page)
        if self.is_drawing():
            self.source_tabs.setCurrentWidget(self.image_tab)  # reads through the change
        else:
            self.read_current()

    def paste(self) -> bool:
        """Read the clipboard's image, or the image file whose path it holds."""
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        if mime is not None and mime.hasImage():
            image = clipboard.image()
            if not image.isNull():
                rgb = image.convertToFormat(image.Format.Format_RGB888)
                width, height = rgb.width(), rgb.height()
                data = np.frombuffer(rgb.constBits(), np.uint8, rgb.bytesPerLine() * height)
                array = data.reshape(height, rgb.bytesPerLine())[:, : width * 3]
                model_height = self.recognizer.config.height if self.recognizer else MODEL_HEIGHT
                problem = shape_problem(width, height, model_height)
                if problem:
                    self.problem.emit("Cannot read the pasted image", problem, "")
                    return False
                self.image_path = None
                self._show_image(array.reshape(height, width, 3).copy(), "pasted image")
                self._loaded("pasted image")
                return True
        if mime is not None and (path := _dropped_image(mime)) is not None:
            return self.load_image(path)
        text = clipboard.text().strip()
        if text and Path(text).suffix.lower() in IMAGE_SUFFIXES and Path(text).is_file():
            return self.load_image(text)
        self.problem.emit("Nothing to paste", "The clipboard holds no image.", "")
        return False

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_image(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.load_image(path)

    def open_image_dialog(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a formula image",
            self.settings.text("formulas/last_dir"),
            f"Images ({patterns});;All files (*)",
        )
        if path:
            self.settings.set_text("formulas/last_dir", str(Path(path).parent))
            self.show_requested.emit()
            self.load_image(path)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a folder of formula images", self.settings.text("formulas/last_dir")
        )
        if folder:
            self.settings.set_text("formulas/last_dir", folder)
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> JobHandle | None:
        self.show_requested.emit()
        self.tabs.setCurrentWidget(self.folder)
        return self.folder.open_folder(folder, self.recognizer)

    def open_dataset(self, folder: str | Path) -> JobHandle:
        self.tabs.setCurrentWidget(self.dataset_page)
        return self.dataset.open_folder(folder)

    def generate_data_dialog(self) -> None:
        dialog = GenerateDialog(self.settings.text("formulas/generate_dir"), self)
        dialog.accepted.connect(partial(self.generate_data, dialog))
        self.dialog = dialog
        dialog.open()

    def generate_data(self, dialog: GenerateDialog) -> JobHandle:
        """Start drawing the set the dialog describes, in the background."""
        out, config, workers = dialog.out(), dialog.config(), dialog.workers.value()
        self.settings.set_text("formulas/generate_dir", str(out))
        handle = self.runner.start(
            f"Generating {config.count:,} formulas", partial(generate, out, config, workers=workers)
        )
        handle.succeeded.connect(partial(self._generated, config.count))
        handle.failed.connect(partial(self.problem.emit, "Cannot generate the data"))
        return handle

    def _generated(self, count: int, folder: Path) -> None:
        self.say(f"Wrote {count:,} images and labels.txt to {folder}", 20000)
        self.train.data_generated(str(folder))

    # ---------------------------------------------------------------- model
    def load_model(self, path: Path | str = SHIPPED_MODEL) -> JobHandle:
        """Load a recogniser in the background; the current image is read once it is in."""
        handle = self.runner.start(
            "Loading the formula model",
            single_step("loading", Recognizer.load, Path(path), self.device),
        )
        self._model_request = handle
        handle.succeeded.connect(partial(self._model_loaded, handle))
        handle.failed.connect(partial(self._model_failed, handle))
        return handle

    def set_device(self, device: devices.Device) -> None:
        """The app's device (Tools ▸ Device): the recogniser moves there, and training
        uses it unless the Train tab chooses its own."""
        self.train.device.set_app_device(device)
        changed = str(device.torch) != str(self.device.torch)
        super().set_device(device)
        if changed and self.recognizer is not None and self.recognizer.path is not None:
            self.load_model(self.recognizer.path)

    def _model_loaded(self, handle: JobHandle, recognizer: Recognizer) -> None:
        if handle is not self._model_request:
            return  # a later request (the user's choice) wins over an earlier one
        self.recognizer = recognizer
        self.model_problem = ""
        name = recognizer.path.name if recognizer.path else ""
        self.readings.show_message(f"Model: {name} — open, drop or draw a formula to read it.")
        self.train.set_current_model(recognizer)
        self.folder.set_recognizer(recognizer)
        self.read_current()

    def _model_failed(self, handle: JobHandle, message: str, details: str) -> None:
        if handle is not self._model_request:
            return
        self.model_problem = message
        self.readings.show_message(f"<b>No recognition model is loaded.</b><br>{message}")

    # ---------------------------------------------------------------- reading
    def _stroke_finished(self) -> None:
        self._debounce.stop()
        self.read_current()

    def read_current(self) -> JobHandle | None:
        """Read the image or the drawing off the UI thread; while a reading runs, one more
        is queued (so the latest stroke is always read, and at most one waits)."""
        if self.recognizer is None:
            return None
        if self._reading is not None:
            self._pending = True
            return None
        canvas = self.is_drawing()
        if canvas:
            if self.canvas.is_empty():
                self._show_empty_canvas()
                return None
            image = self.canvas.image()
        elif self.image is not None:
            image = self.image
        else:
            return None
        recognizer, steps = self.recognizer, self.preprocess.steps()
        options = self.readings.decoder_options()
        grammar_first = self.readings.grammar.isChecked()

        read = partial(
            recognizer.recognize,
            image,
            canvas=canvas,
            steps=steps,
            keep_stages=True,
            align=True,
            prefer_grammar=grammar_first,
            **options,
        )
        handle = self.runner.start("Reading the formula", single_step("reading", read))
        self._reading = handle
        self._pending = False
        name = recognizer.path.name if recognizer.path else "the model"
        source = image if not canvas else None
        handle.succeeded.connect(lambda result: self._show(result, source, canvas, name))
        handle.failed.connect(
            lambda message, details: self.problem.emit("Cannot read the image", message, details)
        )
        handle.finished.connect(partial(self._reading_done, handle))
        return handle

    def _reading_done(self, handle: JobHandle) -> None:
        if handle is self._reading:
            self._reading = None
            if self._pending:
                self._pending = False
                self.read_current()

    def _show_empty_canvas(self) -> None:
        self.last_recognition = None
        self.alignment = None
        self.posterior.clear()
        self.alignment_view.set_alignment(None)
        self.readings.show_message("Draw a formula on the canvas: it is read after each stroke.")
        self.preprocess.show_stages([])
        self.readings_updated.emit()

    def _show(
        self,
        result: Recognition,
        source: np.ndarray | None,
        canvas: bool,
        name: str,
    ) -> None:
        if canvas != self.is_drawing() or (not canvas and source is not self.image):
            return  # the user moved on: a newer reading follows
        if self._pending:
            return  # the drawing changed meanwhile; the queued reading will show
        aligned = result.alignment
        self.last_recognition = result
        self.readings.show_recognition(result, name)
        self.preprocess.show_stages(result.stages)
        config = self.recognizer.config if self.recognizer else None
        region = partial(column_span, config=config) if config else None
        self.posterior.set_data(result.log_probs, result.model_input, region)
        self._set_alignment(aligned, aligned.text if aligned else result.text)
        self.recognized.emit(result.text)
        self.readings_updated.emit()

    def show_alignment(self, text: str) -> ctc.Alignment | None:
        """The alignment of `text` on the current reading (a picked or typed labelling)."""
        result = self.last_recognition
        if result is None:
            return None
        try:
            aligned = result.align(text)
        except ValueError as error:
            self._set_alignment(None, text, str(error))
            return None
        self._set_alignment(aligned, text)
        return aligned

    def _set_alignment(self, aligned: ctc.Alignment | None, text: str, problem: str = "") -> None:
        self.alignment = aligned
        if aligned is None:
            why = problem or "it does not fit the time steps"
            self.alignment_view.set_alignment(None, f"Cannot align {text or '∅'}: {why}")
            self.readings.show_alignment(text, None, why)
            return
        self.alignment_view.set_alignment(aligned)
        self.readings.show_alignment(aligned.text, aligned.log_prob)

    def _hovered(self, step: int) -> None:
        self.posterior.set_highlight(step)
        self.alignment_view.set_highlight(step)
        self.hover_label.setText(
            self.posterior.describe(step)
            if step >= 0
            else "Hover over the heatmaps to inspect a time step."
        )
        result = self.last_recognition
        steps = self.preprocess.steps() - {"resize", "normalize"}
        if "trim" in steps and result is not None and not self._trimmed(result):
            steps -= {"trim"}  # the margins were not loose: the image was left as it is
        keeps_geometry = steps <= _GEOMETRY_KEEPING
        if step < 0 or result is None or self.is_drawing() or not keeps_geometry:
            self.image_view.set_band(None)
            return
        if self.recognizer is not None:  # the step's x-range as fractions of the width
            width = result.model_input.shape[1]
            self.image_view.set_band(self.recognizer.x_range(step, width, 1.0))
