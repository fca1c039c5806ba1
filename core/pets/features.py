"""Backbone embeddings on disk: what the scan computes once, the label-issue ranking and the
training work reuse.

One SQLite file per dataset in the data directory (it is a cache: deleting it costs only a
rescan). Vectors are float16 blobs keyed by sample id and model (the weights file's stem).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core import paths

_SCHEMA = """
CREATE TABLE IF NOT EXISTS features(
    sample_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY(sample_id, model)
);
"""


def features_location(root: Path) -> Path:
    return paths.per_dataset_file("features", root)


class FeatureCache:
    """Embeddings per (sample id, model)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def put(self, model: str, sample_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store one batch (committed together)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float16)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO features VALUES (?, ?, ?)",
                    (
                        (int(s), model, v.tobytes())
                        for s, v in zip(sample_ids, vectors, strict=True)
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def ids(self, model: str) -> set[int]:
        with self._lock:
            found = self._db.execute("SELECT sample_id FROM features WHERE model = ?", (model,))
            return {s for (s,) in found}

    def get(self, model: str, sample_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(the ids that have a vector, their vectors as float32 (n, D)), in the order asked."""
        wanted = {int(s): i for i, s in enumerate(sample_ids)}
        with self._lock:
            found = self._db.execute(
                "SELECT sample_id, vector FROM features WHERE model = ?", (model,)
            ).fetchall()
        hits = sorted(((wanted[s], s, v) for s, v in found if s in wanted))
        if not hits:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.array([s for _i, s, _v in hits], dtype=np.int64)
        vectors = np.frombuffer(b"".join(v for _i, _s, v in hits), dtype=np.float16)
        return ids, vectors.reshape(len(hits), -1).astype(np.float32)

    def close(self) -> None:
        with self._lock:
            self._db.close()
