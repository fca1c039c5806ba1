"""The `labelscope` command line: the headless half of the app.

`labelscope` with no command opens the GUI (the launcher in `gui/` decides that); every
command here runs without Qt, so it works over SSH, in CI and on servers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core import __version__
from core.jobs import Cancelled, JobError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130

_DESCRIPTION = """\
Labelscope: a desktop workbench for two classic vision jobs.

  Pets      clean the Kaggle Dogs vs. Cats data, train a classifier, export a submission
  Formulas  recognise arithmetic images with a CRNN trained with CTC

Run `labelscope` with no command to open the app."""


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 1280x800, not {text!r}"
        ) from None
    if not (16 <= width <= 8000 and 16 <= height <= 8000):
        raise argparse.ArgumentTypeError(f"window size {text} is out of range")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelscope",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"Labelscope {__version__}")
    parser.add_argument(
        "--device",
        metavar="DEV",
        help="auto (default), cpu, cuda, cuda:N or mps; also set by LABELSCOPE_DEVICE",
    )
    gui = parser.add_argument_group("app options (no command)")
    gui.add_argument(
        "--screenshot",
        metavar="PATH",
        help="open the main window offscreen, save it as a PNG and exit",
    )
    gui.add_argument(
        "--workbench",
        choices=("pets", "formulas"),
        help="the workbench to show first",
    )
    gui.add_argument(
        "--size", type=_size, metavar="WxH", help="window size for --screenshot, e.g. 1280x800"
    )

    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor",
        help="print versions, the device, the weights cache and the data directory",
        description="Print what a bug report needs: versions, the device Labelscope would "
        "use, which pretrained weights are cached, and where Labelscope keeps its data.",
    )
    doctor.add_argument(
        "--verify-weights",
        action="store_true",
        help="also check every cached weights file against the sha256 in its name",
    )

    pets = commands.add_parser(
        "pets",
        help="Dogs vs. Cats: inspect, scan, train, predict and export a dataset",
        description="Work with the Kaggle Dogs vs. Cats data without the GUI: inspect a "
        "dataset, scan it with an ImageNet model, train, predict and export.",
    )
    pets.set_defaults(group=pets)
    pets_commands = pets.add_subparsers(dest="pets_command", metavar="PETS_COMMAND")
    from core.pets.commands import add_parsers as add_pets_parsers

    add_pets_parsers(pets_commands)

    formula = commands.add_parser(
        "formula",
        help="Formulas: arithmetic-image recognition",
        description="Recognise arithmetic images from the command line.",
    )
    formula.set_defaults(group=formula)
    formula_commands = formula.add_subparsers(dest="formula_command", metavar="FORMULA_COMMAND")
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
    return parser


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a recogniser (CRNN + CTC)",
        description="Train a formula recogniser on images drawn on the fly (and optionally "
        "Baidu-format folders). The run folder gets config.json, log.csv, last.pt (to "
        "resume) and best.pt (the model). Under torchrun the same command trains with "
        "DistributedDataParallel.",
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
    train.add_argument("--form", default="mixed", help="formulas drawn (default mixed)")
    train.add_argument("--style", default="mixed", help="styles drawn (default mixed)")
    train.add_argument("--seed", type=int, default=0, help="seeds data and model (default 0)")
    train.add_argument("--workers", type=int, default=1, help="data processes (default 1)")
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
        help="mix of styles, e.g. captcha=0.7,fonts=0.15,strokes=0.15",
    )
    train.add_argument(
        "--device", default=argparse.SUPPRESS, metavar="DEV", help="as the top-level --device"
    )


GRAMMAR_HELP = (
    "read with the grammar-constrained beam search: the most probable well-formed formula "
    "(default: greedy decoding)"
)


def _add_model_commands(commands: argparse._SubParsersAction) -> None:
    model_help = "a recogniser checkpoint (default: the one Labelscope ships)"
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
    recognize.add_argument("--device", default=argparse.SUPPRESS, metavar="DEV")
    export = commands.add_parser(
        "export-onnx",
        help="export a recogniser to ONNX",
        description="Write the model as ONNX with dynamic batch and width axes "
        "(needs: pip install 'labelscope[onnx]').",
    )
    export.add_argument("--model", metavar="M", help=model_help)
    export.add_argument("--out", required=True, metavar="F.onnx")


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
        "strokes (pen strokes), or mixed (default)",
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
        type=_size,
        metavar="WxH",
        help="image size; default 180x60, wider for long equations",
    )
    generate.add_argument(
        "--preview", metavar="PNG", help="also write a contact sheet of every style"
    )
    generate.add_argument(
        "--reference", metavar="DIR", help="real images to show on the contact sheet's first row"
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run a parsed command; returns the exit status. Errors are printed, not raised."""
    parser = parser or build_parser()
    try:
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "pets" and args.pets_command:
            from core.pets import commands as pets

            return pets.run(args)
        if args.command == "formula" and args.formula_command:
            from core.formula import commands

            return commands.run(args)
    except JobError as error:
        print(f"labelscope: {error.message}", file=sys.stderr)
        if error.details:
            print(error.details, file=sys.stderr)
        return EXIT_ERROR
    except Cancelled:
        print("labelscope: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    # A command group without a command: show what it offers.
    getattr(args, "group", parser).print_help()
    return EXIT_USAGE


def _doctor(args: argparse.Namespace) -> int:
    from core import doctor

    print(doctor.format_report(doctor.report(args.device)))
    if args.verify_weights:
        from core import weights
        from core.console import run_in_terminal

        checks = run_in_terminal(weights.verify_cache)
        for check in checks:
            print(f"{'ok ' if check.ok else 'BAD'}  {check.path.name}: {check.reason}")
        if any(not check.ok for check in checks):
            return EXIT_ERROR
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Headless entry point: like `labelscope`, but never opens the GUI."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args, parser)


if __name__ == "__main__":
    sys.exit(main())
