"""What a workbench is to the main window, and all the window knows of one.

The window hosts workbenches: a side-bar entry and a page each, their actions in its menus,
their widgets in its status bar, the app's device handed down, their state saved and
restored, their problems and messages shown. Everything else (dialogs, settings keys, jobs,
tabs) stays inside the workbench. See docs/architecture.md, "Workbenches".
"""

from __future__ import annotations

from typing import ClassVar

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

from core import devices
from gui.settings import Settings
from gui.workers import JobRunner

#: An entry of a menu section: an action, a submenu, or None for a separator.
MenuEntry = QAction | QMenu | None

#: How long a workbench's status-bar message stays, unless it says otherwise.
MESSAGE_MS = 5000


class Workbench(QWidget):
    """A page of the main window. Subclasses set `name`, `title` and `tip` and override
    what they add; the defaults add nothing."""

    #: Settings keys (`<name>/…`), `--workbench`, the icon `assets/icons/<name>.svg`.
    name: ClassVar[str] = ""
    #: The side bar's and the View menu's label (with its & mnemonic).
    title: ClassVar[str] = ""
    #: The side bar's tooltip.
    tip: ClassVar[str] = ""

    problem = Signal(str, str, str)  # title, message, details: the window's message box
    message = Signal(str, int)  # text, milliseconds: the window's status bar
    show_requested = Signal()  # it opened what the user asked for: bring it to the front
    devices_needed = Signal()  # it is about to show or use the devices: find them (torch)

    #: Whether `start` needs the app's device found first (it loads a model there).
    needs_devices = False

    def __init__(self, runner: JobRunner, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.device = devices.choose("cpu")  # until the window hands down the app's

    def say(self, text: str, milliseconds: int = MESSAGE_MS) -> None:
        """Show `text` in the window's status bar."""
        self.message.emit(text, milliseconds)

    # ------------------------------------------------------------ what it adds
    def file_actions(self) -> list[MenuEntry]:
        """Its part of the File menu."""
        return []

    def edit_actions(self) -> list[MenuEntry]:
        """Its part of the Edit menu."""
        return []

    def tool_actions(self) -> list[MenuEntry]:
        """Its part of the Tools menu."""
        return []

    def shortcut_actions(self) -> list[QAction]:
        """Actions with shortcuts that no menu shows, for the keyboard shortcuts dialog."""
        return []

    def status_widgets(self) -> list[QWidget]:
        """Widgets for the window's status bar, left of the job indicator."""
        return []

    # ------------------------------------------------------------ what it takes
    def set_device(self, device: devices.Device) -> None:
        """The app's device (Tools ▸ Device), now and whenever it changes."""
        self.device = device

    def set_devices(self, found: list[devices.Device]) -> None:
        """The devices the window found, for panels that offer a choice of their own."""

    def restore_state(self) -> None:
        """Put back what `save_state` kept (called once, before `start`)."""

    def save_state(self) -> None:
        """Keep what the user set up, under `<name>/` in the settings."""

    def start(self) -> None:
        """The workbench is shown for the first time (its state restored, and the device
        found when `needs_devices`): begin any work."""

    def close_workbench(self) -> None:
        """The window closes; its jobs have stopped (or were given up on)."""
