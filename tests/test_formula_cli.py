"""`labelscope formula …` as a user types it."""

import json
from pathlib import Path

import cv2
import numpy as np

from core.cli import main
from core.formula.synth import STYLES
from core.images import read_image


def test_generate_writes_a_set_and_a_preview(tmp_path: Path, capsys):
    out, sheet = tmp_path / "set", tmp_path / "sheet.png"
    code = main(
        [
            "formula",
            "generate",
            "--out",
            str(out),
            "--count",
            "12",
            "--form",
            "equation",
            "--style",
            "strokes",
            "--seed",
            "4",
            "--preview",
            str(sheet),
        ]
    )
    assert code == 0
    assert len((out / "labels.txt").read_text().splitlines()) == 12
    assert all("=" in line for line in (out / "labels.txt").read_text().splitlines())
    assert read_image(sheet).shape[0] == len(STYLES) * 2 * 66  # each style, two rows each
    assert "12 images and labels.txt" in capsys.readouterr().out


def test_generate_size_and_errors(tmp_path: Path, capsys):
    out = tmp_path / "small"
    assert main(["formula", "generate", "--out", str(out), "--count", "2", "--size", "120x40"]) == 0
    assert read_image(out / "0.png").shape == (40, 120, 3)
    assert main(["formula", "generate", "--out", str(out), "--count", "2"]) == 1
    assert "already holds" in capsys.readouterr().err
    assert main(["formula", "generate", "--count", "0", "--out", str(tmp_path / "x")]) == 1
    assert "count must be at least 1" in capsys.readouterr().err


def test_info_reports_problems(tmp_path: Path, capsys):
    main(["formula", "generate", "--out", str(tmp_path), "--count", "3"])
    (tmp_path / "labels.txt").write_text("1+2 3\n1+ 2\n4*4 16\n")
    capsys.readouterr()
    assert main(["formula", "info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 labelled images · 1 bad line" in out
    assert "line 2: 1.png: '1+': the formula is incomplete" in out


def test_check(capsys):
    assert main(["formula", "check", "6*(3+7)=76"]) == 0
    assert capsys.readouterr().out.strip() == "6*(3+7)=76  equation, false: 6*(3+7) = 60"
    assert main(["formula", "check", "(1-9)-4=-12"]) == 0
    assert "equation, true" in capsys.readouterr().out
    assert main(["formula", "check", "1+*2"]) == 1


def test_recognize_says_when_nothing_was_read(tmp_path: Path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((60, 180), 255, np.uint8))
    assert main(["formula", "recognize", str(blank)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{blank}\t\n"
    assert f"{blank}: nothing was read" in err


def test_recognize_with_the_shipped_large_model(tmp_path: Path, capsys, monkeypatch):
    """`--model large` names the large shipped model; a file of that name wins."""
    import random

    from core.formula import synth

    path = tmp_path / "f.png"
    image = synth.render("(4*8)+8", random.Random(3), "strokes")
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert main(["formula", "recognize", "--model", "large", "--json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == "(4*8)+8" and data["model"].endswith("formula_crnn_large.pt")
    monkeypatch.chdir(tmp_path)
    Path("large").write_bytes(b"not a model")
    assert main(["formula", "recognize", "--model", "large", str(path)]) != 0
    assert "large" in capsys.readouterr().err


def test_eval_with_no_mistakes_writes_no_gallery_and_two_decimals(tmp_path: Path, capsys):
    """A folder labelled with the model's own readings: every image read right."""
    from core.formula.generate import GenerateConfig, make_one
    from core.formula.grammar import GrammarError, parse
    from core.formula.recognizer import Recognizer

    recognizer = Recognizer.shipped()
    folder = tmp_path / "set"
    folder.mkdir()
    config = GenerateConfig(12, style="strokes", form="equation", seed=8)
    lines = []
    for index in range(config.count):
        image = make_one(config, index)[2]
        text = recognizer.recognize(image).text
        try:
            parse(text)
        except GrammarError:
            continue
        name = f"{len(lines)}.png"
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        lines.append(text)
    assert len(lines) >= 8
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")
    gallery = tmp_path / "mistakes.png"
    assert main(["formula", "eval", "--data", str(folder), "--gallery", str(gallery)]) == 0
    out, err = capsys.readouterr()
    assert f"sequence accuracy 100.00% ({len(lines)}/{len(lines)})" in out
    assert "mistakes: none, so no gallery was written" in out
    assert not gallery.exists()
    progress = [line for line in err.splitlines() if line.strip()]
    assert len(progress) == len(set(progress)), "a progress line was printed twice"


def test_average_writes_the_mean_of_the_weights_and_refuses_strangers(tmp_path: Path, capsys):
    import torch

    from core.formula.crnn import CRNN
    from core.formula.model_config import CRNNConfig
    from core.formula.recognizer import Recognizer
    from core.formula.train_config import TrainConfig
    from core.formula.training import save_model

    config = CRNNConfig(channels=(4, 8, 8, 8, 8), hidden=8, layers=1)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        train = TrainConfig(val_size=8, model=config)
        paths.append(save_model(tmp_path / f"m{seed}.pt", CRNN(config), train, 0, {}))
    out = tmp_path / "soup.pt"
    assert main(["formula", "average", *map(str, paths), "--out", str(out)]) == 0
    assert "averaged 2 models" in capsys.readouterr().out
    soup = Recognizer.load(out).model.state_dict()
    parts = [Recognizer.load(p).model.state_dict() for p in paths]
    for name, tensor in soup.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, (parts[0][name] + parts[1][name]) / 2)
    assert Recognizer.load(out).recognize(np.full((60, 180, 3), 255, np.uint8)) is not None
    assert 0 <= Recognizer.load(out).meta["metrics"]["val_acc"] <= 1  # measured, not copied
    other = save_model(
        tmp_path / "other.pt", CRNN(CRNNConfig(channels=(4, 8, 8, 8, 8), hidden=16, layers=1)),
        TrainConfig(), 0, {},
    )  # fmt: skip
    assert main(["formula", "average", str(paths[0]), str(other), "--out", str(out)]) == 1
    assert "another configuration" in capsys.readouterr().err
    assert main(["formula", "average", str(paths[0]), "--out", str(out)]) == 1
    assert "at least two" in capsys.readouterr().err


def labelled_folder(tmp_path: Path, image: np.ndarray, truth: str) -> tuple[Path, Path]:
    """A Baidu-format folder holding `image` labelled `truth`: the folder and the image."""
    folder = tmp_path / "set"
    folder.mkdir()
    path = folder / "0.png"
    cv2.imwrite(str(path), image)
    (folder / "labels.txt").write_text(f"{truth}\n")
    return folder, path


def test_recognize_and_eval_read_unsure_images_again_unless_told_once(tmp_path: Path, capsys):
    """The binarised `7*(8*1)` whose first greedy reading is `7+(8*1)`."""
    from tests.test_shipped_model import times_read_as_plus

    image, truth = times_read_as_plus()
    folder, path = labelled_folder(tmp_path, image, truth)
    assert main(["formula", "recognize", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}\t{truth}\n"
    assert main(["formula", "recognize", "--one-look", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}\t7+(8*1)\n"
    assert main(["formula", "recognize", "--json", str(path)]) == 0
    look = json.loads(capsys.readouterr().out)["second_look"]
    assert look["readings"][0] == "7+(8*1)" and look["widths"][0] == 1.0
    assert look["log_probs"][truth] > look["log_probs"]["7+(8*1)"]
    gallery = str(tmp_path / "mistakes.png")
    assert main(["formula", "eval", "--data", str(folder), "--gallery", gallery]) == 0
    out = capsys.readouterr().out
    assert "sequence accuracy 100.00% (1/1)" in out and "read again at other widths" in out
    assert main(["formula", "eval", "--one-look", "--data", str(folder), "--gallery", gallery]) == 0
    assert "sequence accuracy 0.00% (0/1)" in capsys.readouterr().out


def test_recognize_and_eval_ask_the_large_model_unless_told_not_to(tmp_path: Path, capsys):
    """The binarised `(0-7)+0` whose widths disagree on its `+`: the large model settles it."""
    from core.formula.recognizer import SHIPPED_LARGE_MODEL
    from tests.test_shipped_model import plus_read_as_times

    image, truth = plus_read_as_times()
    folder, path = labelled_folder(tmp_path, image, truth)
    assert main(["formula", "recognize", "--json", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == truth and record["second_look"]["referee"] == truth
    assert main(["formula", "recognize", "--no-referee", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}\t(0-7)*0\n"
    gallery = str(tmp_path / "mistakes.png")
    assert main(["formula", "eval", "--data", str(folder), "--gallery", gallery]) == 0
    out = capsys.readouterr().out
    assert "sequence accuracy 100.00% (1/1)" in out
    assert f"{SHIPPED_LARGE_MODEL} asked where they disagree" in out
    assert (
        main(["formula", "eval", "--no-referee", "--data", str(folder), "--gallery", gallery]) == 0
    )
    out = capsys.readouterr().out
    assert "sequence accuracy 0.00% (0/1)" in out and "asked where" not in out


def test_recognize_and_eval_read_the_grammars_unsure_readings_again(tmp_path: Path, capsys):
    from tests.test_shipped_model import times_read_as_plus

    image, truth = times_read_as_plus()
    folder, path = labelled_folder(tmp_path, image, truth)
    assert main(["formula", "recognize", "--grammar", "--json", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == truth and record["second_look"]["grammar"] is True
    assert main(["formula", "recognize", "--grammar", "--one-look", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}\t7+(8*1)\n"
    gallery = str(tmp_path / "mistakes.png")
    assert main(["formula", "eval", "--grammar", "--data", str(folder), "--gallery", gallery]) == 0
    out = capsys.readouterr().out
    assert "sequence accuracy 100.00% (1/1)" in out
    assert "grammar-constrained beam search, unsure readings read again" in out


def test_recognize_and_eval_read_through_the_steps_chosen(tmp_path: Path, capsys):
    """A formula in a table cell reads right through the default steps and wrong without
    *Remove ruled lines*; an optional costly step is applied and named with its figures."""
    from core.formula import preprocess
    from tests.test_formula_data import in_a_cell

    truth = "(4*8)-1=31"
    folder, path = labelled_folder(tmp_path, in_a_cell(truth), truth)
    assert main(["formula", "recognize", "--json", str(path)]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["text"] == truth and record["steps"] == [
        name for name in preprocess.STEP_NAMES if name in preprocess.DEFAULT
    ]
    assert captured.err == ""
    assert main(["formula", "recognize", "--without", "lines", str(path)]) == 0
    assert capsys.readouterr().out != f"{path}\t{truth}\n"
    assert main(["formula", "recognize", "--json", "--step", "otsu", str(path)]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert "otsu" in record["steps"] and record["text"] == truth
    assert f"note: Binarise (Otsu) changes what the model sees: {preprocess.COSTS['otsu']}" in (
        captured.err
    )
    gallery = str(tmp_path / "mistakes.png")
    assert main(["formula", "eval", "--data", str(folder), "--gallery", gallery]) == 0
    assert "sequence accuracy 100.00% (1/1)" in capsys.readouterr().out
    args = ["formula", "eval", "--without", "lines", "--data", str(folder), "--gallery", gallery]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sequence accuracy 0.00% (0/1)" in out
    assert "steps Grayscale → Crop or pad margins → Thin bold strokes" in out
