"""`labelscope formula …`: the command-line side of the Formulas workbench."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from core.console import run_in_terminal
from core.jobs import JobError

if TYPE_CHECKING:
    from core.formula.recognizer import Recognizer

_SHOW_PROBLEMS = 50


def run(args: argparse.Namespace) -> int:
    commands = {
        "generate": _generate,
        "info": _info,
        "check": _check,
        "train": _train,
        "eval": _eval,
        "recognize": _recognize,
        "export-onnx": _export,
    }
    return commands[args.formula_command](args)


def _recognizer(args: argparse.Namespace) -> Recognizer:
    from core import devices
    from core.checkpoints import CheckpointError
    from core.formula.recognizer import SHIPPED_MODEL, Recognizer

    try:
        device = devices.choose(getattr(args, "device", None))
        return Recognizer.load(args.model or SHIPPED_MODEL, device)
    except (CheckpointError, devices.DeviceError) as error:
        raise JobError(str(error)) from error


def _eval(args: argparse.Namespace) -> int:
    from core.formula.dataset import read_folder
    from core.formula.evaluation import evaluate, gallery
    from core.images import read_image

    recognizer = _recognizer(args)
    report = run_in_terminal(lambda token: read_folder(args.data, token))
    items = report.items
    result = run_in_terminal(
        lambda token: evaluate(
            partial(recognizer.read_batch, grammar=args.grammar),
            lambda i: read_image(items[i].path),
            [i.text for i in items],
            token,
        )
    )
    decoding = "grammar-constrained beam search" if args.grammar else "greedy decoding"
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

    from core.images import ImageProblem

    recognizer = _recognizer(args)
    status = 0
    for path in args.images:
        try:
            result = recognizer.recognize_file(path, grammar=args.grammar)
        except ImageProblem as problem:
            print(f"labelscope: {problem}", file=sys.stderr)
            status = 1
            continue
        if not result.text:
            print(f"labelscope: {path}: {NOTHING_READ}", file=sys.stderr)
        if args.json:
            print(json.dumps({"path": path, "grammar": args.grammar, **result.to_json()}))
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
    from core.formula.crnn import CRNNConfig
    from core.formula.training import TrainConfig, train

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
            val_size=args.val_size,
            val_every=args.val_every,
            workers=args.workers,
            model=CRNNConfig.preset(args.size),
            init=args.init,
            style_weights=_weights(args.style_weights),
        )
    except ValueError as error:
        raise JobError(str(error)) from error
    print(f"Training on {device.describe()} into {args.out}", file=sys.stderr)
    result = run_in_terminal(lambda token: train(args.out, config, device, token, args.resume))
    print(
        f"best validation sequence accuracy {result['best_acc']:.4f} at "
        f"{Path(args.out) / 'best.pt'}"
    )
    return 0


def _generate(args: argparse.Namespace) -> int:
    from core.formula import synth
    from core.formula.generate import GenerateConfig, generate

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
        sheet = synth.contact_sheet(args.seed, args.form, references=references, height=height)
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
