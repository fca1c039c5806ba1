"""The `labelscope` command line: the headless half of the app.

`labelscope` with no command opens the GUI (the launcher in `gui/` decides that); every
command here runs without Qt, so it works over SSH, in CI and on servers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core import __version__
from core.console import parse_size
from core.jobs import Cancelled, JobError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
EXIT_PIPE = 128 + 13  # what a shell reports for a command stopped by SIGPIPE

_DESCRIPTION = """\
Labelscope: a desktop workbench for two classic vision jobs.

  Pets      clean the Kaggle Dogs vs. Cats data, train a classifier, export a submission
  Formulas  recognise arithmetic images with a CRNN trained with CTC

Run `labelscope` with no command to open the app."""


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
        "--size", type=parse_size, metavar="WxH", help="window size for --screenshot, e.g. 1280x800"
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
    from core.formula.commands import add_parsers as add_formula_parsers

    add_formula_parsers(formula_commands)
    return parser


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run a parsed command; returns the exit status. Errors are printed, not raised."""
    parser = parser or build_parser()
    try:
        status = _command(args)
        if status is not None:
            sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
            return status
    except JobError as error:
        print(f"labelscope: {error.message}", file=sys.stderr)
        if error.details:
            print(error.details, file=sys.stderr)
        return EXIT_ERROR
    except Cancelled:
        print("labelscope: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        return pipe_closed()
    # A command group without a command: show what it offers.
    getattr(args, "group", parser).print_help()
    return EXIT_USAGE


def _command(args: argparse.Namespace) -> int | None:
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "pets" and args.pets_command:
        from core.pets import commands as pets

        return pets.run(args)
    if args.command == "formula" and args.formula_command:
        from core.formula import commands

        return commands.run(args)
    return None


def pipe_closed() -> int:
    """The reader of our output went away (`labelscope … | head -1`): stop quietly, as
    command-line tools do. Standard output is pointed at the null device so that Python's
    last flush at exit finds nowhere to fail."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file behind stdout (a test's capture)
        pass
    return EXIT_PIPE


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
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return run(args, parser)
    except BrokenPipeError:  # --help into `head`
        return pipe_closed()


if __name__ == "__main__":
    sys.exit(main())
