"""The Read tab's image: the loaded image scaled to fit, with the band of it that the
hovered time step reads."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPixmap, QResizeEvent
from PySide6.QtWidgets import QFrame, QLabel, QWidget


class ImageView(QLabel):
    """The formula image, scaled to fit and never enlarged past 4×; marks the band a
    hovered time step reads. (Dropped files go to the workbench around it.)"""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("formulaImage")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumSize(240, 90)
        self.setWordWrap(True)
        self._pixmap: QPixmap | None = None
        self.band: tuple[float, float] | None = None  # fractions of the image's width
        self.clear_image()

    def clear_image(self) -> None:
        self._pixmap = None
        self.setPixmap(QPixmap())
        self.setText(
            "Open a formula image (File ▸ Open image…), drop or paste one here, "
            "or draw one on the Draw tab."
        )

    def set_image(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self.band = None
        self._rescale()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def set_band(self, band: tuple[float, float] | None) -> None:
        if band != self.band:
            self.band = band
            self.update()

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

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        shown = self.pixmap()
        if self.band is None or shown is None or shown.isNull():
            return
        rect = self.contentsRect()
        x = rect.x() + (rect.width() - shown.width()) / 2
        y = rect.y() + (rect.height() - shown.height()) / 2
        left, right = (x + f * shown.width() for f in self.band)
        painter = QPainter(self)
        painter.fillRect(QRectF(left, y, right - left, shown.height()), QColor(255, 140, 0, 60))
        painter.setPen(QPen(QColor(255, 140, 0), 1.5))
        painter.drawRect(QRectF(left, y, right - left, shown.height()))
        painter.end()
