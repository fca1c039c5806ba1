"""The Train panel driven through the real window: train from scratch with live curves,
cancel a run, compare runs in the table, export a checked submission."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from tests.pets_data import make_pets


def _open(window, qtbot, root: Path):
    with qtbot.waitSignal(window.workbenches["pets"].dataset_opened, timeout=20000):
        window.workbenches["pets"].open_dataset(str(root))
    window.workbenches["pets"].tabs.setCurrentWidget(window.workbenches["pets"].train_page)
    return window.workbenches["pets"].train


def test_train_compare_and_export(make_window, qtbot, tmp_path: Path, monkeypatch):
    root = make_pets(tmp_path / "pets", cats=10, dogs=10, tests=3)
    window = make_window()
    panel = _open(window, qtbot, root)
    assert panel.table.rowCount() == 0 and not panel.export_button.isEnabled()

    # a classic baseline: only its own settings are shown
    panel.mode.setCurrentIndex(panel.mode.findData("classic"))
    assert panel._form.isRowVisible(panel.classic_model)
    assert not panel._form.isRowVisible(panel.epochs)
    assert not panel.loss_plot.isVisibleTo(panel)  # no steps, no curves to draw
    assert panel.reliability_plot.isVisibleTo(panel)
    panel.classic_model.setCurrentIndex(panel.classic_model.findData("forest"))
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert panel.table.rowCount() == 1 and "classic (forest)" in panel.table.item(0, 1).text()

    # from scratch, with live curves; first a look at what augmentation does
    panel.mode.setCurrentIndex(panel.mode.findData("scratch"))
    assert panel._form.isRowVisible(panel.epochs)
    assert panel.loss_plot.isVisibleTo(panel) and panel.accuracy_plot.isVisibleTo(panel)
    panel.image_size.setValue(48)
    qtbot.mouseClick(panel.preview_button, Qt.MouseButton.LeftButton)
    preview = panel.preview.pixmap()
    assert (preview.width(), preview.height()) == (4 * 48, 4 * 48)  # 4 images × 4 crops
    panel.epochs.setValue(2)
    panel.image_size.setValue(48)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert "validation log loss" in panel.status.text(), panel.status.text()
    assert len(panel._curves["loss"][0]) > 0 and len(panel._curves["val_loss"][0]) == 2
    assert panel.table.rowCount() == 2 and "scratch" in panel.table.item(0, 1).text()
    assert panel.selected_run().mode == "scratch"
    assert "would place" in panel.detail.text() or "of 1,316" in panel.table.item(0, 6).text()

    # the worst validation losses lead to the grid, where C, D and X fix them
    store = panel.store
    losses = store.scores("validation_loss")
    assert np.sum(~np.isnan(losses)) == 4  # the latest run's validation split only
    qtbot.mouseClick(panel.worst_button, Qt.MouseButton.LeftButton)
    browser = window.workbenches["pets"].browser
    assert window.workbenches["pets"].tabs.currentWidget() is browser
    assert browser.sort_combo.currentText() == "Validation loss"
    assert browser.current_row() == int(np.nanargmax(losses))
    assert browser.show_combo.currentText() == "Validation (latest run)"
    assert browser.proxy.rowCount() == 4  # the run's validation images, not every image
    assert "Latest run" in browser.inspector.predictions.text()
    assert "validation log loss" in browser.inspector.predictions.text()
    window.workbenches["pets"].tabs.setCurrentWidget(window.workbenches["pets"].train_page)

    # a run cancelled after an epoch keeps its checkpoint; Resume finishes it
    panel.epochs.setValue(4)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(panel._curves["val_loss"][0]) >= 1, timeout=30000)
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=30000)
    assert panel.table.rowCount() == 2
    if "Resume goes on" in panel.status.text():  # else the run had finished before Cancel
        assert panel.resume_button.isEnabled()
        qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
        assert "validation log loss" in panel.status.text(), panel.status.text()
    assert panel.table.rowCount() == 3 and not panel.resume_button.isEnabled()

    # did cleaning help? two runs on the same split, with and without the flagged images
    store.set_flagged([0, 1], True)
    panel.mode.setCurrentIndex(panel.mode.findData("classic"))
    panel.compare.setChecked(True)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert panel.status.text().startswith("Cleaning "), panel.status.text()
    assert panel.table.rowCount() == 5

    # features mode reads the embeddings of the scans ticked in the list
    from core.jobs import CancelToken, drive
    from core.pets.features import FeatureCache, features_location
    from core.pets.outliers import scan
    from tests.outlier_data import CODES, logits_for, stand_in

    cache = FeatureCache(features_location(store.root))
    table = {code: logits_for({281 if code < 128 else 207: 8.0}) for code in CODES}
    drive(scan(store, stand_in(table), CancelToken(), features=cache), CancelToken())
    cache.close()
    panel.compare.setChecked(False)
    panel.mode.setCurrentIndex(panel.mode.findData("features"))
    panel.refresh_scans()
    assert panel._form.isRowVisible(panel.scans) and panel.chosen_scans() == ["stand-in"]
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert panel.table.item(0, 1).text() == "features (stand-in, 5-fold)"

    # export the selected run's submission
    target = tmp_path / "submission.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV"))
    qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    rows = list(csv.DictReader(target.open()))
    assert [int(r["id"]) for r in rows] == [1, 2, 3]
    panel.grab().save(str(tmp_path / "train.png"))
