"""The label store's SQLite connection and what its writes can end in: a store closed under
a job that still uses it (the job ends as cancelled), and a write the disk refused (nothing
of it saved, everything before intact)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.jobs import Cancelled, JobError


class StoreClosed(Cancelled):
    """The store was closed (another dataset opened, the window closed) while a job still
    used it: the job ends as cancelled, keeping what it had committed."""

    def __init__(self) -> None:
        super().__init__("The dataset was closed; what was finished is kept")


class StoreWriteError(JobError):
    """A change could not be written (a full disk, a disk error, a store another process
    holds too long): nothing of it was saved, and everything saved before is intact."""

    def __init__(self, path: Path, error: sqlite3.Error) -> None:
        text = str(error).lower()
        if "full" in text:
            why = f"the disk holding {path.parent} is full. Free some space and try again"
        elif "locked" in text or "busy" in text:
            why = "another Labelscope process has been writing to it too long. Try again"
        else:
            why = f"the label store {path} cannot be written ({error})"
        super().__init__(f"Not saved: {why}. Everything saved before is intact.")


class Connection:
    """The store's SQLite connection, which refuses work once the store is closed: a job
    that outlives its dataset stops cleanly (StoreClosed) instead of failing on a closed
    database. Writes also hold the store's lock, which `close` takes, so none is torn."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.closed = False

    def _guard(self, method: str, *args: object) -> sqlite3.Cursor:
        if self.closed:
            raise StoreClosed
        try:
            return getattr(self._db, method)(*args)
        except sqlite3.ProgrammingError:
            if self.closed:  # closed by another thread between the check and the call
                raise StoreClosed from None
            raise

    def execute(self, sql: str, parameters: Sequence[object] | dict = ()) -> sqlite3.Cursor:
        return self._guard("execute", sql, parameters)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> sqlite3.Cursor:
        return self._guard("executemany", sql, rows)

    def executescript(self, script: str) -> sqlite3.Cursor:
        return self._guard("executescript", script)

    @property
    def raw(self) -> sqlite3.Connection:
        if self.closed:
            raise StoreClosed
        return self._db

    def close(self) -> None:
        self.closed = True
        self._db.close()
