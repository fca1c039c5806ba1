"""The main window: the two workbenches in a side bar, menus, and a status bar with the
device and the running job."""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QWidget,
)

from assets import icon_path
from core import APP_NAME, __version__, devices, weights
from core.formula.generate import generate
from core.images import IMAGE_SUFFIXES
from gui.dialogs import ShortcutsDialog, about_box
from gui.formula.generate_dialog import GenerateDialog
from gui.formula.workbench import FormulaWorkbench
from gui.pets.workbench import PetsWorkbench
from gui.settings import Settings
from gui.widgets.job_indicator import JobIndicator
from gui.workers import JobHandle, JobRunner, collect_garbage_on_ui_thread

log = logging.getLogger(__name__)

WORKBENCHES = ("pets", "formulas")
#: How long closing the window waits for running jobs to end the step they are in (a
#: training step, a scan batch, a checkpoint being written) before it closes regardless.
SHUTDOWN_GRACE = 120.0


class MainWindow(QMainWindow):
    def __init__(self, device_preference: str | None = None, save_settings: bool = True) -> None:
        """`device_preference` overrides the saved device for this run; with
        `save_settings` False (screenshots) the window leaves the saved state alone."""
        super().__init__()
        self.save_settings = save_settings
        self._closing_since: float | None = None
        self._force_close = False
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.setWindowIcon(QIcon(str(icon_path("labelscope"))))
        self.settings = Settings()
        self.runner = JobRunner(self)
        # jobs' threads must never run a widget's destructor: cycles are collected here
        self.garbage_collector = collect_garbage_on_ui_thread()
        self.error_box: QMessageBox | None = None
        self.dialog: QWidget | None = None  # the open help dialog, if any

        self.pets = PetsWorkbench(self.runner)
        self.formulas = FormulaWorkbench(self.runner)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.pets)
        self.stack.addWidget(self.formulas)
        self.sidebar = self._make_sidebar()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.stack)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)

        self.device_label = QLabel()
        self.device_label.setObjectName("deviceLabel")
        self.job_indicator = JobIndicator(self.runner)
        self.counts_label = QLabel()
        self.counts_label.setObjectName("petsCounts")
        self.counts_label.setMinimumWidth(1)  # long counts are clipped, never widen the window
        self.statusBar().addPermanentWidget(self.counts_label)
        self.statusBar().addPermanentWidget(self.job_indicator)
        self.statusBar().addPermanentWidget(self.device_label)

        self._make_actions()
        self._make_menus()
        self._connect()

        self.device_override = device_preference
        self.device = self._resolve_device()
        self._restore()
        self.formulas.load_model()

    # ----------------------------------------------------------------- building
    def _make_sidebar(self) -> QListWidget:
        sidebar = QListWidget()
        sidebar.setObjectName("sidebar")
        sidebar.setIconSize(QSize(32, 32))
        sidebar.setSpacing(2)
        for name, label, tip in (
            ("pets", "Pets", "Dogs vs. Cats: browse, clean, train, submit (Ctrl+1)"),
            ("formulas", "Formulas", "Formula recognition with CTC (Ctrl+2)"),
        ):
            item = QListWidgetItem(QIcon(str(icon_path(name))), label)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(tip)
            sidebar.addItem(item)
        sidebar.setMinimumWidth(110)
        sidebar.setMaximumWidth(220)
        sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        return sidebar

    def _action(
        self,
        text: str,
        slot: object,
        shortcut: QKeySequence | str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        self.open_dataset_action = self._action(
            "Open &dataset folder…",
            self.open_dataset_dialog,
            QKeySequence.StandardKey.Open,
            "Open a Dogs vs. Cats folder: the download's, or unzipped train/ and test/",
        )
        self.open_zip_action = self._action(
            "Open dataset &zip…",
            self.open_zip_dialog,
            "Ctrl+Alt+O",
            "Open the downloaded Dogs vs. Cats zip itself, without unzipping it",
        )
        self.open_image_action = self._action(
            "Open &image…",
            self.open_image_dialog,
            "Ctrl+Shift+O",
            "Open a formula image",
        )
        self.open_folder_action = self._action(
            "Open image &folder…",
            self.open_folder_dialog,
            "Ctrl+Shift+F",
            "Read every formula image of a folder (scored where it has labels.txt)",
        )
        self.draw_action = self._action(
            "&Draw a formula",
            self.formulas_draw,
            "Ctrl+D",
            "Write a formula with the mouse and watch it being read",
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.workbench_actions = {
            name: self._action(label, partial(self.show_workbench, name), keys)
            for name, label, keys in (
                ("pets", "&Pets", "Ctrl+1"),
                ("formulas", "&Formulas", "Ctrl+2"),
            )
        }
        self.cancel_action = self._action(
            "&Cancel running job", self.job_indicator.cancel, "Esc", "Stop the running job"
        )
        self.generate_action = self._action(
            "&Generate training data…",
            self.generate_data_dialog,
            tip="Draw synthetic formula images and labels.txt into a folder",
        )
        self.verify_weights_action = self._action(
            "Check cached &weights",
            self.verify_weights,
            tip="Check the pretrained weights in torch's cache against their hashes",
        )
        self.shortcuts_action = self._action(
            "&Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents
        )
        self.about_action = self._action("&About Labelscope", self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

    def _make_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addAction(self.open_dataset_action)
        file_menu.addAction(self.open_zip_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addAction(self.open_image_action)
        file_menu.addAction(self.open_folder_action)
        file_menu.addAction(self.draw_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        edit_menu = menus.addMenu("&Edit")
        for action in self.pets.browser.edit_actions:
            edit_menu.addAction(action)
            if action is self.pets.browser.redo_action:
                edit_menu.addSeparator()

        view_menu = menus.addMenu("&View")
        for action in self.workbench_actions.values():
            view_menu.addAction(action)

        tools_menu = menus.addMenu("&Tools")
        self.device_menu = tools_menu.addMenu("&Device")
        self.device_group = QActionGroup(self)
        self._fill_device_menu()
        tools_menu.addAction(self.generate_action)
        tools_menu.addAction(self.verify_weights_action)
        tools_menu.addAction(self.pets.measure_action)
        tools_menu.addSeparator()
        tools_menu.addAction(self.cancel_action)

        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

    def _fill_device_menu(self) -> None:
        choices = [("auto", "Automatic")]
        for device in devices.available():
            choices.append((str(device.torch), device.describe()))
        for value, label in choices:
            action = QAction(label, self.device_group)
            action.setCheckable(True)
            action.setData(value)
            action.triggered.connect(partial(self.set_device_preference, value))
            self.device_menu.addAction(action)

    def _connect(self) -> None:
        self.formulas.add_actions(
            [
                self.open_image_action,
                self.open_folder_action,
                self.draw_action,
                self.generate_action,
            ]
        )
        self.formulas.train.generate_requested.connect(self.generate_data_dialog)
        self.pets.open_requested.connect(self.open_dataset_dialog)
        self.pets.open_zip_requested.connect(self.open_zip_dialog)
        self.pets.recent_requested.connect(self.open_dataset)
        self.pets.dataset_opened.connect(self._remember_folder)
        self.pets.problem.connect(self.show_error)
        self.pets.counts_changed.connect(self.counts_label.setText)
        self.pets.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.formulas.problem.connect(self.show_error)
        self.formulas.image_loaded.connect(self._formula_image_loaded)
        self.runner.started.connect(self._on_job_count_changed)
        self.runner.ended.connect(self._on_job_count_changed)
        self._on_job_count_changed()

    def _restore(self) -> None:
        geometry = self.settings.bytes("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1180, 760)
        splitter = self.settings.bytes("window/splitter")
        if splitter is None or not self.splitter.restoreState(splitter):
            self.splitter.setSizes([150, 1030])
        try:
            options = json.loads(self.settings.text("formulas/options") or "{}")
        except ValueError:
            options = {}
        if isinstance(options, dict):
            self.formulas.restore_options(options)
        formula_splitter = self.settings.bytes("formulas/read_splitter")
        if formula_splitter is not None:
            self.formulas.splitter.restoreState(formula_splitter)
        workbench = self.settings.text("window/workbench", "pets")
        self.show_workbench(workbench if workbench in WORKBENCHES else "pets")
        self._update_recent(self.settings.recent_folders())

    def _save(self) -> None:
        self.settings.set_bytes("window/geometry", self.saveGeometry())
        self.settings.set_bytes("window/splitter", self.splitter.saveState())
        self.settings.set_bytes("formulas/read_splitter", self.formulas.splitter.saveState())
        self.settings.set_text("formulas/options", json.dumps(self.formulas.options()))
        self.settings.set_text("window/workbench", self.current_workbench())
        self.settings.sync()

    # ---------------------------------------------------------------- workbenches
    def show_workbench(self, name: str) -> None:
        self.sidebar.setCurrentRow(WORKBENCHES.index(name))

    def current_workbench(self) -> str:
        return WORKBENCHES[max(self.stack.currentIndex(), 0)]

    # --------------------------------------------------------------------- files
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

    def open_dataset(self, folder: str) -> None:
        self.show_workbench("pets")
        self.pets.open_dataset(folder)

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
        self.pets.set_recent(folders)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_folders()
        self._update_recent([])

    def open_image_dialog(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a formula image",
            self.settings.text("formulas/last_dir"),
            f"Images ({patterns});;All files (*)",
        )
        if path:
            self.settings.set_text("formulas/last_dir", str(Path(path).parent))
            self.show_workbench("formulas")
            self.formulas.load_image(path)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a folder of formula images", self.settings.text("formulas/last_dir")
        )
        if folder:
            self.settings.set_text("formulas/last_dir", folder)
            self.show_workbench("formulas")
            self.formulas.open_folder(folder)

    def formulas_draw(self) -> None:
        self.show_workbench("formulas")
        self.formulas.show_drawing()

    def generate_data_dialog(self) -> None:
        dialog = GenerateDialog(self.settings.text("formulas/generate_dir"), self)
        dialog.accepted.connect(partial(self.generate_data, dialog))
        self.dialog = dialog
        dialog.open()

    def generate_data(self, dialog: GenerateDialog) -> JobHandle:
        """Start drawing the set the dialog describes, in the background."""
        out, config, workers = dialog.out(), dialog.config(), dialog.workers.value()
        self.settings.set_text("formulas/generate_dir", str(out))
        handle = self.runner.start(
            f"Generating {config.count:,} formulas", partial(generate, out, config, workers=workers)
        )
        handle.succeeded.connect(
            lambda folder: self.statusBar().showMessage(
                f"Wrote {config.count:,} images and labels.txt to {folder}", 20000
            )
        )
        handle.succeeded.connect(lambda folder: self.formulas.train.data_generated(str(folder)))
        handle.failed.connect(partial(self.show_error, "Cannot generate the data"))
        return handle

    # -------------------------------------------------------------------- device
    def _resolve_device(self) -> devices.Device:
        preference = self.device_override or self.settings.text("device", "auto")
        note = ""
        try:
            device = devices.choose(preference)
        except devices.DeviceError as error:
            device = devices.choose("auto")
            note = f" — {error}"
            log.warning("%s", error)
        for action in self.device_group.actions():
            action.setChecked(
                action.data() == ("auto" if preference == "auto" else str(device.torch))
            )
        self.device_label.setText(f"Device: {device.describe()}")
        self.device_label.setToolTip(
            "The device the scan, training and recognition run on (a panel may choose its "
            f"own). Change it in Tools ▸ Device.{note}"
        )
        if note:
            self.statusBar().showMessage(f"Using {device.describe()}{note}", 15000)
        # one device for the whole app: the scan, both trainings and the recogniser
        self.pets.set_device(device)
        self.formulas.set_device(device)
        return device

    def set_device_preference(self, value: str) -> None:
        """Remember the device choice and use it from now on."""
        self.device_override = None
        self.settings.set_text("device", value)
        self.device = self._resolve_device()

    # --------------------------------------------------------------------- jobs
    def _on_job_count_changed(self, _handle: object = None) -> None:
        self.cancel_action.setEnabled(bool(self.runner.active()))

    def verify_weights(self) -> None:
        handle = self.runner.start("Checking cached weights", weights.verify_cache)
        handle.succeeded.connect(self._show_weight_checks)
        handle.failed.connect(partial(self.show_error, "Cannot check the weights"))

    def _show_weight_checks(self, checks: list[weights.WeightsCheck]) -> None:
        if not checks:
            text = f"No pretrained weights are cached in {weights.weights_cache_dir()}."
        else:
            text = "\n".join(
                f"{'OK' if c.ok else 'DAMAGED'}  {c.path.name}: {c.reason}" for c in checks
            )
        bad = [c for c in checks if not c.ok]
        self._message(
            QMessageBox.Icon.Warning if bad else QMessageBox.Icon.Information,
            "Cached weights",
            text,
        )

    # ------------------------------------------------------------------ messages
    def _formula_image_loaded(self, source: str) -> None:
        self.show_workbench("formulas")
        # replaces an earlier 'Cannot open the image', which would otherwise linger
        self.statusBar().showMessage(f"Reading {Path(source).name or source}", 5000)

    def show_error(self, title: str, message: str, details: str = "") -> None:
        """Report a problem without blocking the window."""
        log.warning("%s: %s", title, message)
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        self._message(QMessageBox.Icon.Warning, title, message, details)

    def _message(self, icon: QMessageBox.Icon, title: str, text: str, details: str = "") -> None:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("messageBox")
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.error_box = box
        box.finished.connect(partial(self._forget_box, box))
        box.open()

    def _forget_box(self, box: QMessageBox, _result: int = 0) -> None:
        if self.error_box is box:
            self.error_box = None

    def show_shortcuts(self) -> None:
        self.dialog = ShortcutsDialog(
            self.actions() + self.pets.menu_actions() + self.formulas.menu_actions(), self
        )
        self.dialog.open()

    def show_about(self) -> None:
        self.dialog = about_box(self.device.describe(), self)
        self.dialog.open()

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing cancels every job and waits, with the window greyed out but the event
        loop running, until each has ended the step it is in and kept what it had (a
        training run its checkpoint); then the window closes. A process never exits with a
        thread still inside torch, which aborts it. A job that ignores its token past
        SHUTDOWN_GRACE seconds (or a second close) no longer holds the window."""
        running = self.runner.active()
        if self.save_settings and self._closing_since is None:
            self._save()  # what the user sees now, before anything is greyed out
        if running and not self._force_close:
            event.ignore()
            if self._closing_since is None:
                self._closing_since = time.monotonic()
                self.runner.cancel_all()
                self.runner.ended.connect(self._close_when_idle)
                QTimer.singleShot(int(SHUTDOWN_GRACE * 1000), self._close_regardless)
                self.centralWidget().setEnabled(False)
                self.menuBar().setEnabled(False)
                titles = ", ".join(h.title for h in running)
                self.statusBar().showMessage(
                    f"Closing: stopping {titles} at the end of the current step…"
                )
            else:  # asked twice: stop waiting
                self._close_regardless()
            return
        if not self.runner.shutdown(0):
            log.warning("closing with a job that did not stop")
        self.pets.close_dataset()
        event.accept()

    def _close_when_idle(self) -> None:
        if not self.runner.active():
            self.close()

    def _close_regardless(self) -> None:
        if self.isVisible():
            self._force_close = True
            self.close()

    @property
    def closing(self) -> bool:
        """Close was asked for and the window waits for jobs to stop."""
        return self._closing_since is not None
