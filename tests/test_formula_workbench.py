"""The Formulas workbench reads images with a recogniser loaded off the UI thread."""

import random
from pathlib import Path

import cv2
import pytest
import torch

from core.formula import synth
from core.formula.crnn import CRNN
from core.formula.model_config import CRNNConfig
from core.formula.recognizer import SHIPPED_MODEL
from core.formula.train_config import TrainConfig
from core.formula.training import save_model


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = CRNNConfig(channels=(4, 8, 8, 8, 8), hidden=8, layers=1)
    train_config = TrainConfig(steps=4, model=config)
    return save_model(tmp_path / "tiny.pt", CRNN(config), train_config, 0, {})


def _image(tmp_path: Path, text: str = "(4*8)+8") -> Path:
    path = tmp_path / "formula.png"
    image = synth.render(text, random.Random(1), "captcha")
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_an_opened_image_is_read_and_shown(make_window, qtbot, tmp_path, tiny_model):
    window = make_window()
    workbench = window.workbenches["formulas"]
    handle = workbench.load_model(tiny_model)  # while the shipped model may still load
    qtbot.waitUntil(lambda: not window.runner.active(), timeout=20000)
    assert workbench.recognizer is not None and workbench.recognizer.path == tiny_model
    with qtbot.waitSignal(workbench.read.recognized, timeout=20000) as read:
        assert workbench.load_image(_image(tmp_path))
    result = workbench.read.last_recognition
    assert read.args == [result.text]
    assert result.log_probs.shape == (48, 17)  # 180×60 is read at 96×32: T = 96 / 2
    panel = workbench.read.readings
    assert panel.table.rowCount() == len(result.beams) > 0
    assert panel.table.item(0, 0).text() == (result.beams[0].text or "∅")
    assert "Greedy reading by tiny.pt" in panel.status.text()
    assert handle is not None


def test_a_bad_model_file_is_explained_and_the_app_goes_on(make_window, qtbot, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    window = make_window()
    window.workbenches["formulas"].load_model(bad)
    qtbot.waitUntil(lambda: not window.runner.active(), timeout=20000)
    assert window.workbenches["formulas"].recognizer is None
    assert (
        "No recognition model is loaded"
        in window.workbenches["formulas"].read.readings.status.text()
    )
    assert "damaged or incomplete" in window.workbenches["formulas"].read.readings.status.text()
    assert window.workbenches["formulas"].load_image(_image(tmp_path))  # still shows the image


@pytest.mark.skipif(not SHIPPED_MODEL.exists(), reason="no shipped model")
def test_the_shipped_model_reads_in_the_app(make_window, qtbot, tmp_path):
    window = make_window()
    window.show_workbench("formulas")  # its model loads when it is first shown
    qtbot.waitUntil(lambda: window.workbenches["formulas"].recognizer is not None, timeout=30000)
    with qtbot.waitSignal(window.workbenches["formulas"].read.recognized, timeout=20000) as read:
        window.workbenches["formulas"].load_image(_image(tmp_path, "6*(3+7)"))
    assert read.args == ["6*(3+7)"]
    assert "= <b>60</b>" in window.workbenches["formulas"].read.readings.verdict.text()
