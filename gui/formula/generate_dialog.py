"""The *Generate training data* dialog: where, how many, which styles and formulas, with a
live preview of what will be drawn."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.formula.generate import GenerateConfig
from core.formula.generate import sheet as sheet_of
from gui.widgets.common import to_qimage

_STYLE_NAMES = {
    "mixed": "Mixed (all four)",
    "captcha": "Captcha (like the Baidu set)",
    "fonts": "Handwriting fonts",
    "strokes": "Pen strokes (like a mouse drawing)",
    "printed": "Printed typefaces (documents, screens)",
}
_FORM_NAMES = {
    "level1": "Baidu level 1: (4*8)+8",
    "general": "General: 1-4 operators, 1-3 digits",
    "equation": "Equations: 6*(3+7)=76, true or not",
    "mixed": "Mixed",
}


class GenerateDialog(QDialog):
    """Asks for a GenerateConfig and an output folder; `config()` gives the answer."""

    def __init__(self, folder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generate training data")
        self.folder = QLineEdit(folder)
        self.folder.setObjectName("generateFolder")
        self.folder.setPlaceholderText("an empty or new folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)

        self.count = QSpinBox()
        self.count.setRange(1, 10_000_000)
        self.count.setValue(10_000)
        self.count.setSingleStep(1000)
        self.count.setGroupSeparatorShown(True)
        self.style_box = _combo(_STYLE_NAMES)
        self.form_box = _combo(_FORM_NAMES)
        self.p_true = QDoubleSpinBox()
        self.p_true.setRange(0, 1)
        self.p_true.setSingleStep(0.1)
        self.p_true.setValue(0.5)
        self.p_true.setToolTip("Share of equations whose written value is right")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.workers = QSpinBox()
        self.workers.setRange(1, max(1, os.cpu_count() or 1))
        self.workers.setValue(max(1, os.cpu_count() or 1))

        self.preview = QLabel()
        self.preview.setObjectName("generatePreview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(140)

        form = QFormLayout()
        form.addRow("Folder:", folder_row)
        form.addRow("Images:", self.count)
        form.addRow("Style:", self.style_box)
        form.addRow("Formulas:", self.form_box)
        form.addRow("Right equations:", self.p_true)
        form.addRow("Seed:", self.seed)
        form.addRow("Processes:", self.workers)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Generate")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Preview (the first images of this seed):"))
        layout.addWidget(self.preview)
        layout.addWidget(self.buttons)

        for signal in (
            self.style_box.currentIndexChanged,
            self.form_box.currentIndexChanged,
            self.seed.valueChanged,
            self.p_true.valueChanged,
        ):
            signal.connect(self._update_preview)
        self.folder.textChanged.connect(self._update_ok)
        self._update_preview()
        self._update_ok()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Folder for the new images", self.folder.text() or str(Path.home())
        )
        if folder:
            self.folder.setText(folder)

    def _update_ok(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(self.folder.text().strip()))

    def config(self) -> GenerateConfig:
        return GenerateConfig(
            self.count.value(),
            style=self.style_box.currentData(),
            form=self.form_box.currentData(),
            seed=self.seed.value(),
            p_true=self.p_true.value(),
        )

    def out(self) -> Path:
        return Path(self.folder.text().strip()).expanduser()

    def _update_preview(self) -> None:
        """Six images as the generator will draw them: quick enough for the UI thread."""
        from core.formula.generate import make_one

        config = self.config()
        items = [make_one(config, i) for i in range(6)]
        images = [image for _, _, image in items]
        sheet = sheet_of([images[:3], images[3:]])
        pixmap = QPixmap.fromImage(to_qimage(sheet))
        self.preview.setPixmap(
            pixmap.scaledToWidth(
                min(pixmap.width(), 640), Qt.TransformationMode.SmoothTransformation
            )
        )
        self.preview.setToolTip("  ".join(item.text for item, _, _ in items))


def _combo(names: dict[str, str]) -> QComboBox:
    box = QComboBox()
    for value, title in names.items():
        box.addItem(title, value)
    return box
