"""The status bar's job indicator: what the running job is doing, how far, and Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from core.jobs import Eta, Progress, format_duration, format_metrics
from gui.widgets.common import show_fraction
from gui.workers import JobHandle, JobRunner


class JobIndicator(QWidget):
    """Follows a JobRunner and shows its newest running job; hidden when none runs."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.current: JobHandle | None = None
        self._eta = Eta()
        self.label = QLabel()
        self.label.setObjectName("jobMessage")
        self.bar = QProgressBar()
        self.bar.setObjectName("jobProgress")
        self.bar.setFixedWidth(160)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("jobCancel")
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        runner.started.connect(self._follow)
        runner.ended.connect(self._on_ended)
        self.setVisible(False)

    def cancel(self) -> None:
        if self.current is not None:
            self.current.cancel()
            self.cancel_button.setEnabled(False)
            self.label.setText(f"{self.current.title}: cancelling…")

    def _follow(self, handle: JobHandle) -> None:
        if self.current is not None:
            self.current.progress.disconnect(self._show)
        self.current = handle
        self._eta = Eta()
        handle.progress.connect(self._show)
        self.cancel_button.setEnabled(not handle.token.cancelled)
        self._show(handle.last_progress or Progress(0, None, "starting…"))
        self.setVisible(True)

    def _show(self, progress: Progress) -> None:
        handle = self.current
        if handle is None or handle.token.cancelled:
            return
        fraction = progress.fraction
        show_fraction(self.bar, fraction)
        eta = ""
        if fraction is not None and fraction < 1:
            eta = format_duration(self._eta.remaining(progress))
        text = handle.title + (f": {progress.message}" if progress.message else "")
        if progress.metrics:
            text += f"  ·  {format_metrics(progress.metrics)}"
        others = len(self.runner.active()) - 1
        if others > 0:
            text += f"  (+{others} more)"
        self.label.setText(text + (f"  ·  {eta} left" if eta else ""))

    def _on_ended(self, handle: JobHandle) -> None:
        if handle is not self.current:
            return
        self.current = None
        remaining = self.runner.active()
        if remaining:
            self._follow(remaining[-1])
        else:
            self.setVisible(False)
