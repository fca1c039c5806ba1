"""The Formulas workbench: read an image or a mouse drawing and see what the CTC model does
(Read), read a whole folder (Folder), look at a dataset (Dataset), train and evaluate (Train).
The workbench holds the tabs, its actions and dialogs, and the one loaded recogniser; each
tab is its own module.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QTabWidget, QToolBar, QVBoxLayout, QWidget

from core import devices
from core.formula.generate import generate
from core.formula.recognizer import SHIPPED_MODEL, Recognizer
from core.images import IMAGE_SUFFIXES
from core.jobs import single_step
from gui.formula.dataset_panel import DatasetPanel
from gui.formula.folder_panel import FolderPanel
from gui.formula.generate_dialog import GenerateDialog
from gui.formula.read_page import ReadPage, dropped_image
from gui.formula.train_panel import FormulaTrainPanel
from gui.settings import Settings
from gui.widgets.common import make_action, scrolling
from gui.workbench import MenuEntry, Workbench
from gui.workers import JobHandle, JobRunner


class FormulaWorkbench(Workbench):
    """Formulas: the Read, Folder, Dataset and Train tabs around one loaded recogniser."""

    name = "formulas"
    title = "&Formulas"
    tip = "Formula recognition with CTC"

    def __init__(self, runner: JobRunner, settings: Settings, parent: QWidget | None = None):
        super().__init__(runner, settings, parent)
        self.recognizer: Recognizer | None = None
        self.dialog: QWidget | None = None  # the open Generate dialog, if any
        self.model_problem = ""
        self._model_request: JobHandle | None = None

        self.read = ReadPage(runner)
        self.read.problem.connect(self.problem)
        self.read.loaded.connect(self._loaded)
        self.folder = FolderPanel(runner)
        self.folder.image_chosen.connect(self.load_image)
        self.dataset = DatasetPanel(runner)
        self.train = FormulaTrainPanel(runner)
        self.train.use_model.connect(self.load_model)
        self.train.survey_requested.connect(self.open_dataset)
        self.train.generate_requested.connect(self.generate_data_dialog)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("formulaTabs")
        self.tabs.setDocumentMode(True)
        # tabs are switched by widget, never by position; settings keep their names
        self.dataset_page = scrolling(self.dataset)
        self.train_page = scrolling(self.train)
        self.pages: dict[str, QWidget] = {
            "read": self.read,
            "folder": self.folder,
            "dataset": self.dataset_page,
            "train": self.train_page,
        }
        for title, page in zip(
            ("Read", "Folder", "Dataset", "Train"), self.pages.values(), strict=True
        ):
            self.tabs.addTab(page, title)
        self.toolbar = QToolBar()
        self.toolbar.setObjectName("formulaToolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self._make_actions()
        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.tabs, 1)
        self.setAcceptDrops(True)

    def _make_actions(self) -> None:
        def action(text: str, slot: object, keys: object, tip: str) -> QAction:
            made = make_action(self, text, slot, keys, tip)
            self.toolbar.addAction(made)
            return made

        self.open_image_action = action(
            "Open &image…", self.open_image_dialog, "Ctrl+Shift+O", "Open a formula image"
        )
        self.open_folder_action = action(
            "Open image &folder…",
            self.open_folder_dialog,
            "Ctrl+Shift+F",
            "Read every formula image of a folder (scored where it has labels.txt)",
        )
        self.draw_action = action(
            "&Draw a formula",
            self.show_drawing,
            "Ctrl+D",
            "Write a formula with the mouse and watch it being read",
        )
        self.generate_action = action(
            "&Generate training data…",
            self.generate_data_dialog,
            None,
            "Draw synthetic formula images and labels.txt into a folder",
        )
        self.paste_action = action("Paste image", self.paste, QKeySequence.StandardKey.Paste, "")
        self.paste_action.setToolTip("Read an image from the clipboard (Ctrl+V)")
        self.paste_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(self.paste_action)

    # ------------------------------------------------------------ the contract
    def file_actions(self) -> list[MenuEntry]:
        return [self.open_image_action, self.open_folder_action, self.draw_action]

    def tool_actions(self) -> list[MenuEntry]:
        return [self.generate_action]

    def shortcut_actions(self) -> list[QAction]:
        return [self.paste_action, *self.read.draw.actions_for_help()]

    def restore_state(self) -> None:
        try:
            options = json.loads(self.settings.text("formulas/options") or "{}")
        except ValueError:
            options = {}
        if isinstance(options, dict):
            self.restore_options(options)
        splitter = self.settings.bytes("formulas/read_splitter")
        if splitter is not None:
            self.read.restoreState(splitter)

    def save_state(self) -> None:
        self.settings.set_bytes("formulas/read_splitter", self.read.saveState())
        self.settings.set_text("formulas/options", json.dumps(self.options()))

    needs_devices = True  # the recogniser is loaded onto the app's device

    def start(self) -> None:
        if self._model_request is None:  # a model asked for before the first show stays
            self.load_model()

    def set_devices(self, found: list[devices.Device]) -> None:
        self.train.device.set_devices(found)

    def set_device(self, device: devices.Device) -> None:
        """The app's device (Tools ▸ Device): the recogniser moves there, and training
        uses it unless the Train tab chooses its own."""
        self.train.device.set_app_device(device)
        changed = device.spec != self.device.spec
        super().set_device(device)
        if changed and self.recognizer is not None and self.recognizer.path is not None:
            self.load_model(self.recognizer.path)

    # ------------------------------------------------------------ options and tabs
    def options(self) -> dict[str, object]:
        """What the window remembers between sessions: the Read and Folder tabs' options,
        the tab shown."""
        return {**self.read.options(), **self.folder.options(), "tab": self.current_page()}

    def restore_options(self, options: dict[str, object]) -> None:
        """Puts back what `options` gave; unknown or malformed entries are ignored."""
        setters = {
            **self.read.option_setters(),
            **self.folder.option_setters(),
            "tab": self.show_page,
        }
        for key, value in options.items():
            if key in setters:
                try:
                    setters[key](value)
                except (TypeError, ValueError):
                    continue

    def current_page(self) -> str:
        """The name of the tab shown: read, folder, dataset or train."""
        return next(name for name, page in self.pages.items() if page is self.tabs.currentWidget())

    def show_page(self, name: object) -> None:
        """Show the tab of that name (a position from older settings is read too)."""
        names = list(self.pages)
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            name = names[int(name)] if 0 <= int(name) < len(names) else "read"
        page = self.pages.get(str(name))
        if page is not None:
            self.tabs.setCurrentWidget(page)

    # ------------------------------------------------------------ sources
    def load_image(self, path: str | Path, steps: frozenset[str] | None = None) -> bool:
        """Show and read the image at `path` on the Read tab, through `steps` where given
        (the Folder tab's, so that both tabs read it alike); a bad file is reported."""
        return self.read.load_image(path, steps)

    def paste(self) -> bool:
        """Read the clipboard's image, or the image file whose path it holds."""
        return self.read.paste()

    def show_drawing(self) -> None:
        self.show_requested.emit()
        self.tabs.setCurrentWidget(self.read)
        self.read.show_drawing()

    def _loaded(self, name: str) -> None:
        self.tabs.setCurrentWidget(self.read)
        self.show_requested.emit()
        # replaces an earlier 'Cannot open the image', which would otherwise linger
        self.say(f"Reading {name}")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = dropped_image(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.load_image(path)

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
            self.show_requested.emit()
            self.load_image(path)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a folder of formula images", self.settings.text("formulas/last_dir")
        )
        if folder:
            self.settings.set_text("formulas/last_dir", folder)
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> JobHandle | None:
        self.show_requested.emit()
        self.tabs.setCurrentWidget(self.folder)
        return self.folder.open_folder(folder, self.recognizer)

    def open_dataset(self, folder: str | Path) -> JobHandle:
        self.tabs.setCurrentWidget(self.dataset_page)
        return self.dataset.open_folder(folder)

    # ------------------------------------------------------------ generating
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
        handle.succeeded.connect(partial(self._generated, config.count))
        handle.failed.connect(partial(self.problem.emit, "Cannot generate the data"))
        return handle

    def _generated(self, count: int, folder: Path) -> None:
        self.say(f"Wrote {count:,} images and labels.txt to {folder}", 20000)
        self.train.data_generated(str(folder))

    # ------------------------------------------------------------ model
    def load_model(self, path: Path | str = SHIPPED_MODEL) -> JobHandle:
        """Load a recogniser in the background; the current image is read once it is in."""
        handle = self.runner.start(
            "Loading the formula model",
            single_step("loading", Recognizer.load, Path(path), self.device),
        )
        self._model_request = handle
        handle.succeeded.connect(partial(self._model_loaded, handle))
        handle.failed.connect(partial(self._model_failed, handle))
        return handle

    def _model_loaded(self, handle: JobHandle, recognizer: Recognizer) -> None:
        if handle is not self._model_request:
            return  # a later request (the user's choice) wins over an earlier one
        self.recognizer = recognizer
        self.model_problem = ""
        self.train.set_current_model(recognizer)
        self.folder.set_recognizer(recognizer)
        self.read.set_recognizer(recognizer)

    def _model_failed(self, handle: JobHandle, message: str, _details: str) -> None:
        if handle is not self._model_request:
            return
        self.model_problem = message
        self.read.show_model_problem(message)
