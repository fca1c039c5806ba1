"""Locks between processes: one piece of work on one dataset at a time (a scan with a model),
held by the operating system on a file, so a crashed process never leaves one behind."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.jobs import JobError


class Busy(JobError):
    """Another process holds the lock; `holder` says who, as far as it is known."""

    def __init__(self, message: str, holder: dict[str, object]) -> None:
        super().__init__(message)
        self.holder = holder


def _try_lock(handle: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(handle: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(handle, 0, os.SEEK_SET)
        msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file `path` for the block, or raise Busy naming the process that holds
    it. `what` is the work, for the message ("a scan with EfficientNet-Lite0")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(handle):
            holder = _holder(path)
            who = (
                f"process {holder.get('pid')} on {holder.get('host')}, since "
                f"{time.strftime('%H:%M', time.localtime(float(holder.get('since', 0))))}"
                if holder
                else "another process"
            )
            raise Busy(
                f"{what[:1].upper()}{what[1:]} is already running on this dataset ({who}). "
                "Wait for it to finish (or stop it), then start again: it resumes where the "
                "other one stopped.",
                holder,
            )
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(handle, 0)
        os.lseek(handle, 0, os.SEEK_SET)
        # beyond the first byte, which Windows locks
        os.write(handle, b" " + json.dumps(record).encode())
        try:
            yield
        finally:
            os.ftruncate(handle, 0)
            _unlock(handle)
    finally:
        os.close(handle)


def _holder(path: Path) -> dict[str, object]:
    try:
        text = path.read_bytes()[1:].decode("utf-8", "replace")
        found = json.loads(text)
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}
