"""How long Labelscope takes to start, against the floor every PyTorch app pays.

    python -m benchmarks.startup [--repeats N]

Cases (each a fresh process, so every import is paid): `import torch` alone (baseline),
`labelscope --version` (headless launcher), `labelscope --help` (the whole parser),
`labelscope pets info` on a small generated dataset (a command that computes nothing with
torch), `labelscope doctor`, and `labelscope --screenshot` (the whole GUI up to a rendered
window).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Case, measure, table

ROOT = Path(__file__).resolve().parents[1]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gui", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=scratch)
        shot = str(Path(scratch) / "shot.png")
        from tests.pets_data import make_pets

        pets = str(make_pets(Path(scratch) / "pets", cats=20, dogs=20, tests=10))
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "labelscope --version": _command("--version"),
            "labelscope --help": _command("--help"),
            "labelscope pets info": _command("pets", "info", pets),
            "labelscope doctor": _command("doctor"),
            "labelscope --screenshot": _command("--screenshot", shot),
        }
        cases = []
        for name, command in commands.items():

            def run(command: list[str] = command) -> None:
                subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)

            cases.append(Case(name, measure(run, options.repeats)))
            print(f"{name}: {cases[-1].median:.3f} s", file=sys.stderr)
    print(table("Start-up", cases, baseline="python -c 'import torch'"))


if __name__ == "__main__":
    main()
