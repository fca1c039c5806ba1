"""Thumbnails: decoded by a pool of threads, newest request first, cached on disk.

The disk cache is one SQLite file per dataset in the per-user data directory, keyed by the
sample's path, its size and its modification stamp and the thumbnail size, so a changed file
is decoded again. Problems are cached too: a broken file is not re-read on every scroll.
Nothing here knows about Qt; results go to a callback on the worker thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path

import cv2
import numpy as np

from core import paths
from core.images import ImageProblem
from core.jobs import CancelToken, Progress
from core.pets.image_decoding import decode_pet
from core.pets.results import Facts
from core.pets.sources import Source, SourceError

#: Thumbnail sizes decoded (longest side); the grid scales the nearest larger one.
SIZES = (96, 160, 256)
_JPEG_QUALITY = 88


def size_bucket(side: int) -> int:
    """The decoded size to use for thumbnails shown `side` pixels wide."""
    return next((s for s in SIZES if s >= side), SIZES[-1])


@dataclass(frozen=True)
class Thumbnail:
    """A decoded thumbnail (None when the file is a problem) and what was learnt about it."""

    path: str
    size: int
    image: np.ndarray | None
    stamp: str  # the file's change stamp, '' when it is missing
    facts: Facts


def cache_location(root: Path) -> Path:
    return paths.per_dataset_file("thumbnails", root)


class DiskCache:
    """Encoded thumbnails in SQLite. Losing it costs only time, so writes are not synced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError:  # a damaged cache is thrown away, never an error
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE IF NOT EXISTS thumbs(key TEXT PRIMARY KEY, data BLOB, bytes INTEGER, "
            "width INTEGER, height INTEGER, notes TEXT, problem_kind TEXT, problem TEXT)"
        )
        return db

    @staticmethod
    def key(path: str, stamp: str, size: int) -> str:
        return f"{size}|{stamp}|{path}"

    def get(self, path: str, stamp: str, size: int) -> Thumbnail | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data, bytes, width, height, notes, problem_kind, problem FROM thumbs "
                "WHERE key = ?",
                (self.key(path, stamp, size),),
            ).fetchone()
        if row is None:
            return None
        data, *facts = row
        image = None
        if data is not None:
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if decoded is None:
                return None
            image = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        return Thumbnail(path, size, image, stamp, Facts(*facts))

    def put(self, thumb: Thumbnail) -> None:
        data = None
        if thumb.image is not None:
            ok, encoded = cv2.imencode(
                ".jpg",
                cv2.cvtColor(thumb.image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY],
            )
            data = encoded.tobytes() if ok else None
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO thumbs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.key(thumb.path, thumb.stamp, thumb.size), data, *astuple(thumb.facts)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def make_thumbnail(source: Source, path: str, size: int, cache: DiskCache | None) -> Thumbnail:
    """The thumbnail of `path` at `size`: from the cache if it is fresh, else decoded.
    Only the grid's sizes are cached; larger views are decoded each time."""
    if size not in SIZES:
        cache = None
    try:
        file_size, stamp = source.size_and_stamp(path)
    except (SourceError, KeyError) as error:
        detail = error.detail if isinstance(error, SourceError) else "missing from the zip"
        return Thumbnail(path, size, None, "", _problem(None, "missing", detail))
    if cache is not None:
        found = cache.get(path, stamp, size)
        if found is not None:
            return found
    try:
        decoded = decode_pet(source.read(path), path, size)
        facts = Facts(
            file_size, decoded.width, decoded.height, "; ".join(decoded.notes), None, None
        )
        thumb = Thumbnail(path, size, decoded.image, stamp, facts)
    except (SourceError, ImageProblem) as error:
        thumb = Thumbnail(path, size, None, stamp, _problem(file_size, error.kind, error.detail))
    if cache is not None:
        cache.put(thumb)
    return thumb


def _problem(file_size: int | None, kind: str, detail: str) -> Facts:
    return Facts(file_size, None, None, "", kind, detail)


class ThumbnailLoader:
    """Decodes requested thumbnails on worker threads, the most recent request first (the
    user sees what they scrolled to last), and hands each to `on_ready` on that thread."""

    def __init__(
        self,
        source: Source,
        on_ready: Callable[[Thumbnail], None],
        cache: DiskCache | None = None,
        workers: int | None = None,
    ) -> None:
        self.source = source
        self.cache = cache
        self.on_ready = on_ready
        self._pending: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._busy: set[tuple[str, int]] = set()
        self._condition = threading.Condition()
        self._closed = False
        count = workers or max(1, min(8, os.cpu_count() or 1))
        self._threads = [
            threading.Thread(target=self._work, name=f"thumbnails {i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def request(self, path: str, size: int) -> None:
        key = (path, size)
        with self._condition:
            if self._closed or key in self._busy:
                return
            self._pending[key] = None
            self._pending.move_to_end(key)
            self._condition.notify()

    def drop_pending(self) -> None:
        """Forget requests not yet started (the user scrolled past them)."""
        with self._condition:
            self._pending.clear()

    def pending(self) -> int:
        with self._condition:
            return len(self._pending) + len(self._busy)

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                key, _ = self._pending.popitem(last=True)
                self._busy.add(key)
            try:
                thumb = make_thumbnail(self.source, key[0], key[1], self.cache)
                if not self._closed:
                    self.on_ready(thumb)
            finally:
                with self._condition:
                    self._busy.discard(key)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the workers (a decode in progress finishes) and join them."""
        with self._condition:
            self._closed = True
            self._pending.clear()
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout)


def check_images(
    source: Source,
    images: Sequence[str],
    token: CancelToken,
    on_batch: Callable[[list[Thumbnail]], None] | None = None,
    workers: int | None = None,
) -> Iterator[Progress]:
    """Job: decode every image (at a small size, which finds every problem but costs
    little) on a pool of threads; returns the list of Thumbnails that are problems.

    `on_batch` receives each batch of results (to record facts as they come)."""
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    problems: list[Thumbnail] = []
    total = len(images)
    batch = 256
    yield Progress(0, total, f"Checking {total:,} images")
    with ThreadPoolExecutor(workers, thread_name_prefix="check") as pool:
        for start in range(0, total, batch):
            token.raise_if_cancelled()
            chunk = images[start : start + batch]
            results = list(pool.map(lambda p: make_thumbnail(source, p, 32, None), chunk))
            problems += [r for r in results if r.facts.problem_kind is not None]
            if on_batch is not None:
                on_batch(results)
            done = start + len(chunk)
            yield Progress(
                done, total, f"Checked {done:,} of {total:,} images", {"problems": len(problems)}
            )
    return problems
