"""Runs `core` jobs off the UI thread and turns their progress, result and error into
Qt signals.

Each job gets a daemon thread: closing the window cancels every job and joins the threads
for a bounded time, and a job stuck inside one long step cannot keep the process alive.

Python's cyclic garbage collector runs on whichever thread happens to allocate. A job's
thread could therefore collect a cycle that holds a widget (a closed dialog, a panel's
handler) and run its C++ destructor off the UI thread, which crashes Qt. While the app runs,
`collect_garbage_on_ui_thread` turns automatic collection off and collects on a UI timer.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QObject, QTimer, Signal

from core.jobs import Cancelled, CancelToken, JobError, JobGen, Progress, RateLimiter, drive

log = logging.getLogger(__name__)

#: Progress signals per second at most; the UI repaints no faster than people read.
PROGRESS_RATE = 20
_RETIRE_MS = 1000


def collect_garbage_on_ui_thread(interval: float = 1.0) -> GarbageCollector:
    """Collect reference cycles only on the UI thread, every `interval` seconds (and only
    as often as the collector's own thresholds ask); keep the returned object alive."""
    return GarbageCollector(interval=interval)


class JobHandle(QObject):
    """One running job. Signals arrive on the UI thread, each handle ends with exactly one
    of succeeded / failed / cancelled, then `finished`."""

    progress = Signal(object)  # Progress
    succeeded = Signal(object)  # the job's return value
    failed = Signal(str, str)  # message for people, details (traceback) for a report
    cancelled = Signal()
    finished = Signal()

    def __init__(
        self, title: str, start: Callable[[CancelToken], JobGen[Any]], parent: QObject
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.token = CancelToken()
        self.last_progress: Progress | None = None
        self.started_at = time.monotonic()
        self._start = start
        self._closed = False  # set at shutdown: the thread emits nothing more
        self._thread = threading.Thread(target=self._run, name=f"job: {title}", daemon=True)
        self.progress.connect(self._remember)

    def _remember(self, progress: Progress) -> None:
        self.last_progress = progress

    def _emit(self, signal: Any, *args: object) -> None:
        if self._closed:
            return
        try:
            signal.emit(*args)
        except RuntimeError:  # the Qt side is gone (window closed during shutdown)
            self._closed = True

    def _run(self) -> None:
        limiter = RateLimiter(1 / PROGRESS_RATE)
        pending: list[Progress] = []

        def on_progress(progress: Progress) -> None:
            if progress.milestone or limiter.ready():
                pending.clear()
                self._emit(self.progress, progress)
            else:
                pending[:] = [progress]

        try:
            result = drive(self._start(self.token), self.token, on_progress)
        except Cancelled:
            self._emit(self.cancelled)
        except JobError as error:
            self._emit(self.failed, error.message, error.details)
        except Exception as error:
            log.exception("job %r failed", self.title)
            message = f"{self.title} failed unexpectedly: {type(error).__name__}: {error}"
            self._emit(self.failed, message, traceback.format_exc())
        else:
            if pending:
                self._emit(self.progress, pending[0])
            self._emit(self.succeeded, result)
        self._emit(self.finished)

    def start(self) -> None:
        """Start the thread (once; never after close)."""
        if not self._closed and self._thread.ident is None:
            self._thread.start()

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the thread; True when it has ended (or never
        started)."""
        if self._thread.ident is not None:
            self._thread.join(max(timeout, 0))
        return not self._thread.is_alive()

    def close(self) -> None:
        self._closed = True


class JobRunner(QObject):
    """Starts jobs and keeps track of the ones still running."""

    started = Signal(object)  # JobHandle
    ended = Signal(object)  # JobHandle, after its finished signal

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._handles: list[JobHandle] = []

    def start(self, title: str, start: Callable[[CancelToken], JobGen[Any]]) -> JobHandle:
        """Run `start(token)` on a worker thread and return its handle.

        The thread starts when control returns to the event loop, so signals connected
        right after this call are never missed (a queued signal reaches only the slots
        connected when it is emitted).
        """
        handle = JobHandle(title, start, self)
        handle.finished.connect(partial(self._on_finished, handle))
        self._handles.append(handle)
        self.started.emit(handle)
        QTimer.singleShot(0, handle.start)
        return handle

    def _on_finished(self, handle: JobHandle) -> None:
        if handle in self._handles:
            self._handles.remove(handle)
        self.ended.emit(handle)
        # Not deleteLater() right away: the other slots of this `finished` (queued, through
        # PySide's receivers for Python callables) may not have run yet, and deleting the
        # sender first drops them. A second later they have.
        QTimer.singleShot(_RETIRE_MS, handle, handle.deleteLater)

    def active(self) -> list[JobHandle]:
        """Jobs started and not yet finished, oldest first."""
        return list(self._handles)

    def cancel_all(self) -> None:
        for handle in self._handles:
            handle.cancel()

    def shutdown(self, timeout: float = 1.5) -> bool:
        """Cancel every job and join the threads within `timeout` seconds in all.

        Returns True when all stopped. Threads still inside a long step are daemons, so
        they cannot keep the process alive; they are told to emit nothing more.
        """
        self.cancel_all()
        deadline = time.monotonic() + timeout
        stopped = True
        for handle in self._handles:
            stopped &= handle.join(deadline - time.monotonic())
            handle.close()
            if handle.running:
                log.warning("job %r did not stop within %.1f s", handle.title, timeout)
        self._handles.clear()
        return stopped
