"""The Formulas workbench: the image being read and, beside it, the recogniser's readings."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.formula.recognizer import SHIPPED_MODEL, Recognition, Recognizer
from core.images import IMAGE_SUFFIXES, ImageProblem, read_image
from core.jobs import single_step
from gui.formula.readings import ReadingsPanel
from gui.widgets.common import heading, paragraph, to_qimage
from gui.workers import JobHandle, JobRunner


def _dropped_image(mime: QMimeData) -> Path | None:
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in IMAGE_SUFFIXES:
                return path
    return None


class ImageView(QLabel):
    """The formula image, scaled to fit and never enlarged past 4×; accepts dropped files."""

    dropped = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("formulaImage")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumSize(240, 120)
        self.setAcceptDrops(True)
        self.setWordWrap(True)
        self._pixmap: QPixmap | None = None
        self.clear_image()

    def clear_image(self) -> None:
        self._pixmap = None
        self.setPixmap(QPixmap())
        self.setText("Open a formula image (File ▸ Open image…) or drop one here.")

    def set_image(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self._rescale()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def _rescale(self) -> None:
        if self._pixmap is None:
            return
        limit = self._pixmap.size() * 4
        target = self.contentsRect().size().boundedTo(limit)
        self.setPixmap(
            self._pixmap.scaled(
                target,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_image(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.dropped.emit(str(path))


class FormulaWorkbench(QWidget):
    """Formulas: a loaded image above, the readings panel below."""

    problem = Signal(str, str, str)  # title, message, details
    image_loaded = Signal(str)
    recognized = Signal(str)  # the greedy reading of the current image

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.image_path: Path | None = None
        self.image_view = ImageView()
        self.image_view.dropped.connect(self.load_image)
        self.caption = QLabel()
        self.caption.setObjectName("formulaCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.toolbar = QToolBar()
        self.toolbar.setObjectName("formulaToolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)

        image_box = QWidget()
        image_layout = QVBoxLayout(image_box)
        image_layout.addWidget(heading("Formulas"))
        image_layout.addWidget(
            paragraph(
                "Recognise single-line arithmetic such as <tt>(1-9)-4=-12</tt>, written with "
                "<tt>0-9 + - * ( ) =</tt>, and see what the CTC model reads at each position."
            )
        )
        image_layout.addWidget(self.image_view, 1)
        image_layout.addWidget(self.caption)

        self.readings = ReadingsPanel()
        self.recognizer: Recognizer | None = None
        self.model_problem = ""
        self.image: np.ndarray | None = None
        self.last_recognition: Recognition | None = None
        self._model_request: JobHandle | None = None

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("formulaSplitter")
        self.splitter.addWidget(image_box)
        self.splitter.addWidget(self.readings)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.splitter)

    def add_actions(self, actions: list[QAction]) -> None:
        """Put window actions (open, generate…) on the workbench's toolbar."""
        for action in actions:
            self.toolbar.addAction(action)

    def load_image(self, path: str | Path) -> bool:
        """Show the image at `path`; a file that is not a usable image is reported."""
        path = Path(path)
        try:
            image = read_image(path)
        except ImageProblem as problem:
            self.problem.emit("Cannot open the image", str(problem), "")
            return False
        self.image_path = path
        self.image = image
        self.image_view.set_image(QPixmap.fromImage(to_qimage(image)))
        height, width = image.shape[:2]
        self.caption.setText(f"{path.name} — {width}×{height} px")
        self.image_loaded.emit(str(path))
        self.read_image()
        return True

    # ---------------------------------------------------------------- recognition
    def load_model(self, path: Path | str = SHIPPED_MODEL) -> JobHandle:
        """Load a recogniser in the background; the current image is read once it is in."""
        handle = self.runner.start(
            "Loading the formula model", single_step("loading", Recognizer.load, Path(path))
        )
        self._model_request = handle
        handle.succeeded.connect(partial(self._model_loaded, handle))
        handle.failed.connect(partial(self._model_failed, handle))
        return handle

    def _model_loaded(self, handle: JobHandle, recognizer: Recognizer) -> None:
        if handle is not self._model_request:
            return  # a later request (the user's choice) wins over an earlier one
        self.recognizer = recognizer
        self.model_problem = ""
        self.readings.show_message(
            f"Model: {recognizer.path.name if recognizer.path else ''}"
            " — open or drop an image to read it."
        )
        self.read_image()

    def _model_failed(self, handle: JobHandle, message: str, details: str) -> None:
        if handle is not self._model_request:
            return
        self.model_problem = message
        self.readings.show_message(f"<b>No recognition model is loaded.</b><br>{message}")

    def read_image(self) -> JobHandle | None:
        """Read the current image off the UI thread; the panel shows the result."""
        if self.image is None or self.recognizer is None:
            return None
        recognizer, image = self.recognizer, self.image
        handle = self.runner.start(
            "Reading the formula",
            single_step("reading", recognizer.recognize, image, beam_width=10, nbest=5),
        )
        name = recognizer.path.name if recognizer.path else "the model"
        handle.succeeded.connect(lambda result: self._show(result, image, name))
        handle.failed.connect(
            lambda message, details: self.problem.emit("Cannot read the image", message, details)
        )
        return handle

    def _show(self, result: Recognition, image: np.ndarray, name: str) -> None:
        if image is self.image:  # a newer image may have replaced it meanwhile
            self.last_recognition = result
            self.readings.show_recognition(result, name)
            self.recognized.emit(result.text)
