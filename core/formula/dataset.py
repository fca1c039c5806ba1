"""Formula datasets: Baidu-format folders read with every problem reported, and seeded
splits (the torch datasets that feed training are in train_data.py).

A labels file has one line per image. Line i describes `i.png` unless it names its file
first. The text is `expression value` (Baidu level 1: `(4*8)+8 40`) or an equation
(`6*(3+7)=76`, true or not); both forms are read everywhere.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.formula.grammar import GrammarError, parse
from core.images import IMAGE_SUFFIXES, sniff_format
from core.jobs import CancelToken, JobError, Progress

LABEL_FILES = ("labels.txt", "label.txt", "labels.tsv")


@dataclass(frozen=True)
class Item:
    path: Path
    text: str  # what the image shows
    value: int  # the true value of its expression


@dataclass(frozen=True)
class Problem:
    line: int | None  # 1-based line of the labels file, None when not about a line
    path: str
    kind: str  # "bad line", "missing", "unreadable"
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


@dataclass
class FolderReport:
    root: Path
    labels_file: Path
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        text = f"{len(self.items):,} labelled images"
        if counts:
            text += " · " + ", ".join(f"{n:,} {kind}" for kind, n in sorted(counts.items()))
        return text


def parse_label(text: str) -> tuple[str, int]:
    """(text shown in the image, true value) from 'expr value' or 'expression=value'.

    Raises GrammarError or ValueError with what is wrong.
    """
    parts = text.split()
    if len(parts) == 1:
        formula = parse(parts[0])
        return formula.text, formula.value
    if len(parts) == 2:
        expression, written = parts
        formula = parse(expression)
        if formula.is_equation:
            raise ValueError("an equation needs no separate value")
        try:
            value = int(written)
        except ValueError:
            raise ValueError(f"the value {written!r} is not an integer") from None
        if value != formula.value:
            raise ValueError(f"the value {value} does not match {expression} = {formula.value}")
        return formula.text, value
    raise ValueError("expected 'expression value' or 'expression=value'")


def find_labels(root: Path) -> Path:
    for name in LABEL_FILES:
        if (root / name).is_file():
            return root / name
    raise JobError(
        f"{root} has no labels file ({', '.join(LABEL_FILES)}): line i of labels.txt "
        "describes i.png, as 'expression value' or 'expression=value'."
    )


def read_folder(root: Path | str, token: CancelToken) -> Iterator[Progress]:
    """Job: read a Baidu-format folder; returns a FolderReport.

    Bad lines (with their line numbers), missing images and files that are not images are
    reported and skipped; the rest load. Only each image's first bytes are read here.
    """
    root = Path(root)
    if not root.is_dir():
        raise JobError(f"{root} is not a folder.")
    labels_file = find_labels(root)
    try:
        data = labels_file.read_bytes()
    except OSError as error:
        raise JobError(f"Cannot read {labels_file}: {error.strerror or error}") from error
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    report = FolderReport(root, labels_file)
    yield Progress(0, len(lines), f"Reading {labels_file.name}")
    for number, raw in enumerate(lines, start=1):
        if number % 500 == 0:
            token.raise_if_cancelled()
            yield Progress(number, len(lines), f"{len(report.items):,} images")
        try:  # one line that is not UTF-8 is reported; the others are read
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            name = f"{number - 1}.png"
            report.problems.append(
                Problem(number, name, "bad line", f"not UTF-8 text (byte {error.start + 1})")
            )
            continue
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        if Path(name).suffix.lower() in IMAGE_SUFFIXES:
            label = rest.strip()
        else:
            name, label = f"{number - 1}.png", line
        try:
            text, value = parse_label(label)
        except (GrammarError, ValueError) as error:
            report.problems.append(Problem(number, name, "bad line", str(error)))
            continue
        path = root / name
        problem = _check_image(path)
        if problem:
            report.problems.append(Problem(number, name, *problem))
            continue
        report.items.append(Item(path, text, value))
    yield Progress(len(lines), len(lines), report.summary())
    if not report.items:
        details = "\n".join(str(p) for p in report.problems[:20])
        raise JobError(f"No usable images in {root}: {report.summary()}.", details)
    return report


def _check_image(path: Path) -> tuple[str, str] | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return "missing", "the image file does not exist"
    except OSError as error:
        return "unreadable", f"cannot be read ({error.strerror})"
    if sniff_format(head) is None:
        return "unreadable", "not an image file"
    return None


def split(
    items: Sequence[Any], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> list[list[Any]]:
    """Seeded random split into parts of the given fractions (train, validation, test)."""
    if not math.isclose(sum(fractions), 1.0) or any(f < 0 for f in fractions):
        raise ValueError("fractions must be non-negative and add up to 1")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for i, fraction in enumerate(fractions):
        stop = len(items) if i == len(fractions) - 1 else start + round(fraction * len(items))
        parts.append([items[j] for j in order[start:stop]])
        start = stop
    return parts
