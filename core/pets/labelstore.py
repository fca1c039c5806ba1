"""The label store: one SQLite file per dataset holding the samples, the user's edits with an
undo/redo log, what decoding found out about each file, and the scan results and scores that
the outlier and training work fill in (those three through `results.StoredResults`).

Every edit is one committed transaction before the call returns, so an edit the app has
acknowledged survives a crash. The store keeps an in-memory mirror of what the grid shows
(numpy columns), so filtering and sorting 37,500 samples take milliseconds. It knows nothing
of Qt: listeners are plain callables.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import paths
from core.jobs import CancelToken, JobError, Progress
from core.pets.dataset import CLASSES, DatasetListing, list_dataset
from core.pets.results import Facts, StoredResults
from core.pets.sources import SEPARATOR
from core.pets.store_connection import Connection, StoreWriteError
from core.pets.store_recovery import Recovery, back_up, damage, salvage

SCHEMA_VERSION = 3  # 2: scan_results.wild_cat_mass, scans; 3: steps.session, sessions
STORE_FOLDER = ".labelscope"
STORE_NAME = "labelscope.sqlite"
LABEL_CODES = {None: 0, "cat": 1, "dog": 2}
LABELS = (None, "cat", "dog")
SPLITS = ("train", "test")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples(
    id INTEGER PRIMARY KEY,
    split TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    file_label TEXT,
    present INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS edits(
    sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
    label TEXT,
    excluded INTEGER NOT NULL DEFAULT 0,
    flagged INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    description TEXT NOT NULL,
    time REAL NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0,
    session TEXT
);
CREATE TABLE IF NOT EXISTS sessions(
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS changes(
    step_id INTEGER NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    field TEXT NOT NULL,
    old TEXT,
    new TEXT
);
CREATE INDEX IF NOT EXISTS changes_by_sample ON changes(sample_id);
CREATE TABLE IF NOT EXISTS facts(
    sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
    stamp TEXT NOT NULL,
    bytes INTEGER,
    width INTEGER,
    height INTEGER,
    notes TEXT NOT NULL DEFAULT '',
    problem_kind TEXT,
    problem TEXT
);
CREATE TABLE IF NOT EXISTS scan_results(
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    model TEXT NOT NULL,
    top_classes TEXT NOT NULL,
    top_probs TEXT NOT NULL,
    cat_mass REAL NOT NULL,
    dog_mass REAL NOT NULL,
    wild_cat_mass REAL NOT NULL DEFAULT 0,
    PRIMARY KEY(sample_id, model)
);
CREATE TABLE IF NOT EXISTS scans(
    model TEXT PRIMARY KEY,
    backbone TEXT NOT NULL,
    weights TEXT NOT NULL,
    published INTEGER NOT NULL,
    device TEXT NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    images INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS scores(
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY(sample_id, name)
);
"""


@dataclass(frozen=True)
class Step:
    """One undoable edit: its description and how many samples it touched."""

    id: int
    description: str
    count: int


@dataclass(frozen=True)
class HistoryEntry:
    time: float
    description: str
    field: str
    old: str | None
    new: str | None
    undone: bool


def open_store(
    root: Path | str, token: CancelToken, db_path: Path | None = None
) -> Iterator[Progress]:
    """Job: list the dataset at `root` and open its label store; returns (store, listing)."""
    listing = yield from list_dataset(root, token, cache_dir=paths.data_dir() / "cache")
    yield Progress(len(listing.samples), len(listing.samples), "Opening the label store")
    store = LabelStore.open(listing, db_path)
    return store, listing


def store_location(root: Path) -> Path:
    """Where the store of the dataset at `root` lives: `<dataset>/.labelscope/` (beside the
    zip when the dataset is a zip file), or the per-user data directory when that folder is
    read-only."""
    root = Path(root).resolve()
    folder = root if root.is_dir() else root.parent
    name = STORE_NAME if root.is_dir() else f"{root.stem}.sqlite"
    preferred = folder / STORE_FOLDER / name
    if paths.is_writable(preferred.parent):
        return preferred
    return paths.per_dataset_file("stores", root)


class LabelStore(StoredResults):
    """The samples of one dataset and everything the user and the app know about them.

    Rows are numbered 0..n-1 in the listing's order (split, then natural name order); the
    numpy columns (`split`, `file_label`, `label`, `excluded`, `flagged`, `edited`,
    `problem`, `bytes`, `width`, `height`) mirror the database for the grid.
    """

    def __init__(self, db_path: Path, root: Path) -> None:
        self.path = Path(db_path)
        self.root = Path(root)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[np.ndarray], None]] = []
        #: what was recovered when the file was found damaged on open, else None
        self.recovery: Recovery | None = None
        problem = damage(self.path) if self.path.exists() else None
        if problem is not None:
            try:
                self.recovery = salvage(self.path, _SCHEMA, problem)
            except (OSError, sqlite3.Error) as error:
                raise JobError(
                    f"The label store {self.path} is damaged ({problem}) and could not be "
                    f"set aside: {error}"
                ) from error
        try:
            self._db = Connection(
                sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None, timeout=10
                )
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            version = self._meta("schema")
        except sqlite3.DatabaseError as error:
            raise JobError(f"The label store {self.path} cannot be used: {error}") from error
        if version is None:
            self._set_meta("schema", str(SCHEMA_VERSION))
            self._set_meta("root", str(self.root))
        elif int(version) > SCHEMA_VERSION:
            raise JobError(
                f"The label store {self.path} was written by a newer Labelscope "
                f"(schema {version}); update Labelscope to open it."
            )
        elif int(version) < SCHEMA_VERSION:
            self._migrate(int(version))
        # Several windows or processes may edit one store: each is a session, undo and redo
        # only travel through its own steps (and those of sessions that have ended), and
        # every edit first reads what the others committed.
        self.session = uuid.uuid4().hex
        with self._transaction():
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (self.session, socket.gethostname(), os.getpid(), time.time()),
            )
        self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        self._back_up()
        self._load()

    def _migrate(self, version: int) -> None:
        """Bring an older store up to this schema, in one transaction."""
        with self._transaction():
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(scan_results)")}
            if "wild_cat_mass" not in columns:
                self._db.execute(
                    "ALTER TABLE scan_results ADD COLUMN wild_cat_mass REAL NOT NULL DEFAULT 0"
                )
            if "session" not in {r[1] for r in self._db.execute("PRAGMA table_info(steps)")}:
                self._db.execute("ALTER TABLE steps ADD COLUMN session TEXT")
            self._set_meta("schema", str(SCHEMA_VERSION))

    # --- opening ---------------------------------------------------------------------

    @classmethod
    def open(cls, listing: DatasetListing, db_path: Path | None = None) -> LabelStore:
        """Open (or create) the store for a listed dataset and add any new samples."""
        store = cls(db_path or store_location(listing.root), listing.root)
        store.sync(listing)
        return store

    def sync(self, listing: DatasetListing) -> None:
        """Add the listing's new samples; mark the ones that are gone as not present (their
        edits are kept, should the files come back)."""
        with self._lock:
            known = {
                path: (split, label, present)
                for path, split, label, present in self._db.execute(
                    "SELECT path, split, file_label, present FROM samples"
                )
            }
            wanted = {s.path: (s.split, s.label, 1) for s in listing.samples}
            changed = [
                (s, p, lab) for p, (s, lab, _) in wanted.items() if known.get(p) != (s, lab, 1)
            ]
            gone = [(p,) for p, (_s, _l, present) in known.items() if present and p not in wanted]
            if changed or gone:  # reopening an unchanged dataset writes nothing
                with self._transaction():
                    self._db.executemany("UPDATE samples SET present = 0 WHERE path = ?", gone)
                    self._db.executemany(
                        "INSERT INTO samples(split, path, file_label) VALUES (?, ?, ?) "
                        "ON CONFLICT(path) DO UPDATE SET present = 1, split = excluded.split, "
                        "file_label = excluded.file_label",
                        changed,
                    )
            self._load(order=[s.path for s in listing.samples])

    def _load(self, order: Sequence[str] | None = None) -> None:
        rows = self._db.execute(
            "SELECT s.id, s.split, s.path, s.file_label, e.label, e.excluded, e.flagged, "
            "e.note, f.bytes, f.width, f.height, f.problem_kind, f.notes "
            "FROM samples s LEFT JOIN edits e ON e.sample_id = s.id "
            "LEFT JOIN facts f ON f.sample_id = s.id WHERE s.present = 1"
        ).fetchall()
        if order is not None:
            position = {path: i for i, path in enumerate(order)}
            rows.sort(key=lambda r: position.get(r[2], len(position)))
        n = len(rows)
        self.ids = np.array([r[0] for r in rows], dtype=np.int64)
        self.paths = [r[2] for r in rows]
        self.split = np.array([SPLITS.index(r[1]) for r in rows], dtype=np.int8)
        self.file_label = np.array([LABEL_CODES[r[3]] for r in rows], dtype=np.int8)
        self.label = self.file_label.copy()
        self.excluded = np.zeros(n, dtype=bool)
        self.flagged = np.zeros(n, dtype=bool)
        self.noted = np.zeros(n, dtype=bool)
        self.problem = [r[11] for r in rows]
        self.decode_notes = [r[12] or "" for r in rows]
        self.unreadable = np.array([r[11] is not None for r in rows], dtype=bool)
        self.bytes = np.array([-1 if r[8] is None else r[8] for r in rows], dtype=np.int64)
        self.width = np.array([0 if r[9] is None else r[9] for r in rows], dtype=np.int32)
        self.height = np.array([0 if r[10] is None else r[10] for r in rows], dtype=np.int32)
        self.row_of = {int(sample_id): i for i, sample_id in enumerate(self.ids)}
        self._path_row = {path: i for i, path in enumerate(self.paths)}
        for i, r in enumerate(rows):
            if r[4] is not None:
                self.label[i] = LABEL_CODES[r[4]]
            self.excluded[i] = bool(r[5])
            self.flagged[i] = bool(r[6])
            self.noted[i] = bool(r[7])

    def close(self) -> None:
        """Close the file; a job still using the store ends as cancelled (StoreClosed)."""
        with self._lock:
            if self._db.closed:
                return
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("DELETE FROM sessions WHERE id = ?", (self.session,))
            self._back_up()
            self._db.close()

    def _back_up(self) -> None:
        """Refresh the store's backup (store_recovery: what a damaged store is rebuilt
        from). A backup that cannot be written is no reason to stop: the store is sound."""
        with contextlib.suppress(OSError, sqlite3.Error):
            back_up(self._db.raw, self.path)

    @property
    def closed(self) -> bool:
        return self._db.closed

    # --- other sessions ----------------------------------------------------------------

    def _live_sessions(self) -> set[str]:
        """The sessions still open on this machine (a process that died left its row)."""
        host = socket.gethostname()
        live = set()
        for session, session_host, pid in self._db.execute(
            "SELECT id, host, pid FROM sessions"
        ).fetchall():
            if session_host != host or _process_alive(pid):
                live.add(session)
        return live

    def _others(self) -> list[str]:
        """Live sessions other than this one, whose steps this one must not undo."""
        return sorted(self._live_sessions() - {self.session})

    def refresh(self) -> np.ndarray:
        """Read the edits other sessions committed since this one last looked; returns the
        rows whose label, exclusion, flag or note changed (listeners hear of them)."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return np.zeros(0, dtype=np.int64)
            self._data_version = version
            before = (
                self.label.copy(),
                self.excluded.copy(),
                self.flagged.copy(),
                self.noted.copy(),
            )
            self._reload_edits()
            after = (self.label, self.excluded, self.flagged, self.noted)
            changed = np.flatnonzero(
                np.logical_or.reduce([a != b for a, b in zip(before, after, strict=True)])
            )
        if len(changed):
            self._notify(changed.tolist())
        return changed

    def __len__(self) -> int:
        return len(self.paths)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- reading ---------------------------------------------------------------------

    @property
    def edited(self) -> np.ndarray:
        return (self.label != self.file_label) | self.excluded | self.flagged | self.noted

    def row_for_path(self, path: str) -> int | None:
        return self._path_row.get(path)

    def effective_label(self, row: int) -> str | None:
        return LABELS[self.label[row]]

    def counts(self) -> dict[str, int]:
        """What the status bar shows: cats and dogs (effective, not excluded), excluded,
        edited, flagged, unreadable, test."""
        kept = (self.split == 0) & ~self.excluded
        return {
            "cats": int(np.sum(kept & (self.label == 1))),
            "dogs": int(np.sum(kept & (self.label == 2))),
            "test": int(np.sum(self.split == 1)),
            "excluded": int(np.sum(self.excluded)),
            "edited": int(np.sum(self.edited)),
            "flagged": int(np.sum(self.flagged)),
            "unreadable": int(np.sum(self.unreadable)),
        }

    def note(self, row: int) -> str:
        found = self._db.execute(
            "SELECT note FROM edits WHERE sample_id = ?", (int(self.ids[row]),)
        ).fetchone()
        return "" if found is None else found[0]

    def facts(self, row: int) -> Facts | None:
        found = self._db.execute(
            "SELECT bytes, width, height, notes, problem_kind, problem FROM facts "
            "WHERE sample_id = ?",
            (int(self.ids[row]),),
        ).fetchone()
        return None if found is None else Facts(*found)

    def history(self, row: int) -> list[HistoryEntry]:
        """Every change made to the sample, oldest first (undone ones marked)."""
        rows = self._db.execute(
            "SELECT st.time, st.description, c.field, c.old, c.new, st.undone "
            "FROM changes c JOIN steps st ON st.id = c.step_id WHERE c.sample_id = ? "
            "ORDER BY st.id",
            (int(self.ids[row]),),
        ).fetchall()
        return [HistoryEntry(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    def select(
        self,
        *,
        split: str | None = None,
        label: str | None = None,
        edited: bool | None = None,
        excluded: bool | None = None,
        flagged: bool | None = None,
        unreadable: bool | None = None,
        sort: str = "name",
        descending: bool = False,
        scores: dict[str, np.ndarray] | None = None,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows that pass the filters (and `mask`, a boolean per row, if given), in the
        chosen order: 'name' (the listing's order), 'size' (bytes on disk, unknown last),
        'width', 'height', or a score name (unknown last)."""
        keep = np.ones(len(self), dtype=bool) if mask is None else mask.astype(bool)
        if split is not None:
            keep &= self.split == SPLITS.index(split)
        if label is not None:
            keep &= self.label == LABEL_CODES[label]
        for wanted, column in (
            (edited, self.edited),
            (excluded, self.excluded),
            (flagged, self.flagged),
            (unreadable, self.unreadable),
        ):
            if wanted is not None:
                keep &= column == wanted
        rows = np.flatnonzero(keep)
        if sort == "name":
            return rows[::-1].copy() if descending else rows
        key = {"size": self.bytes, "width": self.width, "height": self.height}.get(sort)
        if key is None:
            if scores is None or sort not in scores:
                raise ValueError(f"unknown sort key {sort!r}")
            key = scores[sort]
        values = key[rows].astype(np.float64)
        unknown = values < 0 if sort in ("size", "width", "height") else np.isnan(values)
        values = np.where(unknown, np.inf, -values if descending else values)
        return rows[np.argsort(values, kind="stable")]

    # --- listening -------------------------------------------------------------------

    def subscribe(self, listener: Callable[[np.ndarray], None]) -> None:
        """`listener(rows)` is called after rows change (on the thread that changed them)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[np.ndarray], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, rows: Iterable[int]) -> None:
        changed = np.unique(np.fromiter(rows, dtype=np.int64))
        if changed.size:
            for listener in list(self._listeners):
                listener(changed)

    # --- editing ---------------------------------------------------------------------

    def set_label(self, rows: Sequence[int], label: str, description: str = "") -> Step | None:
        """Give `rows` the label 'cat' or 'dog' (the file's own label clears the override)."""
        if label not in CLASSES:
            raise ValueError(f"label must be one of {CLASSES}, not {label!r}")
        self.refresh()  # what other windows or processes did counts
        code = LABEL_CODES[label]
        # test images have no label: what they are is what the submission predicts
        targets = [r for r in rows if self.label[r] != code and self.split[r] == 0]
        text = description or _describe(f"Label as {label}", targets, self.paths)
        return self._apply(text, [(r, "label", label) for r in targets])

    def set_excluded(
        self, rows: Sequence[int], excluded: bool, description: str = ""
    ) -> Step | None:
        self.refresh()  # what other windows or processes did counts
        # only training uses exclusions: a test image is always predicted
        targets = [r for r in rows if self.excluded[r] != excluded and self.split[r] == 0]
        text = description or _describe("Exclude" if excluded else "Include", targets, self.paths)
        return self._apply(text, [(r, "excluded", "1" if excluded else "0") for r in targets])

    def toggle_excluded(self, rows: Sequence[int]) -> Step | None:
        """Exclude the training rows among `rows`, or include them again when all are
        excluded already (as the other windows left them)."""
        self.refresh()
        train = [r for r in rows if self.split[r] == 0]
        return self.set_excluded(train, not all(self.excluded[r] for r in train))

    def set_flagged(self, rows: Sequence[int], flagged: bool) -> Step | None:
        self.refresh()  # what other windows or processes did counts
        targets = [r for r in rows if self.flagged[r] != flagged]
        text = _describe("Flag" if flagged else "Unflag", targets, self.paths)
        return self._apply(text, [(r, "flagged", "1" if flagged else "0") for r in targets])

    def set_note(self, row: int, note: str) -> Step | None:
        self.refresh()  # what other windows or processes did counts
        if note == self.note(row):
            return None
        return self._apply(f"Note on {_short(self.paths[row])}", [(row, "note", note)])

    def _current(self, row: int, field: str) -> str | None:
        if field == "label":
            return LABELS[self.label[row]]
        if field == "note":
            return self.note(row)
        return "1" if getattr(self, field)[row] else "0"

    def _apply(self, description: str, changes: list[tuple[int, str, str | None]]) -> Step | None:
        """Record `changes` (row, field, new value) as one undoable step, committed."""
        if not changes:
            return None
        with self._lock:
            now = time.time()
            old = [(r, f, self._current(r, f), v) for r, f, v in changes]
            with self._transaction(r for r, *_ in changes):
                # a new edit ends this session's redo history (not another window's)
                mine, others = self._ownership()
                self._db.execute(
                    f"DELETE FROM changes WHERE step_id IN (SELECT id FROM steps WHERE "
                    f"undone = 1 AND {mine})",
                    others,
                )
                self._db.execute(f"DELETE FROM steps WHERE undone = 1 AND {mine}", others)
                step_id = self._db.execute(
                    "INSERT INTO steps(description, time, session) VALUES (?, ?, ?)",
                    (description, now, self.session),
                ).lastrowid
                self._db.executemany(
                    "INSERT INTO changes VALUES (?, ?, ?, ?, ?)",
                    ((step_id, int(self.ids[r]), f, o, n) for r, f, o, n in old),
                )
                self._write_values([(r, f, n) for r, f, _o, n in old], now)
        self._notify(r for r, *_ in changes)
        return Step(int(step_id), description, len({r for r, *_ in changes}))

    @contextmanager
    def _transaction(self, rows: Iterable[int] = ()) -> Iterator[None]:
        """One write transaction under the lock: committed when the block ends, else rolled
        back, with the mirror of `rows` (changed inside the block) read back from the file."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise StoreWriteError(self.path, error) from error
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException as error:
                # SQLite may have rolled back already (a full disk does): nothing to undo then
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self._reload_rows(list(rows))
                if isinstance(error, sqlite3.OperationalError):
                    raise StoreWriteError(self.path, error) from error
                raise

    def _write_values(self, values: list[tuple[int, str, str | None]], now: float) -> None:
        """Write field values to the edits table and the mirror (inside a transaction)."""
        for row, field, value in values:
            sample_id = int(self.ids[row])
            if field == "label":
                stored = None if value == LABELS[self.file_label[row]] else value
            elif field == "note":
                stored = value or ""
            else:
                stored = int(value or 0)
            self._db.execute(
                "INSERT INTO edits(sample_id, time) VALUES (?, ?) "
                "ON CONFLICT(sample_id) DO UPDATE SET time = excluded.time",
                (sample_id, now),
            )
            self._db.execute(
                f"UPDATE edits SET {field} = ? WHERE sample_id = ?", (stored, sample_id)
            )
            if field == "label":
                self.label[row] = LABEL_CODES[value]
            elif field == "note":
                self.noted[row] = bool(value)
            else:
                getattr(self, field)[row] = bool(int(value or 0))

    def _reload_edits(self) -> None:
        """Every row's label, exclusion, flag and note read back from the file."""
        self.label[:] = self.file_label
        self.excluded[:] = False
        self.flagged[:] = False
        self.noted[:] = False
        for sample_id, label, excluded, flagged, note in self._db.execute(
            "SELECT sample_id, label, excluded, flagged, note FROM edits"
        ):
            row = self.row_of.get(sample_id)
            if row is None:
                continue
            if label:
                self.label[row] = LABEL_CODES[label]
            self.excluded[row], self.flagged[row], self.noted[row] = excluded, flagged, bool(note)

    def _reload_rows(self, rows: list[int]) -> None:
        for row in rows:
            found = self._db.execute(
                "SELECT label, excluded, flagged, note FROM edits WHERE sample_id = ?",
                (int(self.ids[row]),),
            ).fetchone()
            label, excluded, flagged, note = found or (None, 0, 0, "")
            self.label[row] = LABEL_CODES[label] if label else self.file_label[row]
            self.excluded[row], self.flagged[row], self.noted[row] = excluded, flagged, bool(note)

    def _ownership(self) -> tuple[str, list[str]]:
        """A SQL condition on steps for 'this session's, or of a session no longer open',
        and its parameters."""
        others = self._others()
        marks = ", ".join("?" * len(others))
        return (f"(session IS NULL OR session NOT IN ({marks}))" if others else "1"), others

    def _step(self, undone: bool) -> tuple[int, str] | None:
        """The step undo (or redo) would travel through: this session's own, never one
        another open window or process made."""
        mine, others = self._ownership()
        if undone:  # the step to redo: the oldest undone one
            query = f"SELECT id, description FROM steps WHERE undone = 1 AND {mine} ORDER BY id"
        else:
            query = (
                f"SELECT id, description FROM steps WHERE undone = 0 AND {mine} ORDER BY id DESC"
            )
        return self._db.execute(query + " LIMIT 1", others).fetchone()

    @property
    def can_undo(self) -> bool:
        return self._step(undone=False) is not None

    @property
    def can_redo(self) -> bool:
        return self._step(undone=True) is not None

    def undo_text(self) -> str | None:
        found = self._step(undone=False)
        return None if found is None else found[1]

    def redo_text(self) -> str | None:
        found = self._step(undone=True)
        return None if found is None else found[1]

    def step_rows(self, step_id: int) -> list[int]:
        """The rows a step changed."""
        found = self._db.execute(
            "SELECT DISTINCT sample_id FROM changes WHERE step_id = ?", (step_id,)
        ).fetchall()
        return sorted(self.row_of[s] for (s,) in found if s in self.row_of)

    def undo(self) -> Step | None:
        """Undo the latest step; None when there is nothing to undo."""
        return self._travel(undo=True)

    def redo(self) -> Step | None:
        return self._travel(undo=False)

    def _travel(self, undo: bool) -> Step | None:
        self.refresh()
        with self._lock:
            found = self._step(undone=not undo)
            if found is None:
                return None
            step_id, description = found
            changes = self._db.execute(
                "SELECT sample_id, field, old, new FROM changes WHERE step_id = ?", (step_id,)
            ).fetchall()
            if undo:
                changes.reverse()
            # a value another session has changed since is theirs now: left alone
            values = [
                (self.row_of[s], f, old if undo else new)
                for s, f, old, new in changes
                if s in self.row_of and self._current(self.row_of[s], f) == (new if undo else old)
            ]
            with self._transaction(r for r, *_ in values):
                self._write_values(values, time.time())
                self._db.execute("UPDATE steps SET undone = ? WHERE id = ?", (int(undo), step_id))
        self._notify(r for r, *_ in values)
        return Step(step_id, description, len({r for r, *_ in values}))

    def integrity_check(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    # --- exports ---------------------------------------------------------------------

    def effective_rows(self) -> np.ndarray:
        """Train rows used for training: labelled, not excluded, readable."""
        return np.flatnonzero((self.split == 0) & ~self.excluded & (self.label > 0))


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return True  # os.kill would end it there; a session is taken as open
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, owned by someone else
    return True


def _short(path: str) -> str:
    return path.rsplit(SEPARATOR, 1)[-1].rsplit("/", 1)[-1]


def _describe(verb: str, rows: Sequence[int], paths: Sequence[str]) -> str:
    if len(rows) == 1:
        return f"{verb} {_short(paths[rows[0]])}"
    return f"{verb} {len(rows):,} images"
