"""The Scan panel driven through the real window: import a weights file through Import
weights file…, scan, cancel and resume, change N, jump to the flagged images, see the top
classes in the inspector, exclude all shown as one undoable step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from core.pets.outliers import FlagSettings, compute_flags
from tests.outlier_data import gate_after_first_batch, random_weights
from tests.pets_data import make_pets


def _open(window, qtbot, root: Path):
    with qtbot.waitSignal(window.workbenches["pets"].dataset_opened, timeout=20000):
        window.workbenches["pets"].open_dataset(str(root))
    return window.workbenches["pets"].scan


def test_scan_flags_and_review(make_window, qtbot, tmp_path: Path, monkeypatch):
    root = make_pets(tmp_path / "pets", cats=10, dogs=10, tests=4)
    window = make_window()
    panel = _open(window, qtbot, root)
    window.workbenches["pets"].tabs.setCurrentWidget(window.workbenches["pets"].scan_page)
    panel.backbone.setCurrentIndex(panel.backbone.findData("mobilenet_v3_small"))
    assert "will be downloaded" in panel.weights_label.text()
    assert not panel.show_buttons["outlier"].isEnabled()

    weights = random_weights(tmp_path / "w", seed=3)
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda *a, **k: (str(weights), "PyTorch weights")
    )
    qtbot.mouseClick(panel.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: weights.name in panel.weights_label.text(), timeout=20000)
    assert "not the file torchvision publishes" in panel.weights_label.text()

    # start, cancel after the first batch, then resume; the model waits after its first
    # batch until the test has pressed Cancel, so the cancel lands mid-scan every time
    gate = gate_after_first_batch(monkeypatch)
    panel.batch.setValue(4)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    store = panel.store
    qtbot.waitUntil(lambda: len(store.scans()) and store.scans()[0].images >= 4, timeout=30000)
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    gate.set()
    qtbot.waitUntil(lambda: panel.job is None, timeout=30000)
    scanned = int(store.scanned(store.scans()[0].model).sum())
    assert "Start resumes" in panel.status.text()
    assert 4 <= scanned < 24
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=60000)
    assert "Scanned" in panel.status.text(), panel.status.text()
    model = store.scans()[0].model
    assert store.scanned(model).sum() == 24
    assert panel.model_combo.currentData() == model

    # the counts are the flags of the stored table, and follow N live
    table = store.scan_table(model)
    for n in (1, 10):
        panel.top_n.setValue(n)
        expected = compute_flags(table, store.label, store.split, FlagSettings(n)).counts()
        assert panel.count_labels["outlier"].text() == f"{expected['outlier']:,}"
    panel.top_n.setValue(1)
    outliers = int(panel.count_labels["outlier"].text())
    assert outliers > 0  # random weights rarely put a pet class first

    # Show → the grid shows exactly the outliers; the inspector shows the top classes
    qtbot.mouseClick(panel.show_buttons["outlier"], Qt.MouseButton.LeftButton)
    browser = window.workbenches["pets"].browser
    assert window.workbenches["pets"].tabs.currentWidget() is browser
    assert browser.proxy.rowCount() == outliers
    assert browser.show_combo.currentText() == f"Outliers ({outliers})"
    shown = browser.proxy.source_rows()
    assert np.all(browser.scan_view.flags.outlier[shown])
    assert browser.sort_combo.currentText() == "Not a pet (ImageNet)"
    not_pet = browser.scan_view.flags.not_pet[shown]
    assert np.all(np.diff(not_pet) <= 1e-9)  # most un-pet-like first
    text = browser.inspector.predictions.text()
    assert "ImageNet top 1" in text and "Flagged: Outliers" in text
    marks = browser.delegate.scan_marks
    assert all("?" in marks[r] for r in shown)
    assert all("?" not in marks[r] for r in set(range(24)) - set(shown.tolist()))
    window.grab().save(str(tmp_path / "outliers.png"))

    # Exclude all shown: one step, undone by one Ctrl+Z
    browser.view.setFocus()
    qtbot.waitUntil(browser.view.hasFocus)
    qtbot.keyClick(
        browser.view,
        Qt.Key.Key_X,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    train_outliers = int(np.sum(store.split[shown] == 0))  # test images are always predicted
    assert int(store.excluded.sum()) == train_outliers
    assert store.undo_text() == f"Exclude {train_outliers} shown (outliers)"
    qtbot.keyClick(browser.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert int(store.excluded.sum()) == 0

    # the label issues were ranked and are a filter and a sort
    assert "label_quality" in browser._sort_keys
    issues = int(np.nansum(store.scores("label_issue") == 1))
    assert panel.count_labels["mislabelled"].text() == f"{issues:,}"

    window.workbenches["pets"].tabs.setCurrentWidget(window.workbenches["pets"].scan_page)
    panel.grab().save(str(tmp_path / "scan.png"))


def test_the_scan_tab_offers_the_installed_weights(make_window, qtbot, tmp_path: Path):
    from core.pets import backbones

    window = make_window()
    panel = _open(window, qtbot, make_pets(tmp_path / "pets", cats=2, dogs=2, tests=0))
    window.workbenches["pets"].tabs.setCurrentWidget(window.workbenches["pets"].scan_page)
    b = backbones.backbone(backbones.CPU_DEFAULT)
    if backbones.installed_file(b) is None:
        pytest.skip(f"{b.distribution} is not installed")
    assert panel.backbone.currentData() == backbones.CPU_DEFAULT
    text = panel.weights_label.text()
    assert "installed with Labelscope" in text and "Apache-2.0" in text
    assert "downloaded" not in text


def test_a_real_scan_flags_the_known_outliers_offline(make_window, qtbot, tmp_path: Path):
    from tests.conftest import shared_data

    data = shared_data("dogs_vs_cats")
    root = tmp_path / "real" / "train"
    root.mkdir(parents=True)
    normal = [f"{kind}.{i}.jpg" for kind in ("cat", "dog") for i in range(8)]
    for name in normal:
        (root / name).symlink_to((data / "train" / name).resolve())
    outliers = sorted(p.name for p in (data / "outliers").glob("*.jpg"))
    for name in outliers:
        (root / name).symlink_to((data / "outliers" / name).resolve())
    window = make_window()
    panel = _open(window, qtbot, root.parent)
    window.workbenches["pets"].tabs.setCurrentWidget(window.workbenches["pets"].scan_page)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=120000)
    assert "Scanned 20 images" in panel.status.text(), panel.status.text()
    flags = panel.view.flags
    store = panel.store
    flagged = flags.outlier | flags.both | flags.disagrees | (store.scores("label_issue") == 1)
    for name in outliers:  # every full-size known outlier is flagged at the defaults
        assert flagged[store.row_for_path(f"train/{name}")], name
    qtbot.mouseClick(panel.show_buttons["outlier"], Qt.MouseButton.LeftButton)
    browser = window.workbenches["pets"].browser
    shown = {store.paths[r].rsplit("/", 1)[-1] for r in browser.proxy.source_rows()}
    assert set(outliers) <= shown
    assert len(shown - set(outliers)) <= 1  # few real photos among them
    browser.select_rows([store.row_for_path("train/dog.4367.jpg")])
    assert "ImageNet top" in browser.inspector.predictions.text()
