"""What the work on a pets dataset stores beside the user's edits, in the same SQLite file:
facts found while decoding each file, ImageNet scan results per model, and named scores per
image. `LabelStore` takes these methods from `StoredResults`, so they share its connection,
its transactions and its listeners."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.pets.store_connection import Connection


@dataclass(frozen=True)
class Facts:
    """What decoding learnt about a file: its size in bytes, image size, oddities, and the
    problem that stops it from being used (kind and sentence), if any."""

    bytes: int | None
    width: int | None
    height: int | None
    notes: str
    problem_kind: str | None
    problem: str | None


@dataclass(frozen=True)
class ScanTable:
    """One model's scan results over the store's rows: top-K ImageNet classes (-1 where
    not scanned), their probabilities, and the cat, dog and wild-cat probability masses."""

    model: str
    classes: np.ndarray  # (n, K) int16
    probs: np.ndarray  # (n, K) float32
    masses: np.ndarray  # (n, 3) float32: cat, dog, wild cat

    @property
    def scanned(self) -> np.ndarray:
        return (
            self.classes[:, 0] >= 0 if self.classes.shape[1] else np.zeros(len(self.classes), bool)
        )


@dataclass(frozen=True)
class ScanRecord:
    model: str
    backbone: str
    weights: str
    published: bool
    device: str
    started: float
    updated: float
    seconds: float
    images: int


class StoredResults:
    """Facts, scans and scores of a `LabelStore`'s rows (a base class of it; it needs the
    store's connection, row mapping, transactions and listeners)."""

    _db: Connection
    _lock: threading.RLock
    ids: np.ndarray
    row_of: dict[int, int]
    decode_notes: list[str]
    bytes: np.ndarray
    width: np.ndarray
    height: np.ndarray
    problem: list[str | None]
    unreadable: np.ndarray
    _transaction: Callable[..., AbstractContextManager[None]]
    _notify: Callable[[Iterable[int]], None]

    # --- facts found while decoding --------------------------------------------------

    def record_facts(self, items: Sequence[tuple[int, str, Facts]]) -> None:
        """Store (row, file stamp, Facts) for rows whose files were decoded; the grid shows
        problems as badges."""
        if not items:
            return
        with self._lock:
            with self._transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ((int(self.ids[r]), stamp, *astuple(f)) for r, stamp, f in items),
                )
            for row, _stamp, facts in items:
                self.decode_notes[row] = facts.notes or ""
                self.bytes[row] = -1 if facts.bytes is None else facts.bytes
                self.width[row] = facts.width or 0
                self.height[row] = facts.height or 0
                self.problem[row] = facts.problem_kind
                self.unreadable[row] = facts.problem_kind is not None
        self._notify(r for r, *_ in items)

    def known_stamps(self) -> dict[int, str]:
        """Row → the file stamp its facts were recorded for."""
        found = self._db.execute("SELECT sample_id, stamp FROM facts").fetchall()
        return {self.row_of[s]: stamp for s, stamp in found if s in self.row_of}

    # --- scores for the outlier and training work ------------------------------------

    def set_scores(self, name: str, rows: Sequence[int], values: Sequence[float]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?)",
                ((int(self.ids[r]), name, float(v)) for r, v in zip(rows, values, strict=True)),
            )
        self._notify(rows)

    def clear_scores(self, names: Sequence[str], rows: Sequence[int]) -> None:
        """Remove the scores `names` of `rows`."""
        if len(rows) == 0:
            return
        with self._transaction():
            self._db.executemany(
                "DELETE FROM scores WHERE sample_id = ? AND name = ?",
                ((int(self.ids[r]), name) for r in rows for name in names),
            )
        self._notify(rows)

    def scores(self, name: str) -> np.ndarray:
        """The score `name` per row, NaN where there is none."""
        out = np.full(len(self), np.nan)
        for sample_id, value in self._db.execute(
            "SELECT sample_id, value FROM scores WHERE name = ?", (name,)
        ):
            row = self.row_of.get(sample_id)
            if row is not None:
                out[row] = value
        return out

    def score_names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT name FROM scores ORDER BY name")]

    # --- ImageNet scan results -------------------------------------------------------

    def begin_scan(
        self, model: str, backbone: str, weights: str, published: bool, device: str
    ) -> None:
        """Record that a scan with `model` (a weights file's stem) starts or resumes."""
        now = time.time()
        with self._transaction():
            self._db.execute(
                "INSERT INTO scans(model, backbone, weights, published, device, started, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(model) DO UPDATE SET "
                "device = excluded.device, updated = excluded.updated",
                (model, backbone, weights, int(published), device, now, now),
            )

    def write_scan(
        self,
        model: str,
        rows: Sequence[int],
        classes: np.ndarray,
        probs: np.ndarray,
        masses: np.ndarray,
        seconds: float,
    ) -> None:
        """Store one batch of scan results: the top-K classes and probabilities per row and
        the (cat, dog, wild cat) probability masses, in one transaction."""
        records = [
            (
                int(self.ids[r]),
                model,
                " ".join(map(str, classes[i].tolist())),
                " ".join(f"{p:.6g}" for p in probs[i].tolist()),
                float(masses[i, 0]),
                float(masses[i, 1]),
                float(masses[i, 2]),
            )
            for i, r in enumerate(rows)
        ]
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO scan_results VALUES (?, ?, ?, ?, ?, ?, ?)", records
            )
            self._db.execute(
                "UPDATE scans SET updated = ?, images = images + ?, seconds = seconds + ? "
                "WHERE model = ?",
                (time.time(), len(records), seconds, model),
            )
        self._notify(rows)

    def scanned(self, model: str) -> np.ndarray:
        """Per row: whether `model` has scanned it."""
        out = np.zeros(len(self), dtype=bool)
        for (sample_id,) in self._db.execute(
            "SELECT sample_id FROM scan_results WHERE model = ?", (model,)
        ):
            row = self.row_of.get(sample_id)
            if row is not None:
                out[row] = True
        return out

    def scan_table(self, model: str) -> ScanTable:
        """Everything `model`'s scan stored, as arrays over the rows (-1 / NaN where a row
        was not scanned)."""
        found = self._db.execute(
            "SELECT sample_id, top_classes, top_probs, cat_mass, dog_mass, wild_cat_mass "
            "FROM scan_results WHERE model = ?",
            (model,),
        ).fetchall()
        pairs = [(self.row_of[r[0]], r) for r in found if r[0] in self.row_of]
        k = max((len(r[1].split()) for _row, r in pairs), default=0)
        n = len(self)
        classes = np.full((n, k), -1, dtype=np.int16)
        probs = np.full((n, k), np.nan, dtype=np.float32)
        masses = np.full((n, 3), np.nan, dtype=np.float32)
        if pairs:
            rows = np.array([row for row, _r in pairs])
            classes[rows] = np.array([r[1].split() for _row, r in pairs], dtype=np.int16)
            probs[rows] = np.array([r[2].split() for _row, r in pairs], dtype=np.float32)
            masses[rows] = np.array([r[3:6] for _row, r in pairs], dtype=np.float32)
        return ScanTable(model, classes, probs, masses)

    def scans(self) -> list[ScanRecord]:
        """The scans stored, the latest first."""
        return [
            ScanRecord(*r[:3], bool(r[3]), *r[4:])
            for r in self._db.execute(
                "SELECT s.model, s.backbone, s.weights, s.published, s.device, s.started, "
                "s.updated, s.seconds, (SELECT COUNT(*) FROM scan_results r "
                "WHERE r.model = s.model) FROM scans s ORDER BY s.updated DESC"
            )
        ]
