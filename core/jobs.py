"""Long work as generators: a job yields Progress and stops when its CancelToken is set.

The GUI runs a job on a worker thread, the CLI prints a progress bar, tests iterate it
directly; all three go through `drive`, so cancellation behaves the same everywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")

#: A started job: yields Progress, returns its result.
JobGen = Generator["Progress", None, R]
#: What callers hand around: a function that starts the job with a cancel token.
JobFn = Callable[["CancelToken"], JobGen]


@dataclass(frozen=True)
class Progress:
    """One step of a job: `done` of `total` units (total None when unknown), a message
    for people and numbers for plots (loss, accuracy, images/s...). A `milestone` (an
    epoch's validation, say) is always delivered; others may be thinned out for the UI."""

    done: float
    total: float | None = None
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    milestone: bool = False

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)


class Cancelled(Exception):
    """The job stopped because its token was cancelled."""

    def __init__(self, message: str = "Cancelled") -> None:
        super().__init__(message)


class JobError(Exception):
    """A failure the user can act on. `message` is shown as is; `details` may hold more."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class CancelToken:
    """A thread-safe flag a job checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Call inside long inner loops that do not yield often."""
        if self._event.is_set():
            raise Cancelled()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on cancel; True when cancelled."""
        return self._event.wait(seconds)


def drive(
    gen: JobGen[R],
    token: CancelToken,
    on_progress: Callable[[Progress], Any] | None = None,
) -> R:
    """Run a started job to its end and return its result.

    The token is checked after every yield; on cancel the generator is closed (so its
    `finally` blocks run) and `Cancelled` is raised. Exceptions from the job propagate.
    """
    try:
        while True:
            if token.cancelled:
                gen.close()
                raise Cancelled()
            try:
                progress = next(gen)
            except StopIteration as stop:
                return stop.value
            if on_progress is not None:
                on_progress(progress)
    except Cancelled:
        gen.close()
        raise


def single_step(message: str, fn: Callable[..., R], *args: Any, **kwargs: Any) -> JobFn:
    """A short piece of work (a model load, one recognition) as a job, so the GUI can run
    it off the UI thread like any other."""

    def job(token: CancelToken) -> JobGen[R]:
        yield Progress(0, 1, message)
        token.raise_if_cancelled()
        return fn(*args, **kwargs)

    return job


class RateLimiter:
    """Lets an event through at most every `interval` seconds (first one always)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


class Eta:
    """Estimates the remaining seconds from the rate since the first progress it saw.

    Says nothing (None) until `settle` seconds have passed and the work has moved, so a
    job that resumes at 40 % or has a slow first step does not show a silly estimate.
    """

    def __init__(self, settle: float = 2.0) -> None:
        self.settle = settle
        self._first: tuple[float, float] | None = None  # (time, fraction)

    def remaining(self, progress: Progress) -> float | None:
        fraction = progress.fraction
        if fraction is None:
            return None
        now = time.monotonic()
        if self._first is None:
            self._first = (now, fraction)
            return None
        start, start_fraction = self._first
        elapsed, moved = now - start, fraction - start_fraction
        if elapsed < self.settle or moved <= 0:
            return None
        return elapsed * (1 - fraction) / moved


def format_number(value: float | None) -> str:
    """'1,234' for whole numbers, 4 significant digits otherwise, '?' for None."""
    if value is None:
        return "?"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


def format_metrics(metrics: Mapping[str, float]) -> str:
    """'loss 0.3125  acc 0.91'."""
    return "  ".join(f"{key} {format_number(value)}" for key, value in metrics.items())


def format_duration(seconds: float | None) -> str:
    """'1:02:03', '2:03' or '' when unknown."""
    if seconds is None:
        return ""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_bytes(count: float) -> str:
    """1536 → '1.5 KB'; decimal units, as file managers show them."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1000
    return f"{count:,.1f} GB"
