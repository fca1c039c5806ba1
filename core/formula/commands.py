"""`labelscope formula …`: the command-line side of the Formulas workbench."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from core.console import parse_size, run_in_terminal
from core.jobs import JobError

if TYPE_CHECKING:
    from core.formula.recognizer import Recognizer

_SHOW_PROBLEMS = 50


def add_parsers(formula_commands: argparse._SubParsersAction) -> None:
    """The `labelscope formula …` commands and their options."""
    _add_generate(formula_commands)
    _add_train(formula_commands)
    _add_model_commands(formula_commands)
    read = formula_commands.add_parser(
        "info",
        help="check a Baidu-format folder of images and labels",
        description="Read a folder of formula images and its labels.txt (line i describes "
        "i.png: 'expression value' or 'expression=value'); report bad lines, missing "
        "images and files that are not images.",
    )
    read.add_argument("folder")
    check = formula_commands.add_parser(
        "check",
        help="parse and evaluate a formula",
        description="Check a formula against the grammar and evaluate it exactly, e.g. "
        "labelscope formula check '6*(3+7)=76'",
    )
    check.add_argument("text")


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a recogniser (CRNN + CTC)",
        description="Train a formula recogniser on images drawn on the fly (and optionally "
        "Baidu-format folders). The run folder gets config.json, log.csv, last.pt (to "
        "resume), best.pt (the best validation) and final.pt (the last step). Under "
        "torchrun the same command trains with DistributedDataParallel.",
    )
    train.add_argument("--out", required=True, metavar="RUN", help="the run folder")
    train.add_argument("--resume", action="store_true", help="continue the run in RUN")
    train.add_argument("--steps", type=int, default=20_000, help="default 20000")
    train.add_argument("--batch-size", type=int, default=64, help="default 64")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, 2e-3")
    train.add_argument(
        "--size",
        choices=("small", "large"),
        default="small",
        help="small (CPU, default) or large (GPU)",
    )
    train.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="DIR",
        help="a Baidu-format folder to mix in (repeatable)",
    )
    train.add_argument(
        "--data-share",
        type=float,
        default=0.5,
        metavar="S",
        help="share of the training images drawn from the --data folders, the rest drawn "
        "on the fly (default 0.5)",
    )
    train.add_argument("--form", default="mixed", help="formulas drawn (default mixed)")
    train.add_argument("--style", default="mixed", help="styles drawn (default mixed)")
    train.add_argument("--seed", type=int, default=0, help="seeds data and model (default 0)")
    train.add_argument(
        "--workers",
        type=int,
        help="data processes (default: 1 on a CPU, every core but two on a GPU)",
    )
    train.add_argument("--val-size", type=int, default=1000)
    train.add_argument("--val-every", type=int, default=500)
    train.add_argument(
        "--init",
        metavar="MODEL",
        default="",
        help="start from a recogniser's weights (fine-tuning)",
    )
    train.add_argument(
        "--style-weights",
        metavar="W",
        default="",
        help="mix of styles, e.g. captcha=0.45,fonts=0.2,strokes=0.15,printed=0.2",
    )
    train.add_argument(
        "--device", default=argparse.SUPPRESS, metavar="DEV", help="as the top-level --device"
    )


GRAMMAR_HELP = (
    "read with the grammar-constrained beam search: the most probable well-formed formula "
    "(default: greedy decoding)"
)


ONE_LOOK_HELP = (
    "take the reading (greedy, or the grammar's) as it is; by default an unsure one "
    "(p(text | image) below 0.9) is read again at other widths and the reading they "
    "together find likeliest wins"
)
NO_REFEREE_HELP = (
    "the shipped small model reads alone; by default, where the widths of its second look "
    "disagree, the shipped large model reads the image too and has a say"
)


def _add_model_commands(commands: argparse._SubParsersAction) -> None:
    model_help = (
        "a recogniser checkpoint, or small or large for the models Labelscope ships "
        "(default: small)"
    )
    evaluate = commands.add_parser(
        "eval",
        help="score a recogniser on a labelled folder",
        description="Read every image of a Baidu-format folder and print sequence "
        "accuracy, character error rate, accuracy by length and the most confused "
        "symbols; write a gallery of the mistakes.",
    )
    evaluate.add_argument("--model", metavar="M", help=model_help)
    evaluate.add_argument("--data", required=True, metavar="DIR")
    evaluate.add_argument(
        "--gallery",
        metavar="PNG",
        default="formula-errors.png",
        help="where to write the mistakes (default formula-errors.png)",
    )
    evaluate.add_argument("--device", default=argparse.SUPPRESS, metavar="DEV")
    evaluate.add_argument("--grammar", action="store_true", help=GRAMMAR_HELP)
    evaluate.add_argument("--one-look", action="store_true", help=ONE_LOOK_HELP)
    evaluate.add_argument("--no-referee", action="store_true", help=NO_REFEREE_HELP)
    _add_steps(evaluate)
    recognize = commands.add_parser(
        "recognize",
        help="read formula images",
        description="Print one line per image: path<TAB>text. With --json, one JSON "
        "object per line with everything the recogniser computed.",
    )
    recognize.add_argument("images", nargs="+", metavar="IMAGE")
    recognize.add_argument("--model", metavar="M", help=model_help)
    recognize.add_argument(
        "--json", action="store_true", help="one JSON object per image: readings, timings"
    )
    recognize.add_argument("--grammar", action="store_true", help=GRAMMAR_HELP)
    recognize.add_argument("--one-look", action="store_true", help=ONE_LOOK_HELP)
    recognize.add_argument("--no-referee", action="store_true", help=NO_REFEREE_HELP)
    _add_steps(recognize)
    recognize.add_argument("--device", default=argparse.SUPPRESS, metavar="DEV")
    export = commands.add_parser(
        "export-onnx",
        help="export a recogniser to ONNX",
        description="Write the model as ONNX with dynamic batch and width axes "
        "(needs: pip install 'labelscope[onnx]').",
    )
    export.add_argument("--model", metavar="M", help=model_help)
    export.add_argument("--out", required=True, metavar="F.onnx")
    average = commands.add_parser(
        "average",
        help="average the weights of recognisers fine-tuned from one another",
        description="Write the recogniser whose weights are the mean of the given ones (a "
        "'model soup'). They must share a configuration, and should be of one lineage: one "
        "fine-tuned from the other, or both from one parent.",
    )
    average.add_argument("models", nargs="+", metavar="MODEL")
    average.add_argument("--out", required=True, metavar="F.pt")


def _add_steps(parser: argparse.ArgumentParser) -> None:
    """`--step` and `--without`: the preprocessing, as the Read tab's toggles choose it."""
    from core.formula import preprocess

    for flag, choices, what in (
        ("--step", preprocess.OPTIONAL, "an optional preprocessing step to apply too"),
        ("--without", preprocess.REMOVABLE, "a default step to leave out"),
    ):
        parser.add_argument(
            flag,
            action="append",
            default=[],
            choices=choices,
            metavar="STEP",
            help=f"{what} (repeatable): {', '.join(choices)}",
        )


def _steps(args: argparse.Namespace) -> frozenset[str] | None:
    """The steps `--step` and `--without` choose (None: the default pipeline); what each
    costly one does to accuracy goes to stderr, as the Read tab says it."""
    from core.formula import preprocess

    if not args.step and not args.without:
        return None
    steps = preprocess.chosen(args.step, args.without)
    for note in preprocess.costly(steps):
        print(f"labelscope: note: {note}.", file=sys.stderr)
    return steps


def _add_generate(commands: argparse._SubParsersAction) -> None:
    from core.formula.expressions import FORMS
    from core.formula.synth import STYLES

    generate = commands.add_parser(
        "generate",
        help="draw a synthetic training set",
        description="Draw synthetic formula images into a folder in the Baidu layout "
        "(0.png, 1.png, ... and labels.txt). The same seed gives the same images for "
        "any number of workers.",
    )
    generate.add_argument("--out", metavar="DIR", help="an empty or new folder")
    generate.add_argument("--count", type=int, default=1000, help="images (default 1000)")
    generate.add_argument(
        "--style",
        choices=("mixed", *STYLES),
        default="mixed",
        help="glyph source: captcha (like the Baidu set), fonts (handwriting fonts), "
        "strokes (pen strokes), printed (printed typefaces), or mixed (default)",
    )
    generate.add_argument(
        "--form",
        choices=FORMS,
        default="level1",
        help="level1 (Baidu: three digits, two operators; default), general, equation "
        "(expression=value, true or not), or mixed",
    )
    generate.add_argument(
        "--p-true",
        type=float,
        default=0.5,
        metavar="P",
        help="share of equations whose value is right (default 0.5)",
    )
    generate.add_argument("--seed", type=int, default=0, help="default 0")
    generate.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    generate.add_argument(
        "--size",
        type=parse_size,
        metavar="WxH",
        help="image size; default 180x60, wider for long equations",
    )
    generate.add_argument(
        "--preview", metavar="PNG", help="also write a contact sheet of every style"
    )
    generate.add_argument(
        "--reference", metavar="DIR", help="real images to show on the contact sheet's first row"
    )


def run(args: argparse.Namespace) -> int:
    commands = {
        "generate": _generate,
        "info": _info,
        "check": _check,
        "train": _train,
        "eval": _eval,
        "recognize": _recognize,
        "export-onnx": _export,
        "average": _average,
    }
    return commands[args.formula_command](args)


def _recognizer(args: argparse.Namespace) -> Recognizer:
    from core import devices
    from core.checkpoints import CheckpointError
    from core.formula.recognizer import SHIPPED_MODELS, Recognizer

    model = args.model or "small"
    if model in SHIPPED_MODELS and not Path(model).is_file():
        model = SHIPPED_MODELS[model]
    try:
        device = devices.choose(getattr(args, "device", None))
        return Recognizer.load(model, device, referee=not getattr(args, "no_referee", False))
    except (CheckpointError, devices.DeviceError) as error:
        raise JobError(str(error)) from error


def _eval(args: argparse.Namespace) -> int:
    from core.formula import preprocess
    from core.formula.dataset import read_folder
    from core.formula.evaluation import evaluate, gallery
    from core.images import read_image

    steps = _steps(args)
    recognizer = _recognizer(args)
    report = run_in_terminal(lambda token: read_folder(args.data, token))
    items = report.items
    read = partial(
        recognizer.read_batch, grammar=args.grammar, look_again=not args.one_look, steps=steps
    )
    result = run_in_terminal(
        lambda token: evaluate(
            read,
            lambda i: read_image(items[i].path),
            [i.text for i in items],
            token,
        )
    )
    decoding = "grammar-constrained beam search" if args.grammar else "greedy decoding"
    if not args.one_look:
        decoding += ", unsure readings read again at other widths"
        if (referee := recognizer.referee) is not None:
            decoding += f", {referee.path} asked where they disagree"
    if steps is not None:
        decoding += f", steps {preprocess.named(steps)}"
    print(f"{args.data}: {len(items):,} images, model {recognizer.path}, {decoding}")
    for line in result.lines():
        print(line)
    if not result.errors:
        print("mistakes: none, so no gallery was written")
        return 0
    shown = result.errors[:48]
    sheet = gallery(
        [read_image(items[i].path) for i, _, _ in shown],
        [f"{truth} -> {read or '(nothing)'}" for _, truth, read in shown],
    )
    if not cv2.imwrite(args.gallery, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise JobError(f"Cannot write the gallery of mistakes to {args.gallery}.")
    some = f", the first {len(shown)} shown" if len(shown) < len(result.errors) else ""
    print(f"mistakes: {args.gallery} ({len(result.errors):,}{some})")
    return 0


#: What `formula recognize` says of an image in which the model read no symbol.
NOTHING_READ = (
    "nothing was read: the model sees no symbol here (an empty or very faint image, or "
    "not a formula)"
)


def _recognize(args: argparse.Namespace) -> int:
    import json

    from core.formula.preprocess import DEFAULT, STEP_NAMES
    from core.images import ImageProblem

    steps = _steps(args)
    recognizer = _recognizer(args)
    status = 0
    for path in args.images:
        try:
            result = recognizer.recognize_file(
                path, grammar=args.grammar, look_again=not args.one_look, steps=steps
            )
        except ImageProblem as problem:
            print(f"labelscope: {problem}", file=sys.stderr)
            status = 1
            continue
        if not result.text:
            print(f"labelscope: {path}: {NOTHING_READ}", file=sys.stderr)
        if args.json:
            record = {
                "path": path,
                "model": str(recognizer.path),
                "grammar": args.grammar,
                "steps": [name for name in STEP_NAMES if name in (steps or DEFAULT)],
            }
            print(json.dumps({**record, **result.to_json()}))
        else:
            print(f"{path}\t{result.text}")
    return status


def _export(args: argparse.Namespace) -> int:
    from core.formula.export import export_onnx

    recognizer = _recognizer(args)
    out = export_onnx(recognizer, Path(args.out))
    print(
        f"ONNX model: {out} (input 'images' N×1×{recognizer.config.height}×W, "
        "output 'log_probs' T×N×17)"
    )
    return 0


def _average(args: argparse.Namespace) -> int:
    from core.formula.averaging import average_models

    out = average_models(args.models, args.out)
    print(f"averaged {len(args.models)} models into {out}")
    return 0


def _weights(text: str) -> tuple[tuple[str, float], ...]:
    """'captcha=0.7,fonts=0.3' → (("captcha", 0.7), ("fonts", 0.3))."""
    pairs = []
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        try:
            pairs.append((name.strip(), float(value)))
        except ValueError:
            raise ValueError(
                f"style weights look like captcha=0.7,fonts=0.3, not {text!r}"
            ) from None
    return tuple(pairs)


def _train(args: argparse.Namespace) -> int:
    from core import devices
    from core.formula.model_config import CRNNConfig
    from core.formula.train_config import TrainConfig, default_workers
    from core.formula.training import train

    world = int(os.environ.get("WORLD_SIZE", "1"))  # processes under torchrun
    try:
        device = devices.choose(args.device)
        config = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            form=args.form,
            style=args.style,
            data=tuple(args.data),
            data_share=args.data_share,
            val_size=args.val_size,
            val_every=args.val_every,
            workers=args.workers if args.workers is not None else default_workers(device, world),
            model=CRNNConfig.preset(args.size),
            init=args.init,
            style_weights=_weights(args.style_weights),
        )
    except ValueError as error:
        raise JobError(str(error)) from error
    # under torchrun only rank 0 speaks: the others train in silence unless they fail
    # (errors still reach stderr through the command line's own handler)
    if int(os.environ.get("RANK", "0")) != 0:
        with open(os.devnull, "w") as silent:
            run_in_terminal(
                lambda token: train(args.out, config, device, token, args.resume), stream=silent
            )
        return 0
    print(
        f"Training on {device.describe()} with {config.workers} data worker(s) into {args.out}"
        + (f", {world} processes" if world > 1 else ""),
        file=sys.stderr,
    )
    result = run_in_terminal(lambda token: train(args.out, config, device, token, args.resume))
    print(
        f"best validation sequence accuracy {result['best_acc']:.4f} at "
        f"{Path(args.out) / 'best.pt'}; the model at the last step: "
        f"{Path(args.out) / 'final.pt'}"
    )
    return 0


def _generate(args: argparse.Namespace) -> int:
    from core.formula import synth
    from core.formula.generate import GenerateConfig, contact_sheet, generate

    if not args.out and not args.preview:
        raise JobError("Nothing to do: give --out DIR to draw a set, --preview PNG for a sheet.")
    width, height = args.size or (None, synth.HEIGHT)
    try:
        config = GenerateConfig(
            args.count, args.style, args.form, args.seed, args.p_true, height, width
        )
    except ValueError as error:
        raise JobError(str(error)) from error
    if args.preview:
        references = _references(Path(args.reference)) if args.reference else []
        sheet = contact_sheet(args.seed, args.form, references=references, height=height)
        if not cv2.imwrite(args.preview, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise JobError(f"Cannot write {args.preview}.")
        print(f"Contact sheet: {args.preview}")
    if args.out:
        out = run_in_terminal(lambda token: generate(args.out, config, token, args.workers))
        print(f"{config.count:,} images and labels.txt in {out}")
    return 0


def _references(folder: Path) -> list:
    from core.images import IMAGE_SUFFIXES, ImageProblem, read_image

    images = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                images.append(read_image(path))
            except ImageProblem as problem:
                print(f"skipping {problem}", file=sys.stderr)
    if not images:
        raise JobError(f"No reference images in {folder}.")
    return images


def _info(args: argparse.Namespace) -> int:
    from core.formula.dataset import read_folder

    report = run_in_terminal(lambda token: read_folder(args.folder, token))
    print(f"{report.root} ({report.labels_file.name}): {report.summary()}")
    for problem in report.problems[:_SHOW_PROBLEMS]:
        print(f"  {problem}")
    if len(report.problems) > _SHOW_PROBLEMS:
        print(f"  … and {len(report.problems) - _SHOW_PROBLEMS:,} more")
    return 0


def _check(args: argparse.Namespace) -> int:
    from core.formula.grammar import GrammarError, parse

    try:
        formula = parse(args.text.replace(" ", ""))
    except GrammarError as error:
        print(f"not a formula: {error}")
        return 1
    if formula.is_equation:
        verdict = "true" if formula.is_true else f"false: {formula.expression} = {formula.value}"
        print(f"{formula.text}  equation, {verdict}")
    else:
        print(f"{formula.text} = {formula.value}")
    return 0
