"""Hostile input through the real window: an image bomb opened, pasted and read in a folder;
zip bombs through the zip dialog; another dataset opened while a scan runs."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMessageBox

from core.formula import synth
from core.pets import sources
from tests.hostile_data import many_entries_zip, png_bomb, zip_bomb
from tests.outlier_data import gate_after_first_batch
from tests.pets_data import make_pets


@pytest.fixture
def formulas(make_window, qtbot):
    window = make_window()
    window.show_workbench("formulas")  # its model loads when it is first shown
    qtbot.waitUntil(lambda: window.workbenches["formulas"].recognizer is not None, timeout=30000)
    return window, window.workbenches["formulas"]


def test_an_image_bomb_is_refused_on_the_read_tab_by_paste_and_in_a_folder(
    formulas, qtbot, tmp_path: Path
):
    window, bench = formulas
    folder = tmp_path / "set"
    folder.mkdir()
    bomb = folder / "bomb.png"
    bomb.write_bytes(png_bomb())
    good = synth.render("7+3*0", random.Random(4), "captcha")
    cv2.imwrite(str(folder / "good.png"), cv2.cvtColor(good, cv2.COLOR_RGB2BGR))

    with qtbot.waitSignal(bench.problem) as opened:
        assert not bench.read.load_image(bomb)
    assert opened.args[0] == "Cannot open the image"
    assert "20,000 × 20,000 pixels" in opened.args[1]

    mime = QMimeData()
    mime.setData("image/png", png_bomb())
    QGuiApplication.clipboard().setMimeData(mime)
    with qtbot.waitSignal(bench.problem) as pasted:
        assert not bench.paste()
    assert pasted.args[0] == "Cannot read the pasted image"
    assert "20,000 × 20,000 pixels" in pasted.args[1]

    bench.open_folder(folder)
    qtbot.waitUntil(lambda: bench.folder.reading is not None, timeout=30000)
    qtbot.waitUntil(lambda: not window.runner.active(), timeout=30000)
    reading = bench.folder.reading
    names = [p.name for p in reading.paths]
    assert "20,000 × 20,000 pixels" in reading.failures[names.index("bomb.png")]
    assert reading.texts[names.index("good.png")] == "7+3*0"
    assert "1 could not be decoded" in bench.folder.summary.text()


def test_zip_bombs_through_the_zip_dialog(make_window, qtbot, tmp_path: Path, monkeypatch):
    window = make_window()
    bench = window.workbenches["pets"]
    monkeypatch.setattr(sources, "MAX_ENTRIES", 500)
    many = many_entries_zip(tmp_path / "many.zip", 501)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(many), "Zip"))
    with qtbot.waitSignal(bench.problem, timeout=20000) as refused:
        bench.open_zip_dialog()
    assert refused.args[0] == "Cannot open the dataset"
    assert "many.zip lists 501 entries" in refused.args[1]

    bomb = zip_bomb(tmp_path / "bomb.zip", inflated=40 << 20)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bomb), "Zip"))
    with qtbot.waitSignal(bench.dataset_opened, timeout=20000):
        bench.open_zip_dialog()
    handle = bench.measure_images()
    with qtbot.waitSignal(handle.finished, timeout=30000):
        pass
    store = bench.store
    row = store.row_for_path("train/cat.1.jpg")
    assert (
        store.problem[row] == "too-large"
        and not store.unreadable[store.row_for_path("train/cat.0.jpg")]
    )
    assert "would inflate" in store.facts(row).problem


def test_opening_another_dataset_during_a_scan(make_window, qtbot, tmp_path: Path, monkeypatch):
    """The user is asked; declining leaves the scan running, agreeing stops it, says so, and
    keeps what it scanned, which a later scan resumes from. No job writes to a closed store."""
    first = make_pets(tmp_path / "first", cats=8, dogs=8, tests=0)
    second = make_pets(tmp_path / "second", cats=3, dogs=3, tests=0)
    window = make_window()
    bench = window.workbenches["pets"]
    with qtbot.waitSignal(bench.dataset_opened, timeout=20000):
        bench.open_dataset(str(first))
    problems, messages = [], []
    bench.problem.connect(lambda *args: problems.append(args))
    bench.message.connect(lambda text, _ms: messages.append(text))
    gate = gate_after_first_batch(monkeypatch)
    panel = bench.scan
    panel.batch.setValue(4)
    handle = panel.start()
    store = panel.store
    qtbot.waitUntil(lambda: len(store.scans()) and store.scans()[0].images >= 4, timeout=60000)

    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No
    )
    assert bench.open_dataset(str(second)) is None
    assert "Scanning with EfficientNet-Lite0 is still working on first" in asked[0]
    assert panel.job is handle and not handle.token.cancelled

    outcome: list[str] = []  # the scan's end, heard even once the panel no longer follows it
    handle.failed.connect(lambda message, _details: outcome.append(f"failed: {message}"))
    handle.cancelled.connect(lambda: outcome.append("cancelled"))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(bench.dataset_opened, timeout=20000):
        assert bench.open_dataset(str(second)) is not None
    gate.set()  # the batch in flight now meets a closed store
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome == ["cancelled"]  # not a failure on a closed database
    assert bench.store is not store and store.closed
    assert not problems, problems
    assert any("Stopped Scanning with EfficientNet-Lite0 on first" in m for m in messages)
    assert panel.status.text() == "" and panel.job is None  # nothing of the old scan shows

    with qtbot.waitSignal(bench.dataset_opened, timeout=20000):
        bench.open_dataset(str(first))
    reopened = bench.store
    done = int(np.sum(reopened.scanned(reopened.scans()[0].model)))
    assert 4 <= done < 16  # what it finished is kept, and no more
    resumed = panel.start()
    with qtbot.waitSignal(resumed.finished, timeout=60000):
        pass
    assert "were scanned before" in panel.status.text()
    assert int(np.sum(reopened.scanned(reopened.scans()[0].model))) == 16
