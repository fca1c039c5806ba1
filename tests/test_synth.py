"""The synthetic renderer and the generator: deterministic, labelled right, every symbol in
every font, the Baidu layout on disk."""

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from core.formula import fonts, synth
from core.formula.alphabet import SYMBOLS
from core.formula.dataset import read_folder
from core.formula.generate import GenerateConfig, contact_sheet, generate, make_one
from core.formula.grammar import parse
from core.jobs import Cancelled, CancelToken, JobError, drive


def _run(out, config, workers=1):
    return drive(generate(out, config, CancelToken(), workers), CancelToken())


def _ink(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    image = Image.new("L", (80, 80), 0)
    ImageDraw.Draw(image).text((10, 5), char, font=font, fill=255)
    return np.asarray(image)


@pytest.mark.parametrize("kind", ["captcha", "handwriting", "printed"])
def test_every_symbol_renders_in_every_vendored_font(kind):
    paths = synth.font_paths(kind)
    assert len(paths) >= {"captcha": 10, "handwriting": 5, "printed": 25}[kind]
    for path in paths:
        font = ImageFont.truetype(str(path), 48)
        missing = _ink(font, "\ue000")  # a private-use code point: the font's "no glyph"
        drawn = {}
        for char in SYMBOLS:
            ink = _ink(font, char)
            assert ink.any(), f"{path.name} draws nothing for {char!r}"
            assert not np.array_equal(ink, missing), f"{path.name} lacks {char!r}"
            drawn[char] = ink.tobytes()
        assert len(set(drawn.values())) == len(SYMBOLS), f"{path.name} repeats a glyph"


@pytest.mark.parametrize("style", synth.STYLES)
def test_rendering_is_deterministic_per_seed(style):
    first = synth.render("(4*8)+8", random.Random(1), style)
    again = synth.render("(4*8)+8", random.Random(1), style)
    other = synth.render("(4*8)+8", random.Random(2), style)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (60, 180, 3) and first.dtype == np.uint8


@pytest.mark.parametrize("style", synth.STYLES)
def test_sizes(style):
    rng = random.Random(0)
    assert synth.render("12*(3+4)=84", rng, style).shape == (60, synth.auto_width("1" * 11), 3)
    assert synth.auto_width("1" * 11) == 242
    assert synth.render("7-2", rng, style, height=40, width=120).shape == (40, 120, 3)


@pytest.mark.parametrize("style", synth.STYLES)
def test_ink_differs_from_paper(style):
    """The text is there: dark pixels well apart from the pale background."""
    image = synth.render("8*8", random.Random(4), style).astype(int).sum(axis=2)
    assert np.percentile(image, 99) - np.percentile(image, 1) > 150


def test_captcha_colours_follow_the_real_set():
    for seed in range(20):
        image = synth.render("1+2", random.Random(seed), "captcha")
        paper = np.median(image.reshape(-1, 3), axis=0)
        assert paper.min() >= 236  # a pale background, each channel 238-255, smoothed
        ink = image.reshape(-1, 3)[image.sum(axis=2).reshape(-1).argmin()]
        assert ink.max() <= 200  # the text colour, each channel 0-200


def test_unseen_font_families_are_never_shipped_nor_drawn(tmp_path):
    """The unseen-fonts benchmark is only fair if no style can draw with those families."""
    shipped = {
        p.name.lower()
        for kind in ("captcha", "handwriting", "printed")
        for p in synth.font_paths(kind)
    }
    unseen = {name.lower() for names in fonts.UNSEEN_FONTS.values() for name in names}
    other = {name.lower() for names in fonts.UNSEEN_OTHER_FACES.values() for name in names}
    assert not shipped & (unseen | other) and not unseen & other
    # the prefixes that find every file of the families cover them and no shipped font
    prefixes = tuple(prefix.lower() for prefix in fonts.UNSEEN_PREFIXES)
    assert all(name.startswith(prefixes) for name in unseen | other)
    assert not any(name.startswith(prefixes) for name in shipped)
    assert set(fonts.UNSEEN_OTHER_FACES) == set(fonts.UNSEEN_FONTS)
    licences = (fonts.ASSETS_DIR / "fonts" / "README.md").read_text()
    for path in synth.font_paths("printed"):
        assert path.name in licences or path.stem.split("-")[0] in licences, path.name
    # found by file name wherever they are installed; families with no file are left out
    target = tmp_path / "fonts" / "deep"
    target.mkdir(parents=True)
    (target / "Andika-Regular.ttf").write_bytes(synth.font_paths("printed")[0].read_bytes())
    (target / "Andika-Bold.ttf").write_bytes(synth.font_paths("printed")[0].read_bytes())
    found = fonts.unseen_font_paths(tmp_path)
    assert found == {"Andika": [target / "Andika-Regular.ttf"]}
    bold = fonts.unseen_font_paths(tmp_path, faces=fonts.UNSEEN_OTHER_FACES)
    assert bold == {"Andika": [target / "Andika-Bold.ttf"]}


def test_printed_style_draws_whole_lines_in_one_typeface():
    """Dark ink on white or pale paper, the text inside the image, at many sizes."""
    heights = []
    for seed in range(30):
        image = synth.render("(3*8)+2=26", random.Random(seed), "printed")
        gray = image.astype(int).sum(axis=2) / 3
        assert np.median(gray) > 230  # the paper
        rows = np.nonzero((gray < np.median(gray) - 60).any(axis=1))[0]
        cols = np.nonzero((gray < np.median(gray) - 60).any(axis=0))[0]
        assert cols[0] > 0 and cols[-1] < image.shape[1] - 1  # nothing cut at the sides
        heights.append(rows[-1] - rows[0])
    assert max(heights) > 1.5 * min(heights)


def test_printed_lines_are_sometimes_spaced_and_sometimes_cropped_to_the_ink():
    """Spaces around the operators and `=` but not inside a signed number; some lines fill
    the height as a tight crop does."""
    forms = {synth.spaced("(1-9)-4=-12", random.Random(seed)) for seed in range(40)}
    assert {form.replace(" ", "") for form in forms} == {"(1-9)-4=-12"}
    assert "(1 - 9) - 4 = -12" in forms and "(1-9)-4 = -12" in forms
    assert not any("- 12" in form or "( " in form for form in forms)
    assert synth.spaced("-3+4=1", random.Random(1)).startswith("-3")
    spaced = filled = 0
    for seed in range(80):
        rng = random.Random(seed)
        image = synth.render("(3*8)+2=26", rng, "printed")
        gray = image.astype(int).sum(axis=2) / 3
        rows = np.nonzero((gray < np.median(gray) - 60).any(axis=1))[0]
        filled += rows[0] <= 3 and rows[-1] >= image.shape[0] - 4
        spaced += image.shape[1] > synth.auto_width("(3*8)+2=26")
    assert 5 <= spaced <= 40 and 4 <= filled <= 30


def _ink_mask(image: np.ndarray) -> np.ndarray:
    gray = image.astype(int).sum(axis=2) / 3
    return gray < np.median(gray) - 60


def test_printed_lines_are_sometimes_bold_slanted_or_in_small_print(monkeypatch):
    """Bold lines carry more ink, slanted ones lean right as an italic face does, and small
    print is typeset at a few pixels' height and scaled up to the image's."""
    font = [synth.font_paths("printed")[0]]

    def ink_with(bold_share: float) -> int:
        monkeypatch.setattr(synth, "BOLD_SHARE", bold_share)
        lines = [synth.render_printed("1+1", random.Random(s), 120, 60, font) for s in range(20)]
        return sum(int(_ink_mask(np.asarray(line)).sum()) for line in lines)

    assert ink_with(1.0) > 1.2 * ink_with(0.0)
    monkeypatch.setattr(synth, "BOLD_SHARE", 0.0)
    for slant_share, leans in ((0.0, False), (1.0, True)):
        monkeypatch.setattr(synth, "SLANT_SHARE", slant_share)
        monkeypatch.setattr(synth, "TIGHT_SHARE", 0.0)
        mask = _ink_mask(np.asarray(synth.render_printed("1", random.Random(3), 60, 60, font)))
        rows = np.nonzero(mask.any(axis=1))[0]
        top, bottom = mask[rows[0] : rows[0] + 5], mask[rows[-1] - 4 : rows[-1] + 1]
        shift = np.nonzero(top)[1].mean() - np.nonzero(bottom)[1].mean()
        assert (shift > 2) == leans, shift
    typeset = []
    render_printed = synth.render_printed

    def spy(text, rng, width, height, fonts=None):
        typeset.append(height)
        return render_printed(text, rng, width, height, fonts)

    monkeypatch.setattr(synth, "render_printed", spy)
    monkeypatch.setitem(synth._RENDERERS, "printed", spy)
    monkeypatch.setattr(synth, "SMALL_PRINT_SHARE", 1.0)
    image = synth.render("(3*8)+2=26", random.Random(0), "printed")
    assert image.shape[0] == synth.HEIGHT
    assert synth.SMALL_PRINT[0] <= typeset[-1] <= synth.SMALL_PRINT[1]
    monkeypatch.setattr(synth, "SMALL_PRINT_SHARE", 0.0)
    synth.render("(3*8)+2=26", random.Random(0), "printed")
    assert typeset[-1] == synth.HEIGHT


def test_refuses_symbols_outside_the_alphabet():
    with pytest.raises(ValueError, match="cannot draw"):
        synth.render("8/2", random.Random(0))
    with pytest.raises(ValueError, match="unknown style"):
        synth.render("8", random.Random(0), "crayon")


def test_generated_labels_match_what_was_drawn(tmp_path: Path):
    config = GenerateConfig(40, form="mixed", seed=9)
    _run(tmp_path, config)
    lines = (tmp_path / "labels.txt").read_text().splitlines()
    assert len(lines) == 40
    for index, line in enumerate(lines):
        item, _, image = make_one(config, index)
        on_disk = np.asarray(Image.open(tmp_path / f"{index}.png").convert("RGB"))
        assert np.array_equal(on_disk, image)
        text = line.split()[0]
        assert text == item.text
        if "=" not in text:
            assert int(line.split()[1]) == parse(text).value
    report = drive(read_folder(tmp_path, CancelToken()), CancelToken())
    assert len(report.items) == 40 and report.problems == []


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_same_set_for_any_number_of_workers(tmp_path: Path):
    config = GenerateConfig(120, seed=5)
    _run(tmp_path / "one", config, workers=1)
    _run(tmp_path / "two", config, workers=2)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


def test_never_overwrites_a_set(tmp_path: Path):
    _run(tmp_path, GenerateConfig(3))
    before = _digest(tmp_path)
    with pytest.raises(JobError, match="already holds"):
        _run(tmp_path, GenerateConfig(3, seed=1))
    assert _digest(tmp_path) == before


def test_read_only_folder_is_a_clear_error(tmp_path: Path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(JobError, match="Cannot write to"):
        _run(tmp_path / "set", GenerateConfig(3))


def test_cancel_leaves_no_labels_file(tmp_path: Path):
    token = CancelToken()
    with pytest.raises(Cancelled):
        drive(
            generate(tmp_path, GenerateConfig(500), token),
            token,
            lambda p: token.cancel() if p.done >= 50 else None,
        )
    assert not (tmp_path / "labels.txt").exists()


def test_contact_sheet_has_every_style_and_the_references():
    reference = np.full((60, 180, 3), 200, np.uint8)
    sheet = contact_sheet(0, per_row=3, rows_per_style=1, references=[reference])
    assert sheet.shape[0] == (1 + len(synth.STYLES)) * 66  # references, then each style
    assert (sheet[3:63, 3:183] == 200).all()
