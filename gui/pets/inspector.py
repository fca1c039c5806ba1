"""The inspector: the selected image large, its file facts, its label and history, a note,
and room for the predictions the scan and training add."""

from __future__ import annotations

import time
from html import escape

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.jobs import format_bytes
from core.pets.backbones import categories
from core.pets.labelstore import LABELS, LabelStore
from core.pets.outliers import class_kind, top_classes
from core.pets.runs import LOSS_SCORE
from gui.pets.grid import CAT_COLOUR, DOG_COLOUR, ThumbnailProvider, short_name
from gui.pets.scan_panel import FLAG_FILTERS, ScanView

#: The inspector decodes at this size (longest side): sharp at typical panel widths.
INSPECTOR_SIZE = 768
_NO_PREDICTIONS = "No predictions yet: scan the dataset (Scan tab) or train a model."


class Inspector(QWidget):
    """Shows one sample; the note is edited here and committed when editing finishes."""

    note_edited = Signal(int, str)  # row, note

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petsInspector")
        self.store: LabelStore | None = None
        self.provider: ThumbnailProvider | None = None
        self.scan_view: ScanView | None = None
        self.row: int | None = None
        self._image: QImage | None = None
        self.picture = QLabel("No image selected")
        self.picture.setObjectName("inspectorPicture")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(120, 100)
        self.picture.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.name = QLabel()
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name.setWordWrap(True)
        self.label = QLabel()
        self.size_label = QLabel()
        self.file_label = QLabel()
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        self.note = QLineEdit()
        self.note.setObjectName("inspectorNote")
        self.note.setPlaceholderText("A note about this image…")
        self.note.editingFinished.connect(self._note_finished)
        self.history = QListWidget()
        self.history.setObjectName("inspectorHistory")
        self.history.setMinimumHeight(40)
        self.history.setWordWrap(True)
        self.predictions = QLabel(_NO_PREDICTIONS)
        self.predictions.setObjectName("inspectorPredictions")
        self.predictions.setWordWrap(True)
        self.predictions.setTextFormat(Qt.TextFormat.RichText)
        self.predictions.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.predictions.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        form = QFormLayout()
        form.addRow("File:", self.name)
        form.addRow("Label:", self.label)
        form.addRow("Size:", self.size_label)
        form.addRow("Decoding:", self.notes_label)
        form.addRow("Note:", self.note)
        history_box = QGroupBox("History")
        QVBoxLayout(history_box).addWidget(self.history)
        predictions_box = QGroupBox("Predictions")
        QVBoxLayout(predictions_box).addWidget(self.predictions)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture, 3)
        layout.addLayout(form)
        layout.addWidget(history_box, 1)
        layout.addWidget(predictions_box, 2)

    def set_scan_view(self, view: ScanView | None) -> None:
        self.scan_view = view
        self._show_predictions()

    def _show_predictions(self) -> None:
        """The ImageNet top N of the shown image, its flags and its label quality."""
        view, store, row = self.scan_view, self.store, self.row
        run = self._run_line()
        if view is None or store is None or row is None or not view.flags.scanned[row]:
            text = _NO_PREDICTIONS if view is None else "Not scanned."
            self.predictions.setText(f"{run}<br>{text}" if run else text)
            return
        settings = view.settings
        names = categories()
        lines = [f"<b>ImageNet top {settings.top_n}</b> ({view.table.model})"]
        for index, prob in top_classes(view.table, row, settings.top_n):
            kind = class_kind(index, settings.count_wild_cats)
            colour = {"cat": CAT_COLOUR.name(), "dog": DOG_COLOUR.name()}.get(kind, "#666666")
            tag = f" · {kind}" if kind else ""
            lines.append(
                f"<span style='color:{colour}'>{prob:6.1%} &nbsp;{escape(names[index])}{tag}</span>"
            )
        flags = view.flags
        lines.append(
            f"cat {flags.cat_mass[row]:.1%} · dog {flags.dog_mass[row]:.1%} of the probability"
        )
        marks = [title for key, title, _meaning in FLAG_FILTERS if bool(view.mask(key)[row])]
        if marks:
            lines.append("<b style='color:#c62828'>Flagged: " + ", ".join(marks) + "</b>")
        quality = view.quality[row]
        if not np.isnan(quality):
            lines.append(f"Label quality (confident learning): {quality:.3f}")
        if run:
            lines.insert(0, run)
        self.predictions.setText("<br>".join(lines))

    def _run_line(self) -> str:
        """The latest training run's verdict on the shown image, when it validated it."""
        store, row = self.store, self.row
        if store is None or row is None:
            return ""
        loss = store.scores(LOSS_SCORE)[row]
        if np.isnan(loss):
            return ""
        label = LABELS[store.label[row]] or "its label"
        return (
            f"<b>Latest run</b>: P({label}) = {np.exp(-loss):.3f}, validation log loss {loss:.3f}"
        )

    def attach(self, store: LabelStore, provider: ThumbnailProvider) -> None:
        self.store, self.provider = store, provider
        provider.ready.connect(self._on_ready)

    def show_row(self, row: int | None) -> None:
        if self.row is not None and self.note.isModified():
            self._note_finished()
        self.row = row
        store = self.store
        if store is None or row is None:
            self.picture.setText("No image selected")
            self.picture.setPixmap(QPixmap())
            for widget in (self.name, self.label, self.size_label, self.notes_label):
                widget.clear()
            self.history.clear()
            self.note.clear()
            return
        self.name.setText(store.paths[row])
        self.refresh()
        self._image = None
        image = self.provider.image(store.paths[row], INSPECTOR_SIZE) if self.provider else None
        if image is not None:
            self._set_image(image)
        elif not store.problem[row]:
            self.picture.setText("Loading…")

    def refresh(self) -> None:
        """Update the label, facts and history of the shown sample (after an edit)."""
        store, row = self.store, self.row
        if store is None or row is None:
            return
        label = LABELS[store.label[row]]
        file_label = LABELS[store.file_label[row]]
        text = "test image (no label)" if store.split[row] == 1 and label is None else f"{label}"
        if label != file_label:
            text += f" (file name says {file_label or 'nothing'})"
        if store.excluded[row]:
            text += " — excluded"
        if store.flagged[row]:
            text += " — flagged"
        self.label.setText(text)
        self._show_predictions()
        facts = store.facts(row)
        if facts is None:
            self.size_label.setText("not decoded yet")
            self.notes_label.setText("")
        else:
            size = f"{facts.width} × {facts.height} px" if facts.width else "unknown size"
            self.size_label.setText(
                size + (f", {format_bytes(facts.bytes)}" if facts.bytes is not None else "")
            )
            if facts.problem:
                self.notes_label.setText(
                    f"<b style='color:#c62828'>unreadable</b>: {facts.problem}"
                )
                self.picture.setPixmap(QPixmap())
                self.picture.setText(f"⚠ {facts.problem}")
            else:
                self.notes_label.setText(facts.notes or "ok")
        if not self.note.hasFocus():
            self.note.setText(store.note(row))
            self.note.setModified(False)
        self.history.clear()
        for entry in reversed(store.history(row)):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.time))
            change = f"{entry.field} {entry.old or '—'} → {entry.new or '—'}"
            undone = " · undone" if entry.undone else ""
            self.history.addItem(f"{entry.description}\n{change} · {when}{undone}")
        if not self.history.count():
            self.history.addItem("No edits")

    def _on_ready(self, path: str, size: int) -> None:
        store, row = self.store, self.row
        if store is None or row is None or size != INSPECTOR_SIZE or path != store.paths[row]:
            return
        image = self.provider.image(path, size) if self.provider else None
        if image is not None:
            self._set_image(image)
        self.refresh()

    def _set_image(self, image: QImage) -> None:
        self._image = image
        self._rescale()

    def _rescale(self) -> None:
        if self._image is None:
            return
        pixmap = QPixmap.fromImage(self._image).scaled(
            self.picture.size(),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.picture.setPixmap(pixmap)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _note_finished(self) -> None:
        if self.row is not None and self.note.isModified():
            self.note.setModified(False)
            self.note_edited.emit(self.row, self.note.text())

    def title(self) -> str:
        return (
            "" if self.store is None or self.row is None else short_name(self.store.paths[self.row])
        )
