"""The Read page: an image or a mouse drawing, the preprocessing steps, what the CTC model
sees at each time step, and the readings. It reads off the UI thread and only draws the
`Recognition` that comes back."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.formula import ctc, preprocess
from core.formula.model_config import column_span
from core.formula.preprocess import MODEL_HEIGHT
from core.formula.recognizer import Recognition, Recognizer, shape_problem
from core.image_sizes import MAX_PIXELS, describe_limit
from core.images import IMAGE_SUFFIXES, ImageProblem, decode, flatten, read_image, sniff_format
from core.jobs import single_step
from gui.formula.draw_tab import DrawTab
from gui.formula.heatmaps import AlignmentView, PosteriorView
from gui.formula.image_view import ImageView
from gui.formula.preprocess_panel import PreprocessPanel
from gui.formula.readings import ReadingsPanel
from gui.widgets.common import from_qimage, heading, paragraph, scrolling, to_qimage
from gui.workers import JobHandle, JobRunner

#: Coalesces quick edits (a held Ctrl+Z) into one reading; a stroke is read at once after.
DEBOUNCE_MS = 25
#: Steps that keep the image's geometry: with only these, a time step's region can be shown
#: on the original image too.
_GEOMETRY_KEEPING = {
    "gray",
    "lines",
    "median",
    "gaussian",
    "otsu",
    "adaptive",
    "open",
    "close",
    "bold",
}
_HOVER_HINT = "Hover over the heatmaps to inspect a time step."


def dropped_image(mime: QMimeData) -> Path | None:
    """The first local image file that `mime` names, if any."""
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in IMAGE_SUFFIXES:
                return path
    return None


def _trimmed(result: Recognition) -> bool:
    """Whether the step that crops loose margins and pads tight ones changed the image."""
    trim = next(step.title for step in preprocess.STEPS if step.name == "trim")
    shapes = [image.shape[:2] for _title, image in result.stages]
    titles = [title for title, _image in result.stages]
    if trim not in titles:
        return False
    index = titles.index(trim)
    before = shapes[index - 1] if index > 0 else tuple(result.image_size[::-1])
    return shapes[index] != before


class ReadPage(QSplitter):
    """Source (image or drawing), steps and heatmaps on the left, readings on the right."""

    problem = Signal(str, str, str)  # title, message, details
    loaded = Signal(str)  # the name of an image now shown (a file's, or "pasted image")
    recognized = Signal(str)  # the greedy reading of the current image or drawing
    readings_updated = Signal()  # readings, heatmaps and alignment all show the latest

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("formulaSplitter")
        self.runner = runner
        self.recognizer: Recognizer | None = None
        self.image_path: Path | None = None
        self.image: np.ndarray | None = None
        self.last_recognition: Recognition | None = None
        self.alignment: ctc.Alignment | None = None
        self._reading: JobHandle | None = None
        self._pending = False

        self.source_tabs = self._make_sources()
        self.preprocess = PreprocessPanel()
        self.preprocess.changed.connect(self.read_current)
        maps = self._make_maps()
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
        self.addWidget(scrolling(left, across=False))
        self.addWidget(scrolling(self.readings, across=False))
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 2)
        self.setChildrenCollapsible(False)

    def _make_sources(self) -> QTabWidget:
        """The Image and Draw tabs; a finished stroke is read at once, other edits after
        the debounce."""
        self.image_view = ImageView()
        self.caption = QLabel()
        self.caption.setObjectName("formulaCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_tab = QWidget()
        image_layout = QVBoxLayout(self.image_tab)
        image_layout.setContentsMargins(0, 0, 0, 0)
        image_layout.addWidget(self.image_view, 1)
        image_layout.addWidget(self.caption)
        self.draw = DrawTab()
        self.canvas = self.draw.canvas
        tabs = QTabWidget()
        tabs.setObjectName("formulaSource")
        tabs.addTab(self.image_tab, "Image")
        tabs.addTab(self.draw, "Draw")
        # a fixed height: the page must not move under the pen when readings appear below
        tabs.setFixedHeight(250)
        tabs.currentChanged.connect(self._source_changed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.read_current)
        self.canvas.changed.connect(self._debounce.start)
        self.canvas.stroke_finished.connect(self._stroke_finished)
        return tabs

    def _make_maps(self) -> QGroupBox:
        """The posterior and alignment heatmaps, hover-linked, with the log-scale switch."""
        self.posterior = PosteriorView()
        self.alignment_view = AlignmentView()
        self.posterior.hovered.connect(self._hovered)
        self.alignment_view.hovered.connect(self._hovered)
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setObjectName("formulaLogScale")
        self.log_scale.setToolTip("Colour by log-probability, from e⁻⁸ to 1")
        self.log_scale.toggled.connect(self.posterior.set_log_scale)
        self.log_scale.toggled.connect(self.alignment_view.set_log_scale)
        self.hover_label = QLabel(_HOVER_HINT)
        self.hover_label.setObjectName("formulaHover")
        maps = QGroupBox("What the model sees at each time step")
        layout = QVBoxLayout(maps)
        row = QHBoxLayout()
        row.addWidget(self.hover_label, 1)
        row.addWidget(self.log_scale)
        layout.addLayout(row)
        layout.addWidget(self.posterior)
        layout.addWidget(QLabel("Alignment γ of the chosen reading, Viterbi path in red:"))
        layout.addWidget(self.alignment_view)
        return maps

    # ---------------------------------------------------------------- options
    def options(self) -> dict[str, object]:
        """Decoder options, display and pen, as the window remembers them."""
        panel = self.readings
        return {
            "beam_width": panel.beam_width.value(),
            "nbest": panel.nbest.value(),
            "grammar": panel.grammar.isChecked(),
            "truth_weight": panel.truth_weight.value(),
            "look_again": panel.look_again.isChecked(),
            "log_scale": self.log_scale.isChecked(),
            "pen_width": self.draw.width.value(),
            "steps_open": self.preprocess.toggle.isChecked(),
        }

    def option_setters(self) -> dict[str, object]:
        """For each key of `options`, what puts a remembered value back."""
        panel = self.readings
        return {
            "beam_width": lambda v: panel.beam_width.setValue(int(v)),
            "nbest": lambda v: panel.nbest.setValue(int(v)),
            "grammar": lambda v: panel.grammar.setChecked(bool(v)),
            "truth_weight": lambda v: panel.truth_weight.setValue(float(v)),
            "look_again": lambda v: panel.look_again.setChecked(bool(v)),
            "log_scale": lambda v: self.log_scale.setChecked(bool(v)),
            "pen_width": lambda v: self.draw.width.setValue(float(v)),
            "steps_open": lambda v: self.preprocess.toggle.setChecked(bool(v)),
        }

    # ---------------------------------------------------------------- model
    def set_recognizer(self, recognizer: Recognizer) -> None:
        """Read with `recognizer` from now on; the current source is read again."""
        self.recognizer = recognizer
        name = recognizer.path.name if recognizer.path else ""
        self.readings.show_message(f"Model: {name} — open, drop or draw a formula to read it.")
        self.read_current()

    def show_model_problem(self, message: str) -> None:
        self.readings.show_message(f"<b>No recognition model is loaded.</b><br>{message}")

    def _model_height(self) -> int:
        return self.recognizer.config.height if self.recognizer else MODEL_HEIGHT

    # ---------------------------------------------------------------- sources
    def is_drawing(self) -> bool:
        return self.source_tabs.currentWidget() is self.draw

    def show_drawing(self) -> None:
        self.source_tabs.setCurrentWidget(self.draw)
        self.canvas.setFocus()

    def _source_changed(self) -> None:
        self.preprocess.set_canvas_mode(self.is_drawing())  # reads again through `changed`

    def load_image(self, path: str | Path, steps: frozenset[str] | None = None) -> bool:
        """Show and read the image at `path`, through `steps` where given, once; a file
        that is not a usable image is reported."""
        path = Path(path)
        try:
            image = read_image(path)
        except ImageProblem as problem:
            self.problem.emit("Cannot open the image", str(problem), "")
            return False
        problem = shape_problem(image.shape[1], image.shape[0], self._model_height())
        if problem:
            self.problem.emit("Cannot read the image", f"{path.name}: {problem}", "")
            return False
        self.image_path = path
        if steps is not None:
            with QSignalBlocker(self.source_tabs):  # leaving the drawing must not reset them
                self.source_tabs.setCurrentWidget(self.image_tab)
            self.preprocess.set_steps(steps)
        self._show_image(image, path.name)
        return True

    def paste(self) -> bool:
        """Read the clipboard's image, or the image file whose path it holds."""
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        try:  # encoded bytes go through the same size guard as a file
            array = _clipboard_image(mime) if mime is not None else None
            if array is None and mime is not None and mime.hasImage():
                array = _qimage_to_rgb(clipboard.image())
        except ImageProblem as problem:
            self.problem.emit("Cannot read the pasted image", problem.detail, "")
            return False
        if array is not None:
            height, width = array.shape[:2]
            problem = shape_problem(width, height, self._model_height())
            if problem:
                self.problem.emit("Cannot read the pasted image", problem, "")
                return False
            self.image_path = None
            self._show_image(array, "pasted image")
            return True
        if mime is not None and (path := dropped_image(mime)) is not None:
            return self.load_image(path)
        text = clipboard.text().strip()
        if text and Path(text).suffix.lower() in IMAGE_SUFFIXES and Path(text).is_file():
            return self.load_image(text)
        self.problem.emit("Nothing to paste", "The clipboard holds no image.", "")
        return False

    def _show_image(self, image: np.ndarray, name: str) -> None:
        self.image = image
        self.image_view.set_image(QPixmap.fromImage(to_qimage(image)))
        height, width = image.shape[:2]
        self.caption.setText(f"{name} — {width}×{height} px")
        if self.is_drawing():
            self.source_tabs.setCurrentWidget(self.image_tab)  # reads through the change
        else:
            self.read_current()
        self.loaded.emit(name)

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
        recognizer = self.recognizer
        read = partial(
            recognizer.recognize,
            image,
            canvas=canvas,
            steps=self.preprocess.steps(),
            keep_stages=True,
            align=True,
            prefer_grammar=self.readings.grammar.isChecked(),
            **self.readings.decoder_options(),
        )
        handle = self.runner.start("Reading the formula", single_step("reading", read))
        self._reading = handle
        self._pending = False
        name = recognizer.path.name if recognizer.path else "the model"
        source = image if not canvas else None
        handle.succeeded.connect(partial(self._show, source=source, canvas=canvas, name=name))
        handle.failed.connect(partial(self.problem.emit, "Cannot read the image"))
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
        self.hover_label.setText(self.posterior.describe(step) if step >= 0 else _HOVER_HINT)
        result = self.last_recognition
        steps = self.preprocess.steps() - {"resize", "normalize"}
        if "trim" in steps and result is not None and not _trimmed(result):
            steps -= {"trim"}  # the margins were not loose: the image was left as it is
        keeps_geometry = steps <= _GEOMETRY_KEEPING
        if step < 0 or result is None or self.is_drawing() or not keeps_geometry:
            self.image_view.set_band(None)
            return
        if self.recognizer is not None:  # the step's x-range as fractions of the width
            width = result.model_input.shape[1]
            self.image_view.set_band(self.recognizer.x_range(step, width, 1.0))


def _clipboard_image(mime: QMimeData) -> np.ndarray | None:
    """The clipboard's image decoded from the encoded bytes it holds (PNG, JPEG…) as a file
    is, size guard first; None when it holds an image already decoded (which Qt would only
    encode again to hand its bytes over)."""
    if "application/x-qt-image" in mime.formats():
        return None
    for name in mime.formats():
        if name.startswith("image/"):
            data = bytes(mime.data(name).data())
            if sniff_format(data[:16]) is not None:
                return decode(data, "pasted image")
    return None


def _qimage_to_rgb(image: QImage) -> np.ndarray | None:
    """A clipboard image as RGB; a transparent one drawn on paper as a file would be
    (`core.images.flatten`). None for a null image; a huge one is refused."""
    if image.isNull():
        return None
    if image.width() * image.height() > MAX_PIXELS:
        raise ImageProblem(
            "pasted image", "too-large", describe_limit(image.width(), image.height())
        )
    if image.hasAlphaChannel():
        return flatten(from_qimage(image, QImage.Format.Format_RGBA8888))
    return from_qimage(image, QImage.Format.Format_RGB888)
