"""The terminal side of the commands: running a job with a progress bar on stderr (Ctrl-C
cancels cleanly), and parsing what users type."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import TextIO, TypeVar

from core.jobs import (
    CancelToken,
    Eta,
    JobGen,
    Progress,
    RateLimiter,
    drive,
    format_duration,
    format_metrics,
    format_number,
)

R = TypeVar("R")
_BAR_WIDTH = 28


def render(progress: Progress, eta: str = "") -> str:
    """One line: '[#######-------]  45%  450/1000  message  loss 0.31  ETA 0:12'."""
    parts = []
    fraction = progress.fraction
    if fraction is not None:
        filled = round(fraction * _BAR_WIDTH)
        parts.append("[" + "#" * filled + "-" * (_BAR_WIDTH - filled) + "]")
        parts.append(f"{fraction * 100:3.0f}%")
        parts.append(f"{format_number(progress.done)}/{format_number(progress.total)}")
    if progress.message:
        parts.append(progress.message)
    if progress.metrics:
        parts.append(format_metrics(progress.metrics))
    if eta:
        parts.append(f"ETA {eta}")
    return "  ".join(parts)


class ProgressPrinter:
    """Prints progress to a stream: redrawn in place on a terminal, a line now and then
    (every `interval` seconds) when piped to a file."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.limiter = RateLimiter(interval if interval is not None else (0.1 if self.tty else 5.0))
        self.eta = Eta()
        self._width = 0
        self.last: Progress | None = None
        self._written: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        if self.limiter.ready() or (progress.milestone and not self.tty):
            self._write(progress)

    def _write(self, progress: Progress) -> None:
        remaining = None if progress.fraction == 1 else self.eta.remaining(progress)
        line = render(progress, format_duration(remaining))
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._written = progress

    def finish(self) -> None:
        """Show the final state (once: not again when it was the last line written) and end
        the line."""
        if self.last is not None and self.last is not self._written:
            self.limiter = RateLimiter(0)
            self._write(self.last)
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def run_in_terminal(
    start: Callable[[CancelToken], JobGen[R]],
    stream: TextIO | None = None,
    interval: float | None = None,
) -> R:
    """Run a job with a progress bar; the first Ctrl-C cancels it (raises Cancelled)."""
    token = CancelToken()
    printer = ProgressPrinter(stream, interval)

    def on_interrupt(signum: int, frame: object) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        printer.stream.write("\nCancelling… (Ctrl-C again to stop at once)\n")
        token.cancel()

    previous = None
    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        previous = None
    try:
        return drive(start(token), token, printer)
    finally:
        printer.finish()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 1280x800, not {text!r}"
        ) from None
    if not (16 <= width <= 8000 and 16 <= height <= 8000):
        raise argparse.ArgumentTypeError(f"window size {text} is out of range")
    return width, height
