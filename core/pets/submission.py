"""The Kaggle submission: `id,label` with label = P(dog) clipped to [0.005, 0.995], one row
per test image, ids from the file names, checked after writing by reading it back."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import TextIO

import numpy as np

from core.jobs import JobError
from core.pets.exports import AtomicText, is_stdout
from core.pets.labelstore import LabelStore
from core.pets.metrics import CLIP
from core.pets.runs import RunResult, run_predictions, test_rows
from core.pets.sources import SEPARATOR

_ID = re.compile(r"(\d+)\.[A-Za-z]+$")


def test_id(path: str) -> int:
    """The id of a test image from its name: `test/123.jpg` → 123."""
    name = path.rsplit(SEPARATOR, 1)[-1].rsplit("/", 1)[-1]
    found = _ID.fullmatch(name)
    if found is None:
        raise JobError(f"The test image {path} is not named by its id (e.g. 123.jpg).")
    return int(found.group(1))


def write_submission(store: LabelStore, run: RunResult, path: Path) -> int:
    """Write `run`'s test predictions as a submission at `path` (atomically) and check it;
    returns the number of rows."""
    predictions = run_predictions(store, run)
    ids, p = predictions["test_ids"], predictions["test_p"]
    if len(ids) == 0:
        raise JobError(f"Run {run.id} did not predict the test images (the dataset had none).")
    rows = test_rows(store)
    expected = {int(store.ids[r]): test_id(store.paths[r]) for r in rows}
    missing = set(expected) - {int(i) for i in ids}
    if missing:
        raise JobError(
            f"Run {run.id} has no prediction for {len(missing):,} of the {len(expected):,} test "
            "images (the test folder changed since): train again."
        )
    by_sample = dict(zip(ids.tolist(), np.clip(p, *CLIP).tolist(), strict=True))
    lines = sorted((expected[s], by_sample[s]) for s in expected)
    path = Path(path)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["id", "label"])
    writer.writerows((i, f"{q:.6f}") for i, q in lines)
    text.seek(0)
    check_rows(text, str(path), sorted(expected.values()))  # what is written, read back
    if not is_stdout(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicText(path) as out:
        out.write(text.getvalue())
    if not is_stdout(path):
        check_submission(path, sorted(expected.values()))
    return len(lines)


def check_submission(path: Path, ids: list[int]) -> None:
    """Raise JobError unless `path` is `id,label` with exactly `ids`, each label a
    probability within the clip range."""
    with Path(path).open(newline="") as handle:
        check_rows(handle, str(path), ids)


def check_rows(handle: TextIO, path: str, ids: list[int]) -> None:
    """check_submission on an open text."""
    reader = csv.reader(handle)
    if next(reader, None) != ["id", "label"]:
        raise JobError(f"{path}: the header must be id,label.")
    found = []
    for number, row in enumerate(reader, start=2):
        try:
            i, q = int(row[0]), float(row[1])
        except (ValueError, IndexError):
            raise JobError(f"{path}, line {number}: not an id and a probability.") from None
        if not CLIP[0] <= q <= CLIP[1]:
            raise JobError(f"{path}, line {number}: {q} is outside {CLIP}.")
        found.append(i)
    if sorted(found) != sorted(ids) or len(set(found)) != len(found):
        raise JobError(
            f"{path} has {len(found):,} rows for {len(ids):,} test images, or ids that do "
            "not match them one to one."
        )
