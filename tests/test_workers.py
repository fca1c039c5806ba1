"""Long jobs through the real window: progress in the status bar, Cancel, errors, and
closing the window while a job runs."""

import subprocess
import sys
import threading

from PySide6.QtCore import Qt

from core.jobs import JobError, Progress
from tests.conftest import ROOT


def stepper(steps: int, gate: threading.Event | None = None):
    """A job that does `steps` small steps; waits at step 1 for `gate` when given."""

    def job(token):
        for i in range(steps):
            if i == 1 and gate is not None:
                while not gate.wait(0.01):
                    token.raise_if_cancelled()
            token.wait(0.002)  # a small piece of real waiting work, cut short by cancel
            yield Progress(i + 1, steps, f"step {i + 1}", {"loss": 1 / (i + 1)})
        return "finished"

    return job


def test_progress_shows_in_the_status_bar_then_hides(make_window, qtbot):
    window = make_window()
    gate = threading.Event()
    handle = window.runner.start("Counting", stepper(50, gate))
    indicator = window.job_indicator
    qtbot.waitUntil(lambda: handle.last_progress is not None)
    assert indicator.isVisible() and indicator.current is handle
    assert indicator.label.text().startswith("Counting: step 1")
    assert indicator.bar.value() == 20  # 1 of 50, out of 1000 steps
    assert window.cancel_action.isEnabled()
    with qtbot.waitSignal(handle.succeeded, timeout=10000) as result:
        gate.set()
    assert result.args == ["finished"]
    assert handle.last_progress.done == 50  # the last step is always delivered
    qtbot.waitUntil(lambda: not indicator.isVisible())
    assert not window.cancel_action.isEnabled()


def settled(make_window, qtbot):
    """A window whose start-up jobs (loading the formula model) have finished, so the
    status bar follows only the test's job."""
    window = make_window()
    qtbot.waitUntil(lambda: window.runner.active() == [], timeout=20000)
    return window


def test_cancel_button_stops_the_job(make_window, qtbot):
    window = settled(make_window, qtbot)
    handle = window.runner.start("Endless", stepper(10**9))
    indicator = window.job_indicator
    qtbot.waitUntil(lambda: handle.last_progress is not None)
    with qtbot.waitSignals([handle.cancelled, handle.finished], timeout=5000):
        qtbot.mouseClick(indicator.cancel_button, Qt.MouseButton.LeftButton)
    assert "cancelling" in indicator.label.text() or not indicator.isVisible()
    qtbot.waitUntil(lambda: not indicator.isVisible())
    assert window.runner.active() == []


def test_escape_cancels_too(make_window, qtbot):
    window = make_window()
    handle = window.runner.start("Endless", stepper(10**9))
    qtbot.waitUntil(lambda: handle.last_progress is not None)
    with qtbot.waitSignal(handle.cancelled, timeout=5000):
        qtbot.keyClick(window, Qt.Key.Key_Escape)


def _failing(exception):
    def job(token):
        yield Progress(0, 1, "about to fail")
        raise exception

    return job


def test_job_error_is_shown_to_the_user(make_window, qtbot):
    window = settled(make_window, qtbot)
    handle = window.runner.start("Broken", _failing(JobError("The folder is read-only.")))
    handle.failed.connect(lambda message, details: window.show_error("Broken", message))
    qtbot.waitUntil(lambda: window.error_box is not None, timeout=5000)
    assert window.error_box.text() == "The folder is read-only."
    qtbot.waitUntil(lambda: window.runner.active() == [])
    assert not window.job_indicator.isVisible()


def test_unexpected_exception_has_details(make_window, qtbot):
    window = make_window()
    handle = window.runner.start("Buggy", _failing(ZeroDivisionError("division by zero")))
    with qtbot.waitSignal(handle.failed, timeout=5000) as failure:
        pass
    message, details = failure.args
    assert message == "Buggy failed unexpectedly: ZeroDivisionError: division by zero"
    assert "Traceback" in details and "ZeroDivisionError" in details


def test_weights_check_runs_as_a_job_from_the_menu(make_window, qtbot, isolated_dirs):
    cache = isolated_dirs / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-11ad3fa6.pth").write_bytes(b"truncated download")
    window = make_window()
    window.verify_weights_action.trigger()
    qtbot.waitUntil(lambda: window.error_box is not None, timeout=10000)
    assert "DAMAGED  resnet50-11ad3fa6.pth" in window.error_box.text()


def test_closing_the_window_cancels_running_jobs(make_window, qtbot):
    window = make_window()
    handles = [window.runner.start(f"Endless {i}", stepper(10**9)) for i in range(2)]
    qtbot.waitUntil(lambda: all(h.last_progress is not None for h in handles))
    threads = [h._thread for h in handles]
    window.close()
    assert all(h.token.cancelled for h in handles)
    qtbot.waitUntil(lambda: window.runner.active() == [], timeout=10000)
    assert not any(t.is_alive() for t in threads)
    assert window.runner.active() == []


_CLOSE_SCRIPT = r"""
import threading, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from gui.app import create_application
from gui import main_window
from gui.main_window import MainWindow
from core.jobs import Progress

main_window.SHUTDOWN_GRACE = 1.0  # the stuck job would hold the window this long

app = create_application()
window = MainWindow(save_settings=False)
window.show()
never = threading.Event()

def stuck(token):            # ignores its token inside one long step
    yield Progress(0, 1, "stuck")
    never.wait()
    yield Progress(1, 1)

def polite(token):
    i = 0
    while True:
        token.wait(0.01)
        i += 1
        yield Progress(i, None, "working")

window.runner.start("Stuck", stuck)
window.runner.start("Polite", polite)
QTimer.singleShot(300, window.close)
code = app.exec()
print("exited", code, flush=True)
"""


def test_process_exits_cleanly_when_closed_during_jobs(tmp_path):
    """A real app process, one job that never checks its token: no hang, no traceback."""
    env = {**__import__("os").environ, "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", _CLOSE_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exited 0"
    assert "Traceback" not in result.stderr


def test_cycles_are_collected_on_the_ui_thread_only(make_window, qtbot):
    """A job that makes reference cycles never collects them on its own thread, where a
    widget's destructor would run off the UI thread; the UI thread collects them."""
    import gc

    window = make_window()
    threads: list[str] = []

    def note(phase: str, _info: dict) -> None:
        if phase == "start":
            threads.append(threading.current_thread().name)

    def cycles(token):
        for i in range(20):
            for _ in range(5000):
                a: list = []
                a.append(a)  # garbage only the cyclic collector can free
            yield Progress(i + 1, 20, "cycling")
        return "done"

    gc.callbacks.append(note)
    try:
        handle = window.runner.start("Cycling", cycles)
        with qtbot.waitSignal(handle.finished, timeout=20000):
            pass
        qtbot.waitUntil(lambda: bool(threads), timeout=5000)  # the UI timer collects them
    finally:
        gc.callbacks.remove(note)
    assert set(threads) == {threading.main_thread().name}
