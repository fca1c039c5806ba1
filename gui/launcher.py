"""The `labelscope` entry point: headless commands run without loading Qt; no command
opens the app. Nothing Qt is imported at module level, so `labelscope doctor` works on a
machine without a display."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # First thing: a frozen (PyInstaller) build re-enters here in DataLoader workers.
    multiprocessing.freeze_support()
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments == ["--version"]:  # asked before anything is loaded: it needs nothing
        from core import APP_NAME, __version__

        print(f"{APP_NAME} {__version__}")
        return 0
    from core.cli import build_parser, pipe_closed, run

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except BrokenPipeError:  # --help into `head`
        return pipe_closed()
    if args.command is not None:
        return run(args, parser)
    if args.screenshot and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    # Qt aborts the process when its platform's system libraries are missing, naming the
    # wrong package: say what to install instead, in one line.
    from core.qt_platform import window_problem

    problem = window_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    # torch before PySide6 on Windows, where (torch >= 2.9) the other order fails to load its
    # DLLs. Elsewhere torch is loaded in the background when first needed: the window paints
    # at once, and browsing a dataset never loads it.
    if sys.platform == "win32":
        import torch  # noqa: F401

    from gui.app import run_app

    return run_app(args)
