"""The preprocessing preview: each step of `core.formula.preprocess` with a toggle, and the
image after every enabled step, ending with exactly what the model reads."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.formula import preprocess
from gui.widgets.common import WARNING_COLOUR, check_quietly, to_qimage

_PREVIEW_HEIGHT = 36


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


class PreprocessPanel(QGroupBox):
    """Toggles for the steps; `changed` when one flips. `steps()` is what to apply."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Preprocessing", parent)
        self.setObjectName("formulaPreprocess")
        self.boxes: dict[str, QCheckBox] = {}
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(2)
        for i, step in enumerate(preprocess.STEPS):
            box = QCheckBox(step.title)
            box.setObjectName(f"step_{step.name}")
            box.setChecked(step.default)
            if step.name in preprocess.ALWAYS:
                box.setEnabled(False)
                box.setToolTip("Always applied: the model reads this height, in [0, 1]")
            else:
                box.setToolTip(step.help)
            box.toggled.connect(self.changed)
            self.boxes[step.name] = box
            grid.addWidget(box, i // 3, i % 3)
        self.reset_button = QPushButton("Model's defaults")
        self.reset_button.setToolTip("The steps the model was trained with")
        self.reset_button.clicked.connect(self.reset)
        self.canvas_mode = False

        self.strip = QWidget()
        self.strip_layout = QHBoxLayout(self.strip)
        self.strip_layout.setContentsMargins(0, 0, 0, 0)
        self.strip_layout.addStretch(1)
        scroller = QScrollArea()
        scroller.setWidget(self.strip)
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QScrollArea.Shape.NoFrame)
        scroller.setFixedHeight(_PREVIEW_HEIGHT + 40)
        scroller.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.details = QWidget()
        top = QHBoxLayout(self.details)
        top.setContentsMargins(0, 0, 0, 0)
        top.addLayout(grid, 1)
        top.addWidget(self.reset_button, 0, Qt.AlignmentFlag.AlignTop)
        self.summary = QLabel()
        self.summary.setObjectName("formulaPreprocessSummary")
        self.summary.setWordWrap(True)
        self.warning = QLabel()
        self.warning.setObjectName("formulaPreprocessWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"color: {WARNING_COLOUR};")
        self.warning.setVisible(False)
        self.toggle = QToolButton()
        self.toggle.setObjectName("formulaPreprocessToggle")
        self.toggle.setCheckable(True)
        self.toggle.setText("Choose steps")
        self.toggle.setToolTip("Show the steps with a toggle each")
        self.toggle.toggled.connect(self.details.setVisible)
        self.details.setVisible(False)
        head = QHBoxLayout()
        head.addWidget(self.summary, 1)
        head.addWidget(self.toggle)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.warning)
        layout.addWidget(self.details)
        layout.addWidget(scroller)
        self.changed.connect(self._summarise)
        self._summarise()

    def _summarise(self) -> None:
        self.summary.setText(preprocess.named(self.steps()))
        defaults = preprocess.CANVAS if self.canvas_mode else preprocess.DEFAULT
        costly = preprocess.costly(self.steps(), defaults)
        self.warning.setText("<br>".join(costly))
        self.warning.setVisible(bool(costly))

    def steps(self) -> set[str]:
        return {name for name, box in self.boxes.items() if box.isChecked()}

    def set_steps(self, steps: frozenset[str]) -> None:
        """Check exactly `steps` for an image, not a drawing (the resize and normalisation
        stay on), without `changed`: the caller reads the image through them once."""
        self.canvas_mode = False
        check_quietly(self.boxes, steps | preprocess.ALWAYS)
        self._summarise()

    def set_canvas_mode(self, on: bool) -> None:
        """Drawings are cropped to their ink first; images are read as they are."""
        if on != self.canvas_mode:
            self.canvas_mode = on
            self.reset()

    def reset(self) -> None:
        check_quietly(self.boxes, preprocess.CANVAS if self.canvas_mode else preprocess.DEFAULT)
        self.changed.emit()

    def show_stages(self, stages: list[tuple[str, np.ndarray]]) -> None:
        """The image after each applied step, left to right."""
        while self.strip_layout.count():
            item = self.strip_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()  # deleteLater waits for the event loop; hide it now
                item.widget().deleteLater()
        for title, image in stages:
            pixels = _as_uint8(image)
            pixmap = QPixmap.fromImage(to_qimage(pixels)).scaledToHeight(
                _PREVIEW_HEIGHT, Qt.TransformationMode.SmoothTransformation
            )
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            picture = QLabel()
            picture.setPixmap(pixmap)
            picture.setToolTip(f"{title}: {image.shape[1]}×{image.shape[0]} px")
            caption = QLabel(title)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            column.addWidget(picture)
            column.addWidget(caption)
            self.strip_layout.addWidget(cell)
        self.strip_layout.addStretch(1)
