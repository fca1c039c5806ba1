"""Renders the Formulas screenshots of the README (offscreen, with the shipped model):

    python docs/images/formula_screenshots.py

formulas.png: a formula drawn with the mouse, read, a time step hovered, the alignment of
the top reading; formulas-dataset.png: the Dataset tab on a generated set;
formulas-train.png: the Train tab after a short run and an evaluation.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtCore import QEvent, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

HERE = Path(__file__).resolve().parent


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="labelscope-shots-"))
    os.environ["LABELSCOPE_DATA_DIR"] = str(scratch / "data")
    app = QApplication([])
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(scratch))
    from core.formula import synth
    from core.formula.generate import GenerateConfig, generate
    from core.jobs import CancelToken, drive
    from gui.app import configure_identity
    from gui.main_window import MainWindow

    configure_identity()

    def wait(condition, seconds: float = 120.0) -> None:
        end = time.monotonic() + seconds
        while not condition() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.002)

    def settle() -> None:  # layouts that grew with the readings take a few passes
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            app.processEvents()

    window = MainWindow(save_settings=False)
    window.resize(1400, 1180)
    window.show()
    bench = window.workbenches["formulas"]
    wait(lambda: bench.recognizer is not None)
    window.workbenches["formulas"].show_drawing()
    settle()
    canvas = bench.read.canvas
    strokes, pen, line = synth.stroke_layout("6*(3+7)=60", random.Random(3), 100.0)
    scale = min(0.6 * canvas.height() / 100.0, (canvas.width() - 20) / line)
    canvas.set_pen_width(pen * scale)
    top = (canvas.height() - 100 * scale) / 2
    for stroke in strokes:
        canvas.add_stroke([(10 + x * scale, top + y * scale) for x, y in stroke.tolist()])
        wait(lambda: not window.runner.active())
    app.processEvents()
    wait(lambda: not window.runner.active())
    step = bench.read.alignment.spans[4][0] if bench.read.alignment else 20
    x0, x1 = bench.read.posterior.column(step)
    point = QPointF((x0 + x1) / 2, 120)
    move = QMouseEvent(
        QEvent.Type.MouseMove,
        point,
        bench.read.posterior.mapToGlobal(point),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    settle()
    QApplication.sendEvent(bench.read.posterior, move)
    app.processEvents()
    window.grab().save(str(HERE / "formulas.png"))

    data = scratch / "set"
    config = GenerateConfig(count=200, style="mixed", form="mixed", seed=7)
    drive(generate(data, config, CancelToken()), CancelToken())
    bench.open_dataset(data)
    wait(lambda: not window.runner.active() and bench.dataset.survey is not None)
    app.processEvents()
    window.resize(1400, 900)
    settle()
    window.grab().save(str(HERE / "formulas-dataset.png"))

    panel = bench.train
    bench.show_page("train")
    panel.steps.setValue(60)
    panel.batch.setValue(16)
    panel.workers.setValue(0)
    panel.start()
    wait(lambda: not window.runner.active(), 600)
    panel.eval_folder.setText(str(data))
    panel.evaluate()
    wait(lambda: not window.runner.active(), 120)
    app.processEvents()
    window.resize(1400, 1400)
    settle()
    window.grab().save(str(HERE / "formulas-train.png"))
    window.close()
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("formulas*.png"))))


if __name__ == "__main__":
    main()
