"""The main window as a user drives it: workbenches, menus, status bar, opening data,
settings that persist."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel

from core import __version__, devices


def _menu_titles(window):
    return [action.text().replace("&", "") for action in window.menuBar().actions()]


def _menu(window, title):
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == title:
            return action.menu()
    raise KeyError(title)


def _texts(widget):
    return " ".join(label.text() for label in widget.findChildren(QLabel))


def _click_sidebar(qtbot, window, row):
    rect = window.sidebar.visualItemRect(window.sidebar.item(row))
    qtbot.mouseClick(window.sidebar.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _make_kaggle(root: Path) -> Path:
    for name in (
        "train/cat.1.jpg",
        "train/cat.2.jpg",
        "train/dog.1.jpg",
        "test/1.jpg",
        "train/Thumbs.db",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\xff\xd8\xff")
    return root


def test_workbenches_switch_from_the_side_bar_and_keyboard(make_window, qtbot):
    window = make_window()
    assert window.current_workbench() == "pets"
    assert window.workbenches["pets"].isVisible() and not window.workbenches["formulas"].isVisible()
    command = window.workbenches["pets"].empty.command
    assert command.field.text() == (
        "kaggle competitions download -c dogs-vs-cats-redux-kernels-edition"
    )
    qtbot.mouseClick(command.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == command.field.text()
    _click_sidebar(qtbot, window, 1)
    assert window.current_workbench() == "formulas"
    assert window.workbenches["formulas"].isVisible() and not window.workbenches["pets"].isVisible()
    assert "Recognise single-line arithmetic" in _texts(window.workbenches["formulas"])
    assert window.workbenches["formulas"].read.readings.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.current_workbench() == "pets"
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.current_workbench() == "formulas"


def test_menus_and_status_bar(make_window, qtbot):
    window = make_window()
    assert _menu_titles(window) == ["File", "Edit", "View", "Tools", "Help"]
    file_items = [a.text().replace("&", "") for a in _menu(window, "File").actions()]
    assert {
        "Open dataset folder…",
        "Open dataset zip…",
        "Open image…",
        "Quit",
        "Open recent",
    } <= set(file_items)
    help_items = [a.text().replace("&", "") for a in _menu(window, "Help").actions()]
    assert help_items == ["Keyboard shortcuts", "About Labelscope"]
    assert window.device_label.text().endswith(" for now")  # the GPUs are looked for later
    window.ensure_devices()  # as opening Tools ▸ Device does
    qtbot.waitUntil(lambda: window.found_devices is not None, timeout=30000)
    assert window.device_label.text() == f"Device: {devices.choose().describe()}"
    qtbot.waitUntil(lambda: not window.runner.active())
    assert not window.job_indicator.isVisible()
    assert __version__ in window.windowTitle()


def test_open_dataset_lists_it_and_remembers_it(make_window, qtbot, monkeypatch, tmp_path):
    root = _make_kaggle(tmp_path / "kaggle")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(root))
    window = make_window()
    with qtbot.waitSignal(window.workbenches["pets"].dataset_opened, timeout=10000):
        qtbot.mouseClick(window.workbenches["pets"].empty.open_button, Qt.MouseButton.LeftButton)
    overview = window.workbenches["pets"].overview
    assert window.workbenches["pets"].pages.currentWidget() is window.workbenches["pets"].tabs
    assert window.workbenches["pets"].tabs.currentWidget() is window.workbenches["pets"].browser
    assert "3 labelled images (2 cats, 1 dogs), 1 test images" in overview.counts_label.text()
    assert overview.skipped_list.item(0).text().startswith("train/Thumbs.db")
    recent = [a.text() for a in window.workbenches["pets"].recent_menu.actions()]
    assert recent[0] == str(root.resolve())
    window.close()

    again = make_window()
    buttons = again.workbenches["pets"].empty.recent_box.findChildren(
        type(again.workbenches["pets"].empty.open_button)
    )
    assert [b.text() for b in buttons] == [str(root.resolve())]
    with qtbot.waitSignal(again.workbenches["pets"].dataset_opened, timeout=10000):
        qtbot.mouseClick(buttons[0], Qt.MouseButton.LeftButton)
    assert again.workbenches["pets"].listing.counts()["cat"] == 2


def test_opening_the_wrong_folder_explains_and_keeps_running(make_window, qtbot, tmp_path):
    window = make_window()
    (tmp_path / "holiday").mkdir()
    window.workbenches["pets"].open_dataset(str(tmp_path))
    qtbot.waitUntil(lambda: window.error_box is not None, timeout=10000)
    assert "kaggle competitions download" in window.error_box.text()
    assert window.error_box.windowTitle() == "Cannot open the dataset"
    assert window.workbenches["pets"].pages.currentWidget() is window.workbenches["pets"].empty
    assert window.settings.recent_folders() == []
    window.error_box.accept()
    qtbot.waitUntil(lambda: window.error_box is None)


def test_window_state_persists(make_window, qtbot):
    window = make_window()
    window.resize(700, 500)  # the offscreen screen is 800 px: restoring clamps to it
    window.splitter.setSizes([150, 550])
    window.show_workbench("formulas")
    window.set_device_preference("cpu")
    sizes = window.splitter.sizes()
    window.close()
    again = make_window()
    assert (again.width(), again.height()) == (700, 500)
    assert again.splitter.sizes() == sizes
    assert again.current_workbench() == "formulas"
    assert again.settings.text("device") == "cpu"
    checked = [a.data() for a in again.device_group.actions() if a.isChecked()]
    assert checked == ["cpu"]


def test_device_that_is_not_here_falls_back_plainly(make_window, qtbot, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    window = make_window(device_preference="cuda")
    qtbot.waitUntil(lambda: window.found_devices is not None, timeout=30000)  # looked for
    assert window.device.kind == "cpu"
    assert "No CUDA GPU" in window.device_label.toolTip()


def _png(path: Path) -> Path:
    image = np.full((40, 60, 3), 240, np.uint8)
    cv2.putText(image, "1+2", (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 160), 2)
    assert cv2.imwrite(str(path), image)
    return path


def test_open_image_shows_it_in_formulas(make_window, monkeypatch, tmp_path):
    path = _png(tmp_path / "sum.png")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    window = make_window()
    window.workbenches["formulas"].open_image_action.trigger()
    assert window.current_workbench() == "formulas"
    assert window.workbenches["formulas"].read.image_view.has_image()
    assert window.workbenches["formulas"].read.caption.text() == "sum.png — 60×40 px"


def test_a_non_image_is_refused_with_a_message(make_window, monkeypatch, tmp_path, qtbot):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    window = make_window()
    window.workbenches["formulas"].open_image_action.trigger()
    qtbot.waitUntil(lambda: window.error_box is not None)
    assert "not an image" in window.error_box.text()
    assert not window.workbenches["formulas"].read.image_view.has_image()


def test_dropping_an_image_loads_it(make_window, tmp_path):
    path = _png(tmp_path / "dropped.png")
    window = make_window()
    window.show_workbench("formulas")
    view = window.workbenches["formulas"].read.image_view
    where = view.rect().center()  # drag events take a QPoint, drop events a QPointF
    args = (Qt.DropAction.CopyAction,)
    buttons = (Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)

    text_file = QMimeData()
    text_file.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    enter = QDragEnterEvent(where, *args, text_file, *buttons)
    QApplication.sendEvent(view, enter)
    assert not enter.isAccepted()

    image = QMimeData()
    image.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(where, *args, image, *buttons)
    QApplication.sendEvent(view, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(view, QDropEvent(QPointF(where), *args, image, *buttons))
    assert window.workbenches["formulas"].read.caption.text().startswith("dropped.png")


@pytest.mark.parametrize("action_name", ["shortcuts_action", "about_action"])
def test_help_dialogs(make_window, qtbot, action_name):
    window = make_window()
    getattr(window, action_name).trigger()
    dialog = window.dialog
    qtbot.waitExposed(dialog)
    if action_name == "shortcuts_action":
        rows = {
            dialog.table.item(r, 0).text(): dialog.table.item(r, 1).text()
            for r in range(dialog.table.rowCount())
        }
        assert rows["Open dataset folder"] == "Ctrl+O"
        assert rows["Open dataset zip"] == "Ctrl+Alt+O"
        assert rows["Formulas"] == "Ctrl+2"
        assert not dialog.table.verticalScrollBar().isVisible()  # every row in view
    else:
        assert __version__ in dialog.text() and "Device:" in dialog.text()
    dialog.close()


def test_generate_training_data_from_the_gui(make_window, qtbot, tmp_path):
    window = make_window()
    window.show_workbench("formulas")
    toolbar = [a.text() for a in window.workbenches["formulas"].toolbar.actions()]
    assert "&Generate training data…" in toolbar
    window.workbenches["formulas"].generate_action.trigger()
    dialog = window.workbenches["formulas"].dialog
    qtbot.waitExposed(dialog)
    assert dialog.preview.pixmap() is not None and not dialog.preview.pixmap().isNull()
    ok = dialog.buttons.buttons()[0]
    assert not ok.isEnabled()  # no folder yet
    qtbot.keyClicks(dialog.folder, str(tmp_path / "set"))
    dialog.count.setValue(30)
    dialog.form_box.setCurrentIndex(dialog.form_box.findData("equation"))
    dialog.workers.setValue(1)
    with qtbot.waitSignal(window.runner.started, timeout=5000) as started:
        qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    handle = started.args[0]
    with qtbot.waitSignal(handle.succeeded, timeout=30000):
        pass
    lines = (tmp_path / "set" / "labels.txt").read_text().splitlines()
    assert len(lines) == 30 and all("=" in line for line in lines)
    assert "Wrote 30 images" in window.statusBar().currentMessage()
    assert window.settings.text("formulas/generate_dir") == str(tmp_path / "set")


def test_generation_can_be_cancelled_from_the_status_bar(make_window, qtbot, tmp_path):
    from core.formula.generate import GenerateConfig
    from gui.formula.generate_dialog import GenerateDialog

    window = make_window()
    dialog = GenerateDialog(str(tmp_path / "big"), window)
    dialog.count.setValue(100_000)
    dialog.workers.setValue(1)
    assert isinstance(dialog.config(), GenerateConfig)
    handle = window.workbenches["formulas"].generate_data(dialog)
    qtbot.waitUntil(
        lambda: handle.last_progress is not None and handle.last_progress.done > 0, timeout=20000
    )
    with qtbot.waitSignal(handle.cancelled, timeout=10000):
        qtbot.mouseClick(window.job_indicator.cancel_button, Qt.MouseButton.LeftButton)
    assert not (tmp_path / "big" / "labels.txt").exists()


@pytest.mark.parametrize("entry", ["zip button", "folder button", "zip menu"])
def test_the_downloaded_competition_zip_opens_from_every_entry(
    make_window, qtbot, tmp_path, monkeypatch, entry
):
    """The Kaggle download as it comes: one zip holding train.zip and test.zip (stored),
    opened as the zip itself or as the folder it was downloaded to."""
    import io
    import zipfile

    from PIL import Image

    def jpeg(colour) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), colour).save(buffer, "JPEG")
        return buffer.getvalue()

    def zipped(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return buffer.getvalue()

    train = zipped({"train/cat.1.jpg": jpeg("grey"), "train/dog.2.jpg": jpeg("brown")})
    test = zipped({"test/1.jpg": jpeg("white")})
    download = tmp_path / "download"
    download.mkdir()
    competition = download / "dogs-vs-cats-redux-kernels-edition.zip"
    competition.write_bytes(
        zipped({"train.zip": train, "test.zip": test, "sample_submission.csv": b"id,label\n"},
               zipfile.ZIP_STORED)
    )  # fmt: skip
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(competition), ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(download))
    window = make_window()
    with qtbot.waitSignal(window.workbenches["pets"].dataset_opened, timeout=20000):
        if entry == "zip button":
            qtbot.mouseClick(window.workbenches["pets"].empty.zip_button, Qt.MouseButton.LeftButton)
        elif entry == "folder button":
            qtbot.mouseClick(
                window.workbenches["pets"].empty.open_button, Qt.MouseButton.LeftButton
            )
        else:
            window.workbenches["pets"].open_zip_action.trigger()
    assert window.workbenches["pets"].listing.counts() == {"cat": 1, "dog": 1, "test": 1}
    store = window.workbenches["pets"].store
    assert store.paths[0].startswith(competition.name if entry == "folder button" else "train.zip")


def test_tools_device_drives_every_panel(make_window, qtbot):
    window = make_window()
    window.set_device_preference("cpu")
    app_device = devices.choose("cpu")
    scan, train = window.workbenches["pets"].scan, window.workbenches["pets"].train
    formula_train = window.workbenches["formulas"].train
    for combo in (scan.device, train.device, formula_train.device):
        assert combo.currentIndex() == 0  # inherited, and says so
        assert combo.currentText() == f"As the app: {app_device.describe()}"
        assert combo.choice() == "cpu"
    assert train.request().device == "cpu"
    assert str(window.workbenches["formulas"].device.torch) == "cpu"
    window.show_workbench("formulas")  # its model loads when it is first shown
    qtbot.waitUntil(lambda: window.workbenches["formulas"].recognizer is not None, timeout=30000)
    assert str(window.workbenches["formulas"].recognizer.device.torch) == "cpu"
    # a panel may choose its own device; the others keep following the app
    train.device.setCurrentIndex(1)
    assert train.device.choice() == str(devices.available()[0].torch)
    assert "this panel only" in train.device.currentText()


def test_a_third_workbench_needs_only_its_class(make_window, qtbot, monkeypatch):
    """The window hosts whatever `WORKBENCH_TYPES` lists: side bar, View menu and Ctrl+3,
    its File entries and their keys, its status widget, the device, its state, closing."""
    from PySide6.QtGui import QAction

    from gui import main_window
    from gui.workbench import Workbench

    calls = []

    class Notes(Workbench):
        name, title, tip = "notes", "&Notes", "Notes about the data"

        def __init__(self, runner, settings, parent=None):
            super().__init__(runner, settings, parent)
            self.open_action = QAction("Open &notes…", self)
            self.open_action.setShortcut("Ctrl+Alt+N")
            self.open_action.triggered.connect(self.show_requested)
            self.status = QLabel("3 notes")

        def file_actions(self):
            return [self.open_action]

        def status_widgets(self):
            return [self.status]

        def set_device(self, device):
            super().set_device(device)
            calls.append(("device", str(device.torch)))

        def restore_state(self):
            calls.append(("restore", self.settings.text("notes/last")))

        def save_state(self):
            self.settings.set_text("notes/last", "kept")

        def start(self):
            calls.append(("start",))

        def close_workbench(self):
            calls.append(("close",))

    monkeypatch.setattr(main_window, "WORKBENCH_TYPES", (*main_window.WORKBENCH_TYPES, Notes))
    window = make_window()
    assert [window.sidebar.item(r).text() for r in range(3)] == ["Pets", "Formulas", "Notes"]
    assert [kind for kind, *_ in calls] == ["device", "restore"]  # started when first shown
    view = [a.text().replace("&", "") for a in _menu(window, "View").actions()]
    assert view == ["Pets", "Formulas", "Notes"]
    assert "Open notes…" in [a.text().replace("&", "") for a in _menu(window, "File").actions()]
    notes = window.workbenches["notes"]
    assert notes.status.isVisibleTo(window)
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.current_workbench() == "notes" and notes.isVisible()
    assert [kind for kind, *_ in calls] == ["device", "restore", "start"]
    window.show_workbench("pets")
    qtbot.keyClick(
        window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
    )
    assert window.current_workbench() == "notes"  # its action, through show_requested
    notes.say("noted", 3000)
    assert window.statusBar().currentMessage() == "noted"
    window.set_device_preference("cpu")
    assert calls[-1] == ("device", "cpu")
    window.close()  # waits for the model the device change reloads
    qtbot.waitUntil(lambda: calls[-1] == ("close",), timeout=30000)
    again = make_window()
    assert ("restore", "kept") in calls and again.current_workbench() == "notes"


def test_devices_that_cannot_be_found_leave_the_cpu(make_window, qtbot, monkeypatch):
    """PyTorch failing to load while looking for GPUs is reported, and what waited for the
    devices (the Formulas model) still starts, on the CPU."""

    def broken() -> list:
        raise RuntimeError("no PyTorch here")

    monkeypatch.setattr(devices, "available", broken)
    window = make_window()
    shown = []
    monkeypatch.setattr(window, "show_error", lambda *args: shown.append(args))
    window.show_workbench("formulas")
    qtbot.waitUntil(lambda: window.workbenches["formulas"].recognizer is not None, timeout=30000)
    assert [title for title, *_ in shown] == ["Cannot find the devices"]
    assert [d.kind for d in window.found_devices] == ["cpu"]
    assert window.device_label.text() == f"Device: {devices.choose('cpu').describe()}"
