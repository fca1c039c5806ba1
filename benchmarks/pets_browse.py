"""Browsing 37,500 pet photos: listing, open to first paint, the first screen of thumbnails
(cold and from the disk cache), thumbnail throughput against a naive baseline, and the app's
peak memory with the whole folder scrolled end to end.

    python -m benchmarks.pets_browse [--data DIR] [--count N] [--real DIR]

`--data` holds the generated folder (made once: JPEGs 50–500 px a side, like the Kaggle
images; reused when it exists). `--real` adds the same GUI figures on a real folder such as
../shared/data/dogs_vs_cats. The GUI figures come from a fresh process each (cold caches,
honest peak memory).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.harness import Case, machine, table

ROOT = Path(__file__).resolve().parents[1]


def _make_one(job: tuple[str, int]) -> None:
    from tests.pets_data import jpeg_bytes, photo

    path, seed = job
    rng = random.Random(seed)
    width, height = rng.randint(50, 500), rng.randint(50, 500)
    if rng.random() < 0.6:  # most Kaggle photos have one side at 500 or close to it
        width, height = (
            (500, rng.randint(280, 500)) if rng.random() < 0.5 else (rng.randint(280, 500), 500)
        )
    Path(path).write_bytes(jpeg_bytes(photo(width, height, seed)))


def make_folder(root: Path, count: int) -> Path:
    """A Kaggle-layout folder: two thirds train (cats and dogs), one third test."""
    marker = root / f".complete-{count}"
    if marker.exists():
        return root
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    train = count * 2 // 3
    jobs = [
        (str(root / "train" / f"{'cat' if i % 2 else 'dog'}.{i // 2}.jpg"), i) for i in range(train)
    ]
    jobs += [(str(root / "test" / f"{i + 1}.jpg"), train + i) for i in range(count - train)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_make_one, jobs, chunksize=256))
    marker.touch()
    return root


def listing_seconds(root: Path) -> float:
    from core.jobs import CancelToken, drive
    from core.pets.dataset import list_dataset

    start = time.perf_counter()
    drive(list_dataset(root, CancelToken()), CancelToken())
    return time.perf_counter() - start


def throughput(root: Path, count: int, size: int = 160) -> list[Case]:
    """Thumbnails per second: Pillow open + thumbnail() on one thread (baseline) against
    Labelscope's loader (reduced-size decoding, a thread per core) and its disk cache."""
    import threading

    from PIL import Image

    from core.pets.sources import Source
    from core.pets.thumbnails import DiskCache, ThumbnailLoader

    paths = sorted(p.relative_to(root).as_posix() for p in (root / "train").iterdir())[:count]

    def naive() -> float:
        start = time.perf_counter()
        for path in paths:
            with Image.open(root / path) as image:
                image.thumbnail((size, size))
        return time.perf_counter() - start

    def ours(workers: int, cache: DiskCache | None) -> float:
        done = threading.Event()
        seen = []

        def ready(_thumb: object) -> None:
            seen.append(1)
            if len(seen) == len(paths):
                done.set()

        loader = ThumbnailLoader(Source(root), ready, cache, workers=workers)
        start = time.perf_counter()
        for path in paths:
            loader.request(path, size)
        done.wait()
        elapsed = time.perf_counter() - start
        loader.close()
        return elapsed

    with tempfile.TemporaryDirectory() as scratch:
        cache = DiskCache(Path(scratch) / "thumbs.sqlite")
        ours(os.cpu_count() or 1, cache)  # fills the disk cache
        cases = {
            "Pillow open + thumbnail(), 1 thread": [naive() for _ in range(3)],
            "Labelscope loader, 1 thread": [ours(1, None) for _ in range(3)],
            f"Labelscope loader, {os.cpu_count()} threads": [
                ours(os.cpu_count() or 1, None) for _ in range(3)
            ],
            "Labelscope, from the disk cache": [ours(os.cpu_count() or 1, cache) for _ in range(3)],
        }
    return [Case(name, [t / len(paths) * 1000 for t in times]) for name, times in cases.items()]


def gui_run(root: Path) -> dict[str, float]:
    """In this (fresh) process: open `root` in the real window and time it; scroll end to end."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEvent, QObject, QRect
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from gui.main_window import MainWindow

    figures: dict[str, float] = {}

    class PaintWatch(QObject):
        painted_at: float | None = None

        def eventFilter(self, _obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and self.painted_at is None and armed[0]:
                self.painted_at = time.perf_counter()
            return False

    armed = [False]

    def spin_until(condition, timeout: float = 60.0) -> float:
        end = time.perf_counter() + timeout
        while not condition() and time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter()

    def visible_rows(browser) -> list[str]:
        view = browser.view
        area = QRect(0, 0, view.viewport().width(), view.viewport().height())
        found = []
        for row in range(browser.proxy.rowCount()):
            index = browser.proxy.index(row, 0)
            rect = view.visualRect(index)
            if rect.top() > area.bottom():
                break
            if rect.intersects(area):
                found.append(browser.store.paths[int(browser.proxy.source_rows()[row])])
        return found

    def first_screen(label: str) -> None:
        window = MainWindow(save_settings=False)
        window.resize(1280, 800)
        window.show()
        spin_until(lambda: window.isVisible(), 5)
        spin_until(lambda: not window.runner.active(), 30)  # the formula model loads at start
        browser = window.workbenches["pets"].browser
        watch = PaintWatch()
        browser.view.viewport().installEventFilter(watch)
        window.workbenches["pets"].dataset_opened.connect(lambda _root: armed.__setitem__(0, True))
        start = time.perf_counter()
        window.workbenches["pets"].open_dataset(str(root))
        painted = spin_until(lambda: watch.painted_at is not None)
        figures[f"{label}: open to first paint (s)"] = painted - start
        shown = visible_rows(browser)
        size = browser.model.thumb_size
        done = spin_until(lambda: all(browser.provider.known(p, size) for p in shown))
        figures[f"{label}: first screen of thumbnails (ms)"] = (done - painted) * 1000
        figures[f"{label}: thumbnails on the first screen"] = len(shown)
        if label == "cold":
            bar = browser.view.verticalScrollBar()
            step = max(1, browser.view.viewport().height())
            begin = time.perf_counter()
            last = [-1, time.perf_counter()]

            def laid_out() -> bool:  # the maximum stops growing once every batch is laid out
                if bar.maximum() != last[0]:
                    last[:] = [bar.maximum(), time.perf_counter()]
                return time.perf_counter() - last[1] > 0.5

            spin_until(laid_out, 60)
            screens = 0
            value = 0
            while True:  # the maximum grows while the view lays out its batches
                screens += 1
                bar.setValue(value)
                app.processEvents()
                rows = visible_rows_at(browser, value)
                spin_until(lambda rows=rows: all(browser.provider.known(p, size) for p in rows), 10)
                if value >= bar.maximum():
                    break
                value = min(value + step, bar.maximum())
            figures["scroll end to end, every screen loaded (s)"] = time.perf_counter() - begin
            figures["screens scrolled"] = screens
            figures["thumbnail memory (MB)"] = browser.provider.memory() / 1e6
        window.close()
        app.processEvents()
        armed[0] = False

    def visible_rows_at(browser, _value: int) -> list[str]:
        """The cells in the viewport now: from the first cell under its top edge on."""
        from PySide6.QtCore import QPoint

        view = browser.view
        area = view.viewport().rect()
        first = -1
        for y in range(0, view.gridSize().height() + 1, 4):
            for x in range(0, view.gridSize().width() + 1, 4):
                index = view.indexAt(QPoint(x, y))
                if index.isValid():
                    first = index.row()
                    break
            if first >= 0:
                break
        rows = []
        for row in range(max(first, 0), min(max(first, 0) + 200, browser.proxy.rowCount())):
            rect = view.visualRect(browser.proxy.index(row, 0))
            if rect.top() > area.bottom():
                break
            if rect.intersects(area):
                rows.append(browser.store.paths[int(browser.proxy.source_rows()[row])])
        assert rows, "no cell found in the viewport"
        return rows

    floor_window = MainWindow(save_settings=False)
    floor_window.show()
    spin_until(lambda: not floor_window.runner.active(), 30)
    figures["torch loaded by the window"] = "torch" in sys.modules
    figures["memory floor: Qt and the empty window (MB)"] = _rss_mb()
    floor_window.close()
    app.processEvents()
    first_screen("cold")
    first_screen("reopened, disk cache")
    figures["memory after scrolling end to end (MB)"] = _rss_mb()
    figures["peak memory of the app (MB)"] = _rss_mb(peak=True)
    figures["torch loaded after browsing"] = "torch" in sys.modules
    figures["peak memory above the floor (MB)"] = (
        figures["peak memory of the app (MB)"]
        - figures["memory floor: Qt and the empty window (MB)"]
    )
    return figures


def _rss_mb(peak: bool = False) -> float:
    """Resident memory now (or the peak) in MB, from /proc where there is one."""
    try:
        status = Path("/proc/self/status").read_text()
        key = "VmHWM:" if peak else "VmRSS:"
        return int(status.split(key)[1].split()[0]) / 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gui_figures(root: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(
            os.environ,
            QT_QPA_PLATFORM="offscreen",
            LABELSCOPE_DATA_DIR=str(Path(scratch) / "data"),
            XDG_CONFIG_HOME=scratch,
        )
        store = root / ".labelscope"
        if store.exists():  # a first open: no label store yet
            for child in store.iterdir():
                child.unlink()
            store.rmdir()
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.pets_browse", "--gui-run", str(root)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "labelscope-pets-37500"
    )
    parser.add_argument("--count", type=int, default=37500)
    parser.add_argument("--real", type=Path, help="a real Dogs vs. Cats folder (copied first)")
    parser.add_argument("--throughput-files", type=int, default=2000)
    parser.add_argument("--gui-run", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.gui_run:
        print(json.dumps(gui_run(options.gui_run)), flush=True)
        # skip interpreter teardown: PySide's objects freed by the final garbage collection
        # after QApplication is gone can abort the process, which would lose nothing here
        # but the exit status
        os._exit(0)

    start = time.perf_counter()
    root = make_folder(options.data, options.count)
    print(f"folder {root} ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(f"## Pets browsing\n\n{time.strftime('%Y-%m-%d')} · {machine()}\n")
    print(f"Listing {options.count:,} files: {listing_seconds(root) * 1000:.0f} ms (median of 1)\n")
    cases = throughput(root, options.throughput_files)
    print(
        table(
            f"Thumbnail time per image ({options.throughput_files:,} files, 160 px)",
            cases,
            "Pillow open + thumbnail(), 1 thread",
            "ms",
        )
    )
    print()
    folders = [("generated", root)]
    if options.real:
        with tempfile.TemporaryDirectory() as scratch:
            import shutil

            copy = Path(scratch) / "real"
            shutil.copytree(options.real, copy)
            folders.append(("real", copy))
            _print_gui(folders)
    else:
        _print_gui(folders)


def _print_gui(folders: list[tuple[str, Path]]) -> None:
    results = {name: gui_figures(path) for name, path in folders}
    names = list(results)
    print("| figure | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for key in results[names[0]]:
        print(
            f"| {key} | "
            + " | ".join(f"{results[n].get(key, float('nan')):,.2f}" for n in names)
            + " |"
        )


if __name__ == "__main__":
    main()
