"""The Formulas workbench driven as a user drives it: drawing with the mouse, loading and
pasting images, the heatmaps and alignments, the Folder, Dataset and Train tabs."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget

from core.formula import ctc, fonts, preprocess, synth
from core.formula.generate import GenerateConfig, generate
from core.formula.recognizer import SHIPPED_LARGE_MODEL, SHIPPED_MODEL
from core.jobs import CancelToken, drive
from gui.widgets.common import to_qimage
from tests.conftest import shared_data
from tests.test_formula_data import cut_to_the_ink, in_a_cell, on_a_sheet, pale_under_dots
from tests.test_shipped_model import plus_read_as_times, times_read_as_plus

pytestmark = pytest.mark.skipif(not SHIPPED_MODEL.exists(), reason="no shipped model")


def _mouse(widget: QWidget, kind: QEvent.Type, point: QPointF, buttons: Qt.MouseButton) -> None:
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    event = QMouseEvent(
        kind,
        point,
        widget.mapToGlobal(point),
        button,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def drag(widget: QWidget, points: list[tuple[float, float]]) -> None:
    """One stroke: press, move through the points, release — real mouse events."""
    left = Qt.MouseButton.LeftButton
    first = QPointF(*points[0])
    _mouse(widget, QEvent.Type.MouseButtonPress, first, left)
    for x, y in points[1:]:
        _mouse(widget, QEvent.Type.MouseMove, QPointF(x, y), left)
    _mouse(widget, QEvent.Type.MouseButtonRelease, QPointF(*points[-1]), Qt.MouseButton.NoButton)


def strokes_for(text: str, width: int, height: int, seed: int = 3) -> tuple[list, float]:
    """The text's stroke templates laid out to fit a canvas of width × height."""
    strokes, pen, line = synth.stroke_layout(text, random.Random(seed), 100.0)
    scale = min(0.6 * height / 100.0, (width - 20) / line)
    top = (height - 100 * scale) / 2
    placed = [[(10 + x * scale, top + y * scale) for x, y in s.tolist()] for s in strokes]
    return placed, max(2.0, pen * scale)


@pytest.fixture
def formulas(make_window, qtbot):
    window = make_window()
    window.resize(1280, 900)
    window.show_workbench("formulas")  # its model loads when it is first shown
    qtbot.waitUntil(lambda: window.workbenches["formulas"].recognizer is not None, timeout=30000)
    return window, window.workbenches["formulas"]


def _drawn_file(path: Path, text: str, seed: int, style: str) -> Path:
    """A synthetic image of `text` written to `path` as the user's file."""
    image = synth.render(text, random.Random(seed), style)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _settled(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.runner.active(), timeout=30000)
    qtbot.wait(60)  # longer than the canvas's debounce
    qtbot.waitUntil(lambda: not window.runner.active(), timeout=30000)


def test_drawing_with_the_mouse_is_read_stroke_by_stroke(formulas, qtbot, tmp_path):
    window, bench = formulas
    window.workbenches["formulas"].draw_action.trigger()
    assert bench.read.is_drawing() and bench.read.preprocess.steps() >= {"crop"}
    canvas = bench.read.canvas
    qtbot.waitUntil(lambda: canvas.width() > 400)
    strokes, pen = strokes_for("6*(3+7)=60", canvas.width(), canvas.height())
    bench.read.draw.width.setValue(round(pen))
    seen = []
    bench.read.recognized.connect(seen.append)
    for stroke in strokes:
        drag(canvas, stroke)
        _settled(qtbot, window)
    assert len(canvas.strokes) == len(strokes)
    assert len(seen) >= 3  # read as the formula grew, not only at the end
    result = bench.read.last_recognition
    assert result.text == "6*(3+7)=60"
    assert "true" in bench.read.readings.verdict.text()
    assert bench.read.readings.table.item(0, 0).text() == "6*(3+7)=60"
    assert bench.read.posterior.steps == len(result.log_probs)
    assert bench.read.alignment.text == "6*(3+7)=60"
    bench.grab().save(str(tmp_path / "drawing.png"))

    # undo the last stroke (the 0), redo it, by the keyboard
    canvas.setFocus()
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(canvas.strokes) == len(strokes) - 1
    assert bench.read.last_recognition.text == "6*(3+7)=6"
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        qtbot.keyClick(canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert bench.read.last_recognition.text == "6*(3+7)=60"

    # the eraser paints paper over ink: rub out the final 0
    bench.read.draw.eraser_action.trigger()
    bench.read.draw.width.setValue(40)
    xs = [x for x, _ in strokes[-1]]
    ys = [y for _, y in strokes[-1]]
    for y in np.linspace(min(ys) - 10, max(ys) + 10, 6):
        drag(canvas, [(min(xs) - 12, y), (max(xs) + 12, y)])
    _settled(qtbot, window)
    assert bench.read.last_recognition.text == "6*(3+7)=6"
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert canvas.strokes == [] and bench.read.last_recognition is None
    assert "Draw a formula" in bench.read.readings.status.text()
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):  # the clear undone
        qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert bench.read.last_recognition.text == "6*(3+7)=6"


def test_the_canvas_renders_what_was_drawn(qtbot):
    from gui.formula.canvas import DrawingCanvas

    canvas = DrawingCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(300, 100)
    assert canvas.is_empty() and canvas.image().min() == 255
    canvas.set_pen_width(6)
    canvas.add_stroke([(20, 50), (280, 50)])
    image = canvas.image()
    assert image.shape == (100, 300)
    assert image[50, 150] < 60 and image[10, 150] == 255  # ink on the line only
    canvas.set_eraser(True)
    canvas.add_stroke([(100, 50), (200, 50)], width=20)
    image = canvas.image()
    assert image[50, 150] == 255 and image[50, 50] < 60
    canvas.undo()
    assert canvas.image()[50, 150] < 60
    canvas.clear()
    assert canvas.is_empty() and canvas.can_undo()
    canvas.undo()
    assert not canvas.is_empty()


def test_the_real_samples_are_read_and_shown(formulas, qtbot):
    window, bench = formulas
    folder = shared_data("formula_samples")
    rows = [line.split("\t") for line in (folder / "SOURCES.tsv").read_text().splitlines()[1:]]
    for name, truth, *_ in rows:
        with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
            assert bench.load_image(folder / name)
        assert bench.read.last_recognition.text == truth, name
        assert bench.read.readings.reading.text()
        assert bench.read.caption.text().startswith(name)
    # the same folder on the Folder tab: read in one job, listed with each reading
    bench.open_folder(folder)
    _settled(qtbot, window)
    table = bench.folder.table
    readings = {table.item(r, 0).text(): table.item(r, 2).text() for r in range(table.rowCount())}
    assert readings == {name: truth for name, truth, *_ in rows}
    assert "no labels file" in bench.folder.summary.text()


def test_picking_a_reading_or_typing_one_shows_its_alignment(formulas, qtbot, tmp_path):
    _window, bench = formulas
    path = _drawn_file(tmp_path / "f.png", "(4*8)+8", 11, "captcha")
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    result = bench.read.last_recognition
    first = bench.read.alignment
    assert first.text == result.beams[0].text
    view = bench.read.alignment_view
    assert view.alignment is first and len(view.path_points()) == len(result.log_probs)

    assert len(result.beams) >= 2
    other = len(result.beams) - 1  # the least probable reading shown
    bench.read.readings.select_row(other)
    second = bench.read.alignment
    assert second.text == result.beams[other].text != first.text
    assert view.alignment is second
    assert second.gamma.shape == (len(result.log_probs), 2 * len(second.text) + 1)
    assert np.allclose(second.gamma.sum(axis=1), 1)
    assert second.log_prob == pytest.approx(ctc.log_prob(result.log_probs, second.text))
    assert f"{second.log_prob:.3f}" in bench.read.readings.alignment_info.text()

    field = bench.read.readings.own_text
    field.setText("1+1")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert bench.read.alignment.text == "1+1" and bench.read.alignment.log_prob < second.log_prob
    field.setText("1" * 60)  # more symbols than time steps
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert bench.read.alignment is None and view.alignment is None
    assert "time steps" in bench.read.readings.alignment_info.text()

    # hovering a time step: its top 3 in words, the band it reads marked on the image
    step = first.spans[0][0]
    x0, x1 = bench.read.posterior.column(step)
    _mouse(
        bench.read.posterior,
        QEvent.Type.MouseMove,
        QPointF((x0 + x1) / 2, 120),
        Qt.MouseButton.NoButton,
    )
    assert bench.read.hover_label.text().startswith(f"time step {step}:")
    assert bench.read.alignment_view.highlight == step
    assert bench.read.image_view.band is not None and 0 <= bench.read.image_view.band[0] < 0.3


def test_options_and_preprocessing_read_again(formulas, qtbot, tmp_path):
    _window, bench = formulas
    # drawn so that the model's n-best holds a true reading (=60) below the false one it sees
    path = _drawn_file(tmp_path / "eq.png", "6*(3+7)=61", 3, "fonts")
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    assert [title for title, _ in bench.read.last_recognition.stages] == [
        "Grayscale",
        "Remove ruled lines",  # on by default; this image has none
        "Crop or pad margins",  # on by default; this image is tight, so left as it is
        "Thin bold strokes",  # on by default; this image is not black and white
        "Resize to model height",
        "Normalise",
    ]
    stages = bench.read.last_recognition.stages
    assert stages[1][1] is stages[0][1] and stages[2][1].shape == stages[0][1].shape
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.read.preprocess.boxes["otsu"].setChecked(True)
    stages = bench.read.last_recognition.stages
    assert "Binarise (Otsu)" in [title for title, _ in stages]
    assert set(np.unique(dict(stages)["Binarise (Otsu)"])) <= {0, 255}
    assert bench.read.preprocess.strip_layout.count() == len(stages) + 1  # and a stretch

    panel = bench.read.readings
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        panel.nbest.setValue(3)
    assert panel.table.rowCount() <= 3
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        panel.grammar.setChecked(True)
    assert panel.table.horizontalHeaderItem(0).text() == "Constrained search"
    assert all(panel.table.item(r, 3).text() != "✗" for r in range(panel.table.rowCount()))
    from core.formula.grammar import parse

    assert not parse(panel.table.item(0, 0).text()).is_true  # what the image shows
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        panel.truth_weight.setValue(30.0)
    assert parse(panel.table.item(0, 0).text()).is_true  # the weight puts a true one first


def test_a_thickened_black_and_white_image_is_read_with_its_strokes_thinned(
    formulas, qtbot, tmp_path
):
    _window, bench = formulas
    image = preprocess.binarize_otsu(
        preprocess.to_gray(synth.render("(4*8)+8", random.Random(8), "captcha"))
    )
    path = tmp_path / "thick.png"
    cv2.imwrite(str(path), cv2.erode(image, np.ones((5, 5), np.uint8)))  # the user's bold image
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    titles = [title for title, _ in bench.read.last_recognition.stages]
    stages = dict(bench.read.last_recognition.stages)
    before, after = stages["Crop or pad margins"], stages["Thin bold strokes"]
    assert (after == 0).sum() < 0.8 * (before == 0).sum()  # thinner, as previewed
    box = bench.read.preprocess.boxes["bold"]
    assert box.isChecked() and "black-and-white" in box.toolTip()
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        box.setChecked(False)  # the user can read it as it is
    assert "Thin bold strokes" not in [t for t, _ in bench.read.last_recognition.stages]
    assert "Thin bold strokes" in titles


def test_a_small_formula_on_a_large_page_is_cropped_and_read(formulas, qtbot, tmp_path):
    _window, bench = formulas
    line = synth.render("(4*8)+8", random.Random(3), "printed")
    small = cv2.resize(line, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    height, width = small.shape[:2]
    page = np.full((10 * height, 5 * width, 3), 255, np.uint8)
    page[5 * height : 6 * height, width : 2 * width] = small
    path = tmp_path / "page.png"
    cv2.imwrite(str(path), page)
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    stages = dict(bench.read.last_recognition.stages)
    assert stages["Crop or pad margins"].shape[0] < page.shape[0] / 4
    assert bench.read.last_recognition.text == "(4*8)+8"


def test_a_captcha_on_a_large_sheet_is_read_whole(formulas, qtbot, tmp_path):
    """A loose crop of a captcha image: the crop keeps its pale first glyph (read
    `*(1*8)` when the crop looked only once)."""
    _window, bench = formulas
    image = synth.render("7*(1*8)", random.Random(39), "captcha")
    path = tmp_path / "loose.png"
    cv2.imwrite(str(path), cv2.cvtColor(on_a_sheet(image, 240, 120), cv2.COLOR_RGB2BGR))
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    stages = dict(bench.read.last_recognition.stages)
    assert stages["Crop or pad margins"].shape[0] < 100  # cropped from 300 px
    assert bench.read.last_recognition.text == "7*(1*8)"


def test_paper_above_and_below_a_formula_is_cropped_and_it_is_read(formulas, qtbot, tmp_path):
    """A crop with paper above and below the line but little at its sides (the ink's box
    covers more than the loose-crop share) has the paper above and below cut."""
    _window, bench = formulas
    pen = synth.render("6*(3+7)=60", random.Random(2), "strokes")
    tall = np.full((pen.shape[0] * 5 // 2, pen.shape[1], 3), 255, np.uint8)
    tall[pen.shape[0] : 2 * pen.shape[0]] = pen
    path = tmp_path / "tall.png"
    cv2.imwrite(str(path), tall)
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    stages = dict(bench.read.last_recognition.stages)
    assert stages["Crop or pad margins"].shape[0] < 0.6 * tall.shape[0]
    assert bench.read.last_recognition.text == "6*(3+7)=60"
    assert "below a formula less tall than 50 %" in bench.read.preprocess.boxes["trim"].toolTip()


def test_a_bold_formula_cut_out_to_its_ink_is_padded_and_read(formulas, qtbot, tmp_path):
    _window, bench = formulas
    text = "71-49+2-5"  # its last minus was read as "=" without the margin
    gentium = [p.stem for p in fonts.font_paths("printed")].index("Gentium-R")
    path = tmp_path / "tight.png"
    cv2.imwrite(str(path), cut_to_the_ink(text, 2, typeface=gentium))
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    stages = dict(bench.read.last_recognition.stages)
    assert stages["Crop or pad margins"].shape[0] > stages["Grayscale"].shape[0]
    assert bench.read.last_recognition.text == text


def test_a_printed_formula_with_spaces_is_read_without_them(formulas, qtbot, tmp_path):
    _window, bench = formulas
    text = "(4*8)+8=40"
    rng = random.Random(5)
    spaced = "(4  *  8)  +  8  =  40"  # two spaces a side: read "=-40" before
    image = synth.render_printed(spaced, rng, synth.auto_width(spaced), synth.HEIGHT)
    path = tmp_path / "spaced.png"
    image.save(path)
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    assert bench.read.last_recognition.text == text


def test_a_formula_in_a_table_cell_is_read_without_the_cell_borders(formulas, qtbot, tmp_path):
    _window, bench = formulas
    text = "(4*8)-1=31"
    path = tmp_path / "cell.png"
    cv2.imwrite(str(path), in_a_cell(text))
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    stages = dict(bench.read.last_recognition.stages)
    assert (stages["Grayscale"][:2] < 100).all()  # the border is there
    assert (stages["Remove ruled lines"][:2] > 200).all()  # and gone
    assert bench.read.last_recognition.text == text
    box = bench.read.preprocess.boxes["lines"]
    assert box.isChecked() and box.toolTip().startswith("Erases straight lines")
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        box.setChecked(False)
    assert "Remove ruled lines" not in dict(bench.read.last_recognition.stages)
    assert bench.read.last_recognition.text != text


def test_a_bold_formula_on_lined_paper_is_read_without_the_rules(formulas, qtbot, tmp_path):
    """Grey rules 22 px apart, one through the middle of bold writing, where the glyphs
    crowd it on both sides: the preview shows it erased, and the minus beside it stays a
    minus (read as `=` while the rule stayed)."""
    _window, bench = formulas
    text = "9-8-(0+4)-1"
    gray = cv2.cvtColor(synth.render(text, random.Random(1), "printed"), cv2.COLOR_RGB2GRAY)
    bold = cv2.erode(np.where(gray < 160, 0, 255).astype(np.uint8), np.ones((3, 3), np.uint8))
    share = (bold < 128).mean(axis=1)
    row = max(range(2, len(share) - 2), key=lambda r: min(share[r - 2], share[r + 2]))
    ruled = bold.copy()
    ruled[row % 22 :: 22] = np.minimum(ruled[row % 22 :: 22], 150)
    path = tmp_path / "lined.png"
    cv2.imwrite(str(path), ruled)
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    stages = dict(bench.read.last_recognition.stages)
    between = bold[row] > 200  # the rule's pixels between the glyphs
    assert (stages["Grayscale"][row, between] == 150).all()  # the rule is there
    assert (stages["Remove ruled lines"][row, between] > 200).mean() > 0.8  # and gone
    assert bench.read.last_recognition.text == text
    assert "grey ones through the writing" in bench.read.preprocess.boxes["lines"].toolTip()


def test_pasting_or_dropping_an_image_reads_it(formulas, qtbot, tmp_path):
    _window, bench = formulas
    image = synth.render("7+3*0", random.Random(4), "captcha")
    QGuiApplication.clipboard().setImage(to_qimage(image))
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.paste_action.trigger()
    assert bench.read.image_path is None and bench.read.caption.text().startswith("pasted image")
    assert bench.read.last_recognition.image_size == (image.shape[1], image.shape[0])
    path = tmp_path / "dropped.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    drop = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.dropEvent(drop)
    assert bench.read.image_path == path and drop.isAccepted()
    QGuiApplication.clipboard().setText("no image here")
    with qtbot.waitSignal(bench.problem) as problem:
        assert not bench.paste()
    assert problem.args[0] == "Nothing to paste"


def test_a_formula_on_a_transparent_page_is_read_opened_or_pasted(formulas, qtbot, tmp_path):
    """Ink on a transparent page whose hidden colour is black, as typesetting tools export
    it: opened from a file and pasted, the page is shown and read as white paper."""
    _window, bench = formulas
    text = "(3*8)+2=26"
    ink = synth.render_printed(text, random.Random(6), synth.auto_width(text), synth.HEIGHT)
    gray = np.asarray(ink.convert("L"))
    rgba = np.zeros((*gray.shape, 4), np.uint8)
    rgba[..., 3] = 255 - gray  # black everywhere, opaque where the ink is
    path = tmp_path / "exported.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    assert bench.read.image[0, 0].min() >= 250  # paper, not the black it hides
    assert bench.read.last_recognition.text == text
    pasted = QImage(rgba.data, rgba.shape[1], rgba.shape[0], QImage.Format.Format_RGBA8888)
    QGuiApplication.clipboard().setImage(pasted.copy())
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        assert bench.paste()
    assert bench.read.image[0, 0].min() >= 250  # paper, not the black it hides
    assert bench.read.last_recognition.text == text


def _generated(folder: Path, count: int = 24) -> Path:
    config = GenerateConfig(count=count, style="captcha", form="equation", seed=5)
    drive(generate(folder, config, CancelToken()), CancelToken())
    return folder


def test_a_labelled_folder_is_scored_and_its_bad_files_named(formulas, qtbot, tmp_path):
    window, bench = formulas
    folder = _generated(tmp_path / "set", 12)
    (folder / "3.png").write_bytes(b"not an image at all")
    bench.open_folder(folder)
    _settled(qtbot, window)
    panel = bench.folder
    assert panel.reading.report.total == 11  # the bad file is reported by the reader
    assert "sequence accuracy" in panel.summary.text()
    marks = [panel.table.item(r, 3).text() for r in range(panel.table.rowCount())]
    assert set(marks) <= {"✓", "✗"} and marks.count("✓") == panel.reading.report.correct
    panel.mistakes_only.setChecked(True)
    hidden = sum(panel.table.isRowHidden(r) for r in range(panel.table.rowCount()))
    assert hidden == marks.count("✓")
    panel.mistakes_only.setChecked(False)
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        panel.table.cellDoubleClicked.emit(0, 0)
    assert bench.read.image_path == panel.reading.paths[0] and bench.current_page() == "read"


def _opened_in_a_folder(qtbot, bench, folder: Path, image: np.ndarray) -> Path:
    """`image` written alone into `folder` and opened on the Read tab; the folder."""
    folder.mkdir()
    path = folder / "plus.png"
    cv2.imwrite(str(path), image)
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    return folder


def test_an_unsure_reading_is_read_again_at_other_widths(formulas, qtbot, tmp_path):
    """A binarised captcha whose `*` the first greedy reading takes for a `+`: the Read
    tab reads it again at other widths, reads `*` and says so; unticking the option
    shows the first reading. The Folder tab reads it the same way."""
    window, bench = formulas
    image, truth = times_read_as_plus()
    folder = _opened_in_a_folder(qtbot, bench, tmp_path / "binarised", image)
    panel = bench.read.readings
    result = bench.read.last_recognition
    assert result.text == truth and result.second_look is not None
    assert panel.status.text().startswith("Reading by")
    said = panel.second_look.text()
    assert "read again at other widths" in said and "75%" in said and "130%" in said
    # the widths disagree, so the shipped large model read it too
    assert "disagree, so formula_crnn_large.pt read it too: <b>7*(8*1)</b>" in said
    assert (
        f"likeliest over all 5 widths, with its log p weighed as much as theirs "
        f"together, is <b>{truth}" in said
    )
    assert "7+(8*1)" in said  # the first greedy reading, named
    # the confidence is of the image's likeliest reading at its own width, and says so
    assert panel.confidence.text().startswith("Sequence confidence: p(7+(8*1) | image)")
    assert panel.confidence.text().endswith("The reading above is the second look's (below).")
    # the alignment drawn is the reading's, on the image's own posteriors
    assert bench.read.alignment.text == truth
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        panel.look_again.setChecked(False)
    assert bench.read.last_recognition.text == "7+(8*1)"
    assert panel.second_look.text() == "" and panel.status.text().startswith("Greedy")
    assert "second look" not in panel.confidence.text()
    assert bench.read.alignment.text == "7+(8*1)"
    bench.open_folder(folder)
    _settled(qtbot, window)
    assert bench.folder.reading.texts == [truth]
    assert bench.folder.summary.text().startswith("1 image in ")
    bench.folder.look_again.setChecked(False)
    _settled(qtbot, window)
    assert bench.folder.reading.texts == ["7+(8*1)"]


def test_the_large_model_settles_what_the_widths_disagree_on(formulas, qtbot, tmp_path):
    """A binarised `(0-7)+0`: the small model's widths together would read `(0-7)*0`; the
    large model reads `+`, and the Read tab says so. The Folder tab reads it the same."""
    window, bench = formulas
    image, truth = plus_read_as_times()
    folder = _opened_in_a_folder(qtbot, bench, tmp_path / "disputed", image)
    result = bench.read.last_recognition
    assert result.text == truth and result.second_look.referee == truth
    said = bench.read.readings.second_look.text()
    assert f"formula_crnn_large.pt read it too: <b>{truth}</b>" in said
    assert f"is <b>{truth}</b>" in said and "(0-7)*0" in said
    assert bench.read.alignment.text == truth
    # the constrained search's `(0-7)*0`, read again the same way, agrees: no other reading
    assert result.constrained[0].text == "(0-7)*0" and result.grammar_look.text == truth
    assert "grammar-constrained search" not in bench.read.readings.verdict.text()
    bench.open_folder(folder)
    _settled(qtbot, window)
    assert bench.folder.reading.texts == [truth]
    # with the grammar, the grammar's readings are read again the same way
    bench.folder.grammar.setChecked(True)
    _settled(qtbot, window)
    assert bench.folder.reading.texts == [truth]
    bench.folder.look_again.setChecked(False)
    _settled(qtbot, window)
    assert bench.folder.reading.texts == ["(0-7)*0"]
    bench.folder.grammar.setChecked(False)
    bench.folder.look_again.setChecked(True)


def test_the_readings_say_why_the_large_model_was_not_asked(tmp_path):
    from gui.formula.readings import second_look_html
    from tests.test_shipped_model import with_a_broken_referee

    recognizer, broken = with_a_broken_referee(tmp_path)
    said = second_look_html(recognizer.recognize(plus_read_as_times()[0]))
    assert "they disagree, but the large model could not be asked" in said
    assert str(broken) in said


def test_the_folder_is_read_again_with_the_grammar(formulas, qtbot, tmp_path):
    window, bench = formulas
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    _drawn_file(folder / "a.png", "(3+7", 3, "strokes")
    _drawn_file(folder / "b.png", "4--2", 3, "fonts")
    bench.open_folder(folder)
    _settled(qtbot, window)
    panel = bench.folder
    assert panel.reading.texts == ["(3+7", "4--2"]  # greedy: as written
    panel.grammar.setChecked(True)
    _settled(qtbot, window)
    # the most probable well-formed readings: a bracket dropped or closed, a minus dropped
    first, second = panel.reading.texts
    assert first in ("3+7", "(3+7)") and second == "4-2"
    assert [panel.table.item(r, 2).text() for r in range(2)] == [first, second]


def test_a_folder_reads_each_image_as_the_read_tab_reads_it_alone(formulas, qtbot, tmp_path):
    """Read in one batch beside a much wider image, a short formula reads as it does alone
    (padded with the wide one's width, it read `7-7`)."""
    window, bench = formulas
    folder = tmp_path / "widths"
    folder.mkdir()
    short = _drawn_file(folder / "a.png", "7-1", 234, "fonts")
    _drawn_file(folder / "b.png", "(12+34)*56-78=9012", 1, "printed")
    bench.open_folder(folder)
    _settled(qtbot, window)
    assert bench.folder.reading.texts[0] == "7-1"
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(short)
    assert bench.read.last_recognition.text == "7-1"


def test_a_folder_is_read_through_the_steps_chosen_and_opens_with_them(
    formulas, qtbot, tmp_path, monkeypatch
):
    """The Steps menu: a formula in a table cell reads right through the default steps and
    wrong without *Remove ruled lines*; a costly step is named with its figures; an image
    opened from the table is read on the Read tab through the same steps."""
    window, bench = formulas
    folder = tmp_path / "cells"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), in_a_cell("(4*8)-1=31"))
    (folder / "labels.txt").write_text("(4*8)-1=31\n")
    panel = bench.folder
    assert not panel.steps_note.isVisible() and panel.steps_button.text() == "Steps"
    bench.open_folder(folder)
    _settled(qtbot, window)
    assert panel.reading.texts == ["(4*8)-1=31"] and panel.steps() == preprocess.DEFAULT
    panel.step_actions["lines"].setChecked(False)  # reads the folder again
    _settled(qtbot, window)
    assert panel.reading.texts != ["(4*8)-1=31"] and "0.00%" in panel.summary.text()
    assert panel.steps_button.text() == "Steps (changed)"
    assert "Remove ruled lines" not in panel.steps_note.text()
    assert "read with the steps named above" in panel.summary.text()
    panel.step_actions["adaptive"].setChecked(True)
    _settled(qtbot, window)
    note = panel.steps_note.text()
    assert "Binarise (adaptive) changes what the model sees" in note
    assert preprocess.MEASURED_COSTS["adaptive"] in note
    assert "Changes what the model sees" in panel.step_actions["adaptive"].toolTip()
    read_here = panel.reading.texts[0]
    bench.read.show_drawing()  # opened from the Draw tab: the steps are still the folder's
    _settled(qtbot, window)
    readings = []
    start = window.runner.start
    monkeypatch.setattr(window.runner, "start", lambda title, *a, **k: (
        readings.append(title), start(title, *a, **k))[1])  # fmt: skip
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        panel.table.cellDoubleClicked.emit(0, 0)
    _settled(qtbot, window)
    assert readings == ["Reading the formula"] and not bench.read.is_drawing()  # read once
    boxes = bench.read.preprocess.boxes
    assert not boxes["lines"].isChecked() and boxes["adaptive"].isChecked()
    assert bench.read.last_recognition.text == read_here
    assert "Remove ruled lines" not in dict(bench.read.last_recognition.stages)
    panel.reset_steps()
    _settled(qtbot, window)
    assert panel.reading.texts == ["(4*8)-1=31"] and not panel.steps_note.isVisible()


def test_a_folder_reading_cancels_and_a_newer_one_replaces_it(formulas, qtbot, tmp_path):
    window, bench = formulas
    big = _generated(tmp_path / "big", 120)
    panel = bench.folder
    bench.open_folder(big)
    assert panel.cancel_button.isEnabled() and panel.job is not None
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    _settled(qtbot, window)
    assert panel.summary.text() == "Cancelled." and panel.reading is None
    assert not panel.cancel_button.isEnabled() and panel.progress.value() == 0
    # a second folder opened while the first is read: only the second is shown
    small = _generated(tmp_path / "small", 6)
    bench.open_folder(big)
    bench.open_folder(small)
    _settled(qtbot, window)
    assert panel.reading.root == small and panel.table.rowCount() == 6
    assert "sequence accuracy" in panel.summary.text()


def test_the_dataset_view_describes_a_folder(formulas, qtbot, tmp_path):
    window, bench = formulas
    folder = _generated(tmp_path / "set", 30)
    lines = (folder / "labels.txt").read_text().splitlines()
    (folder / "labels.txt").write_text("\n".join([*lines, "1+)=2", "5+5=10"]) + "\n")
    handle = bench.open_dataset(folder)
    _settled(qtbot, window)
    assert handle is not None
    survey = bench.dataset.survey
    assert survey.images == 30
    truths = [line.split(" ", 1)[-1] for line in lines]
    assert sum(survey.lengths.values()) == 30
    assert survey.symbols["="] == 30
    assert survey.true_equations + survey.false_equations == 30
    assert survey.true_equations == sum(
        1 for t in truths if eval(t.split("=")[0]) == int(t.split("=")[1])
    )
    assert bench.dataset.samples.count() == 30
    assert {p.kind for p in survey.problems} == {"bad line", "missing"}
    assert bench.dataset.problems_box.isVisibleTo(bench.dataset)
    assert "30 labelled images" in bench.dataset.summary.text()
    # a folder that cannot be read: the error stands alone, not under the last plots
    (tmp_path / "empty").mkdir()
    bench.open_dataset(tmp_path / "empty")
    _settled(qtbot, window)
    assert "Cannot open the dataset" in bench.dataset.summary.text()
    assert bench.dataset.samples.count() == 0 and bench.dataset.survey is None
    assert not bench.dataset.problems_box.isVisibleTo(bench.dataset)


def test_training_starts_cancels_resumes_and_is_used(formulas, qtbot, tmp_path):
    window, bench = formulas
    panel = bench.train
    bench.show_page("train")
    # the shipped model, a mean of two runs, has no step of its own: none is shown
    assert "</b> — validation accuracy" in panel.current.text()  # not "step ?" (any path)
    assert panel.workers.text().startswith("Automatic")  # one worker on this CPU
    assert panel.config().workers == 1
    panel.steps.setValue(8)
    panel.batch.setValue(4)
    panel.workers.setValue(0)
    seen = []
    handle = panel.start()
    handle.progress.connect(lambda p: seen.append(p))
    qtbot.waitUntil(lambda: any("loss" in p.metrics for p in seen), timeout=60000)
    panel.cancel_button.click()
    _settled(qtbot, window)
    assert "keeps every step it made" in panel.status.text(), panel.status.text()
    run = panel.selected_run()
    assert run is not None and run.path == panel.run_dir
    assert run.can_resume and run.step >= 1  # the steps made before Cancel are kept
    assert panel.resume_button.isEnabled()
    panel.resume_button.click()
    _settled(qtbot, window)
    assert "Finished" in panel.status.text(), panel.status.text()
    run = panel.selected_run()
    assert run.best_model.exists() and run.step == 8 and not run.can_resume
    xs, _ = panel._curves["val_acc"]
    assert xs and xs[-1] == 8
    assert xs == sorted(set(xs)) and set(xs) <= {2, 4, 6, 8}  # one point per validation
    panel.use_button.click()
    _settled(qtbot, window)
    assert bench.recognizer.path == run.best_model
    assert str(run.best_model) in panel.current.text()
    # the model at the last step is offered beside the run (best.pt may be an earlier one)
    index = panel.models.findData(str(run.final_model))
    assert index > 0 and "last step" in panel.models.itemText(index)
    panel.models.setCurrentIndex(index)
    assert panel.selected_run() is None and not panel.resume_button.isEnabled()
    panel.use_button.click()
    _settled(qtbot, window)
    assert bench.recognizer.path == run.final_model
    assert bench.recognizer.meta["step"] == 8 and "step 8, validation" in panel.current.text()


def test_the_shipped_large_model_is_chosen_and_reads(formulas, qtbot, tmp_path):
    """The Train tab offers the large model Labelscope ships; once used, the Read tab reads
    with it."""
    window, bench = formulas
    panel = bench.train
    bench.show_page("train")
    index = panel.models.findData(str(SHIPPED_LARGE_MODEL))
    assert index > 0 and "slower on a CPU" in panel.models.itemText(index)
    # its long name does not widen the page past a small window
    assert panel.models.minimumSizeHint().width() < 500
    panel.models.setCurrentIndex(index)
    panel.use_button.click()
    _settled(qtbot, window)
    assert bench.recognizer.path == SHIPPED_LARGE_MODEL
    assert bench.recognizer.config.height == 48
    assert str(SHIPPED_LARGE_MODEL) in panel.current.text()
    binarised = preprocess.binarize_otsu(
        preprocess.to_gray(synth.render("(4*8)+8", random.Random(8), "captcha"))
    )
    path = tmp_path / "thick.png"
    cv2.imwrite(str(path), cv2.erode(binarised, np.ones((3, 3), np.uint8)))
    bench.show_page("read")
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    assert bench.read.last_recognition.text == "(4*8)+8"
    panel.models.setCurrentIndex(0)  # back to the small model
    panel.use_button.click()
    _settled(qtbot, window)
    assert bench.recognizer.path == SHIPPED_MODEL


def test_evaluating_shows_the_scores_and_the_mistakes(formulas, qtbot, tmp_path):
    window, bench = formulas
    folder = _generated(tmp_path / "set", 16)
    lines = (folder / "labels.txt").read_text().splitlines()
    wrong = lines[0].split(" ")
    wrong[-1] = "1+1=3"
    (folder / "labels.txt").write_text("\n".join([" ".join(wrong), *lines[1:]]) + "\n")
    panel = bench.train
    panel.eval_folder.setText(str(folder))
    panel.eval_button.click()
    _settled(qtbot, window)
    text = panel.eval_result.text()
    assert "sequence accuracy" in text and "character error rate" in text
    assert panel.gallery.pixmap() is not None and not panel.gallery.pixmap().isNull()


def test_reading_options_are_remembered(make_window, qtbot):
    window = make_window()
    bench = window.workbenches["formulas"]
    bench.read.readings.beam_width.setValue(25)
    bench.read.readings.grammar.setChecked(True)
    bench.read.readings.truth_weight.setValue(3.5)
    bench.read.readings.look_again.setChecked(False)
    bench.read.log_scale.setChecked(True)
    bench.read.draw.width.setValue(14)
    bench.folder.grammar.setChecked(True)
    bench.folder.look_again.setChecked(False)
    bench.folder.step_actions["otsu"].setChecked(True)
    bench.folder.step_actions["lines"].setChecked(False)
    bench.show_page("dataset")
    window.close()
    again = make_window().workbenches["formulas"]
    folder = again.folder
    assert folder.grammar.isChecked() and not folder.look_again.isChecked()
    assert folder.steps() == (preprocess.DEFAULT | {"otsu"}) - {"lines"}
    assert folder.steps_note.text().startswith("Steps: Grayscale → Binarise (Otsu)")
    again.restore_options({"folder_steps": ["gray", "sharpen"], "folder_grammar": []})
    assert folder.steps() == preprocess.ALWAYS | {"gray"} and not folder.grammar.isChecked()
    again.restore_options({"folder_steps": 3})  # malformed: ignored
    assert folder.steps() == preprocess.ALWAYS | {"gray"}
    assert again.read.readings.beam_width.value() == 25
    assert (
        again.read.readings.grammar.isChecked() and again.read.readings.truth_weight.value() == 3.5
    )
    assert not again.read.readings.look_again.isChecked()
    assert again.read.log_scale.isChecked() and again.read.posterior.log_scale
    assert again.read.canvas.pen_width == 14 and again.current_page() == "dataset"
    again.show_page(3)  # a position saved by an older version still reads
    assert again.current_page() == "train"


def test_binarising_keeps_pale_writing_that_dots_outshine(formulas, qtbot, tmp_path):
    """Pale writing under darker noise dots: with Binarise (Otsu) on, the preview shows
    the writing in black (not the dots alone) and it is read; the tooltip says how."""
    _window, bench = formulas
    path = tmp_path / "pale.png"
    cv2.imwrite(str(path), pale_under_dots("(4*8)+8", 1))
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        bench.load_image(path)
    box = bench.read.preprocess.boxes["otsu"]
    assert "noise dots" in box.toolTip()
    with qtbot.waitSignal(bench.read.readings_updated, timeout=20000):
        box.setChecked(True)
    binary = dict(bench.read.last_recognition.stages)["Binarise (Otsu)"]
    assert (binary == 0).mean() > 0.1  # the writing (19 %), not the dots alone (3 %)
    assert bench.read.last_recognition.text == "(4*8)+8"


def test_a_step_that_costs_accuracy_says_so(qtbot, monkeypatch):
    """A step with a measured cost names it in its tooltip and, while on, under the summary;
    the costs name real, optional steps."""
    from dataclasses import replace

    from core.formula import preprocess
    from gui.formula.preprocess_panel import PreprocessPanel

    assert set(preprocess.COSTS) <= set(preprocess.STEP_NAMES) - preprocess.DEFAULT
    costly = [replace(s, cost="98.0 % on binarised captcha images, 99.4 % without")
              if s.name == "median" else s for s in preprocess.STEPS]  # fmt: skip
    monkeypatch.setattr(preprocess, "STEPS", tuple(costly))
    panel = PreprocessPanel()
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.warning.isVisible()
    tip = panel.boxes["median"].toolTip()
    assert "98.0 %" in tip and "3 px where the strokes are thinner" in tip  # cost and how
    panel.boxes["median"].setChecked(True)
    assert panel.warning.isVisible() and "Median filter changes what" in panel.warning.text()
    panel.reset()
    assert not panel.warning.isVisible()
    # a drawing is cropped to its ink by default: no warning for its own default step
    crop = [replace(s, cost="97.5 % of mixed styles") if s.name == "crop" else s
            for s in preprocess.STEPS]  # fmt: skip
    monkeypatch.setattr(preprocess, "STEPS", tuple(crop))
    panel = PreprocessPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_canvas_mode(True)
    assert panel.boxes["crop"].isChecked() and not panel.warning.isVisible()
    panel.set_canvas_mode(False)
    panel.boxes["crop"].setChecked(True)
    assert panel.warning.isVisible()
