"""Browsing an opened dataset: the filter bar, the thumbnail grid, the inspector, and the
keyboard-first relabelling (C cat, D dog, X exclude, F flag, undo and redo)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QScrollArea,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.jobs import JobError
from core.pets.labelstore import LabelStore, Step
from core.pets.runs import LOSS_SCORE
from core.pets.sources import Source
from core.pets.thumbnails import DiskCache
from gui.pets.grid import (
    SampleFilterModel,
    SampleModel,
    ThumbnailDelegate,
    ThumbnailProvider,
    short_name,
)
from gui.pets.inspector import Inspector
from gui.pets.scan_panel import FLAG_FILTERS, ScanView

#: (title, filters) of the "Show" choices.
SHOW_CHOICES = (
    ("All images", {}),
    ("Train", {"split": "train"}),
    ("Test", {"split": "test"}),
    ("Cats", {"split": "train", "label": "cat"}),
    ("Dogs", {"split": "train", "label": "dog"}),
    ("Edited", {"edited": True}),
    ("Excluded", {"excluded": True}),
    ("Flagged", {"flagged": True}),
    ("Unreadable", {"unreadable": True}),
    *((title, {"flag": key}) for key, title, _meaning in FLAG_FILTERS),
    ("Validation (latest run)", {"scored": LOSS_SCORE}),
)
SORT_CHOICES = (("Name", "name"), ("File size", "size"), ("Width", "width"), ("Height", "height"))
#: Sorts the scan adds: (title, key, descending by default).
SCAN_SORTS = (
    ("Not a pet (ImageNet)", "not_pet", True),
    ("Cat/dog disagreement", "disagreement", True),
    ("Label quality", "label_quality", False),
)
#: The sort that goes with each flag filter when it is chosen from the Scan panel.
FLAG_SORTS = {"outlier": "not_pet", "disagrees": "disagreement", "mislabelled": "label_quality"}


def _saving(edit: Callable[..., None]) -> Callable[..., None]:
    """An edit whose store write may fail (a full disk, a disk error): the user is told,
    and the grid keeps showing what is saved."""

    @functools.wraps(edit)
    def guarded(self: PetsBrowser, *args: object) -> None:
        try:
            edit(self, *args)
        except JobError as error:
            self.problem.emit("The change was not saved", error.message, error.details)

    return guarded


class PetsBrowser(QWidget):
    """The grid and the inspector over one label store."""

    counts_changed = Signal(str)
    message = Signal(str)
    problem = Signal(str, str, str)  # title, message, details: an edit that was not saved

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petsBrowser")
        self.store: LabelStore | None = None
        self.provider: ThumbnailProvider | None = None
        self.model: SampleModel | None = None
        self.proxy: SampleFilterModel | None = None
        self.scan_view: ScanView | None = None
        self._sort_keys: list[str] = []

        self.show_combo = QComboBox()
        self.show_combo.setObjectName("petsShow")
        for title, _filters in SHOW_CHOICES:
            self.show_combo.addItem(title)
        self.sort_combo = QComboBox()
        self.sort_combo.setObjectName("petsSort")
        # as wide as their titles when there is room, narrower when the window is small
        for combo in (self.show_combo, self.sort_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setMinimumWidth(88)
        self.descending = QCheckBox("Descending")
        self.find = QLineEdit()
        self.find.setObjectName("petsFind")
        self.find.setPlaceholderText("Find: 1234 or cat.1234")
        self.find.setMinimumWidth(80)
        self.find.setClearButtonEnabled(True)
        self.find.returnPressed.connect(self.find_next)
        self.zoom = QSlider(Qt.Orientation.Horizontal)
        self.zoom.setObjectName("petsZoom")
        self.zoom.setRange(64, 256)
        self.zoom.setValue(144)
        self.zoom.setMinimumWidth(60)
        self.zoom.setMaximumWidth(140)
        self.zoom.setToolTip("Thumbnail size")
        self.auto_advance = QAction("&Advance after labelling", self)
        self.auto_advance.setCheckable(True)
        self.auto_advance.setChecked(True)
        self.shown_label = QLabel()
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show:"))
        bar.addWidget(self.show_combo)
        bar.addWidget(QLabel("Sort:"))
        bar.addWidget(self.sort_combo)
        bar.addWidget(self.descending)
        bar.addWidget(self.find, 1)
        bar.addWidget(QLabel("Zoom:"))
        bar.addWidget(self.zoom)

        self.view = QListView()
        self.view.setObjectName("petsGrid")
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(2000)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setSpacing(2)
        self.delegate = ThumbnailDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.viewport().installEventFilter(self)
        self.inspector = Inspector()
        self.splitter = QSplitter()
        self.splitter.addWidget(self.view)
        scroller = QScrollArea()
        scroller.setWidget(self.inspector)
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QScrollArea.Shape.NoFrame)
        self.splitter.addWidget(scroller)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.shown_label)
        self._make_actions()
        self.show_combo.currentIndexChanged.connect(self._apply_filters)
        self.sort_combo.currentIndexChanged.connect(self._apply_filters)
        self.descending.toggled.connect(self._apply_filters)
        self.zoom.valueChanged.connect(self._set_zoom)
        self.inspector.note_edited.connect(self._set_note)
        self._scroll_timer = QTimer(self, singleShot=True, interval=60)
        self._scroll_timer.timeout.connect(self._prefetch)
        self.view.verticalScrollBar().valueChanged.connect(lambda _v: self._scroll_timer.start())

    # ---------------------------------------------------------------- actions
    def _make_actions(self) -> None:
        def action(text: str, keys: list[str], slot: object, tip: str) -> QAction:
            act = QAction(text, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.setStatusTip(tip)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.cat_action = action(
            "Label as &cat", ["C"], lambda: self.label_selected("cat"), "Label the selection cat"
        )
        self.dog_action = action(
            "Label as &dog", ["D"], lambda: self.label_selected("dog"), "Label the selection dog"
        )
        self.exclude_action = action(
            "E&xclude or include",
            ["X"],
            self.toggle_excluded,
            "Exclude the selection from training, or include it again",
        )
        self.flag_action = action(
            "&Flag for review", ["F"], self.toggle_flagged, "Flag or unflag the selection"
        )
        self.undo_action = action("&Undo", ["Ctrl+Z"], self.undo, "Undo the last edit")
        self.redo_action = action(
            "&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], self.redo, "Redo the edit undone last"
        )
        self.find_action = action(
            "&Find by id…", ["Ctrl+F"], self.focus_find, "Find an image by its number"
        )
        self.exclude_shown_action = action(
            "Exclude all &shown",
            ["Ctrl+Shift+X"],
            self.exclude_shown,
            "Exclude every image the grid shows now, as one step that Undo reverses",
        )
        self.auto_advance.setStatusTip("After C, D or X on one image, select the next one")
        self.edit_actions = [
            self.cat_action,
            self.dog_action,
            self.exclude_action,
            self.flag_action,
            self.undo_action,
            self.redo_action,
            self.exclude_shown_action,
            self.find_action,
        ]
        for act in self.edit_actions:
            act.setEnabled(False)

    # ---------------------------------------------------------------- a dataset
    def attach(self, store: LabelStore, cache: DiskCache | None) -> None:
        """Show `store` (closing whatever was shown before)."""
        self.detach()
        self.store = store
        self.provider = ThumbnailProvider(store, Source(store.root), cache, self)
        self.model = SampleModel(store, self.provider, self)
        self.proxy = SampleFilterModel(self.model, self)
        self._fill_sorts()
        self.delegate.proxy = self.proxy
        self.view.setModel(self.proxy)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.inspector.attach(store, self.provider)
        store.subscribe(self._store_changed_any_thread)
        self._set_zoom(self.zoom.value())
        self._apply_filters()
        for act in self.edit_actions:
            act.setEnabled(True)
        self._update_counts()

    def _fill_sorts(self) -> None:
        """The sort choices: the file's facts, then what a scan adds, then stored scores."""
        current = self.proxy.sort_key if self.proxy is not None else "name"
        choices = list(SORT_CHOICES)
        if self.scan_view is not None:
            choices += [(title, key) for title, key, _desc in SCAN_SORTS]
        known = {key for _title, key in choices}
        if self.store is not None:
            choices += [
                (name.replace("_", " ").capitalize(), name)
                for name in self.store.score_names()
                if name not in known
            ]
        if self.scan_view is None:  # stored scores whose scan is not shown keep working
            choices = [c for c in choices if c[1] not in ("not_pet", "disagreement")]
        self.sort_combo.blockSignals(True)
        self.sort_combo.clear()
        self._sort_keys = [key for _title, key in choices]
        for title, _key in choices:
            self.sort_combo.addItem(title)
        if current in self._sort_keys:
            self.sort_combo.setCurrentIndex(self._sort_keys.index(current))
        self.sort_combo.blockSignals(False)

    def set_scan_view(self, view: ScanView | None) -> None:
        """New flags (a scan finished, N changed, a label changed): counts in the Show
        menu, the scan's sorts, and the grid re-filtered when it shows a flag."""
        self.scan_view = view
        counts = view.counts() if view is not None else {}
        for index, (title, filters) in enumerate(SHOW_CHOICES):
            key = filters.get("flag")
            if key is not None:
                text = f"{title} ({counts[key]:,})" if key in counts else title
                self.show_combo.setItemText(index, text)
        self._fill_sorts()
        self.inspector.set_scan_view(view)
        self.delegate.scan_marks = view.symbols() if view is not None else None
        self.view.viewport().update()
        if self.proxy is None:
            return
        self.proxy.extra_scores = view.sort_scores() if view is not None else {}
        showing_flag = "flag" in SHOW_CHOICES[self.show_combo.currentIndex()][1]
        if showing_flag or self.proxy.sort_key in ("not_pet", "disagreement", "label_quality"):
            self._apply_filters()

    def show_flag(self, key: str) -> None:
        """Show the images a flag marks, the most telling first."""
        index = next(i for i, (_t, f) in enumerate(SHOW_CHOICES) if f.get("flag") == key)
        self.show_combo.blockSignals(True)
        self.show_combo.setCurrentIndex(index)
        self.show_combo.blockSignals(False)
        sort = FLAG_SORTS.get(key)
        if sort in self._sort_keys:
            self.sort_combo.blockSignals(True)
            self.sort_combo.setCurrentIndex(self._sort_keys.index(sort))
            self.sort_combo.blockSignals(False)
            descending = next(d for _t, k, d in SCAN_SORTS if k == sort)
            self.descending.blockSignals(True)
            self.descending.setChecked(descending)
            self.descending.blockSignals(False)
        self._apply_filters()
        if self.proxy is not None and self.proxy.rowCount():
            self.select_rows([int(self.proxy.source_rows()[0])])
        self.view.setFocus()

    def show_sorted(self, score: str, descending: bool) -> None:
        """Show the images that have `score`, sorted by it (e.g. the validation loss)."""
        self._fill_sorts()
        if score not in self._sort_keys or self.proxy is None:
            return
        shown = next(
            (i for i, (_t, f) in enumerate(SHOW_CHOICES) if f.get("scored") == score), 1
        )  # the images scored, else Train
        self.show_combo.blockSignals(True)
        self.show_combo.setCurrentIndex(shown)
        self.show_combo.blockSignals(False)
        self.sort_combo.blockSignals(True)
        self.sort_combo.setCurrentIndex(self._sort_keys.index(score))
        self.sort_combo.blockSignals(False)
        self.descending.blockSignals(True)
        self.descending.setChecked(descending)
        self.descending.blockSignals(False)
        self._apply_filters()
        if self.proxy.rowCount():
            self.select_rows([int(self.proxy.source_rows()[0])])
        self.view.setFocus()

    def detach(self) -> None:
        if self.store is None:
            return
        self.store.unsubscribe(self._store_changed_any_thread)
        if self.model is not None:
            self.model.detach()
        if self.provider is not None:
            self.provider.close()
        self.delegate.proxy = None
        self.view.setModel(None)
        self.inspector.show_row(None)
        self.store = self.provider = self.model = self.proxy = None

    def _store_changed_any_thread(self, _rows: object) -> None:
        QTimer.singleShot(0, self, self._after_change)

    def _after_change(self) -> None:
        self._update_counts()
        self.inspector.refresh()
        if self.store is not None:
            self.undo_action.setText(f"&Undo {self.store.undo_text() or ''}".strip())
            self.redo_action.setText(f"&Redo {self.store.redo_text() or ''}".strip())

    def _update_counts(self) -> None:
        if self.store is None:
            return
        c = self.store.counts()
        text = (
            f"{c['cats']:,} cats · {c['dogs']:,} dogs · {c['test']:,} test · "
            f"{c['excluded']:,} excluded · {c['edited']:,} edited · "
            f"{c['unreadable']:,} unreadable"
        )
        self.counts_changed.emit(text)
        if self.proxy is not None:
            self.shown_label.setText(f"Showing {self.proxy.rowCount():,} of {len(self.store):,}")

    # ---------------------------------------------------------------- view state
    def _apply_filters(self) -> None:
        if self.proxy is None:
            return
        current = self.current_row()
        filters = dict(SHOW_CHOICES[self.show_combo.currentIndex()][1])
        flag = filters.pop("flag", None)
        scored = filters.pop("scored", None)
        self.proxy.filters = filters
        if scored is not None:  # the images a score was given to, e.g. a run's validation
            self.proxy.mask = ~np.isnan(self.store.scores(scored))
        elif flag is None:
            self.proxy.mask = None
        elif self.scan_view is not None:
            self.proxy.mask = self.scan_view.mask(flag)
        else:
            self.proxy.mask = np.zeros(len(self.store), dtype=bool)
        index = self.sort_combo.currentIndex()
        self.proxy.sort_key = (
            self._sort_keys[index] if 0 <= index < len(self._sort_keys) else "name"
        )
        self.proxy.descending = self.descending.isChecked()
        self.proxy.refresh()
        self._update_counts()
        if current is not None and self.proxy.proxy_row(current) >= 0:
            self.select_rows([current])
        elif self.proxy.rowCount():
            self.select_rows([int(self.proxy.source_rows()[0])])
        else:
            self.inspector.show_row(None)

    def _set_zoom(self, side: int) -> None:
        self.delegate.side = side
        if self.model is not None:
            self.model.set_thumb_size(side)
        self._fit_grid()

    def _fit_grid(self) -> None:
        """Cells as wide as the columns that fit, sharing the spare width: no empty band
        on the right of the grid at any window width."""
        side = self.delegate.side
        base = side + 12
        width = self.view.viewport().width() - 2 * self.view.spacing() - 1
        columns = max(1, width // base)
        self.view.setGridSize(QSize(max(base, width // columns), side + 28))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_grid()
        return super().eventFilter(watched, event)

    def _prefetch(self) -> None:
        """After scrolling stops: drop requests for what scrolled away; the visible cells
        request theirs as they paint."""
        if self.provider is not None:
            self.provider.loader.drop_pending()
            self.view.viewport().update()

    # ---------------------------------------------------------------- selection
    def current_row(self) -> int | None:
        if self.proxy is None:
            return None
        index = self.view.currentIndex()
        return int(self.proxy.source_rows()[index.row()]) if index.isValid() else None

    def selected_rows(self) -> list[int]:
        if self.proxy is None:
            return []
        rows = self.proxy.source_rows()
        chosen = sorted(int(rows[i.row()]) for i in self.view.selectionModel().selectedIndexes())
        if not chosen and self.current_row() is not None:
            chosen = [self.current_row()]
        return chosen

    def select_rows(self, rows: list[int]) -> None:
        """Select these store rows (those shown) and make the first current."""
        if self.proxy is None:
            return
        selection = self.view.selectionModel()
        selection.clearSelection()
        first = None
        for row in rows:
            proxy_row = self.proxy.proxy_row(row)
            if proxy_row < 0:
                continue
            index = self.proxy.index(proxy_row, 0)
            if first is None:
                first = index
                selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            else:
                selection.select(index, QItemSelectionModel.SelectionFlag.Select)
        if first is not None:
            self.view.scrollTo(first)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.inspector.show_row(self.current_row() if current.isValid() else None)

    # ---------------------------------------------------------------- edits
    def _say(self, step: Step | None, rows: list[int], unchanged: str = "") -> None:
        """The status line after an edit of `rows`: what changed, and why the test images
        among them were left alone (`unchanged` when nothing changed and no test image
        explains it)."""
        done = step.description if step else ""
        tests = sum(1 for r in rows if self.store.split[r] == 1)
        if tests:
            what = "The test image has" if tests == 1 else f"The {tests:,} test images have"
            note = (
                f"{what} no label to change or exclusion to make: the submission predicts "
                "every test image."
            )
            done = f"{done}. {note}" if done else note
        if done or unchanged:
            self.message.emit(done or unchanged)

    @_saving
    def label_selected(self, label: str) -> None:
        rows = self.selected_rows()
        if self.store is None or not rows:
            return
        step = self.store.set_label(rows, label)
        self._say(step, rows, f"Already labelled {label}")
        if len(rows) == 1 and self.auto_advance.isChecked():
            self._advance()

    @_saving
    def toggle_excluded(self) -> None:
        rows = self.selected_rows()
        if self.store is not None and rows:
            self._say(self.store.toggle_excluded(rows), rows)
            if len(rows) == 1 and self.auto_advance.isChecked():
                self._advance()

    @_saving
    def toggle_flagged(self) -> None:
        rows = self.selected_rows()
        if self.store is not None and rows:
            step = self.store.set_flagged(rows, not all(self.store.flagged[r] for r in rows))
            if step:
                self.message.emit(step.description)

    @_saving
    def exclude_shown(self) -> None:
        """Exclude every image shown (one undoable step)."""
        if self.store is None or self.proxy is None or not self.proxy.rowCount():
            return
        shown = [int(r) for r in self.proxy.source_rows()]
        rows = [r for r in shown if self.store.split[r] == 0 and not self.store.excluded[r]]
        title = SHOW_CHOICES[self.show_combo.currentIndex()][0]
        step = self.store.set_excluded(rows, True, f"Exclude {len(rows):,} shown ({title.lower()})")
        tests = len(shown) - sum(1 for r in shown if self.store.split[r] == 0)
        left = f" ({tests:,} test images shown are always predicted: left alone)" if tests else ""
        if step:
            self.message.emit(step.description + left)
        else:
            self.message.emit("No training image shown is left to exclude" + left)

    @_saving
    def _set_note(self, row: int, note: str) -> None:
        if self.store is not None:
            self.store.set_note(row, note)

    @_saving
    def undo(self) -> None:
        if self.store is not None:
            step = self.store.undo()
            self.message.emit(f"Undid: {step.description}" if step else "Nothing to undo")
            self._show_step_rows(step)

    @_saving
    def redo(self) -> None:
        if self.store is not None:
            step = self.store.redo()
            self.message.emit(f"Redid: {step.description}" if step else "Nothing to redo")
            self._show_step_rows(step)

    def _show_step_rows(self, step: Step | None) -> None:
        """After undo or redo, the edited image is selected, so the user sees what changed."""
        if step is None or self.store is None:
            return
        rows = self.store.step_rows(step.id)
        if rows:
            self.select_rows(rows)

    def _advance(self) -> None:
        index = self.view.currentIndex()
        if self.proxy is not None and index.isValid() and index.row() + 1 < self.proxy.rowCount():
            self.select_rows([int(self.proxy.source_rows()[index.row() + 1])])

    def focus_find(self) -> None:
        self.find.setFocus()
        self.find.selectAll()

    def find_next(self) -> None:
        """Select the next shown image whose file name matches the text (its number, or a
        name such as cat.12)."""
        text = self.find.text().strip().lower()
        if self.proxy is None or self.store is None or not text:
            return
        rows = self.proxy.source_rows()
        start = self.view.currentIndex().row() + 1 if self.view.currentIndex().isValid() else 0
        order = list(range(start, len(rows))) + list(range(start))
        for proxy_row in order:
            name = short_name(self.store.paths[int(rows[proxy_row])]).lower()
            stem = name.rsplit(".", 1)[0]
            if text in (stem, name) or stem.endswith("." + text) or stem == text:
                self.select_rows([int(rows[proxy_row])])
                self.view.setFocus()
                self.message.emit(f"Found {name}")  # replaces an earlier 'No image named'
                return
        self.message.emit(f"No image named {self.find.text()} is shown")
