"""What every panel that runs a long job shows: Start and Cancel, a progress bar, a status
line with the time left; driven by one job handle at a time.

A panel lays its widgets out as it likes and hands them to `JobControls`, which owns what
they do: while a job runs the start buttons are off (the panel's `refresh` says which may
be used once it has ended) and Cancel is on; the bar is busy until the first report, then
follows the progress; the status line shows the panel's words for each report and the time
left; Cancel cancels, with the panel's message; at the end the bar empties. The panel
keeps its own replies to success, failure and cancellation, which differ by job.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from core.jobs import Eta, Progress, format_duration
from gui.widgets.common import show_fraction
from gui.workers import JobHandle

#: A panel's words for a progress report, given the time left ("3 min"), None when not known.
Describe = Callable[[Progress, "str | None"], str]


def rate_and_time_left(progress: Progress, left: str | None) -> str:
    """The report's message, its images per second and the time left."""
    text = progress.message
    rate = progress.metrics.get("images/s")
    if rate:
        text += f" · {rate:.0f} images/s"
        if left is not None:
            text += f" · {left} left"
    return text


def reading_and_time_left(progress: Progress, left: str | None) -> str:
    """For jobs that read a folder: the report's message and the time left."""
    text = f"Reading … {progress.message}"
    return f"{text} · {left} left" if left is not None else text


def job_row(*buttons: QWidget, progress: QProgressBar) -> QHBoxLayout:
    """The buttons side by side, then the progress bar taking the rest of the row."""
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    row.addWidget(progress, 1)
    return row


class JobControls(QObject):
    """Cancel, a progress bar and a status line bound to the panel's current job."""

    progressed = Signal(object)  # each Progress shown, for the panel's curves

    def __init__(
        self,
        name: str,
        status: QLabel | str,
        refresh: Callable[[], None] | None = None,
        cancelling: str = "Cancelling…",
        describe: Describe = rate_and_time_left,
        parent: QObject | None = None,
    ) -> None:
        """Makes the Cancel button and the progress bar (object names `<name>Cancel`,
        `<name>Progress`) and, given a text, the status line (`<name>Status`); a panel
        that has a status label of its own passes it. `refresh` enables the panel's start
        buttons as fits, when a job starts and ends."""
        if isinstance(status, str):
            label = QLabel(status)
            label.setObjectName(f"{name}Status")
            label.setWordWrap(True)
        else:
            label = status
        super().__init__(parent or label)
        self.status = label
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName(f"{name}Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setObjectName(f"{name}Progress")
        self.progress.setTextVisible(False)
        self.refresh = refresh or (lambda: None)
        self.cancelling, self.describe = cancelling, describe
        self.job: JobHandle | None = None
        self._eta = Eta()

    def widgets(self) -> tuple[QPushButton, QProgressBar, QLabel]:
        """Cancel, the progress bar and the status line, for the panel's layout."""
        return self.cancel_button, self.progress, self.status

    def follow(
        self,
        handle: JobHandle,
        starting: str = "Starting…",
        succeeded: Callable[[Any], object] | None = None,
        failed: Callable[[str, str], object] | str | None = None,
        cancelled: Callable[[], object] | None = None,
    ) -> JobHandle:
        """Show `handle` from now on, cancelling the job it replaces: the bar busy,
        `starting` in the status line; the panel's replies to its outcome connected, each
        heard only while `handle` is still the one shown. A text for `failed` puts
        "text: message" in the status line; without a reply to cancellation, the status
        line says Cancelled."""
        if self.job is not None:
            self.job.cancel()  # superseded: its replies are no longer heard
        if isinstance(failed, str):
            failed = partial(self._failed, failed)
        if cancelled is None:
            cancelled = partial(self.status.setText, "Cancelled.")
        for signal, reply in (
            (handle.succeeded, succeeded),
            (handle.failed, failed),
            (handle.cancelled, cancelled),
        ):
            if reply is not None:
                signal.connect(partial(self._reply, handle, reply))
        self.job = handle
        self._eta = Eta()
        handle.progress.connect(partial(self._show, handle))
        handle.finished.connect(partial(self._ended, handle))
        self.cancel_button.setEnabled(True)
        show_fraction(self.progress, None)
        self.status.setText(starting)
        self.refresh()
        return handle

    def _failed(self, failure: str, message: str, _details: str) -> None:
        self.status.setText(f"{failure}: {message}")

    def _reply(self, handle: JobHandle, reply: Callable[..., object], *args: object) -> None:
        if handle is self.job:
            reply(*args)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText(self.cancelling)

    def release(self, status: str = "") -> JobHandle | None:
        """Cancel the job and stop following it (its replies are no longer heard): the
        panel is idle at once, its status line `status`, while the job winds down. For a
        job whose data is going away (another dataset opened). Returns the job."""
        handle = self.job
        if handle is None:
            return None
        handle.cancel()
        self.status.setText(status)
        self._ended(handle)  # idle now: the job's own end will find it followed no more
        return handle

    def _show(self, handle: JobHandle, progress: Progress) -> None:
        if handle is not self.job or handle.token.cancelled:
            return
        show_fraction(self.progress, progress.fraction)
        seconds = self._eta.remaining(progress) if progress.metrics else None
        done = progress.fraction is not None and progress.fraction >= 1
        left = format_duration(seconds) if seconds is not None and not done else None
        self.status.setText(self.describe(progress, left))
        self.progressed.emit(progress)

    def _ended(self, handle: JobHandle) -> None:
        if handle is not self.job:
            return
        self.job = None
        self.cancel_button.setEnabled(False)
        show_fraction(self.progress, 0.0)
        self.refresh()


class FollowsJob:
    """For a panel with `controls`: its current job (None when idle) and Cancel."""

    controls: JobControls

    @property
    def job(self) -> JobHandle | None:
        return self.controls.job

    def cancel(self) -> None:
        self.controls.cancel()

    def release(self, status: str = "") -> JobHandle | None:
        """Cancel the job and stop following it (see JobControls.release)."""
        return self.controls.release(status)
