"""The Pets workbench: opening the Dogs vs. Cats data and what it holds."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core import devices
from core.pets.dataset import DatasetListing
from core.pets.explore import explore
from core.pets.labelstore import LabelStore, open_store
from core.pets.runs import LOSS_SCORE
from core.pets.thumbnails import DiskCache, cache_location
from gui.pets.browser import PetsBrowser
from gui.pets.explore import ExplorePanel
from gui.pets.overview import DatasetOverview, EmptyState
from gui.pets.scan_panel import ScanPanel
from gui.pets.train_panel import TrainPanel
from gui.settings import Settings
from gui.widgets.common import make_action, scrolling
from gui.workbench import MenuEntry, Workbench
from gui.workers import JobHandle, JobRunner

#: How often an open dataset looks for edits other windows or processes committed.
REFRESH_MS = 1000


class PetsWorkbench(Workbench):
    """Pets: the empty state until a dataset is open, then its images, overview and plots."""

    name = "pets"
    title = "&Pets"
    tip = "Dogs vs. Cats: browse, clean, train, submit"

    dataset_opened = Signal(str)  # the folder, once listed and its store open

    def __init__(self, runner: JobRunner, settings: Settings, parent: QWidget | None = None):
        super().__init__(runner, settings, parent)
        self.listing: DatasetListing | None = None
        self.store: LabelStore | None = None
        self._measure_job: JobHandle | None = None
        self.empty = EmptyState()
        self.overview = DatasetOverview()
        self.browser = PetsBrowser()
        self.explore = ExplorePanel()
        self.scan = ScanPanel(runner)
        self.scan_page = scrolling(self.scan)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("petsTabs")
        self.tabs.addTab(self.browser, "Images")
        self.tabs.addTab(self.scan_page, "Scan")
        self.train = TrainPanel(runner)
        self.train_page = scrolling(self.train)
        self.tabs.addTab(self.train_page, "Train")
        self.tabs.addTab(self.explore, "Explore")
        self.tabs.addTab(self.overview, "Files")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(self.tabs)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        self.counts_label = QLabel()
        self.counts_label.setObjectName("petsCounts")
        self.counts_label.setMinimumWidth(1)  # long counts are clipped, never widen the window
        self._make_actions()
        self.empty.open_requested.connect(self.open_dataset_dialog)
        self.empty.open_zip_requested.connect(self.open_zip_dialog)
        self.empty.recent_requested.connect(self.open_dataset)
        self.dataset_opened.connect(self._remember_folder)
        self.browser.counts_changed.connect(self.counts_label.setText)
        self.browser.message.connect(self.say)
        self.browser.problem.connect(self.problem)
        self.explore.measure_requested.connect(self.measure_images)
        self.scan.flags_changed.connect(self.browser.set_scan_view)
        self.scan.show_requested.connect(self.show_flag)
        self.scan.problem.connect(self.problem)
        self.scan.message.connect(self.say)
        self.train.problem.connect(self.problem)
        self.train.message.connect(self.say)
        self.train.show_worst.connect(self.show_worst_losses)
        self.tabs.currentChanged.connect(self._tab_changed)
        # edits another window or process commits to the same dataset show up here
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self._refresh)

    def _make_actions(self) -> None:
        action = partial(make_action, self)
        self.open_dataset_action = action(
            "Open &dataset folder…",
            self.open_dataset_dialog,
            QKeySequence.StandardKey.Open,
            "Open a Dogs vs. Cats folder: the download's, or unzipped train/ and test/",
        )
        self.open_zip_action = action(
            "Open dataset &zip…",
            self.open_zip_dialog,
            "Ctrl+Alt+O",
            "Open the downloaded Dogs vs. Cats zip itself, without unzipping it",
        )
        self.recent_menu = QMenu("Open &recent", self)
        self.measure_action = action(
            "&Measure every image",
            self.measure_images,
            tip="Decode every image once, in the background: sizes for the plots, problems found",
        )
        self.measure_action.setEnabled(False)

    # ------------------------------------------------------------ the contract
    def file_actions(self) -> list[MenuEntry]:
        return [self.open_dataset_action, self.open_zip_action, self.recent_menu]

    def edit_actions(self) -> list[MenuEntry]:
        entries: list[MenuEntry] = []
        for action in self.browser.edit_actions:
            entries.append(action)
            if action is self.browser.redo_action:
                entries.append(None)
        return entries

    def tool_actions(self) -> list[MenuEntry]:
        return [self.measure_action]

    def status_widgets(self) -> list[QWidget]:
        return [self.counts_label]

    def set_device(self, device: devices.Device) -> None:
        """The app's device (Tools ▸ Device): the scan and training use it unless their
        panel chooses its own."""
        super().set_device(device)
        self.scan.device.set_app_device(device)
        self.train.device.set_app_device(device)

    def set_devices(self, found: list[devices.Device]) -> None:
        self.scan.device.set_devices(found)
        self.train.device.set_devices(found)

    def restore_state(self) -> None:
        self._update_recent(self.settings.recent_folders())

    def close_workbench(self) -> None:
        self.close_dataset()

    # ------------------------------------------------------------ opening
    def open_dataset_dialog(self) -> None:
        recent = self.settings.recent_folders()
        folder = QFileDialog.getExistingDirectory(
            self,
            "Open the Dogs vs. Cats folder (it holds train/ and test/)",
            recent[0] if recent else str(Path.home()),
        )
        if folder:
            self.open_dataset(folder)

    def open_zip_dialog(self) -> None:
        recent = self.settings.recent_folders()
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open the downloaded Dogs vs. Cats zip",
            recent[0] if recent else str(Path.home()),
            "Zip files (*.zip);;All files (*)",
        )
        if path:
            self.open_dataset(path)

    def _remember_folder(self, folder: str) -> None:
        self._update_recent(self.settings.add_recent_folder(folder))

    def _update_recent(self, folders: list[str]) -> None:
        self.recent_menu.clear()
        for folder in folders:
            self.recent_menu.addAction(folder, partial(self.open_dataset, folder))
        if folders:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(folders))
        self.empty.set_recent(folders)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_folders()
        self._update_recent([])

    def busy_jobs(self) -> list[JobHandle]:
        """The running jobs that use the open dataset (scan, training, measuring)."""
        jobs = (self.scan.job, self.train.job, self._measure_job)
        return [job for job in jobs if job is not None and not job.token.cancelled]

    def confirm_stop(self, jobs: list[JobHandle], folder: Path) -> bool:
        """Ask whether to stop `jobs` to open `folder`; True to go ahead."""
        names = ", ".join(job.title for job in jobs)
        current = self.listing.root.name if self.listing is not None else "this dataset"
        answer = QMessageBox.question(
            self,
            "Stop the running work?",
            f"{names} is still working on {current}.\n\nOpening {folder.name or folder} "
            "stops it. What it has finished is kept: a scan resumes where it stopped, a "
            "cancelled training run can be resumed.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def open_dataset(self, folder: str | Path) -> JobHandle | None:
        """List `folder` and open its label store in the background; shows it when done,
        reports a problem if not. Work still running on the open dataset is stopped first,
        if the user agrees (None when they do not)."""
        folder = Path(folder)
        busy = self.busy_jobs()
        if busy:
            if not self.confirm_stop(busy, folder):
                return None
            for job in busy:
                job.cancel()
        self.show_requested.emit()
        title = f"Opening {folder.name or folder}"
        handle = self.runner.start(title, partial(open_store, folder))
        handle.succeeded.connect(self._show_store)
        handle.failed.connect(
            lambda message, details: self.problem.emit("Cannot open the dataset", message, details)
        )
        return handle

    def _show_store(self, result: tuple[LabelStore, DatasetListing]) -> None:
        store, listing = result
        self.close_dataset()
        self.store, self.listing = store, listing
        self.overview.show_listing(listing, store)
        cache = None
        try:
            cache = DiskCache(cache_location(listing.root))
        except (OSError, sqlite3.Error) as error:
            self.say(f"Thumbnails are not cached on disk: {error}")
        self.browser.attach(store, cache)
        self.scan.attach(store)
        self.train.attach(store)
        self.explore.show_store(store)
        self.measure_action.setEnabled(True)
        self.refresh_timer.start()
        self.pages.setCurrentWidget(self.tabs)
        self.tabs.setCurrentWidget(self.browser)
        self.browser.view.setFocus()
        self.dataset_opened.emit(str(listing.root))
        if store.recovery is not None:
            self.problem.emit("The label store was damaged", store.recovery.describe(), "")

    def show_flag(self, key: str) -> None:
        """From the Scan panel's counts to the grid showing those images."""
        self.tabs.setCurrentWidget(self.browser)
        self.browser.show_flag(key)

    def show_worst_losses(self) -> None:
        """From the Train panel to the grid: the validation images, worst loss first."""
        self.tabs.setCurrentWidget(self.browser)
        self.browser.show_sorted(LOSS_SCORE, descending=True)

    def _refresh(self) -> None:
        if self.store is not None:
            self.store.refresh()

    def close_dataset(self) -> None:
        """Close the open dataset. Its running jobs are cancelled and no longer followed: a
        write they still attempt finds the store closed and ends them as cancelled, with
        everything they had committed kept."""
        self.refresh_timer.stop()
        stopped = [
            job.title
            for job in (
                self.scan.release(),
                self.train.release(),
                self._measure_job,
            )
            if job is not None and job.running
        ]
        if self._measure_job is not None:
            self._measure_job.cancel()
            self._measure_job = None
        self.scan.attach(None)
        self.train.attach(None)
        self.browser.detach()
        if self.store is not None:
            self.store.close()
            if stopped:
                self.say(
                    f"Stopped {', '.join(stopped)} on {self.store.root.name}: what it "
                    "finished is kept."
                )
        self.store = None

    def measure_images(self) -> JobHandle | None:
        if self.store is None:
            return None
        handle = self.runner.start("Measuring images", partial(explore, self.store))
        self._measure_job = handle
        handle.finished.connect(partial(self._measured, handle))
        handle.succeeded.connect(self.explore.show_stats)
        handle.failed.connect(
            lambda message, details: self.problem.emit(
                "Cannot measure the images", message, details
            )
        )
        return handle

    def _measured(self, handle: JobHandle) -> None:
        if self._measure_job is handle:
            self._measure_job = None

    def _tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() in (self.scan_page, self.train_page):
            self.devices_needed.emit()  # they offer the devices: browsing never needs torch
        if self.tabs.currentWidget() is self.explore and self.store is not None:
            self.explore.show_store(self.store)
