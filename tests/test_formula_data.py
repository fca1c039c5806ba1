"""Baidu-format folders, the synthetic stream, splits, preprocessing and augmentation."""

import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.formula import augment, fonts, preprocess, synth, train_data
from core.formula import dataset as fd
from core.formula.alphabet import decode
from core.jobs import CancelToken, JobError, drive
from tests.conftest import shared_data


def _read(folder):
    return drive(fd.read_folder(folder, CancelToken()), CancelToken())


def _png(path: Path, text: str = "1+2", seed: int = 0) -> None:
    image = synth.render(text, random.Random(seed), "strokes")
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_folder_with_a_bad_line_a_missing_file_and_a_non_image(tmp_path: Path):
    for i, text in enumerate(["(4*8)+8", "7+3*0", "5+(5+2)"]):
        _png(tmp_path / f"{i}.png", text)
    (tmp_path / "3.png").write_text("I am not a picture")
    (tmp_path / "labels.txt").write_text(
        "(4*8)+8 40\n"  # good
        "7+3*0 7\n"  # good
        "5+(5+2 12\n"  # bad: unbalanced
        "1+2 3\n"  # 3.png is not an image
        "4-4 0\n"  # 4.png is missing
        "\n"  # blank lines are ignored
        "6.png 9*9=81\n"  # names its file, which is missing
    )
    report = _read(tmp_path)
    assert [i.text for i in report.items] == ["(4*8)+8", "7+3*0"]
    problems = {(p.line, p.kind) for p in report.problems}
    assert problems == {(3, "bad line"), (4, "unreadable"), (5, "missing"), (7, "missing")}
    assert "not closed" in next(p.message for p in report.problems if p.line == 3)
    assert report.summary() == "2 labelled images · 1 bad line, 2 missing, 1 unreadable"


def test_a_line_that_is_not_utf8_is_reported_and_the_rest_read(tmp_path: Path):
    for i, text in enumerate(["(4*8)+8", "7+3*0", "1+2"]):
        _png(tmp_path / f"{i}.png", text)
    (tmp_path / "labels.txt").write_bytes(b"\xef\xbb\xbf(4*8)+8 40\r\n7+3\xff0 7\r\n1+2 3\r\n")
    report = _read(tmp_path)
    assert [i.text for i in report.items] == ["(4*8)+8", "1+2"]
    [problem] = report.problems
    assert (problem.line, problem.kind) == (2, "bad line") and "not UTF-8" in problem.message


def test_both_label_forms_and_file_names(tmp_path: Path):
    for name in ("0.png", "a.png", "2.png"):
        _png(tmp_path / name)
    (tmp_path / "labels.txt").write_text("1+2 3\na.png 6*(3+7)=76\n9-9=0\n")
    report = _read(tmp_path)
    assert [(i.path.name, i.text, i.value) for i in report.items] == [
        ("0.png", "1+2", 3),
        ("a.png", "6*(3+7)=76", 60),
        ("2.png", "9-9=0", 0),
    ]


def test_wrong_values_and_empty_folders_are_reported(tmp_path: Path):
    _png(tmp_path / "0.png")
    (tmp_path / "labels.txt").write_text("1+2 4\n")
    with pytest.raises(JobError, match="No usable images") as info:
        _read(tmp_path)
    assert "does not match 1+2 = 3" in info.value.details
    with pytest.raises(JobError, match="no labels file"):
        _read(tmp_path / "..")


def test_real_baidu_samples_read(tmp_path: Path):
    source = shared_data("formula_samples")
    rows = [line.split("\t") for line in (source / "SOURCES.tsv").read_text().splitlines()[1:]]
    for name, *_ in rows:
        shutil.copy(source / name, tmp_path / name)
    (tmp_path / "labels.txt").write_text(
        "".join(f"{name} {expression} {value}\n" for name, expression, value, *_ in rows)
    )
    report = _read(tmp_path)
    assert len(report.items) == 4 and report.problems == []


def test_split_is_seeded_disjoint_and_complete():
    items = list(range(1000))
    train, val, test = fd.split(items, (0.8, 0.1, 0.1), seed=3)
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    assert sorted(train + val + test) == items
    assert fd.split(items, seed=3)[0] == train and fd.split(items, seed=4)[0] != train
    with pytest.raises(ValueError):
        fd.split(items, (0.5, 0.2))


def test_folder_dataset_skips_an_image_that_cannot_be_decoded(tmp_path: Path):
    _png(tmp_path / "good.png", "8*8")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50 + b"IEND\xaeB`\x82")
    items = [fd.Item(broken, "1+1", 2), fd.Item(tmp_path / "good.png", "8*8", 64)]
    data = train_data.FolderDataset(items)
    image, target, text = data[0]
    assert text == "8*8" and decode(target.tolist()) == "8*8" and image.shape == (60, 180, 3)
    assert data.failures[broken].startswith("the PNG data cannot be decoded")


def test_synthetic_stream_is_reproducible_and_split_between_workers(monkeypatch):
    def texts(stream, n):
        iterator = iter(stream)
        return [next(iterator)[2] for _ in range(n)]

    stream = train_data.SyntheticStream(seed=1, form="level1")
    single = texts(stream, 6)
    assert single == texts(train_data.SyntheticStream(seed=1, form="level1"), 6)
    image, target, text = next(iter(stream))
    assert image.shape == (60, 180, 3)
    assert isinstance(target, torch.Tensor) and decode(target.tolist()) == text

    class Info:
        def __init__(self, id, num_workers):
            self.id, self.num_workers = id, num_workers

    workers = []
    for worker in range(2):
        monkeypatch.setattr(train_data, "get_worker_info", lambda w=worker: Info(w, 2))
        workers.append(texts(train_data.SyntheticStream(seed=1, form="level1"), 3))
    assert workers[0] == single[0::2] and workers[1] == single[1::2]


# ------------------------------------------------------------------------ preprocess
def _line_image(angle: float = 0.0) -> np.ndarray:
    image = np.full((120, 360), 255, np.uint8)
    cv2.putText(image, "12+34=46", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, 0, 6)
    if angle:
        matrix = cv2.getRotationMatrix2D((180, 60), angle, 1.0)
        image = cv2.warpAffine(image, matrix, (360, 120), borderValue=255)
    return image


def _tilt(image: np.ndarray) -> float:
    points = np.column_stack(np.nonzero(image < 128)[::-1]).astype(np.float32)
    (_, _), (w, h), angle = cv2.minAreaRect(points)
    if w < h:
        angle -= 90
    return abs((angle + 45) % 90 - 45)


def test_median_removes_noise_dots_and_keeps_strokes():
    """Bold strokes: the 5 px window removes 3 px dots. Thin strokes: the 3 px window keeps
    them (5 px would wipe them out) and still removes single-pixel specks."""
    image = np.full((60, 180), 240, np.uint8)
    for y in (15, 30, 45):
        cv2.line(image, (20, y), (160, y), 40, 6)
    dots = [(8, 6), (90, 55), (170, 8)]
    for x, y in dots:
        image[y - 1 : y + 2, x - 1 : x + 2] = 40
    clean = preprocess.median(image)
    assert (clean[[15, 30, 45], 25:155] < 100).all()
    assert all(clean[y, x] > 200 for x, y in dots)

    thin = np.full((60, 180), 240, np.uint8)
    for y in (15, 30, 45):
        thin[y : y + 2, 20:160] = 40  # printed strokes, 2 px
    thin[6, 8] = thin[55, 90] = 40
    clean = preprocess.median(thin)
    assert (clean[[15, 16, 30, 31, 45, 46], 25:155] < 100).all()
    assert clean[6, 8] > 200 and clean[55, 90] > 200
    assert (preprocess.median(thin, size=5)[[15, 30, 45], 25:155] > 200).all()


def test_gray_makes_ink_dark_even_when_it_was_light():
    dark_board = 255 - _line_image()
    gray = preprocess.to_gray(np.dstack([dark_board] * 3))
    assert np.median(gray) > 200


def test_deskew_levels_a_tilted_line():
    tilted = _line_image(6)
    assert _tilt(tilted) > 4
    assert _tilt(preprocess.deskew(tilted)) < 1.5


def test_crop_pad_resize_normalize():
    cropped = preprocess.crop_to_ink(_line_image())
    assert cropped.shape[1] >= 2 * cropped.shape[0]
    assert (cropped[:2] == 255).all() and (cropped[:, :2] == 255).all()
    resized = preprocess.resize_to_height(cropped, 60)
    assert resized.shape[0] == 60
    assert abs(resized.shape[1] / 60 - cropped.shape[1] / cropped.shape[0]) < 0.05
    normal = preprocess.normalize(resized)
    assert normal.dtype == np.float32 and normal.min() == 0.0 and normal.max() == 1.0


def test_normalize_makes_pale_glyphs_dark_beside_dark_noise_dots():
    # The captcha drawing's dark ink comes out pale through its luminance mask, while its
    # noise dots keep the full colour; they cover about 3 % of it.
    image = np.full((32, 96), 245, np.uint8)
    cv2.putText(image, "8-1", (4, 26), cv2.FONT_HERSHEY_SIMPLEX, 1, 228, 3)
    glyphs = image < 240
    rng = np.random.default_rng(0)
    for x, y in rng.integers((0, 0), (95, 31), (25, 2)):
        image[y : y + 2, x : x + 2] = 20
    glyphs &= image != 20
    normal = preprocess.normalize(image)
    assert np.median(normal[glyphs]) < 0.25
    assert normal[image == 20].max() == 0.0
    assert np.median(normal[~glyphs & (image != 20)]) == 1.0
    # A straight percentile stretch leaves them nearly invisible.
    darkest = np.percentile(image, 0.5)
    assert np.median((image[glyphs] - darkest) / (245 - darkest)) > 0.85


def test_normalize_keeps_black_ink_black_and_a_blank_page_white():
    ink = preprocess.normalize(_line_image())
    assert ink[_line_image() == 0].max() == 0.0 and ink[_line_image() == 255].min() == 1.0
    assert (preprocess.normalize(np.full((32, 96), 200, np.uint8)) == 1.0).all()


def test_pipeline_steps_in_order_and_canvas_path():
    steps = preprocess.run(np.dstack([_line_image()] * 3), ["normalize", "gray", "resize"])
    assert [s.name for s, _ in steps] == ["gray", "resize", "normalize"]
    with pytest.raises(ValueError, match="unknown steps"):
        preprocess.run(_line_image(), ["sharpen"])
    canvas = np.full((400, 1200), 255, np.uint8)
    cv2.putText(canvas, "6*(3+7)", (100, 250), cv2.FONT_HERSHEY_SIMPLEX, 5, 0, 14)
    model_input = preprocess.from_canvas(canvas)
    assert model_input.shape[0] == preprocess.MODEL_HEIGHT
    assert model_input.dtype == np.float32
    assert model_input[:, :3].min() == 1.0  # paper around the cropped ink


def test_real_sample_goes_through_the_default_pipeline():
    from core.images import read_image

    image = read_image(shared_data("formula_samples", "0.png"))
    assert preprocess.for_model(image).shape == (32, 96)
    assert preprocess.for_model(image, height=60).shape == (60, 180)


# ----------------------------------------------------------------------- augmentation
def test_augment_keeps_the_format_and_is_seeded():
    image = synth.render("6*(3+7)", random.Random(0), "captcha")
    a = augment.augment(image, np.random.default_rng(1))
    b = augment.augment(image, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape[0] >= 60 and a.shape[2] == 3
    heights = {augment.augment(image, np.random.default_rng(s)).shape[0] for s in range(40)}
    assert 60 in heights and len(heights) > 1  # some go on a larger sheet
    assert np.array_equal(augment.augment(image, np.random.default_rng(1), strength=0), image)
    widths = {augment.augment(image, np.random.default_rng(s)).shape[1] for s in range(40)}
    assert len(widths) > 1  # other widths happen


def test_augment_never_mirrors(monkeypatch: pytest.MonkeyPatch):
    """Mirroring would put the ink mass of '(1' on the other side; check many draws (not
    moved on a larger sheet, which `test_reframe_...` checks)."""
    monkeypatch.setattr(augment, "REFRAME_SHARE", 0.0)
    image = np.full((60, 180, 3), 255, np.uint8)
    image[:, :40] = 0  # ink on the left only
    for seed in range(100):
        out = augment.augment(image, np.random.default_rng(seed)).mean(axis=(0, 2))
        third = len(out) // 3
        assert out[:third].mean() < out[-third:].mean()


def test_reframe_puts_the_image_on_its_own_paper_and_the_trim_takes_it_off():
    """The image lies whole somewhere on a larger sheet of its border's colour; the default
    steps then read the formula about as large as they read the image itself."""
    image = synth.render("(4*8)+8=40", random.Random(2), "printed")
    image = np.where(image > 250, np.uint8(235), image)  # darker paper
    paper = np.median(preprocess.edges(image, 1), axis=0)
    for seed in range(8):
        sheet = augment.reframe(image, np.random.default_rng(seed))
        assert sheet.shape[0] >= 60 and sheet.shape[1] >= image.shape[1] and sheet.ndim == 3
        found = cv2.matchTemplate(sheet, image, cv2.TM_SQDIFF)
        y, x = np.unravel_index(found.argmin(), found.shape)
        h, w = image.shape[:2]
        assert np.array_equal(sheet[y : y + h, x : x + w], image)  # not flipped or scaled
        around = np.ones(sheet.shape[:2], bool)
        around[y : y + h, x : x + w] = False
        assert (sheet[around] == paper).all()  # the border's colour

        def ink_rows(picture: np.ndarray) -> int:
            return int((preprocess.for_model(picture).min(axis=1) < 0.5).sum())

        assert ink_rows(sheet) >= ink_rows(image) - 4
    wide = [augment.reframe(image, np.random.default_rng(s)).shape[1] for s in range(30)]
    assert max(wide) > image.shape[1] + 5 * 60  # sometimes a formula small on a page


def test_small_print_and_uneven_light_augmentations():
    """Small print comes back at the image's size in two levels, as blocky as its height;
    uneven light darkens one side and leaves the other as it was."""
    image = synth.render("(4*8)-1=31", random.Random(3), "printed")
    rng = np.random.default_rng(0)
    small = augment.small_print(image, rng)
    assert small.shape == image.shape and small.dtype == np.uint8
    steps = [augment.small_print(image, np.random.default_rng(s)) for s in range(6)]
    assert any(set(np.unique(im)) <= {0, 255} for im in steps)
    paper = np.full((60, 180, 3), 200, np.uint8)
    lit = augment.lighting(paper, rng)
    assert lit.shape == paper.shape and lit.max() == 200
    assert 0.55 * 200 - 1 <= lit.min() <= 0.9 * 200 + 1
    gray = augment.lighting(paper[..., 0], rng)
    assert gray.ndim == 2 and gray.min() < 200


def test_cleaning_augmentations_do_what_they_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thresholding leaves two levels, thickening adds ink, thinning removes it, speckle
    adds dots; and a quarter or so of training images go through a user's cleaning."""
    image = synth.render("6*(3+7)", random.Random(0), "captcha")
    rng = np.random.default_rng(0)
    for _ in range(20):
        binary = augment.threshold(image, rng)
        assert binary.ndim == 2 and set(np.unique(binary)) <= {0, 255}
    binary = augment.threshold(image, np.random.default_rng(5))
    ink = (binary == 0).sum()
    gray = preprocess.to_gray(image)
    near = augment.near_paper(gray, np.random.default_rng(0))
    assert set(np.unique(near)) <= {0, 255}
    assert (near == 0).sum() > (preprocess.binarize_otsu(gray) == 0).sum()  # the pale halo
    monkeypatch.setattr(augment, "NEAR_PAPER", (0.99, 0.99))
    noisy = np.clip(np.random.default_rng(0).normal(230, 12, (60, 180)), 0, 255)
    noisy = noisy.astype(np.uint8)
    noisy[20:40, 20:160] = 40
    near = augment.near_paper(noisy, np.random.default_rng(0))  # most of it would be ink
    assert np.array_equal(near, preprocess.binarize_otsu(noisy))
    assert (augment.thicken(binary, rng) == 0).sum() > ink
    assert (augment.thin(binary, rng) == 0).sum() < ink
    paper = np.full((60, 180), 255, np.uint8)
    assert (augment.speckle(paper, rng) == 0).sum() > 0
    colour = augment.recolour(binary, rng)
    assert colour.shape == (60, 180, 3) and len(np.unique(colour.reshape(-1, 3), axis=0)) == 2
    cleaned = [augment.augment(image, np.random.default_rng(seed)) for seed in range(200)]
    two_tone = sum(len(np.unique(im.reshape(-1, 3), axis=0)) <= 2 for im in cleaned)
    assert 40 <= two_tone <= 140


def test_training_sees_the_apps_optional_steps():
    """Some training images go through the Read tab's own optional steps (the pipeline's
    functions, in its order), so turning one on shows the model nothing new."""
    image = synth.render("6*(3+7)", random.Random(0), "printed")
    rng = np.random.default_rng(0)
    outputs = [augment.app_steps(image, rng) for _ in range(40)]
    assert all(out.ndim == 2 and out.dtype == np.uint8 and out.min() < 128 for out in outputs)
    gray = preprocess.to_gray(image)
    closed = preprocess.closing(gray)
    assert any(np.array_equal(out, closed) for out in outputs)
    assert set(augment.APP_STEPS) <= set(preprocess.STEP_NAMES)
    assert abs(sum(augment.APP_STEPS.values()) - 1) < 1e-9


def test_loose_margins_are_trimmed_and_tight_images_left_alone():
    image = synth.render("6*(3+7)=60", random.Random(2), "fonts")
    assert preprocess.trim_margins(image) is image  # drawn tight: untouched
    height, width = image.shape[:2]
    loose = np.full((height * 3, width * 3, 3), 255, np.uint8)
    loose[height : 2 * height, width : 2 * width] = image
    trimmed = preprocess.trim_margins(loose)
    assert trimmed.shape[0] < loose.shape[0] / 2 and trimmed.shape[1] < loose.shape[1] / 2
    assert "trim" in preprocess.DEFAULT and "trim" in preprocess.CANVAS
    # paper above and below only: most of the image is ink's box, but the glyphs are small
    pen = synth.render("6*(3+7)=60", random.Random(2), "strokes")
    tall = np.full((pen.shape[0] * 5 // 2, pen.shape[1], 3), 255, np.uint8)
    tall[pen.shape[0] : 2 * pen.shape[0]] = pen
    top, bottom, left, right = preprocess.ink_box(preprocess.to_gray(tall))
    assert (bottom - top) * (right - left) >= preprocess.LOOSE_SHARE * tall.shape[0] * tall.shape[1]
    assert bottom - top < preprocess.LOW_SHARE * tall.shape[0]
    cropped = preprocess.trim_margins(tall)
    assert cropped.shape[1] == tall.shape[1]  # its sides as they were
    pad = round(preprocess.LOW_MARGIN * (bottom - top))
    assert cropped.shape[0] == bottom - top + 2 * pad  # a training image's paper above, below


def cut_to_the_ink(text: str, stroke: int, paper: int = 255, typeface: int = 0) -> np.ndarray:
    """`text` printed black at 48 points in a vendored printed typeface (by index),
    emboldened by `stroke`, cut to its ink: gray, paper `paper`."""
    face = fonts.font(fonts.font_paths("printed")[typeface], 48)
    left, top, right, bottom = face.getbbox(text, stroke_width=stroke)
    image = Image.new("L", (right - left, bottom - top), paper)
    ImageDraw.Draw(image).text((-left, -top), text, font=face, fill=0, stroke_width=stroke)
    return np.asarray(image)


def pale_under_dots(text: str, seed: int = 0) -> np.ndarray:
    """`text` in the printed style, its writing paled to within 30 % of the paper, under
    dark 3×3 noise dots (0.4 % of the pixels): gray. What the captcha drawing does to dark
    ink (its luminance mask) while the dots keep their colour."""
    gray = preprocess.to_gray(synth.render(text, random.Random(seed), "printed"))
    pale = (245 - 0.3 * (245 - gray.astype(np.float32))).astype(np.uint8)
    height, width = pale.shape
    count = int(0.004 * height * width)
    for x, y in np.random.default_rng(seed).integers((0, 0), (width - 3, height - 3), (count, 2)):
        pale[y : y + 3, x : x + 3] = 30
    return pale


def test_binarising_keeps_pale_writing_under_darker_noise_dots():
    pale = pale_under_dots("(4*8)+8")
    writing = pale < 240
    dots = pale == 30
    otsu = preprocess.binarize_otsu(pale)
    assert (otsu[writing & ~dots] == 255).all()  # Otsu's split: the dots from the rest
    binary = preprocess.binarize(pale)
    assert (binary[writing & ~dots] == 0).mean() > 0.6 and (binary[dots] == 0).all()
    assert (binary[~writing] == 255).all()
    # Where Otsu keeps the writing, or there is only paper, the step is Otsu's.
    black = cut_to_the_ink("(4*8)+8", 0)
    assert np.array_equal(preprocess.binarize(black), preprocess.binarize_otsu(black))
    noise = (250 - np.random.default_rng(0).integers(0, 12, (60, 180))).astype(np.uint8)
    assert np.array_equal(preprocess.binarize(noise), preprocess.binarize_otsu(noise))
    assert dict((s.name, s.apply) for s in preprocess.STEPS)["otsu"] is preprocess.binarize


def test_a_formula_cut_out_to_its_ink_gets_a_margin_of_its_own_paper():
    tight = cut_to_the_ink("71-49+2-5", 1, paper=230)
    padded = preprocess.trim_margins(tight)
    pad = round(preprocess.TIGHT_PAD * tight.shape[0])
    assert padded.shape == (tight.shape[0] + 2 * pad, tight.shape[1] + 2 * pad)
    assert np.array_equal(padded[pad:-pad, pad:-pad], tight)
    assert (padded[:pad] == 230).all() and (padded[:, -pad:] == 230).all()
    framed = cv2.copyMakeBorder(tight, 12, 12, 12, 12, cv2.BORDER_CONSTANT, value=230)
    assert preprocess.trim_margins(framed) is framed  # margins of its own: left alone
    height = tight.shape[0]
    dotted = cv2.copyMakeBorder(tight, 0, 0, 0, 2 * height, cv2.BORDER_CONSTANT, value=230)
    dotted[:4, -4:] = dotted[-4:, -4:] = 0  # the symbols end far from the right: dots there
    assert preprocess.trim_margins(dotted) is dotted


def test_bold_writing_covering_most_of_the_image_is_not_taken_for_light_on_dark():
    """The paper is most of an image, except where bold writing is cut out to its ink; its
    edges are still paper. A light-on-dark image is dark in both and is inverted."""
    bold = cut_to_the_ink("88-88", 4)
    assert np.median(bold) < 128 and np.median(preprocess.edges(bold)) > 128
    assert np.array_equal(preprocess.to_gray(bold), bold)
    dark_mode = cv2.copyMakeBorder(255 - bold, 8, 8, 8, 8, cv2.BORDER_CONSTANT, value=20)
    assert preprocess.to_gray(np.dstack([dark_mode] * 3))[0, 0] == 235


def test_a_small_formula_on_a_large_page_is_cropped_whole_without_the_dots_off_its_line():
    page = np.full((240, 720), 255, np.uint8)
    cv2.putText(page, "18-8", (300, 130), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 0, 2)
    page[123:125, 350:358] = 0  # a minus at the end, smaller than a fifth of an 8
    for y, x in [(10, 10), (200, 650), (60, 500), (126, 640)]:
        page[y : y + 3, x : x + 3] = 0  # dots: three off the line, one on it but far out
    assert preprocess.ink_box(page) == (116, 130, 301, 358)
    trimmed = preprocess.trim_margins(page)
    assert trimmed.shape[0] < 30 and trimmed.shape[1] < 100
    assert (trimmed < 128).sum() == (page[100:140, 290:400] < 128).sum()
    dots = np.full((60, 180), 255, np.uint8)  # a threshold that kept only the noise dots
    for y, x in np.random.default_rng(0).integers((0, 0), (56, 176), (30, 2)):
        dots[y : y + 3, x : x + 4] = 0
    assert preprocess.crop_to_ink(dots) is dots and preprocess.trim_margins(dots) is dots


def in_a_cell(text: str = "(4*8)-1=31") -> np.ndarray:
    """`text` printed in a table cell: a dark 2 px border around the line (RGB), which the
    model reads only once *Remove ruled lines* has erased it."""
    line = synth.render(text, random.Random(3), "printed").copy()
    cv2.rectangle(line, (0, 0), (line.shape[1] - 1, line.shape[0] - 1), (60, 60, 60), 2)
    return line


def test_the_steps_a_user_chooses_start_from_the_default_pipeline():
    assert preprocess.chosen() == preprocess.DEFAULT
    steps = preprocess.chosen(["otsu", "close"], ["lines"])
    assert steps == (preprocess.DEFAULT | {"otsu", "close"}) - {"lines"}
    with pytest.raises(ValueError, match="resize: the steps to leave out are gray, lines"):
        preprocess.chosen(off=["resize"])
    with pytest.raises(ValueError, match="lines: the steps to add are median"):
        preprocess.chosen(on=["lines"])
    # a costly optional step is named with its figures; defaults and free steps are not
    notes = preprocess.costly(steps)
    assert [note.split(" changes")[0] for note in notes] == ["Binarise (Otsu)", "Closing"]
    assert preprocess.MEASURED_COSTS["otsu"] in notes[0]
    assert notes[0].endswith(preprocess.COST_NOTES["otsu"])
    assert preprocess.costly(preprocess.DEFAULT) == []
    assert preprocess.costly(preprocess.CANVAS, preprocess.CANVAS) == []


def test_opening_a_black_and_white_image_removes_specks_and_keeps_thin_strokes():
    binary = np.full((40, 60), 255, np.uint8)
    binary[10:30, 10:16] = 0  # a bold stroke ...
    binary[18, 16:40] = 0  # ... with a 1 px arm
    binary[30, 45:55] = 0  # a thin minus on its own
    binary[5, 50] = binary[35, 5:7] = 0  # specks smaller than the kernel
    binary[2:5, 30:33] = 0  # a 3×3 dot: an opening keeps it
    expected = binary.copy()
    expected[5, 50] = expected[35, 5:7] = 255  # the specks alone go
    assert np.array_equal(preprocess.opening(binary), expected)
    plain = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((2, 2), np.uint8))
    assert (plain[18, 20:40] == 255).all() and (plain[30, 45:55] == 255).all()  # cut away
    # a grey image is opened as it is
    gray = cv2.GaussianBlur(binary, (3, 3), 0)
    assert np.array_equal(
        preprocess.opening(gray), cv2.morphologyEx(gray, cv2.MORPH_CLOSE, np.ones((2, 2)))
    )


def on_a_sheet(image: np.ndarray, side: int, above: int) -> np.ndarray:
    """`image` on a larger sheet of its border's colour, `side` px of it left and right and
    `above` px above and below: a user's loose crop of a page."""
    return preprocess.pad_with_paper(image, (above, above, side, side))


def test_a_loose_captcha_is_cropped_with_its_pale_glyphs(monkeypatch: pytest.MonkeyPatch):
    """On a large sheet a blob must cover more pixels to count as ink, and the pale first
    glyph of a captcha did not: the crop cut it off. Looking again in the part around the
    first box finds it."""
    image = synth.render("7*(1*8)", random.Random(39), "captcha")
    sheet = on_a_sheet(image, 240, 120)
    as_drawn = preprocess.crop_to_ink(image)
    assert np.array_equal(preprocess.trim_margins(sheet), as_drawn)  # as if cut from it
    assert np.array_equal(preprocess.crop_to_ink(sheet), as_drawn)  # the optional step too

    def ink(picture: np.ndarray) -> int:
        return int((preprocess.to_gray(picture) < 160).sum())

    monkeypatch.setattr(preprocess, "_look_again", lambda image, box: (image, box))
    once = preprocess.trim_margins(sheet)
    assert not np.array_equal(once, as_drawn) and ink(once) < 0.95 * ink(as_drawn)  # the 7 cut
    assert not np.array_equal(preprocess.crop_to_ink(sheet), as_drawn)


def _bars(width: int, height: int = 60) -> np.ndarray:
    """Black bars `width` px wide on white, with a 2 px minus beside them."""
    image = np.full((height, 180), 255, np.uint8)
    for left in (20, 60, 100):
        image[10:50, left : left + width] = 0
    image[29:31, 130:160] = 0
    return image


def test_bold_strokes_of_a_binary_image_are_thinned_and_thin_parts_kept():
    bold = _bars(10)
    assert preprocess.is_binary(bold)
    assert preprocess.stroke_width(bold) == pytest.approx(10, abs=1.5)
    thinned = preprocess.thin_bold(bold)
    assert preprocess.stroke_width(thinned) <= preprocess.BOLD_SHARE * 60 + 1e-6
    assert (thinned[29:31, 130:160] == 0).all()  # the minus is thinner than a cut: kept
    assert (thinned[10:50, 20:30] == 0).sum() < (bold[10:50, 20:30] == 0).sum()
    normal = _bars(5)
    assert preprocess.thin_bold(normal) is normal  # no wider than the training images'


def test_thin_bold_leaves_gray_images_and_drawings_alone():
    captcha = preprocess.to_gray(synth.render("(4*8)+8", random.Random(5), "captcha"))
    assert not preprocess.is_binary(captcha)
    assert preprocess.thin_bold(captcha) is captcha
    small = _bars(4, height=30)  # over a tenth of the height, but thinning would break it up
    assert preprocess.thin_bold(small) is small
    assert "bold" in preprocess.DEFAULT and "bold" not in preprocess.CANVAS


def _printed(text: str, seed: int = 3) -> np.ndarray:
    return preprocess.to_gray(synth.render(text, random.Random(seed), "printed"))


def test_a_frame_rules_and_an_underline_are_erased_and_the_symbols_kept():
    plain = _printed("(4*8)-1=31")
    height, width = plain.shape
    framed = plain.copy()
    cv2.rectangle(framed, (0, 0), (width - 1, height - 1), 60, 2)
    cleaned = preprocess.remove_lines(framed)
    assert cleaned.shape == plain.shape
    assert (cleaned[:2] > 200).all() and (cleaned[:, :2] > 200).all()  # the frame is paper
    assert (cleaned[:, -2:] > 200).all() and (cleaned[-2:] > 200).all()
    assert np.abs(cleaned[4:-4, 4:-4].astype(int) - plain[4:-4, 4:-4]).max() == 0
    rows, cols = np.nonzero(plain < 128)
    underlined = plain.copy()
    underlined[rows.max() : rows.max() + 2, cols.min() : cols.max() + 1] = 0  # touching
    cleaned = preprocess.remove_lines(underlined)
    assert (cleaned[rows.max() + 1, cols.min() : cols.max() + 1] > 200).mean() > 0.8
    symbols = plain[: rows.max() - 1] < 128
    assert (cleaned[: rows.max() - 1] < 128)[symbols].mean() > 0.99  # above it, all kept


def test_a_grey_rule_along_a_minus_is_erased_and_the_minus_kept():
    plain = _printed("7-1")
    count, _, stats, _ = cv2.connectedComponentsWithStats((plain < 128).astype(np.uint8))
    minus = max(range(1, count), key=lambda i: stats[i, 2] / stats[i, 3])  # the widest
    x, y, width, height = stats[minus, :4]
    row = y + height // 2
    ruled = plain.copy()
    ruled[row] = np.minimum(ruled[row], 150)  # lined paper: a grey rule through the minus
    cleaned = preprocess.remove_lines(ruled)
    beside = np.ones(plain.shape[1], bool)
    beside[x - 2 : x + width + 2] = False
    assert (cleaned[row, beside & (plain[row] > 200)] > 200).all()  # the rule is paper
    assert (cleaned[row, x : x + width] < 128).mean() > 0.9  # the minus is whole
    black = plain.copy()
    black[row] = 0  # a black rule cannot be told from a black minus along it
    assert (preprocess.remove_lines(black)[row, x : x + width] < 128).mean() < 0.1


def test_a_grey_rule_through_the_writing_is_erased(monkeypatch: pytest.MonkeyPatch):
    """On lined paper a rule can run through the middle of the line of writing, where the
    glyphs of a bold face crowd it on both sides: a thin grey line is a rule all the same."""
    black = preprocess.binarize_otsu(_printed("(4*8)-1=31"))
    plain = cv2.erode(black, np.ones((3, 3), np.uint8))  # bold
    share = (plain < 128).mean(axis=1)  # of each row in ink
    row = max(range(2, len(share) - 2), key=lambda r: min(share[r - 2], share[r + 2]))
    ruled = plain.copy()
    ruled[row] = np.minimum(ruled[row], 150)
    paper = plain[row] > 200  # the rule's pixels between the glyphs
    cleaned = preprocess.remove_lines(ruled)
    assert (cleaned[row, paper] > 200).mean() > 0.95
    ink = plain < 128
    assert (cleaned < 128)[ink].mean() > 0.98  # the glyphs that cross it are kept
    monkeypatch.setattr(preprocess, "GREY_RULE", 9.0)  # only rules with paper beside them
    assert preprocess.remove_lines(ruled) is ruled


def test_line_removal_leaves_formulas_without_lines_alone():
    for text, style in (("(4*8)-1=31", "printed"), ("7+3*0", "captcha"), ("5-6+2", "strokes")):
        gray = preprocess.to_gray(synth.render(text, random.Random(4), style))
        assert preprocess.remove_lines(gray) is gray
    bold = _printed("4-1-4")
    bold = cv2.erode(preprocess.binarize_otsu(bold), np.ones((5, 5), np.uint8))  # joined up
    assert preprocess.remove_lines(bold) is bold
    tall = np.full((40, 30), 255, np.uint8)  # a one and a minus cut out to their ink
    tall[:, 2:6], tall[18:22, 12:30] = 0, 0
    assert preprocess.remove_lines(tall) is tall
    assert "lines" in preprocess.DEFAULT and "lines" in preprocess.CANVAS
