"""Formula training runs on disk: where new ones go, what each holds, and its log.

A run folder (see `training.train`) holds config.json, log.csv (one row per validation),
last.pt (to resume), best.pt (the best model by validation sequence accuracy) and, once
the run has finished, final.pt (the model at its last step).
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

from core.paths import data_dir


def runs_root() -> Path:
    """Where the GUI puts new runs by default (the CLI takes any --out)."""
    return data_dir() / "formula-runs"


def new_run_dir(root: Path | None = None) -> Path:
    """A fresh, not yet existing folder named after the time."""
    root = root or runs_root()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path


@dataclass(frozen=True)
class RunInfo:
    path: Path
    steps: int  # planned
    step: int  # reached at the last checkpoint or validation
    best_acc: float | None
    model_size: str  # "small", "large" or "custom"

    @property
    def best_model(self) -> Path:
        return self.path / "best.pt"

    @property
    def final_model(self) -> Path:
        """The model at the run's last step; written when the run finishes."""
        return self.path / "final.pt"

    @property
    def can_resume(self) -> bool:
        return (self.path / "last.pt").exists() and self.step < self.steps

    def describe(self) -> str:
        acc = f"{self.best_acc:.2%}" if self.best_acc is not None else "not validated yet"
        state = "finished" if self.step >= self.steps else f"step {self.step:,} of {self.steps:,}"
        return f"{self.path.name} — {self.model_size}, {state}, best accuracy {acc}"


def read_log(run: Path) -> dict[str, list[float]]:
    """The columns of a run's log.csv as floats (empty cells skipped per column, so each
    column comes with its own steps under the key 'step:<column>')."""
    columns: dict[str, list[float]] = {}
    path = Path(run) / "log.csv"
    if not path.exists():
        return columns
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key in (None, "step") or value in (None, ""):
                    continue
                try:
                    number, step = float(value), float(row["step"])
                except (TypeError, ValueError):
                    continue
                columns.setdefault(key, []).append(number)
                columns.setdefault(f"step:{key}", []).append(step)
    return columns


def _size(model: dict) -> str:
    from core.formula.model_config import CRNNConfig

    try:
        config = CRNNConfig.from_dict(model)
    except (TypeError, ValueError):
        return "custom"
    for name in ("small", "large"):
        if config == CRNNConfig.preset(name):
            return name
    return "custom"


def run_info(path: Path) -> RunInfo | None:
    """What a run folder holds, or None when it is not one."""
    try:
        config = json.loads((path / "config.json").read_text())
        steps = int(config["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    log = read_log(path)
    accuracies = log.get("val_acc", [])
    step = int(max(log.get("step:val_acc", [0]), default=0))
    # last.pt may hold later steps than the last validation (it is saved on cancel)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        step = max(step, int(json.loads((path / "last.json").read_text())["step"]))
    return RunInfo(
        path, steps, step, max(accuracies) if accuracies else None, _size(config.get("model", {}))
    )


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """The runs under `root`, newest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    runs = [info for p in root.iterdir() if p.is_dir() and (info := run_info(p)) is not None]
    return sorted(runs, key=lambda r: r.path.name, reverse=True)
