"""Exports of a label store for other tools: the effective labels as CSV, the excluded
files, and an ImageFolder tree of hard links. The user's images are only ever read."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.jobs import CancelToken, JobError, Progress
from core.pets.labelstore import LABELS, LabelStore
from core.pets.sources import SEPARATOR, Source, SourceError


def export_labels(store: LabelStore, target: Path) -> int:
    """Write the effective labels of the train split as CSV (path, label, edited);
    returns the row count. Written to a temporary file first, then renamed."""
    store.refresh()  # another window's or process's edits count
    rows = store.effective_rows()
    edited = store.edited
    with AtomicText(Path(target)) as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "file_label", "edited"])
        for r in rows:
            writer.writerow(
                [
                    store.paths[r],
                    LABELS[store.label[r]],
                    LABELS[store.file_label[r]] or "",
                    int(edited[r]),
                ]
            )
    return len(rows)


def export_excluded(store: LabelStore, target: Path) -> int:
    store.refresh()
    rows = np.flatnonzero(store.excluded)
    with AtomicText(Path(target)) as handle:
        for r in rows:
            handle.write(store.paths[r] + "\n")
    return len(rows)


def export_imagefolder(store: LabelStore, target: Path, token: CancelToken) -> Iterator[Progress]:
    """Job: an ImageFolder tree `train/cat`, `train/dog`, `test/` of hard links to the
    images (copies where a link cannot be made, or the file sits in a zip); returns
    (linked, copied)."""
    store.refresh()
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise JobError(f"{target} is not empty; choose a new or empty folder.")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise JobError(f"Cannot create {target}: {error.strerror}") from error
    train = store.effective_rows()
    test = np.flatnonzero(store.split == 1)
    jobs = [(r, Path("train") / LABELS[store.label[r]]) for r in train]
    jobs += [(r, Path("test")) for r in test]
    source = Source(store.root)
    linked = copied = 0
    try:
        for i, (row, folder) in enumerate(jobs):
            if i % 200 == 0:
                token.raise_if_cancelled()
                yield Progress(i, len(jobs), f"Exporting {i:,} of {len(jobs):,}")
            name = store.paths[row].rsplit(SEPARATOR, 1)[-1].rsplit("/", 1)[-1]
            out = target / folder / name
            out.parent.mkdir(parents=True, exist_ok=True)
            physical = source.physical_path(store.paths[row])
            if physical is not None:
                try:
                    os.link(physical, out)
                    linked += 1
                    continue
                except OSError:
                    shutil.copy2(physical, out)
            else:
                try:
                    out.write_bytes(source.read(store.paths[row]))
                except SourceError:
                    continue
            copied += 1
    except OSError as error:
        raise JobError(f"Cannot write into {target}: {error.strerror}") from error
    finally:
        source.close()
    yield Progress(len(jobs), len(jobs), f"Exported {len(jobs):,} images")
    return linked, copied


def is_stdout(target: Path | str) -> bool:
    """Whether an output named on the command line is `-`, standard output."""
    return str(target) == "-"


class AtomicText:
    """Write a text file through a temporary file and a rename; `-` is standard output."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.partial = target.with_name(f".{target.name}.partial")

    def __enter__(self):
        if is_stdout(self.target):
            self.handle = sys.stdout
        else:
            self.handle = open(self.partial, "w", newline="", encoding="utf-8")
        return self.handle

    def __exit__(self, kind: object, *_rest: object) -> None:
        if self.handle is sys.stdout:
            self.handle.flush()
            return
        self.handle.close()
        if kind is None:
            os.replace(self.partial, self.target)
        else:
            self.partial.unlink(missing_ok=True)
