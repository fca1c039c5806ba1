"""Renders the Pets screenshots of the README (offscreen) from a real scan of the sample
Kaggle images beside the project, with the installed EfficientNet-Lite0 weights:

    python docs/images/pets_screenshots.py [--data ../shared/data/dogs_vs_cats]

The dataset is a temporary folder of links (the images stay where they are): the 1,000 train
images and the 24 known outliers as train/, the 150 test images as test1/.

pets.png: the Outliers grid with the inspector on a logo; pets-scan.png: the Scan tab after
the scan; pets-train.png: the Train tab after a features run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

HERE = Path(__file__).resolve().parent


def linked_dataset(data: Path, folder: Path) -> Path:
    train, test = folder / "train", folder / "test1"
    train.mkdir(parents=True)
    test.mkdir()
    for path in [*sorted((data / "train").glob("*.jpg")), *(data / "outliers").rglob("*.jpg")]:
        (train / path.name).symlink_to(path.resolve())
    for path in sorted((data / "test1").glob("*.jpg")):
        (test / path.name).symlink_to(path.resolve())
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/dogs_vs_cats")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="labelscope-shots-"))
    os.environ["LABELSCOPE_DATA_DIR"] = str(scratch / "data")
    app = QApplication([])
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(scratch))
    from gui.app import configure_identity
    from gui.main_window import MainWindow

    configure_identity()

    def wait(condition, seconds: float = 600.0) -> None:
        end = time.monotonic() + seconds
        while not condition() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    def settle(seconds: float = 1.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    window = MainWindow(save_settings=False)
    window.resize(1400, 900)
    window.show()
    pets = window.workbenches["pets"]
    opened = []
    pets.dataset_opened.connect(lambda *_: opened.append(True))
    window.workbenches["pets"].open_dataset(
        str(linked_dataset(args.data, scratch / "dogs_vs_cats"))
    )
    wait(lambda: bool(opened))
    scan = pets.scan
    pets.tabs.setCurrentWidget(pets.scan_page)
    scan.start()
    wait(lambda: scan.job is None)
    settle()
    window.grab().save(str(HERE / "pets-scan.png"))

    scan.show_buttons["outlier"].click()
    browser = pets.browser
    store = pets.store
    settle(3.0)  # thumbnails
    browser.select_rows([store.row_for_path("train/cat.4688.jpg")])
    settle(2.0)
    window.grab().save(str(HERE / "pets.png"))

    train = pets.train
    pets.tabs.setCurrentWidget(pets.train_page)
    train.mode.setCurrentIndex(train.mode.findData("features"))
    train.start()
    wait(lambda: train.job is None)
    settle()
    window.resize(1400, 1000)
    settle()
    window.grab().save(str(HERE / "pets-train.png"))
    window.close()
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("pets*.png"))))


if __name__ == "__main__":
    main()
