"""The model Labelscope ships, loaded the way the app loads it."""

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.formula import ctc, preprocess
from core.formula.fonts import font, font_paths
from core.formula.generate import GenerateConfig, make_one
from core.formula.grammar import parse
from core.formula.model_config import CRNNConfig
from core.formula.recognizer import SHIPPED_LARGE_MODEL, SHIPPED_MODEL, Recognizer
from core.images import read_image
from tests.conftest import shared_data
from tests.test_formula_data import pale_under_dots


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.shipped()


@pytest.fixture(scope="module", params=["small", "large"])
def each_shipped(request) -> Recognizer:
    return Recognizer.shipped(size=request.param)


def test_it_is_small_and_says_what_it_is(recognizer):
    assert SHIPPED_MODEL.stat().st_size < 10 * 2**20
    assert (SHIPPED_MODEL.parent / "formula_crnn.md").exists()
    assert recognizer.meta["metrics"]["val_acc"] > 0.95
    assert recognizer.config == CRNNConfig.preset("small")


def test_the_large_model_is_the_large_configuration_and_has_its_card():
    large = Recognizer.shipped(size="large")
    assert large.path == SHIPPED_LARGE_MODEL and large.config == CRNNConfig.preset("large")
    assert SHIPPED_LARGE_MODEL.stat().st_size < 16 * 2**20
    assert (SHIPPED_LARGE_MODEL.parent / "formula_crnn_large.md").exists()
    assert large.meta["metrics"]["val_acc"] > 0.95
    # stored on the CPU: it loads on machines without the GPU it was trained on
    record = torch.load(SHIPPED_LARGE_MODEL, weights_only=True)
    assert {(t.device.type, t.dtype) for t in record["model"].values()} == {("cpu", torch.float32)}


def test_reads_the_real_baidu_samples_exactly(each_shipped):
    recognizer = each_shipped
    folder = shared_data("formula_samples")
    rows = [line.split("\t") for line in (folder / "SOURCES.tsv").read_text().splitlines()[1:]]
    assert len(rows) == 4
    for name, truth, *_ in rows:
        assert recognizer.recognize(read_image(folder / name)).text == truth, name


@pytest.mark.parametrize(("style", "minimum"), [("captcha", 0.97), ("strokes", 0.98)])
def test_reads_fresh_generated_images(each_shipped, style, minimum, monkeypatch):
    recognizer = each_shipped
    from core.formula import synth

    # the captcha style as the real set draws it: its fonts' look-alikes only
    monkeypatch.setattr(synth, "CAPTCHA_PRINTED_SHARE", 0.0)
    config = GenerateConfig(200, style=style, form="mixed", seed=31337)
    items = [make_one(config, i) for i in range(200)]
    texts = recognizer.read_batch([image for _, _, image in items])
    correct = sum(text == item.text for text, (item, _, _) in zip(texts, items, strict=True))
    assert correct / len(items) >= minimum


def test_a_drawing_goes_through_the_canvas_path(recognizer):
    """Dark strokes on a large white canvas, as the drawing widget will hand them over."""
    import random

    import cv2
    import numpy as np

    from core.formula import synth

    strokes = synth.render("6*(3+7)=60", random.Random(5), "strokes", height=60)
    gray = cv2.cvtColor(strokes, cv2.COLOR_RGB2GRAY)
    gray = np.where(gray < 128, 0, 255).astype(np.uint8)  # a canvas has black ink on white
    canvas = np.full((400, 1200), 255, np.uint8)
    big = cv2.resize(gray, (gray.shape[1] * 3, 180), interpolation=cv2.INTER_NEAREST)
    canvas[100:280, 100 : 100 + big.shape[1]] = big
    assert recognizer.recognize(canvas, canvas=True).text == "6*(3+7)=60"


def test_the_grammar_reading_is_always_a_formula(recognizer, tmp_path, capsys):
    """An unbalanced bracket is read as written by greedy decoding, and as the most
    probable well-formed formula with the grammar: in the API and on the command line."""
    import json
    import random

    import cv2

    from core.cli import main
    from core.formula import synth
    from core.formula.grammar import GrammarError, parse

    path = tmp_path / "open.png"
    image = synth.render("(3+7", random.Random(3), "strokes")
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    greedy = recognizer.recognize_file(path)
    with pytest.raises(GrammarError):
        parse(greedy.text)
    formula = recognizer.recognize_file(path, grammar=True)
    assert parse(formula.text) and formula.text != greedy.text
    assert "".join(s.symbol for s in formula.symbols) == formula.text
    assert recognizer.read_batch([image], grammar=True) == [formula.text]
    assert recognizer.read_batch([image]) == [greedy.text]

    assert main(["formula", "recognize", "--grammar", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}\t{formula.text}\n"
    assert main(["formula", "recognize", "--grammar", "--json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["grammar"] and data["text"] == formula.text and data["valid"]


def test_odd_sizes_are_refused_and_the_next_file_is_read(tmp_path, capsys):
    import cv2
    import numpy as np

    from core.cli import main

    odd = {
        "thin.png": np.full((4, 100), 255, np.uint8),  # too small
        "tall.png": np.full((5000, 1), 255, np.uint8),  # not one line
        "wide.png": np.full((10, 2000), 255, np.uint8),  # 200 times wider than high
        "huge.png": np.full((8000, 8000), 255, np.uint8),  # 64 million pixels, tiny file
    }
    for name, image in odd.items():
        cv2.imwrite(str(tmp_path / name), image)
    item, _style, image = make_one(GenerateConfig(count=1, style="fonts", form="level1"), 0)
    cv2.imwrite(str(tmp_path / "good.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    paths = [str(tmp_path / n) for n in [*odd, "good.png"]]
    assert main(["formula", "recognize", *paths]) == 1
    out, err = capsys.readouterr()
    assert out.strip().split("\t") == [paths[-1], item.text]
    assert "thin.png: the image is 100 × 4 pixels: too small" in err
    assert "tall.png" in err and "wide.png" in err and "more than the 60 million" in err


def test_real_samples_with_loose_margins_read_right(recognizer):
    import numpy as np

    folder = shared_data("formula_samples")
    rows = [line.split("\t") for line in (folder / "SOURCES.tsv").read_text().splitlines()[1:]]
    for name, truth, *_ in rows:
        image = read_image(folder / name)
        height, width = image.shape[:2]
        sheet = np.full((height * 3, width * 2, 3), image[0, 0], np.uint8)
        sheet[height : 2 * height, width // 2 : width // 2 + width] = image
        assert recognizer.recognize(sheet).text == truth, name


def test_a_formula_exported_on_a_transparent_page_is_read(recognizer, tmp_path):
    """Typesetting and plotting tools export ink on a transparent page whose hidden colour
    is often black: the page is drawn as paper, not as the black it hides."""
    face = font(font_paths("printed")[0], 40)
    text = "(3*8)+2=26"
    left, top, right, bottom = face.getbbox(text)
    image = Image.new("RGBA", (right - left + 20, bottom - top + 20), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((10 - left, 10 - top), text, font=face, fill=(0, 0, 0, 255))
    path = tmp_path / "formula.png"
    image.save(path)
    assert recognizer.recognize_file(path).text == text


@pytest.mark.parametrize("top", [1, 15], ids=["a 0/1 mask", "12-bit data in a 16-bit PNG"])
def test_a_formula_that_looks_black_is_stretched_and_read(recognizer, tmp_path, top):
    """A binarised formula saved with the values 0 and 1 (or 16-bit data whose highest level
    becomes 15 in 8 bits) looks black in a viewer, and is read as black on white."""
    text = "(3*8)+2=26"
    face = font(font_paths("printed")[0], 40)
    left, top_edge, right, bottom = face.getbbox(text)
    image = Image.new("L", (right - left + 20, bottom - top_edge + 20), 255)
    ImageDraw.Draw(image).text((10 - left, 10 - top_edge), text, font=face, fill=0)
    paper = np.asarray(image) > 128
    path = tmp_path / "mask.png"
    if top == 1:
        cv2.imwrite(str(path), paper.astype(np.uint8))
    else:
        cv2.imwrite(str(path), paper.astype(np.uint16) * (top * 256 + 255))
    assert read_image(path).max() == top
    assert recognizer.recognize_file(path).text == text


def test_a_blank_page_reads_nothing(recognizer):
    """Paper with faint noise (a scan or photo of an empty page) is all paper to the model,
    its noise not stretched into strokes."""
    noise = np.random.default_rng(0).integers(0, 12, (60, 180))
    page = (250 - noise).astype(np.uint8)
    assert (preprocess.normalize(page) == 1).all()
    assert recognizer.recognize(page).text == ""
    faint = page.copy()
    faint[20:40, 40:44] = 200  # one faint stroke, 50 levels below the paper, is still ink
    assert preprocess.normalize(faint)[20:40, 40:44].max() < 0.2


def test_binarising_pale_writing_under_noise_dots_reads_it(recognizer):
    """The Binarise (Otsu) step keeps pale writing that Otsu's split alone loses to the
    darker noise dots, as on some Baidu images."""
    for seed in range(4):
        pale = pale_under_dots("(4*8)+8", seed)
        assert recognizer.recognize(preprocess.binarize_otsu(pale)).text != "(4*8)+8"
        with_step = recognizer.recognize(pale, steps=preprocess.DEFAULT | {"otsu"})
        assert with_step.text == "(4*8)+8"


def times_read_as_plus(strokes: int = -1) -> tuple[np.ndarray, str]:
    """A captcha `7*(8*1)` binarised with Otsu's threshold, its strokes thickened by a 3×3
    cross as a user's cleaning may (the Baidu images' binarised kind; `strokes` 0 leaves
    them, 1 thins them). Its first greedy
    reading takes the first `*` for a `+`; at the four other widths it is a `*`."""
    item, _, image = make_one(GenerateConfig(256, style="captcha", form="level1", seed=4242), 251)
    binary = preprocess.binarize_otsu(np.asarray(image))
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    if strokes:  # ink is dark: eroding the image thickens its strokes, dilating thins them
        binary = (cv2.erode if strokes < 0 else cv2.dilate)(binary, cross)
    return binary, item.text


def test_sequence_log_probs_are_the_reference_in_one_batch():
    from core.formula.recognizer import sequence_log_probs

    rng = np.random.default_rng(3)
    posteriors = [np.log(rng.dirichlet(np.ones(17), size=steps)) for steps in (20, 14, 9)]
    pairs = [(lp, text) for text in ("", "1+2", "11", "(4*8)+8", "1" * 6) for lp in posteriors]
    for (lp, text), value in zip(pairs, sequence_log_probs(pairs), strict=True):
        reference = ctc.log_prob(lp, text)
        if np.isfinite(reference):
            assert value == pytest.approx(reference, rel=1e-5)
        else:  # six 1s need eleven steps
            assert value == -np.inf and len(lp) < 11 and text == "1" * 6
    assert sequence_log_probs([]) == []


def test_an_unsure_reading_is_read_again_at_other_widths(recognizer):
    from core.formula.recognizer import LOOK_AGAIN_WIDTHS

    image, truth = times_read_as_plus()
    assert recognizer.read_batch([image], look_again=False) == ["7+(8*1)"]
    assert recognizer.read_batch([image]) == [truth]
    result = recognizer.recognize(image)
    look = result.second_look
    assert look is not None and look.changed and np.exp(look.first_log_prob) < 0.9
    assert look.first_log_prob == pytest.approx(ctc.log_prob(result.log_probs, "7+(8*1)"), abs=1e-5)
    assert look.widths == (1.0, *LOOK_AGAIN_WIDTHS) and look.readings[0] == "7+(8*1)"
    assert result.text == truth == max(look.scores, key=look.scores.get)
    # the symbols are the second look's reading aligned on the image's own posteriors
    assert "".join(s.symbol for s in result.symbols) == truth
    spans = [(s.start, s.end) for s in result.symbols]
    assert all(a < b <= c for (a, b), (c, _) in itertools.pairwise(spans))
    assert result.to_json()["second_look"]["readings"][0] == "7+(8*1)"
    once = recognizer.recognize(image, look_again=False)
    assert once.second_look is None and once.text == "7+(8*1)"


def plus_read_as_times() -> tuple[np.ndarray, str]:
    """A captcha `(0-7)+0`, binarised and thickened as `times_read_as_plus`. The small
    model's widths disagree on its `+`, and summed over them `(0-7)*0` is likelier; the
    large model reads `(0-7)+0`."""
    item, _, image = make_one(GenerateConfig(256, style="captcha", form="level1", seed=4242), 174)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return cv2.erode(preprocess.binarize_otsu(np.asarray(image)), cross), item.text


def test_the_large_model_has_a_say_where_the_widths_disagree(recognizer):
    from core.formula.recognizer import REFEREE_WEIGHT

    image, truth = plus_read_as_times()
    alone = Recognizer.load(SHIPPED_MODEL, referee=False)
    assert alone.referee is None and Recognizer.shipped(size="large").referee is None
    assert alone.read_batch([image]) == ["(0-7)*0"]
    widths_only = alone.recognize(image).second_look
    assert widths_only.text == "(0-7)*0" and widths_only.referee is None
    assert recognizer.referee.path == SHIPPED_LARGE_MODEL
    assert recognizer.read_batch([image]) == [truth] == ["(0-7)+0"]
    result = recognizer.recognize(image)
    look = result.second_look
    assert result.text == truth and look.referee == truth
    assert look.referee_model == SHIPPED_LARGE_MODEL.name
    assert len(set(look.readings)) > 1 and set(look.referee_scores) == set(look.scores)
    # the widths alone would choose otherwise; the referee's log p, weighed as much as all
    # the widths together, tips it
    assert max(look.scores, key=look.scores.get) == "(0-7)*0" == widths_only.text
    assert look.scores == pytest.approx(widths_only.scores)
    referee_lp = recognizer.referee.forward([recognizer.referee.prepare(image)])[0]
    for text, summed in look.scores.items():
        under = ctc.log_prob(referee_lp, text)
        assert look.referee_scores[text] == pytest.approx(under, abs=1e-4)
        assert look.total(text) == pytest.approx(summed + REFEREE_WEIGHT * under, abs=1e-3)
    assert look.text == max(look.scores, key=look.total)
    said = result.to_json()["second_look"]
    assert said["referee"] == truth and said["referee_model"] == SHIPPED_LARGE_MODEL.name
    assert set(said["referee_log_probs"]) == set(look.scores)


def test_the_grammars_unsure_readings_are_read_again_too(recognizer, tmp_path):
    """The grammar-constrained reading of both images takes `+` for `*` or back again; it
    is read again at other widths, each width's reading the grammar's too."""
    for image, truth, first in (
        (*times_read_as_plus(), "7+(8*1)"),
        (*plus_read_as_times(), "(0-7)*0"),
    ):
        assert recognizer.read_batch([image], grammar=True, look_again=False) == [first]
        assert recognizer.read_batch([image], grammar=True) == [truth]
        path = tmp_path / "formula.png"
        cv2.imwrite(str(path), image)
        result = recognizer.recognize_file(path, grammar=True)
        look = result.second_look
        assert result.text == truth and look.grammar and look.readings[0] == first
        assert "".join(s.symbol for s in result.symbols) == truth
        assert all(parse(text) for text in look.readings)  # each well-formed
        assert result.to_json()["second_look"]["grammar"] is True
        once = recognizer.recognize_file(path, grammar=True, look_again=False)
        assert once.text == first and once.second_look is None


def test_the_constrained_searchs_unsure_reading_is_read_again_on_the_read_tab(
    recognizer, monkeypatch
):
    """`recognize` with a beam: the constrained search's top reading `(0-7)*0` is read again
    at other widths with the grammar, and the referee makes it `(0-7)+0`; preferring the
    grammar aligns that reading. A truth-weighted grammar reads again the same way."""
    from core.formula.decoding import FormulaGrammar

    image, truth = plus_read_as_times()
    calls = []  # every forward pass, by model: the two looks share the widths and referee
    for model in (recognizer, recognizer.referee):
        forward = model.forward
        monkeypatch.setattr(
            model, "forward", lambda x, *a, f=forward, m=model: calls.append(m) or f(x, *a)
        )
    result = recognizer.recognize(image, beam_width=10, align=True, prefer_grammar=True)
    assert calls == [recognizer, recognizer, recognizer.referee]
    assert result.second_look.referee == result.grammar_look.referee == truth
    assert result.constrained[0].text == "(0-7)*0"
    look = result.grammar_look
    assert look.grammar and look.readings[0] == "(0-7)*0" and look.text == truth
    assert look.referee == truth and all(parse(text) for text in look.readings)
    assert result.alignment.text == truth
    assert result.to_json()["grammar_second_look"]["text"] == truth
    weighted = recognizer.recognize(image, beam_width=10, grammar=FormulaGrammar(truth_weight=2))
    assert weighted.grammar_look.text == truth
    once = recognizer.recognize(image, beam_width=10, look_again=False)
    assert once.grammar_look is None and once.to_json()["grammar_second_look"] is None


def with_a_broken_referee(tmp_path) -> tuple[Recognizer, Path]:
    """The shipped small model whose referee is a damaged file, and the file."""
    broken = tmp_path / "large.pt"
    broken.write_bytes(b"not a checkpoint")
    alone = Recognizer.load(SHIPPED_MODEL, referee=False)
    return Recognizer(alone.model, alone.device, path=SHIPPED_MODEL, referee=broken), broken


def test_a_referee_that_cannot_be_loaded_leaves_the_reading_alone(tmp_path):
    recognizer, broken = with_a_broken_referee(tmp_path)
    image, _ = plus_read_as_times()
    result = recognizer.recognize(image)
    assert result.text == "(0-7)*0" and result.second_look.referee is None
    assert recognizer.referee is None and str(broken) in recognizer.referee_problem
    # each reading it would have been asked about says why it was not
    assert result.second_look.referee_problem == recognizer.referee_problem
    assert result.to_json()["second_look"]["referee_problem"] == recognizer.referee_problem


def test_a_sure_reading_is_not_read_again(recognizer):
    item, _, image = make_one(GenerateConfig(8, style="printed", form="level1", seed=4242), 0)
    result = recognizer.recognize(np.asarray(image))
    # its best path alone is unsure; summed over every path the reading is sure
    assert result.greedy.prob < 0.9 < np.exp(ctc.log_prob(result.log_probs, result.text))
    assert result.second_look is None and result.text == item.text
    assert "second_look" not in result.timings


def test_a_bold_black_and_white_image_stays_black_and_white_at_other_widths():
    """So that *Thin bold strokes* thins each width of a second look as it thins the image;
    other images are resampled."""
    image, _ = times_read_as_plus()
    assert preprocess.is_bold(image)
    shares = (0.75, 1.3)
    for share, stretched in zip(shares, preprocess.stretch_widths(image, shares), strict=True):
        assert stretched.shape == (image.shape[0], round(image.shape[1] * share))
        assert set(np.unique(stretched)) == {0, 255} and preprocess.is_bold(stretched)
    thin, _ = times_read_as_plus(strokes=1)
    assert preprocess.is_binary(thin) and not preprocess.is_bold(thin)
    assert len(np.unique(preprocess.stretch_widths(thin, [0.75])[0])) > 2  # averaged, as resized
    assert preprocess.stretch_widths(image, [0.01], least=16)[0].shape[1] == 16
