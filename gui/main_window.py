"""The main window: the workbenches in a side bar, menus, and a status bar with the
device and the running job. It hosts workbenches through `gui.workbench.Workbench` and
knows nothing else of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QWidget,
)

from assets import icon_path
from core import APP_NAME, __version__, devices, weights
from core.jobs import single_step
from gui.dialogs import ShortcutsDialog, about_box
from gui.formula.workbench import FormulaWorkbench
from gui.pets.workbench import PetsWorkbench
from gui.settings import Settings
from gui.widgets.common import make_action
from gui.widgets.job_indicator import JobIndicator
from gui.workbench import MenuEntry, Workbench
from gui.workers import JobHandle, JobRunner, collect_garbage_on_ui_thread

log = logging.getLogger(__name__)

#: The workbenches, in side-bar order (Ctrl+1, Ctrl+2…): the one place that names them.
WORKBENCH_TYPES: tuple[type[Workbench], ...] = (PetsWorkbench, FormulaWorkbench)
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
        self.device_override = device_preference
        # Finding the devices loads torch (seconds, hundreds of MB): done in the background
        # when something first needs them, so the window paints at once and browsing a
        # dataset never pays for it. Until then the app's device is the CPU, shown as such.
        self.found_devices: list[devices.Device] | None = None
        self._finding: JobHandle | None = None
        self._after_devices: list[Callable[[], None]] = []
        self._started: set[str] = set()
        self.device = devices.choose("cpu")

        self.workbenches: dict[str, Workbench] = {
            kind.name: kind(self.runner, self.settings) for kind in WORKBENCH_TYPES
        }
        self.stack = QStackedWidget()
        for workbench in self.workbenches.values():
            self.stack.addWidget(workbench)
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
        for workbench in self.workbenches.values():
            for widget in workbench.status_widgets():
                self.statusBar().addPermanentWidget(widget)
        self.statusBar().addPermanentWidget(self.job_indicator)
        self.statusBar().addPermanentWidget(self.device_label)

        self._make_actions()
        self._make_menus()
        self._connect()

        self._show_device(self.device, "")
        for workbench in self.workbenches.values():
            workbench.set_device(self.device)
        if self._preference() not in ("auto", "cpu"):  # a GPU named: look for it at once
            self.ensure_devices()
        self._restore()

    # ----------------------------------------------------------------- building
    def _make_sidebar(self) -> QListWidget:
        sidebar = QListWidget()
        sidebar.setObjectName("sidebar")
        sidebar.setIconSize(QSize(32, 32))
        sidebar.setSpacing(2)
        for number, workbench in enumerate(self.workbenches.values(), 1):
            label = workbench.title.replace("&", "")
            icon = icon_path(workbench.name)
            item = QListWidgetItem(QIcon(str(icon)) if icon.exists() else QIcon(), label)
            item.setData(Qt.ItemDataRole.UserRole, workbench.name)
            item.setToolTip(f"{workbench.tip} (Ctrl+{number})")
            sidebar.addItem(item)
        sidebar.setMinimumWidth(110)
        sidebar.setMaximumWidth(220)
        sidebar.currentItemChanged.connect(self._sidebar_changed)
        return sidebar

    def _sidebar_changed(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            workbench = self.workbenches[item.data(Qt.ItemDataRole.UserRole)]
            self.stack.setCurrentWidget(workbench)
            self._first_shown(workbench)

    def _first_shown(self, workbench: Workbench) -> None:
        """A workbench starts its work when first shown, on the app's device once found."""
        if workbench.name in self._started:
            return
        self._started.add(workbench.name)
        if workbench.needs_devices:
            self.ensure_devices(workbench.start)
        else:
            workbench.start()

    def _action(
        self,
        text: str,
        slot: object,
        shortcut: QKeySequence | str | None = None,
        tip: str = "",
    ) -> QAction:
        action = make_action(self, text, slot, shortcut, tip)
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.workbench_actions = {
            name: self._action(workbench.title, partial(self.show_workbench, name), f"Ctrl+{i}")
            for i, (name, workbench) in enumerate(self.workbenches.items(), 1)
        }
        self.cancel_action = self._action(
            "&Cancel running job", self.job_indicator.cancel, "Esc", "Stop the running job"
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

    def _add_section(self, menu: QMenu, entries: list[MenuEntry], shortcuts: bool) -> None:
        """A workbench's entries, after a separator if the menu has items. With `shortcuts`,
        its actions also go on the window, so their keys work whichever workbench shows."""
        if entries and menu.actions() and not menu.actions()[-1].isSeparator():
            menu.addSeparator()
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            elif isinstance(entry, QMenu):
                menu.addMenu(entry)
            else:
                menu.addAction(entry)
                if shortcuts:
                    self.addAction(entry)

    def _make_menus(self) -> None:
        menus = self.menuBar()
        benches = list(self.workbenches.values())
        file_menu = menus.addMenu("&File")
        for workbench in benches:
            self._add_section(file_menu, workbench.file_actions(), shortcuts=True)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        # Edit acts on what has the focus: its actions keep their workbench's own context
        edit_menu = menus.addMenu("&Edit")
        for workbench in benches:
            self._add_section(edit_menu, workbench.edit_actions(), shortcuts=False)

        view_menu = menus.addMenu("&View")
        for action in self.workbench_actions.values():
            view_menu.addAction(action)

        tools_menu = menus.addMenu("&Tools")
        self.device_menu = tools_menu.addMenu("&Device")
        self.device_group = QActionGroup(self)
        self.device_menu.aboutToShow.connect(self.ensure_devices)
        self._fill_device_menu()
        tools_menu.addAction(self.verify_weights_action)
        for workbench in benches:
            self._add_section(tools_menu, workbench.tool_actions(), shortcuts=True)
        tools_menu.addSeparator()
        tools_menu.addAction(self.cancel_action)

        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

    def _fill_device_menu(self) -> None:
        for action in self.device_group.actions():
            self.device_menu.removeAction(action)
            self.device_group.removeAction(action)
        choices = [("auto", "Automatic")]
        if self.found_devices is None:  # the GPUs are listed once found (opening this menu)
            choices.append(("", "Looking for GPUs…"))
        for device in self.found_devices or [devices.choose("cpu")]:
            choices.append((device.spec, device.describe()))
        for value, label in choices:
            action = QAction(label, self.device_group)
            action.setCheckable(True)
            action.setData(value)
            action.setEnabled(bool(value))
            action.triggered.connect(partial(self.set_device_preference, value))
            self.device_menu.addAction(action)
        self._check_device_action()

    def _connect(self) -> None:
        for workbench in self.workbenches.values():
            workbench.problem.connect(self.show_error)
            workbench.message.connect(self.statusBar().showMessage)
            workbench.show_requested.connect(partial(self.show_workbench, workbench.name))
            workbench.devices_needed.connect(self.ensure_devices)
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
        for workbench in self.workbenches.values():
            workbench.restore_state()
        first = next(iter(self.workbenches))
        self.show_workbench(self.settings.text("window/workbench", first))

    def _save(self) -> None:
        self.settings.set_bytes("window/geometry", self.saveGeometry())
        self.settings.set_bytes("window/splitter", self.splitter.saveState())
        for workbench in self.workbenches.values():
            workbench.save_state()
        self.settings.set_text("window/workbench", self.current_workbench())
        self.settings.sync()

    # ---------------------------------------------------------------- workbenches
    def show_workbench(self, name: str) -> None:
        """Bring the workbench of that name to the front (an unknown name shows the first)."""
        names = list(self.workbenches)
        self.sidebar.setCurrentRow(names.index(name) if name in names else 0)

    def current_workbench(self) -> str:
        current = self.stack.currentWidget()
        return current.name if isinstance(current, Workbench) else next(iter(self.workbenches))

    # -------------------------------------------------------------------- device
    def ensure_devices(self, then: Callable[[], None] | None = None) -> None:
        """Find the devices (loading torch) in the background, once; `then` runs when they
        are known (at once if they already are)."""
        if self.found_devices is not None:
            if then is not None:
                then()
            return
        if then is not None:
            self._after_devices.append(then)
        if self._finding is None:
            self.device_label.setText("Device: finding the devices…")
            self._finding = self.runner.start(
                "Finding the devices", single_step("Loading PyTorch", devices.available)
            )
            self._finding.succeeded.connect(self._devices_found)
            self._finding.failed.connect(self._devices_not_found)

    def _devices_not_found(self, message: str, details: str) -> None:
        """PyTorch could not be loaded: say so, and go on with the CPU alone, so that what
        waits for the devices still starts (and reports its own problem if it needs torch)."""
        self.show_error("Cannot find the devices", message, details)
        self._devices_found([devices.choose("cpu")])

    def _devices_found(self, found: list[devices.Device]) -> None:
        self.found_devices = found
        self._fill_device_menu()
        for workbench in self.workbenches.values():
            workbench.set_devices(found)
        self.device = self._resolve_device()
        waiting, self._after_devices = self._after_devices, []
        for then in waiting:
            then()

    def _preference(self) -> str:
        return self.device_override or self.settings.text("device", "auto")

    def _resolve_device(self) -> devices.Device:
        preference = self._preference()
        note = ""
        try:  # from the devices found once, never looked for again on the UI thread
            device = devices.choose(preference, self.found_devices)
        except devices.DeviceError as error:
            device = devices.choose("auto", self.found_devices)
            note = f" — {error}"
            log.warning("%s", error)
        self.device = device
        self._show_device(device, note)
        if note:
            self.statusBar().showMessage(f"Using {device.describe()}{note}", 15000)
        # one device for the whole app: every workbench's jobs and models
        for workbench in self.workbenches.values():
            workbench.set_device(device)
        return device

    def _show_device(self, device: devices.Device, note: str) -> None:
        found = self.found_devices is not None or self._preference() == "cpu"
        self.device_label.setText(f"Device: {device.describe()}" + ("" if found else " for now"))
        self.device_label.setToolTip(
            "The device the scan, training and recognition run on (a panel may choose its "
            f"own). Change it in Tools ▸ Device.{note}"
            + ("" if found else " The GPUs are looked for when something first needs them.")
        )
        self._check_device_action()

    def _check_device_action(self) -> None:
        wanted = "auto" if self._preference() == "auto" else self.device.spec
        for action in self.device_group.actions():
            action.setChecked(action.data() == wanted)

    def set_device_preference(self, value: str) -> None:
        """Remember the device choice and use it from now on (once the devices are found)."""
        self.device_override = None
        self.settings.set_text("device", value)
        if self.found_devices is not None or value == "cpu":
            self.device = self._resolve_device()
        else:
            self.ensure_devices()

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
        actions = list(self.actions())
        for workbench in self.workbenches.values():
            for entry in workbench.edit_actions() + workbench.shortcut_actions():
                if isinstance(entry, QAction) and entry not in actions:
                    actions.append(entry)
        self.dialog = ShortcutsDialog(actions, self)
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
        for workbench in self.workbenches.values():
            workbench.close_workbench()
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
