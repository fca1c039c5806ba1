"""Scoring a recogniser on labelled images: sequence accuracy, character error rate,
accuracy by length, the symbols it confuses, and a gallery of its mistakes; and the
validation score of a model during training (`evaluate_batches`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from core.formula.decoding import edit_distance, greedy_batch
from core.jobs import CancelToken, JobError, Progress

if TYPE_CHECKING:
    from core.devices import Device
    from core.formula.crnn import CRNN

_BATCH = 128


@dataclass
class EvalReport:
    total: int = 0
    correct: int = 0
    char_errors: int = 0
    chars: int = 0
    by_length: dict[int, list[int]] = field(default_factory=dict)  # length: [n, correct]
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (truth, read)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (index, truth, read)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)

    def add(self, index: int, truth: str, read: str) -> None:
        self.total += 1
        self.chars += len(truth)
        counts = self.by_length.setdefault(len(truth), [0, 0])
        counts[0] += 1
        if read == truth:
            self.correct += 1
            counts[1] += 1
            return
        self.char_errors += edit_distance(truth, read)
        self.confusions.update(aligned_pairs(truth, read))
        self.errors.append((index, truth, read))

    def lines(self, top: int = 8) -> list[str]:
        lines = [
            f"sequence accuracy {self.accuracy:.2%} ({self.correct:,}/{self.total:,})",
            f"character error rate {self.cer:.2%}",
            "accuracy by length: "
            + ", ".join(
                f"{n}: {c / t:.2%} of {t:,}" for n, (t, c) in sorted(self.by_length.items())
            ),
        ]
        if self.confusions:
            lines.append(
                "most confused (truth → read): "
                + ", ".join(
                    f"{a or '∅'}→{b or '∅'} ×{n}" for (a, b), n in self.confusions.most_common(top)
                )
            )
        return lines


def aligned_pairs(truth: str, read: str) -> list[tuple[str, str]]:
    """The differing symbol pairs of a minimal edit script: ('8', '3') for a substitution,
    ('-', '') for a deletion, ('', '1') for an insertion."""
    n, m = len(truth), len(read)
    table = np.zeros((n + 1, m + 1), int)
    table[:, 0], table[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            table[i, j] = min(
                table[i - 1, j] + 1,
                table[i, j - 1] + 1,
                table[i - 1, j - 1] + (truth[i - 1] != read[j - 1]),
            )
    pairs, i, j = [], n, m
    while i or j:
        if i and j and table[i, j] == table[i - 1, j - 1] + (truth[i - 1] != read[j - 1]):
            if truth[i - 1] != read[j - 1]:
                pairs.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and table[i, j] == table[i - 1, j] + 1:
            pairs.append((truth[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", read[j - 1]))
            j -= 1
    return pairs[::-1]


def evaluate(
    read_batch: Callable[[list[np.ndarray]], list[str]],
    load: Callable[[int], np.ndarray],
    truths: Sequence[str],
    token: CancelToken,
) -> Iterator[Progress]:
    """Job: read every image (`load(i)`) in batches and score it against `truths[i]`;
    returns an EvalReport."""
    report = EvalReport()
    yield Progress(0, len(truths), "Reading")
    for start in range(0, len(truths), _BATCH):
        token.raise_if_cancelled()
        indices = range(start, min(start + _BATCH, len(truths)))
        texts = read_batch([load(i) for i in indices])
        for i, text in zip(indices, texts, strict=True):
            report.add(i, truths[i], text)
        yield Progress(
            indices[-1] + 1,
            len(truths),
            f"Read {indices[-1] + 1:,} of {len(truths):,}",
            {"accuracy": round(report.accuracy, 5)},
        )
    return report


def gallery(
    images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 4, height: int = 60
) -> np.ndarray:
    """The images at one height with a caption strip under each, in a grid (RGB)."""
    cells = []
    for image, caption in zip(images, captions, strict=True):
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        cell = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        strip = np.full((20, max(width, 8 * len(caption) + 8), 3), 255, np.uint8)
        cv2.putText(
            strip, caption, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (160, 0, 0), 1, cv2.LINE_AA
        )
        cell = np.pad(cell, ((0, 0), (0, strip.shape[1] - width), (0, 0)), constant_values=255)
        cells.append(
            np.pad(np.vstack([cell, strip]), ((4, 4), (4, 4), (0, 0)), constant_values=200)
        )
    if not cells:
        return np.full((40, 200, 3), 255, np.uint8)
    width = max(c.shape[1] for c in cells)
    cells = [
        np.pad(c, ((0, 0), (0, width - c.shape[1]), (0, 0)), constant_values=255) for c in cells
    ]
    rows = [np.hstack(cells[i : i + columns]) for i in range(0, len(cells), columns)]
    last = rows[-1]
    rows[-1] = np.pad(
        last, ((0, 0), (0, rows[0].shape[1] - last.shape[1]), (0, 0)), constant_values=255
    )
    return np.vstack(rows)


@dataclass
class FolderReading:
    """Every image of a folder with what the model read; with its labels where it has them."""

    root: Path
    paths: list[Path]
    texts: list[str]  # "" for an image that could not be read
    truths: list[str] | None = None  # None: the folder has no labels file
    failures: dict[int, str] = field(default_factory=dict)  # index: why it was not read
    problems: list[str] = field(default_factory=list)  # from the labels file
    report: EvalReport | None = None

    def correct(self, index: int) -> bool | None:
        return None if self.truths is None else self.texts[index] == self.truths[index]


def _natural(path: Path) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def read_images(
    read_batch: Callable[[list[np.ndarray]], list[str]], root: Path | str, token: CancelToken
) -> Iterator[Progress]:
    """Job: read every image of a folder; with a labels file (Baidu format) the labelled
    images and their accuracy, otherwise the folder's images in natural order. Returns a
    FolderReading; images that cannot be decoded are listed with the reason."""
    from core.formula.dataset import LABEL_FILES, read_folder
    from core.formula.preprocess import MODEL_HEIGHT
    from core.formula.recognizer import shape_problem
    from core.images import IMAGE_SUFFIXES, ImageProblem, read_image

    root = Path(root)
    if not root.is_dir():
        raise JobError(f"{root} is not a folder.")
    truths: list[str] | None = None
    problems: list[str] = []
    if any((root / name).is_file() for name in LABEL_FILES):
        folder = yield from read_folder(root, token)
        paths = [item.path for item in folder.items]
        truths = [item.text for item in folder.items]
        problems = [str(p) for p in folder.problems]
    else:
        paths = sorted(
            (p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
            key=_natural,
        )
        if not paths:
            raise JobError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    reading = FolderReading(root, paths, [""] * len(paths), truths, problems=problems)
    report = EvalReport() if truths is not None else None
    yield Progress(0, len(paths), "Reading")
    for start in range(0, len(paths), _BATCH):
        token.raise_if_cancelled()
        indices, images = [], []
        for i in range(start, min(start + _BATCH, len(paths))):
            try:
                image = read_image(paths[i])
            except ImageProblem as problem:
                reading.failures[i] = str(problem)
                continue
            problem = shape_problem(image.shape[1], image.shape[0], MODEL_HEIGHT)
            if problem:
                reading.failures[i] = f"{paths[i].name}: {problem}"
                continue
            images.append(image)
            indices.append(i)
        texts = read_batch(images) if images else []
        for i, text in zip(indices, texts, strict=True):
            reading.texts[i] = text
        if report is not None and truths is not None:
            for i in range(start, min(start + _BATCH, len(paths))):
                report.add(i, truths[i], reading.texts[i])
        done = min(start + _BATCH, len(paths))
        message = f"accuracy {report.accuracy:.2%}" if report else f"{done:,} read"
        yield Progress(done, len(paths), message)
    reading.report = report
    return reading


def evaluate_batches(
    model: CRNN, batches: Sequence[dict[str, Any]], device: Device
) -> dict[str, float]:
    """Sequence accuracy and character error rate over prepared batches, each image read as
    it reads alone (as the app reads it)."""
    import torch

    was_training = model.training
    model.eval()
    correct = errors = chars = total = 0
    for batch in batches:
        lengths = model.output_lengths(batch["widths"])
        with torch.no_grad(), device.autocast():
            log_probs = model(batch["images"].to(device.torch), lengths)
        for text, truth in zip(
            greedy_batch(log_probs.float().cpu().numpy(), lengths.numpy()),
            batch["texts"],
            strict=True,
        ):
            correct += text == truth
            errors += edit_distance(text, truth)
            chars += len(truth)
            total += 1
    model.train(was_training)
    return {"val_acc": correct / max(total, 1), "val_cer": errors / max(chars, 1)}
