"""The thumbnail grid's model/view parts: a list model over the label store, a proxy that
filters and sorts with the store's numpy columns, thumbnails fetched off the UI thread into
an in-memory LRU, and the delegate that draws each cell."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractProxyModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from core.pets.labelstore import LABELS, LabelStore
from core.pets.results import Facts
from core.pets.sources import SEPARATOR, Source
from core.pets.thumbnails import DiskCache, Thumbnail, ThumbnailLoader, size_bucket
from gui.widgets.common import to_qimage

PathRole = Qt.ItemDataRole.UserRole + 1
LabelRole = Qt.ItemDataRole.UserRole + 2
FileLabelRole = Qt.ItemDataRole.UserRole + 3
StateRole = Qt.ItemDataRole.UserRole + 4  # (excluded, edited, flagged, problem, notes)
ThumbnailRole = Qt.ItemDataRole.UserRole + 5
SplitRole = Qt.ItemDataRole.UserRole + 6

#: Memory for decoded thumbnails: enough for several screens, bounded for 37,500 images.
THUMBNAIL_MEMORY = 64 * 1024 * 1024
CAT_COLOUR = QColor("#e8871e")
DOG_COLOUR = QColor("#2f7fd1")
PROBLEM_COLOUR = QColor("#c62828")
SCAN_COLOUR = QColor("#7b1fa2")
_FACTS_FLUSH_MS = 400
_ModelIndex = QModelIndex | QPersistentModelIndex


def short_name(path: str) -> str:
    return path.rsplit(SEPARATOR, 1)[-1].rsplit("/", 1)[-1]


class ThumbnailProvider(QObject):
    """Thumbnails for the grid and the inspector: an LRU of QImages in front of the loader's
    pool and disk cache. What decoding learns (size, problems) goes to the store in batches."""

    ready = Signal(str, int)  # path, size
    _delivered = Signal(object)  # Thumbnail, from a worker thread

    def __init__(
        self, store: LabelStore, source: Source, cache: DiskCache | None, parent: QObject
    ) -> None:
        super().__init__(parent)
        self.store = store
        self._images: OrderedDict[tuple[str, int], QImage | None] = OrderedDict()
        self._bytes = 0
        self._stamps = store.known_stamps()
        self._facts: dict[int, tuple[str, Facts]] = {}  # row → (stamp, facts)
        self._closed = False
        self._delivered.connect(self._on_delivered, Qt.ConnectionType.QueuedConnection)
        self.loader = ThumbnailLoader(source, self._delivered.emit, cache)
        self._flush_timer = QTimer(self, singleShot=True, interval=_FACTS_FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush_facts)

    def image(self, path: str, size: int) -> QImage | None:
        """The thumbnail if it is in memory (None otherwise, and it is requested)."""
        key = (path, size)
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        self.loader.request(path, size)
        return None

    def known(self, path: str, size: int) -> bool:
        return (path, size) in self._images

    def _on_delivered(self, thumb: Thumbnail) -> None:
        if self._closed:  # queued before the dataset was closed
            return
        image = None if thumb.image is None else to_qimage(thumb.image)
        key = (thumb.path, thumb.size)
        if key not in self._images:
            self._images[key] = image
            self._bytes += 0 if image is None else image.sizeInBytes()
            while self._bytes > THUMBNAIL_MEMORY and len(self._images) > 1:
                _, old = self._images.popitem(last=False)
                self._bytes -= 0 if old is None else old.sizeInBytes()
        row = self.store.row_for_path(thumb.path)
        if row is not None and thumb.stamp and self._stamps.get(row) != thumb.stamp:
            self._stamps[row] = thumb.stamp
            self._facts[row] = (thumb.stamp, thumb.facts)
            if not self._flush_timer.isActive():
                self._flush_timer.start()
        self.ready.emit(thumb.path, thumb.size)

    def flush_facts(self) -> None:
        if self._facts and not self._closed:
            items = [(row, stamp, facts) for row, (stamp, facts) in self._facts.items()]
            self._facts.clear()
            self.store.record_facts(items)

    def memory(self) -> int:
        return self._bytes

    def close(self) -> None:
        self.loader.close()
        self.flush_facts()
        self._closed = True
        self._flush_timer.stop()


class SampleModel(QAbstractListModel):
    """Every sample of the store, in the listing's order."""

    _changed = Signal(object)  # rows, possibly from another thread

    def __init__(self, store: LabelStore, provider: ThumbnailProvider, parent: QObject) -> None:
        super().__init__(parent)
        self.store = store
        self.provider = provider
        self.thumb_size = 160
        self._changed.connect(self._on_changed, Qt.ConnectionType.QueuedConnection)
        store.subscribe(self._changed.emit)
        provider.ready.connect(self._on_thumbnail)

    def detach(self) -> None:
        self.store.unsubscribe(self._changed.emit)

    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.store)

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.store):
            return None
        row = index.row()
        store = self.store
        if role == Qt.ItemDataRole.DisplayRole:
            return short_name(store.paths[row])
        if role == ThumbnailRole:
            return self.provider.image(store.paths[row], self.thumb_size)
        if role == LabelRole:
            return LABELS[store.label[row]]
        if role == StateRole:
            return self.state(row)
        if role == PathRole:
            return store.paths[row]
        if role == FileLabelRole:
            return LABELS[store.file_label[row]]
        if role == SplitRole:
            return "train" if store.split[row] == 0 else "test"
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        return None

    def state(self, row: int) -> tuple[int, int, int, str, str]:
        """(excluded, edited, flagged, problem kind or '', decoding notes) of a row."""
        store = self.store
        return (
            int(store.excluded[row]),
            int(store.label[row] != store.file_label[row] or store.noted[row]),
            int(store.flagged[row]),
            store.problem[row] or "",
            store.decode_notes[row],
        )

    def _tooltip(self, row: int) -> str:
        store = self.store
        lines = [store.paths[row]]
        label = LABELS[store.label[row]]
        if label is not None:
            lines.append(
                f"label: {label}"
                + (" (edited)" if store.label[row] != store.file_label[row] else "")
            )
        if store.excluded[row]:
            lines.append("excluded from training")
        if store.decode_notes[row]:
            lines.append(store.decode_notes[row])
        if store.problem[row]:
            facts = store.facts(row)
            lines.append(f"unreadable: {facts.problem if facts else store.problem[row]}")
        return "\n".join(lines)

    def roleNames(self) -> dict[int, bytes]:
        names = super().roleNames()
        names.update({PathRole: b"path", LabelRole: b"label", ThumbnailRole: b"thumbnail"})
        return names

    def set_thumb_size(self, side: int) -> None:
        bucket = size_bucket(side)
        if bucket != self.thumb_size:
            self.thumb_size = bucket
            self.provider.loader.drop_pending()

    def _on_changed(self, rows: np.ndarray) -> None:
        roles = [LabelRole, StateRole, Qt.ItemDataRole.ToolTipRole]
        for start, stop in _runs(rows):
            self.dataChanged.emit(self.index(start), self.index(stop), roles)

    def _on_thumbnail(self, path: str, size: int) -> None:
        row = self.store.row_for_path(path)
        if row is not None and size == self.thumb_size:
            index = self.index(row)
            self.dataChanged.emit(index, index, [ThumbnailRole])


class SampleFilterModel(QAbstractProxyModel):
    """Filters and sorts the samples with the store's numpy columns (Python per-row
    callbacks would take seconds on 37,500 rows)."""

    def __init__(self, source: SampleModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = source.store
        self.filters: dict[str, Any] = {}
        self.mask: np.ndarray | None = None  # a boolean per row, from the scan's flags
        self.extra_scores: dict[str, np.ndarray] = {}  # sort keys computed live
        self.sort_key = "name"
        self.descending = False
        self._rows = np.arange(len(self.store))
        self._position = np.arange(len(self.store))
        self.setSourceModel(source)
        source.dataChanged.connect(self._forward_changes)
        source.modelReset.connect(self.refresh)

    def refresh(self) -> None:
        scores = None
        if self.sort_key in self.extra_scores:
            scores = {self.sort_key: self.extra_scores[self.sort_key]}
        elif self.sort_key not in ("name", "size", "width", "height"):
            scores = {self.sort_key: self.store.scores(self.sort_key)}
        self.beginResetModel()
        self._rows = self.store.select(
            **self.filters,
            sort=self.sort_key,
            descending=self.descending,
            scores=scores,
            mask=self.mask,
        )
        self._position = np.full(len(self.store), -1, dtype=np.int64)
        self._position[self._rows] = np.arange(len(self._rows))
        self.endResetModel()

    def set_filters(self, **filters: Any) -> None:
        self.filters = {k: v for k, v in filters.items() if v is not None}
        self.refresh()

    def set_sort(self, key: str, descending: bool = False) -> None:
        self.sort_key, self.descending = key, descending
        self.refresh()

    def source_rows(self) -> np.ndarray:
        return self._rows

    def proxy_row(self, source_row: int) -> int:
        return int(self._position[source_row]) if 0 <= source_row < len(self._position) else -1

    def _forward_changes(
        self, top: QModelIndex, bottom: QModelIndex, roles: list[int] | None = None
    ) -> None:
        mapped = self._position[top.row() : bottom.row() + 1]
        mapped = mapped[mapped >= 0]
        if mapped.size:
            first, last = int(mapped.min()), int(mapped.max())
            self.dataChanged.emit(self.index(first, 0), self.index(last, 0), roles or [])

    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 1

    def index(self, row: int, column: int = 0, parent: _ModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if parent.isValid() or column != 0 or not 0 <= row < len(self._rows):
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, _index: _ModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        return QModelIndex()

    def mapToSource(self, proxy_index: _ModelIndex) -> QModelIndex:
        if not proxy_index.isValid() or proxy_index.row() >= len(self._rows):
            return QModelIndex()
        return self.sourceModel().index(int(self._rows[proxy_index.row()]), 0)

    def mapFromSource(self, source_index: _ModelIndex) -> QModelIndex:
        if not source_index.isValid():
            return QModelIndex()
        row = self.proxy_row(source_index.row())
        return QModelIndex() if row < 0 else self.createIndex(row, 0)


class ThumbnailDelegate(QStyledItemDelegate):
    """A cell: the thumbnail (or the problem), the label badge and the edit marks.

    It reads the cell straight from the models rather than through `QModelIndex.data()`:
    that is faster, and PySide6 6.12 on Python < 3.12 drops a reference to None each time
    `data()` hands back an empty value, which thousands of paints turn into a crash."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.side = 160
        self.proxy: SampleFilterModel | None = None
        self.scan_marks: list[str] | None = None  # per row: the scan's flag symbols

    def sizeHint(self, _option: QStyleOptionViewItem, _index: QModelIndex) -> QSize:
        return QSize(self.side + 8, self.side + 24)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        rect = option.rect.adjusted(2, 2, -2, -2)
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
        if self.proxy is None or not 0 <= index.row() < self.proxy.rowCount():
            painter.restore()
            return
        model: SampleModel = self.proxy.sourceModel()
        row = int(self.proxy.source_rows()[index.row()])
        excluded, edited, flagged, problem, notes = model.state(row)
        label = LABELS[model.store.label[row]]
        image_rect = QRect(rect.left() + 2, rect.top() + 2, rect.width() - 4, rect.height() - 22)
        image = model.provider.image(model.store.paths[row], model.thumb_size)
        if problem:
            painter.fillRect(image_rect, QColor(PROBLEM_COLOUR).lighter(170))
            painter.setPen(PROBLEM_COLOUR)
            painter.drawText(image_rect, Qt.AlignmentFlag.AlignCenter, f"⚠\n{problem}")
        elif isinstance(image, QImage) and not image.isNull():
            scaled = image.size().scaled(image_rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, scaled.width(), scaled.height())
            target.moveCenter(image_rect.center())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, image)
        else:
            painter.fillRect(image_rect, palette.color(QPalette.ColorRole.AlternateBase))
        if excluded:
            painter.fillRect(image_rect, QColor(255, 255, 255, 150))
            painter.setPen(QPen(PROBLEM_COLOUR, 3))
            painter.drawLine(image_rect.topLeft(), image_rect.bottomRight())
            painter.drawLine(image_rect.topRight(), image_rect.bottomLeft())
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.85))
        small.setBold(True)
        painter.setFont(small)
        if label is not None:
            badge = QRect(image_rect.left() + 3, image_rect.top() + 3, 34, 16)
            painter.fillRect(badge, CAT_COLOUR if label == "cat" else DOG_COLOUR)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label.upper())
        marks = ("✎" if edited else "") + ("⚑" if flagged else "")
        if marks:
            badge = QRect(image_rect.right() - 34, image_rect.top() + 3, 32, 16)
            painter.fillRect(badge, QColor(0, 0, 0, 160))
            painter.setPen(QColor("#ffd54f"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, marks)
        scan_mark = self.scan_marks[row] if self.scan_marks is not None else ""
        if scan_mark:
            width = 12 + 9 * len(scan_mark)
            badge = QRect(image_rect.right() - width - 1, image_rect.bottom() - 18, width, 16)
            painter.fillRect(badge, SCAN_COLOUR)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, scan_mark)
        if notes:
            badge = QRect(image_rect.left() + 3, image_rect.bottom() - 18, 16, 16)
            painter.fillRect(badge, QColor(0, 0, 0, 160))
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "i")
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(palette.color(role))
        painter.setFont(option.font)
        text_rect = QRect(rect.left(), rect.bottom() - 18, rect.width(), 18)
        name = painter.fontMetrics().elidedText(
            short_name(model.store.paths[row]), Qt.TextElideMode.ElideMiddle, rect.width()
        )
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter, name)
        painter.restore()


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted rows as (first, last) runs of consecutive numbers."""
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts = np.concatenate(([rows[0]], rows[breaks + 1]))
    stops = np.concatenate((rows[breaks], [rows[-1]]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))
