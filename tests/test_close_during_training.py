"""Closing the window while formula training is inside a slow step: the process waits for
the step, keeps the checkpoint, and exits cleanly (no abort from a thread left in torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core import checkpoints
from tests.conftest import ROOT


def test_closing_during_a_slow_training_step_exits_cleanly(tmp_path: Path):
    env = {
        **os.environ,
        "LABELSCOPE_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "QT_QPA_PLATFORM": "offscreen",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.close_during_training", "2.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "terminate called" not in result.stderr and "Traceback" not in result.stderr
    _, code, waited, run = result.stdout.split()
    assert code == "0"
    assert float(waited) < 2.5 + 10  # the step in progress, the checkpoint, the exit
    record = checkpoints.load(Path(run) / "last.pt")
    assert record["step"] >= 2  # the steps made are kept for Resume
