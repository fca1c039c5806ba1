"""The Formulas workbench: the image being read and, beside it, the recogniser's readings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QLabel,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.images import IMAGE_SUFFIXES, ImageProblem, read_image
from gui.widgets.common import heading, paragraph, to_qimage


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

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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

        self.readings = QGroupBox("Readings")
        self.readings.setObjectName("formulaReadings")
        self.readings_status = paragraph(
            "<b>No recognition model is loaded.</b><br>"
            "With a model, this panel gives the greedy and beam-search readings with their "
            "scores and whether the equation is true; the CTC posterior and alignment "
            "heatmaps are drawn under the image, column by column."
        )
        self.readings_status.setObjectName("formulaReadingsStatus")
        readings_layout = QVBoxLayout(self.readings)
        readings_layout.addWidget(self.readings_status)
        readings_layout.addStretch(1)

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
        self.image_view.set_image(QPixmap.fromImage(to_qimage(image)))
        height, width = image.shape[:2]
        self.caption.setText(f"{path.name} — {width}×{height} px")
        self.image_loaded.emit(str(path))
        return True
