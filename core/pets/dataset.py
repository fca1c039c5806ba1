"""The Dogs vs. Cats data on disk: find the layout of a folder and list its samples.

Kaggle layout: `train/` holds `cat.N.jpg` / `dog.N.jpg`, `test/` (or `test1/`) holds `N.jpg`.
Class-folder layout: `cats/` and `dogs/` (or `cat/`, `dog/`), optionally under `train/`.
Listing reads names only; nothing is decoded or written.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.images import IMAGE_SUFFIXES
from core.jobs import CancelToken, JobError, Progress

CLASSES = ("cat", "dog")
KAGGLE_DOWNLOAD = "kaggle competitions download -c dogs-vs-cats-redux-kernels-edition"
_LABELLED_NAME = re.compile(r"^(cat|dog)\.\d+\.[A-Za-z]+$", re.IGNORECASE)
_CLASS_DIRS = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog"}
_TEST_DIRS = ("test", "test1")
_PROGRESS_EVERY = 2000


@dataclass(frozen=True)
class Sample:
    split: str  # "train" or "test"
    path: str  # relative to the dataset root, with forward slashes
    label: str | None  # "cat", "dog", or None for test images


@dataclass
class DatasetListing:
    root: Path
    layout: str  # "kaggle" or "class-folders"
    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def counts(self) -> Counter[str]:
        """Counts by 'cat', 'dog' and 'test'."""
        return Counter(s.label or "test" for s in self.samples)

    def summary(self) -> str:
        counts = self.counts()
        text = (
            f"{counts['cat'] + counts['dog']:,} labelled images "
            f"({counts['cat']:,} cats, {counts['dog']:,} dogs), {counts['test']:,} test images"
        )
        if self.skipped:
            text += f"; {len(self.skipped):,} files skipped"
        return text


def label_from_name(name: str) -> str | None:
    """'cat' or 'dog' from a Kaggle train file name such as 'cat.123.jpg', else None."""
    match = _LABELLED_NAME.match(name)
    return match.group(1).lower() if match else None


def _child_dirs(directory: Path) -> dict[str, Path]:
    try:
        with os.scandir(directory) as entries:
            return {e.name.lower(): Path(e.path) for e in entries if e.is_dir()}
    except OSError as error:
        raise JobError(f"Cannot read the folder {directory}: {error.strerror}") from error


def _plan(root: Path) -> tuple[str, list[tuple[Path, str, str | None]]]:
    """The layout and the folders to list as (folder, split, fixed label or None)."""
    children = _child_dirs(root)
    train = children.get("train")
    if train is not None:
        train_children = _child_dirs(train)
        class_dirs = [
            (p, "train", _CLASS_DIRS[n]) for n, p in train_children.items() if n in _CLASS_DIRS
        ]
        plan = class_dirs or [(train, "train", None)]
        plan += [(children[n], "test", None) for n in _TEST_DIRS if n in children]
        return ("class-folders" if class_dirs else "kaggle"), plan
    class_dirs = [(p, "train", _CLASS_DIRS[n]) for n, p in children.items() if n in _CLASS_DIRS]
    if class_dirs:
        return "class-folders", class_dirs
    raise JobError(
        f"{root} does not look like the Dogs vs. Cats data: it has no train/ folder and no "
        f"cats/ or dogs/ folders. Download the data with\n  {KAGGLE_DOWNLOAD}\n"
        "unzip train.zip and test.zip, and open the folder that holds train/ and test/."
    )


def list_dataset(root: Path | str, token: CancelToken) -> Iterator[Progress]:
    """Job: list every sample under `root`; returns a DatasetListing.

    Files that are not images are recorded in `skipped` with the reason. Raises JobError
    when the folder does not exist, cannot be read or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise JobError(f"{root} is not a folder.")
    layout, plan = _plan(root)
    listing = DatasetListing(root, layout)
    seen = 0
    yield Progress(0, None, f"Listing {root}")
    for folder, split, fixed_label in plan:
        try:
            entries = os.scandir(folder)
        except OSError as error:
            raise JobError(f"Cannot read the folder {folder}: {error.strerror}") from error
        with entries:
            for entry in entries:
                if not entry.is_file():
                    continue
                rel = Path(entry.path).relative_to(root).as_posix()
                if os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
                    listing.skipped.append((rel, "not an image file name"))
                    continue
                label = fixed_label
                if split == "train" and label is None:
                    label = label_from_name(entry.name)
                    if label is None:
                        listing.skipped.append((rel, "name is not cat.N or dog.N"))
                        continue
                listing.samples.append(Sample(split, rel, label))
                seen += 1
                if seen % _PROGRESS_EVERY == 0:
                    token.raise_if_cancelled()
                    yield Progress(seen, None, f"Listed {seen:,} images")
    if not listing.samples:
        raise JobError(f"No images were found in {root}.")
    listing.samples.sort(key=lambda s: (s.split, _natural_key(s.path)))
    yield Progress(seen, seen, listing.summary())
    return listing


def _natural_key(path: str) -> tuple[object, ...]:
    """Sort 'cat.2.jpg' before 'cat.10.jpg'."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path))
