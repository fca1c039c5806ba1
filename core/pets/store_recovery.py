"""A label store damaged on disk (a half-copied file, a disk error, a crash of the disk
itself): found on open, kept aside under a name that says so, and what can still be read
of it copied into a fresh store. The user's images are never touched; only the store file
is, and it is renamed, never deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Tables copied, parents first; `sessions` (open windows) is not worth keeping.
TABLES = (
    "meta",
    "samples",
    "edits",
    "steps",
    "changes",
    "facts",
    "scan_results",
    "scans",
    "scores",
)
#: Rows that name a sample: kept only when the sample itself was recovered, or a new sample
#: could later take the lost one's id and inherit its edits.
_BY_SAMPLE = {
    "edits": "sample_id",
    "changes": "sample_id",
    "facts": "sample_id",
    "scan_results": "sample_id",
    "scores": "sample_id",
}
_BATCH = 2000
_DAMAGE_WORDS = ("malformed", "not a database", "corrupt", "file is encrypted")


@dataclass
class Recovery:
    """What was kept aside, and what of it was copied into the new store."""

    damaged: Path  # where the damaged file now is
    reason: str
    backup: str = ""  # when the backup the new store started from was made, if one was
    copied: dict[str, int] = field(default_factory=dict)  # table → rows recovered
    unreadable: dict[str, str] = field(default_factory=dict)  # table → why not (all of it)
    partial: set[str] = field(default_factory=set)  # tables read only in part
    orphans: int = 0  # rows dropped because their sample was lost
    held: dict[str, int] = field(default_factory=dict)  # table → rows in the new store

    def describe(self) -> str:
        start = f"its backup of {self.backup} and " if self.backup else ""
        held = self.held
        text = (
            f"The label store was damaged ({self.reason}). It was kept aside as "
            f"{self.damaged.name}, and a new one was made from {start}what could still be "
            f"read of it: it holds {held.get('samples', 0):,} images, "
            f"{held.get('edits', 0):,} edited images, {held.get('steps', 0):,} undo steps and "
            f"{held.get('scan_results', 0):,} scan results."
        )
        lost = sorted(set(self.unreadable) | self.partial)
        if lost:
            parts = [t if t in self.unreadable else f"{t} (in part)" for t in lost]
            text += f" Unreadable in the damaged file: {', '.join(parts)}"
            text += f"; those are as they were at {self.backup}." if self.backup else "."
        if self.orphans:
            text += f" {self.orphans:,} rows of images whose record was lost were dropped."
        if not lost and not self.orphans:
            text += " Nothing was lost."
        return text + " Your images were not touched."


def damage(path: Path) -> str | None:
    """Why the store at `path` is damaged, or None when SQLite finds it sound (its quick
    check: every page and index, without comparing indexes with their tables). Errors that
    say nothing of the file (locked, unreadable folder) are not damage: None."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        found = db.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as error:
        text = str(error)
        return text if any(w in text.lower() for w in _DAMAGE_WORDS) else None
    finally:
        db.close()
    messages = [row[0] for row in found]
    return None if messages == ["ok"] else "; ".join(messages)


def backup_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.backup")


def back_up(db: sqlite3.Connection, path: Path) -> None:
    """Copy the open, sound store `db` (whose file is `path`) to its backup file, through
    SQLite's online backup and a rename, so a crash mid-copy leaves the last backup whole."""
    target = backup_path(path)
    partial = target.with_name(target.name + ".partial")
    copy = sqlite3.connect(partial)
    try:
        db.backup(copy)
    finally:
        copy.close()
    os.replace(partial, target)


def salvage(path: Path, schema: str, reason: str) -> Recovery:
    """Move the damaged store at `path` aside (with its journal files) and build a new one:
    its last backup (when sound), overlaid with every row of the damaged file that can
    still be read, which are newer."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{aside}{suffix}")
    recovery = Recovery(aside, reason)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        copy = Path(scratch) / "damaged.sqlite"  # read a copy: the kept file stays as it was
        for suffix in ("", "-wal"):
            if Path(f"{aside}{suffix}").exists():
                shutil.copyfile(f"{aside}{suffix}", f"{copy}{suffix}")
        fresh = Path(scratch) / "fresh.sqlite"
        backup = backup_path(path)
        if backup.exists() and damage(backup) is None:
            shutil.copyfile(backup, fresh)
            recovery.backup = time.strftime(
                "%Y-%m-%d %H:%M", time.localtime(backup.stat().st_mtime)
            )
        target = sqlite3.connect(fresh, isolation_level=None)
        target.executescript(schema)
        try:
            source = sqlite3.connect(copy)
        except sqlite3.Error as error:
            recovery.unreadable = {t: str(error) for t in TABLES}
        else:
            for table in TABLES:
                _copy_table(source, target, table, recovery)
            source.close()
        recovery.orphans = _drop_orphans(target)
        recovery.held = {
            table: target.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES
        }
        target.close()
        os.replace(fresh, path)
    return recovery


def _copy_table(
    source: sqlite3.Connection, target: sqlite3.Connection, table: str, recovery: Recovery
) -> None:
    """Every row that can be read: forwards until the damage, then backwards from the end
    until it again (rows past a damaged page are often still readable that way)."""
    copied = 0
    broken = False
    for order in ("ASC", "DESC"):
        try:
            for columns, rows in _read(source, table, order):
                marks = ", ".join("?" * len(columns))
                names = ", ".join(columns)
                before = target.total_changes
                target.execute("BEGIN")
                target.executemany(f"INSERT OR IGNORE INTO {table}({names}) VALUES ({marks})", rows)
                target.execute("COMMIT")
                copied += target.total_changes - before
            if not broken:
                break  # read to the end the first time: nothing to read backwards
        except sqlite3.DatabaseError as error:
            with contextlib.suppress(sqlite3.Error):
                target.execute("ROLLBACK")
            if copied == 0 and order == "DESC":
                if table == "samples":
                    copied = _samples_from_index(source, target)
                if not copied:
                    recovery.unreadable[table] = str(error)
                    return
            broken = True
    if broken and table == "samples":
        copied += _samples_from_index(source, target)
    recovery.copied[table] = copied
    if broken:
        recovery.partial.add(table)


def _samples_from_index(source: sqlite3.Connection, target: sqlite3.Connection) -> int:
    """Which id each image had, from the index on the samples' paths, which often survives
    when the table's own pages do not: enough to keep each edit with its image (the split
    and the file's label come back from the listing when the store is opened)."""
    try:
        rows = source.execute(
            "SELECT id, path FROM samples INDEXED BY sqlite_autoindex_samples_1 ORDER BY path"
        ).fetchall()
    except sqlite3.DatabaseError:
        return 0
    before = target.total_changes
    target.executemany(
        "INSERT OR IGNORE INTO samples(id, split, path, file_label) VALUES (?, 'train', ?, NULL)",
        rows,
    )
    return target.total_changes - before


def _read(
    source: sqlite3.Connection, table: str, order: str
) -> Iterator[tuple[list[str], list[tuple]]]:
    cursor = source.execute(f"SELECT * FROM {table} ORDER BY rowid {order}")
    columns = [d[0] for d in cursor.description]
    while rows := cursor.fetchmany(_BATCH):
        yield columns, rows


def _drop_orphans(target: sqlite3.Connection) -> int:
    dropped = 0
    for table, column in _BY_SAMPLE.items():
        dropped += target.execute(
            f"DELETE FROM {table} WHERE {column} NOT IN (SELECT id FROM samples)"
        ).rowcount
    target.execute("DELETE FROM changes WHERE step_id NOT IN (SELECT id FROM steps)")
    return dropped
