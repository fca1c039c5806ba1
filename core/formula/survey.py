"""A first look at a formula dataset, as the lecture takes it: how long the labels are, how
often each symbol occurs, how many equations hold, a few samples, and what could not be read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.formula.alphabet import SYMBOLS
from core.formula.dataset import FolderReport, Item, Problem, read_folder
from core.formula.grammar import GrammarError, parse
from core.images import ImageProblem, read_image
from core.jobs import CancelToken, Progress

SAMPLE_HEIGHT = 40


@dataclass
class Survey:
    root: Path
    labels_file: Path
    images: int
    lengths: Counter[int]  # label length (symbols): images
    symbols: Counter[str]  # symbol: occurrences over all labels
    true_equations: int
    false_equations: int
    expressions: int  # labels without "="
    problems: list[Problem]
    samples: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (RGB, label)

    @property
    def symbol_counts(self) -> list[tuple[str, int]]:
        """Every symbol of the alphabet in its order, with its count (0 when unused)."""
        return [(symbol, self.symbols.get(symbol, 0)) for symbol in SYMBOLS]

    def lines(self) -> list[str]:
        equations = self.true_equations + self.false_equations
        lines = [f"{self.images:,} labelled images in {self.root}"]
        if self.lengths:
            low, high = min(self.lengths), max(self.lengths)
            mean = sum(n * c for n, c in self.lengths.items()) / sum(self.lengths.values())
            lines.append(f"label length {low}–{high} symbols, mean {mean:.1f}")
        if equations:
            lines.append(
                f"{equations:,} equations: {self.true_equations:,} true "
                f"({self.true_equations / equations:.1%}), {self.false_equations:,} false"
            )
        if self.expressions:
            lines.append(f"{self.expressions:,} expressions without '='")
        if self.problems:
            lines.append(f"{len(self.problems):,} problems (not loaded)")
        return lines


def describe(report: FolderReport) -> Survey:
    """The counts of a folder's labels (no image is decoded)."""
    survey = Survey(
        report.root,
        report.labels_file,
        len(report.items),
        Counter(),
        Counter(),
        0,
        0,
        0,
        list(report.problems),
    )
    for item in report.items:
        survey.lengths[len(item.text)] += 1
        survey.symbols.update(item.text)
        try:
            formula = parse(item.text)
        except GrammarError:  # read_folder only keeps parseable labels; be safe anyway
            continue
        if not formula.is_equation:
            survey.expressions += 1
        elif formula.is_true:
            survey.true_equations += 1
        else:
            survey.false_equations += 1
    return survey


def _sample(item: Item) -> np.ndarray:
    image = read_image(item.path)
    height, width = image.shape[:2]
    size = (max(1, round(width * SAMPLE_HEIGHT / height)), SAMPLE_HEIGHT)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def survey(root: Path | str, token: CancelToken, samples: int = 48) -> Iterator[Progress]:
    """Job: read a Baidu-format folder and describe it, with `samples` images spread over it
    (decoded; one that fails to decode becomes a problem); returns a Survey."""
    report: FolderReport = yield from read_folder(root, token)
    result = describe(report)
    items: Sequence[Item] = report.items
    chosen = sorted({round(i * (len(items) - 1) / max(samples - 1, 1)) for i in range(samples)})
    for n, index in enumerate(chosen if items else []):
        token.raise_if_cancelled()
        item = items[index]
        try:
            result.samples.append((_sample(item), item.text))
        except ImageProblem as problem:
            result.problems.append(Problem(None, item.path.name, "unreadable", str(problem)))
        yield Progress(n + 1, len(chosen), f"{n + 1} of {len(chosen)} samples")
    return result
