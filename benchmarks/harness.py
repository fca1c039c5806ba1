"""What every benchmark shares: timing by median of repeated runs, the machine's
description, and a Markdown table that compares each case with the baseline of the run."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Case:
    name: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def measure(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def machine() -> str:
    """One line: CPU, cores, memory, GPU, OS, Python and torch."""
    from core.devices import _cpu_model, available

    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    import torch

    gpus = [d.describe() for d in available() if d.kind != "cpu"]
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores{memory}; "
        f"GPU: {', '.join(gpus) or 'none'}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def table(title: str, cases: list[Case], baseline: str, unit: str = "s") -> str:
    """A Markdown section: median, min and max of each case and its ratio to the baseline."""
    base = next(c for c in cases if c.name == baseline).median
    lines = [
        f"### {title}",
        "",
        f"{datetime.date.today().isoformat()} · {machine()}",
        "",
        f"| case | median ({unit}) | min | max | runs | × baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases:
        mark = " (baseline)" if case.name == baseline else ""
        lines.append(
            f"| {case.name}{mark} | {case.median:.3f} | {min(case.seconds):.3f} | "
            f"{max(case.seconds):.3f} | {len(case.seconds)} | {case.median / base:.2f} |"
        )
    return "\n".join(lines)
