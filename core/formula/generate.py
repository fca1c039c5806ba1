"""Writing a synthetic formula set to disk in the Baidu layout: `0.png`, `1.png`, … and a
`labels.txt` whose line i describes `i.png` (`expression value`, or the equation alone);
and contact sheets of the styles.

Image i depends only on (seed, i), so the set is the same for any number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.formula import expressions, synth
from core.jobs import CancelToken, JobError, Progress

LABELS = "labels.txt"
_CHUNK = 50


@dataclass(frozen=True)
class GenerateConfig:
    count: int
    style: str = "mixed"  # "mixed" or one of synth.STYLES
    form: str = "level1"  # see expressions.FORMS
    seed: int = 0
    p_true: float = 0.5
    height: int = synth.HEIGHT
    width: int | None = None  # None: 180, wider for long equations
    weights: Mapping[str, float] = field(default_factory=lambda: dict(synth.DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.style != "mixed" and self.style not in synth.STYLES:
            raise ValueError(f"unknown style {self.style!r}: mixed, {', '.join(synth.STYLES)}")
        if self.form not in expressions.FORMS:
            raise ValueError(f"unknown form {self.form!r}: {', '.join(expressions.FORMS)}")


def make_one(config: GenerateConfig, index: int) -> tuple[expressions.Sample, str, object]:
    """Sample, style and RGB image of item `index`."""
    rng = synth.rng_for(config.seed, index)
    item = expressions.sample(rng, config.form, config.p_true)
    style = config.style if config.style != "mixed" else synth.choose_style(rng, config.weights)
    image = synth.render(item.text, rng, style, config.height, config.width)
    return item, style, image


def _write_chunk(config: GenerateConfig, out: str, start: int, stop: int) -> list[str]:
    """Render and write items start…stop-1; returns their label lines in order."""
    lines = []
    for index in range(start, stop):
        item, _, image = make_one(config, index)
        path = os.path.join(out, f"{index}.png")
        if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")
        lines.append(item.label_line(f"{index}.png").split(" ", 1)[1])
    return lines


def _prepare(out: Path) -> None:
    if (out / LABELS).exists():
        raise JobError(
            f"{out} already holds a formula set ({LABELS}); choose an empty folder so that "
            "nothing is overwritten."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".labelscope-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise JobError(f"Cannot write to {out}: {error.strerror or error}.") from error


def generate(
    out: Path | str, config: GenerateConfig, token: CancelToken, workers: int = 1
) -> Iterator[Progress]:
    """Job: write `config.count` images and labels.txt into `out`; returns the folder.

    With more than one worker the images are drawn in separate processes. `labels.txt` is
    written last, atomically, so a cancelled or failed run never leaves a set that looks
    complete.
    """
    out = Path(out)
    _prepare(out)
    chunks = [(s, min(s + _CHUNK, config.count)) for s in range(0, config.count, _CHUNK)]
    lines: dict[int, list[str]] = {}
    done = 0
    yield Progress(0, config.count, f"Drawing {config.count:,} formulas into {out}")
    try:
        if workers <= 1:
            for start, stop in chunks:
                token.raise_if_cancelled()
                lines[start] = _write_chunk(config, str(out), start, stop)
                done += stop - start
                yield Progress(done, config.count, f"{done:,} images")
        else:
            yield from _parallel(config, out, chunks, workers, token, lines)
    except OSError as error:
        raise JobError(f"Cannot write the images: {error}") from error
    temporary = out / (LABELS + ".tmp")
    with temporary.open("w", encoding="utf-8", newline="\n") as handle:
        for start, _ in chunks:
            handle.writelines(line + "\n" for line in lines[start])
    os.replace(temporary, out / LABELS)
    yield Progress(config.count, config.count, f"Wrote {config.count:,} images to {out}")
    return out


def _parallel(
    config: GenerateConfig,
    out: Path,
    chunks: list[tuple[int, int]],
    workers: int,
    token: CancelToken,
    lines: dict[int, list[str]],
) -> Iterator[Progress]:
    # spawn, not fork: forking a process that runs Qt or torch threads is unsafe
    context = multiprocessing.get_context("spawn")
    pending: dict[Future[list[str]], int] = {}
    queue = list(reversed(chunks))
    done = 0
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        try:
            while queue or pending:
                while queue and len(pending) < workers * 4:
                    start, stop = queue.pop()
                    pending[pool.submit(_write_chunk, config, str(out), start, stop)] = start
                finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    start = pending.pop(future)
                    lines[start] = future.result()
                    done += len(lines[start])
                token.raise_if_cancelled()
                if finished:
                    yield Progress(done, config.count, f"{done:,} images")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def contact_sheet(
    seed: int,
    form: str = "level1",
    per_row: int = 4,
    rows_per_style: int = 2,
    references: Sequence[np.ndarray] = (),
    height: int = synth.HEIGHT,
) -> np.ndarray:
    """A grid of images: the reference images first (the real set, when given), then
    `rows_per_style` rows of each style, each image framed by a grey border."""
    rows: list[list[np.ndarray]] = []
    if references:
        rows.append([_fit_height(r, height) for r in references[:per_row]])
    for s, style in enumerate(synth.STYLES):
        for r in range(rows_per_style):
            row = []
            for c in range(per_row):
                rng = synth.rng_for(seed, (s * rows_per_style + r) * per_row + c)
                row.append(synth.render(expressions.sample(rng, form).text, rng, style, height))
            rows.append(row)
    return sheet(rows)


def sheet(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """RGB images in rows, each framed in grey, rows padded with white to the widest."""
    framed = [
        [np.pad(im, ((3, 3), (3, 3), (0, 0)), constant_values=128) for im in row] for row in rows
    ]
    widest = max(sum(im.shape[1] for im in row) for row in framed)
    lines = []
    for row in framed:
        line = np.hstack(row)
        lines.append(
            np.pad(line, ((0, 0), (0, widest - line.shape[1]), (0, 0)), constant_values=255)
        )
    return np.vstack(lines)


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[0] == height:
        return image
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
