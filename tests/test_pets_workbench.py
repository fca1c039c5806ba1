"""The Pets workbench driven through the real window: open a folder with bad files, browse,
relabel from the keyboard, undo and redo, filter, find, measure, and find every edit again
after a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from core.jobs import CancelToken, drive
from core.pets.labelstore import open_store
from core.pets.sources import Source
from core.pets.thumbnails import DiskCache
from gui.pets.grid import SampleFilterModel, SampleModel, ThumbnailProvider
from tests.pets_data import make_pets


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_pets(tmp_path / "pets", cats=6, dogs=6, tests=4, bad=True)


def _open(window, qtbot, root: Path):
    with qtbot.waitSignal(window.workbenches["pets"].dataset_opened, timeout=20000):
        window.workbenches["pets"].open_dataset(str(root))
    browser = window.workbenches["pets"].browser
    browser.view.setFocus()
    qtbot.waitUntil(browser.view.hasFocus)
    return browser


def _key(qtbot, browser, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(browser.view, key, modifier)


def test_models_pass_the_model_tester(qtmodeltester, qapp, dataset: Path, tmp_path: Path):
    store, _listing = drive(open_store(dataset, CancelToken()), CancelToken())
    provider = ThumbnailProvider(store, Source(dataset), DiskCache(tmp_path / "c.sqlite"), None)
    model = SampleModel(store, provider, None)
    qtmodeltester.check(model)
    proxy = SampleFilterModel(model)
    qtmodeltester.check(proxy)
    proxy.set_filters(split="train", label="dog")
    qtmodeltester.check(proxy)
    assert proxy.rowCount() == len(store.select(split="train", label="dog"))
    provider.close()
    store.close()


def test_browse_relabel_undo_and_persist(make_window, qtbot, dataset: Path):
    window = make_window()
    browser = _open(window, qtbot, dataset)
    store = browser.store
    assert browser.proxy.rowCount() == len(store) == 24
    assert browser.current_row() == 0 and store.paths[0] == "train/cat.0.jpg"
    # thumbnails arrive off the UI thread and are painted
    qtbot.waitUntil(lambda: browser.provider.known("train/cat.0.jpg", browser.model.thumb_size))

    _key(qtbot, browser, Qt.Key.Key_D)  # cat.0 → dog, then on to cat.1
    assert store.effective_label(0) == "dog"
    assert browser.current_row() == 1
    _key(qtbot, browser, Qt.Key.Key_X)  # exclude cat.1, on to cat.2
    assert store.excluded[1] and browser.current_row() == 2
    qtbot.waitUntil(lambda: "1 excluded" in window.workbenches["pets"].counts_label.text())

    _key(qtbot, browser, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not store.excluded[1]
    assert browser.current_row() == 1  # undo shows what it changed
    _key(
        qtbot,
        browser,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert store.excluded[1]

    # multi-select and bulk relabel: one undoable step
    dogs = [store.row_for_path(f"train/dog.{i}.jpg") for i in range(3)]
    browser.select_rows(dogs)
    _key(qtbot, browser, Qt.Key.Key_C)
    assert [store.effective_label(r) for r in dogs] == ["cat"] * 3
    assert store.undo_text() == "Label as cat 3 images"
    # cat.0, cat.1 and the three dogs
    qtbot.waitUntil(lambda: "5 edited" in window.workbenches["pets"].counts_label.text())

    # filters and find
    browser.show_combo.setCurrentText("Excluded")
    assert browser.proxy.rowCount() == 1
    browser.show_combo.setCurrentText("Dogs")
    assert {store.paths[r] for r in browser.proxy.source_rows()} == {
        "train/cat.0.jpg",
        "train/dog.3.jpg",
        "train/dog.4.jpg",
        "train/dog.5.jpg",
        "train/dog.903.jpg",
        "train/dog.904.png",
        "train/dog.905.jpg",
    }
    browser.show_combo.setCurrentText("All images")
    browser.find.setText("3")
    found = []
    for _ in range(4):  # id 3 is a cat, a dog and a test image; find goes round
        qtbot.keyClick(browser.find, Qt.Key.Key_Return)
        found.append(store.paths[browser.current_row()])
    assert set(found[:3]) == {"train/cat.3.jpg", "train/dog.3.jpg", "test/3.jpg"}
    assert found[3] == found[0]
    browser.find.setText("dog.5")
    qtbot.keyClick(browser.find, Qt.Key.Key_Return)
    assert store.paths[browser.current_row()] == "train/dog.5.jpg"

    # a note from the inspector
    inspector = browser.inspector
    qtbot.keyClicks(inspector.note, "sitting on a cat")
    qtbot.keyClick(inspector.note, Qt.Key.Key_Return)
    assert store.note(store.row_for_path("train/dog.5.jpg")) == "sitting on a cat"
    qtbot.waitUntil(lambda: "Note on dog.5.jpg" in inspector.history.item(0).text())
    window.close()

    again = make_window()
    browser = _open(again, qtbot, dataset)
    store = browser.store
    assert store.effective_label(0) == "dog" and store.excluded[1]
    assert store.note(store.row_for_path("train/dog.5.jpg")) == "sitting on a cat"


def test_bad_files_get_badges_and_the_app_goes_on(make_window, qtbot, dataset: Path):
    window = make_window()
    browser = _open(window, qtbot, dataset)
    handle = window.workbenches["pets"].measure_images()
    with qtbot.waitSignal(handle.finished, timeout=60000):
        pass
    store = browser.store
    problems = {
        store.paths[r].split("/")[-1]: store.problem[r]
        for r in range(len(store))
        if store.problem[r]
    }
    assert problems == {
        "cat.900.jpg": "truncated",
        "cat.901.jpg": "empty",
        "cat.902.jpg": "not-an-image",
        "dog.903.jpg": "too-large",
    }
    notes = store.decode_notes[store.row_for_path("train/cat.907.jpg")]
    assert notes == "rotated by its EXIF orientation"
    qtbot.waitUntil(lambda: "4 unreadable" in window.workbenches["pets"].counts_label.text())
    browser.show_combo.setCurrentText("Unreadable")
    assert browser.proxy.rowCount() == 4
    browser.select_rows([store.row_for_path("train/dog.903.jpg")])
    assert "megapixel" in browser.inspector.notes_label.text()
    explore = window.workbenches["pets"].explore
    assert explore.stats is not None and explore.stats.unreadable == 4
    assert explore.stats.widths.size == 20 and explore.stats.missing == 0
    assert not explore.measure_button.isEnabled()


def test_zoom_changes_the_grid(make_window, qtbot, dataset: Path):
    window = make_window()
    browser = _open(window, qtbot, dataset)
    browser.zoom.setValue(80)
    # cells at least 92 px wide, as many columns as fit, the spare width shared
    cell = browser.view.gridSize().width()
    columns = (browser.view.viewport().width() - 2 * browser.view.spacing() - 1) // 92
    assert cell >= 92 and columns * cell <= browser.view.viewport().width()
    assert (columns + 1) * 92 > browser.view.viewport().width() - 2 * browser.view.spacing() - 1
    assert browser.view.gridSize().height() == 80 + 28
    assert browser.model.thumb_size == 96
    browser.zoom.setValue(250)
    assert browser.model.thumb_size == 256
    qtbot.waitUntil(lambda: browser.provider.known("train/cat.0.jpg", 256), timeout=10000)
    assert browser.provider.memory() > 0


def test_shortcuts_are_listed(make_window, qtbot):
    window = make_window()
    window.show_shortcuts()
    table = window.dialog.table
    names = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert names["Label as cat"] == "C" and names["Exclude or include"] == "X"
    assert np.any([k.startswith("Ctrl+Shift+Z") for k in names.values()])
    window.dialog.close()
    QApplication.processEvents()


def test_two_windows_on_one_dataset_share_edits_and_keep_their_own_undo(
    make_window, qtbot, dataset: Path
):
    first, second = make_window(), make_window()
    for window in (first, second):
        with qtbot.waitSignal(window.workbenches["pets"].dataset_opened, timeout=20000):
            window.workbenches["pets"].open_dataset(str(dataset))
    a, b = first.workbenches["pets"].browser, second.workbenches["pets"].browser

    def focus(window) -> None:
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)
        window.workbenches["pets"].browser.view.setFocus()
        qtbot.waitUntil(window.workbenches["pets"].browser.view.hasFocus)

    row = a.store.row_for_path("train/cat.3.jpg")
    focus(first)
    a.select_rows([row])
    _key(qtbot, a, Qt.Key.Key_D)  # window A: cat.3 → dog
    # window B shows it without being touched
    qtbot.waitUntil(lambda: b.store.effective_label(row) == "dog", timeout=5000)
    focus(second)
    b.select_rows([row])
    _key(qtbot, b, Qt.Key.Key_C)  # window B: back to cat, a real change
    assert b.store.effective_label(row) == "cat"
    qtbot.waitUntil(lambda: a.store.effective_label(row) == "cat", timeout=5000)
    # A's Ctrl+Z is A's step, which B has since overridden: B's cat stays
    focus(first)
    _key(qtbot, a, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert a.store.effective_label(row) == "cat" and not a.store.can_undo
    assert b.store.can_undo and b.store.undo_text().startswith("Label as cat")


def test_test_images_are_not_labelled_or_excluded(make_window, qtbot, dataset: Path):
    window = make_window()
    browser = _open(window, qtbot, dataset)
    store = browser.store
    test = store.row_for_path("test/1.jpg")
    messages = []
    browser.message.connect(messages.append)
    browser.select_rows([test])
    _key(qtbot, browser, Qt.Key.Key_D)
    _key(qtbot, browser, Qt.Key.Key_X)
    assert store.effective_label(test) is None and not store.excluded[test]
    assert not store.edited[test] and not store.can_undo
    assert "no label to change" in messages[-1]
    # a mixed selection changes the train image only, and says so
    cat = store.row_for_path("train/cat.0.jpg")
    browser.select_rows([cat, test])
    _key(qtbot, browser, Qt.Key.Key_D)
    assert store.effective_label(cat) == "dog" and store.effective_label(test) is None
    assert messages[-1].startswith("Label as dog") and "test image" in messages[-1]
    qtbot.waitUntil(lambda: "1 edited" in window.workbenches["pets"].counts_label.text())
