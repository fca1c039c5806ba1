"""How the Formulas workbench feels: from the end of a stroke to updated readings and
heatmaps, and how long the UI thread stalls while a model trains in the GUI.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.formula_gui [--formulas 8] [--train-seconds 60]

Stroke latency: the real main window with the shipped model; formulas are drawn on the
canvas stroke by stroke with mouse events; the time runs from the mouse release to the
moment the readings, both heatmaps and the alignment are set and repainted. Compared in the
same run with the recogniser alone on the same drawings (recognise with beam search and
alignment, called directly): the floor the GUI adds its cost to.

UI stall: a 10 ms QTimer heartbeat on the UI thread records the longest gap between beats,
first with the window idle (the baseline), then while the Train tab trains the default
small model on the CPU.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


from PySide6.QtCore import QElapsedTimer, QEvent, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from benchmarks.harness import machine
from core.formula import expressions, synth

FORMULAS_SEED = 424242


def _send(widget, kind, point, buttons) -> None:
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    event = QMouseEvent(
        kind, point, widget.mapToGlobal(point), button, buttons, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, event)


def _wait(app: QApplication, condition, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not answer in time")
        app.processEvents()
        time.sleep(0.0005)


def stroke_latency(app: QApplication, window, count: int) -> tuple[list[float], list[float]]:
    bench = window.workbenches["formulas"]
    bench.show_drawing()
    canvas = bench.read.canvas
    app.processEvents()
    rng = random.Random(FORMULAS_SEED)
    texts = [expressions.sample(rng, "equation").text for _ in range(count)]
    updated = []
    bench.read.readings_updated.connect(lambda: updated.append(time.perf_counter()))
    gui, direct = [], []
    recognizer = bench.recognizer
    options = bench.read.readings.decoder_options()
    for n, text in enumerate(texts):
        canvas.clear()
        _wait(app, lambda: not window.runner.active())
        strokes, pen, line = synth.stroke_layout(text, random.Random(n), 100.0)
        scale = min(0.6 * canvas.height() / 100.0, (canvas.width() - 20) / line)
        canvas.set_pen_width(max(2.0, pen * scale))
        top = (canvas.height() - 100 * scale) / 2
        for stroke in strokes:
            points = [QPointF(10 + x * scale, top + y * scale) for x, y in stroke.tolist()]
            left = Qt.MouseButton.LeftButton
            _send(canvas, QEvent.Type.MouseButtonPress, points[0], left)
            for point in points[1:]:
                _send(canvas, QEvent.Type.MouseMove, point, left)
            before = len(updated)
            released = time.perf_counter()
            _send(canvas, QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
            _wait(app, lambda before=before: len(updated) > before)
            bench.read.posterior.repaint()
            bench.read.alignment_view.repaint()
            bench.read.readings.repaint()
            gui.append(time.perf_counter() - released)
            image = canvas.image()
            start = time.perf_counter()
            recognizer.recognize(image, canvas=True, keep_stages=True, align=True, **options)
            direct.append(time.perf_counter() - start)
    return gui, direct


def ui_stall(app: QApplication, window, seconds: float, train: bool) -> tuple[float, float, int]:
    """(longest gap, 99th percentile gap, beats) of a 10 ms heartbeat, in ms."""
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def beat() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    handle = None
    if train:
        panel = window.workbenches["formulas"].train
        panel.steps.setValue(100_000)
        handle = panel.start()
        _wait(app, lambda: "loss" in panel.status.text(), 120)
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(beat)
    last[0] = clock.elapsed()
    timer.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    if handle is not None:
        handle.cancel()
        _wait(app, lambda: not window.runner.active(), 60)
    gaps.sort()
    return gaps[-1], gaps[int(0.99 * (len(gaps) - 1))], len(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formulas", type=int, default=8)
    parser.add_argument("--train-seconds", type=float, default=60.0)
    options = parser.parse_args()

    import tempfile

    from PySide6.QtCore import QSettings

    scratch = tempfile.mkdtemp(prefix="labelscope-bench-")
    os.environ["LABELSCOPE_DATA_DIR"] = scratch
    app = QApplication([])
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, scratch)
    from gui.app import configure_identity
    from gui.main_window import MainWindow

    configure_identity()
    window = MainWindow(save_settings=False)
    window.resize(1280, 900)
    window.show()
    window.show_workbench("formulas")
    _wait(app, lambda: window.workbenches["formulas"].recognizer is not None, 60)

    gui, direct = stroke_latency(app, window, options.formulas)
    idle = ui_stall(app, window, min(options.train_seconds, 20.0), train=False)
    training = ui_stall(app, window, options.train_seconds, train=True)
    window.close()

    def ms(values: list[float]) -> str:
        values = sorted(v * 1e3 for v in values)
        return (
            f"{statistics.median(values):.1f} ms median, "
            f"{values[int(0.9 * (len(values) - 1))]:.1f} ms p90, {values[-1]:.1f} ms max"
        )

    print(f"## Formulas workbench — {time.strftime('%Y-%m-%d')}")
    print(f"\nMachine: {machine()}\n")
    print("| Case | Result | Goal |\n|---|---|---|")
    goal = "≤ 100 ms median"
    print(f"| Stroke end → readings and heatmaps (GUI, {len(gui)} strokes) | {ms(gui)} | {goal} |")
    print(f"| Baseline: recognise + beam + alignment called directly | {ms(direct)} | |")
    print(
        f"| UI thread, idle (baseline) | longest gap {idle[0]:.0f} ms, p99 {idle[1]:.0f} ms "
        f"({idle[2]:,} beats) | |"
    )
    print(
        f"| UI thread while training (small model, CPU) | longest gap {training[0]:.0f} ms, "
        f"p99 {training[1]:.0f} ms ({training[2]:,} beats) | ≤ 50 ms |"
    )


if __name__ == "__main__":
    main()
