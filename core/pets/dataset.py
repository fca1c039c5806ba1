"""The Dogs vs. Cats data as Kaggle gives it: find the layout and list the samples.

Kaggle layout: `train/` holds `cat.N.jpg` / `dog.N.jpg`, `test/` (or `test1/`) holds `N.jpg`;
or the same inside `train.zip` and `test.zip`, read in place, or inside the competition zip
that holds those two. Class-folder layout: `cats/` and `dogs/` (or `cat/`, `dog/`),
optionally under `train/`. Listing reads names only; nothing is decoded or written.
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
from core.pets.sources import SEPARATOR, FolderContainer, Source, SourceError, unsafe_member

CLASSES = ("cat", "dog")
KAGGLE_DOWNLOAD = "kaggle competitions download -c dogs-vs-cats-redux-kernels-edition"
_LABELLED_NAME = re.compile(r"^(cat|dog)\.\d+\.[A-Za-z]+$", re.IGNORECASE)
_CLASS_DIRS = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog"}
_TEST_DIRS = ("test", "test1")
_DIGITS = re.compile(r"(\d+)")
_ZIP_STEMS = {"train", "test", "test1"}
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
    zipped: bool = False  # some samples are read from inside zip files
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
            count = len(self.skipped)
            text += f"; {count:,} file{'' if count == 1 else 's'} skipped"
        return text


def label_from_name(name: str) -> str | None:
    """'cat' or 'dog' from a Kaggle train file name such as 'cat.123.jpg', else None."""
    match = _LABELLED_NAME.match(name)
    return match.group(1).lower() if match else None


def _classify(parts: list[str]) -> tuple[str, str | None] | None:
    """(split, fixed label or None) from the folders and zips a file sits in, or None."""
    lowered = [p.lower().removesuffix(".zip") for p in parts]
    for part in reversed(lowered):
        if part in _CLASS_DIRS:
            return "train", _CLASS_DIRS[part]
    for part in reversed(lowered):
        if part == "train":
            return "train", None
        if part in _TEST_DIRS:
            return "test", None
    return None


def _walk(
    source: Source, chain: str, token: CancelToken
) -> Iterator[tuple[str, list[str], str | None]]:
    """(chain path, folders and zips it sits in, why it cannot be opened or None) for every
    file, descending into the zips named like the data (train.zip, test.zip, the
    competition zip) unless the same folder also holds them unpacked."""
    container = source.container(chain)
    names = list(container.names())
    prefix_of = chain.split(SEPARATOR) if chain else []
    for name, problem in getattr(container, "problems", ()):
        path = f"{chain}{SEPARATOR}{name}" if chain else name
        yield path, [*prefix_of, *name.split("/")[:-1]], problem
    folders = {n.rsplit("/", 2)[-2].lower() for n in names if "/" in n}
    folders |= {n.split("/")[0].lower() for n in names if "/" in n}
    prefix = chain.split(SEPARATOR) if chain else []
    for count, name in enumerate(names):
        if count % _PROGRESS_EVERY == 0:
            token.raise_if_cancelled()
        parts = name.split("/")
        path = f"{chain}{SEPARATOR}{name}" if chain else name
        if parts[-1].lower().endswith(".zip") and len(parts) <= 2:
            stem = parts[-1][:-4].lower()
            if stem in folders:
                continue  # unpacked beside it: read the folder
            if stem in _ZIP_STEMS or (not chain and "cat" in stem and "dog" in stem):
                try:
                    source.container(path)
                except SourceError as error:
                    yield path, prefix, error.detail
                    continue
                yield from _walk(source, path, token)
                continue
        yield path, [*prefix, *parts[:-1]], None


def list_dataset(
    root: Path | str, token: CancelToken, cache_dir: Path | None = None
) -> Iterator[Progress]:
    """Job: list every sample under `root` (a folder or a zip); returns a DatasetListing.

    Reads names only. Files that are not images, or whose names carry no label where one is
    needed, are recorded in `skipped` with the reason, as are zip entries with unsafe paths.
    Raises JobError when the root cannot be read, is not this data or holds no images.
    `cache_dir` receives a copy of an inner zip that is compressed inside the competition
    zip (it cannot be read in place).
    """
    root = Path(root)
    if not root.exists():
        raise JobError(f"{root} is not a folder.")
    try:
        source = Source(root, cache_dir)
    except SourceError as error:
        raise JobError(f"Cannot open {root}: {error.detail}") from None
    listing = DatasetListing(root, "kaggle", zipped=source.is_zip)
    yield Progress(0, None, f"Listing {root}")
    top = source.container("")
    known = {*_CLASS_DIRS, "train", *_TEST_DIRS}
    recognised = isinstance(top, FolderContainer) and any(
        name.lower() in known for name in top.folders()
    )
    class_folders = False
    try:
        for path, parts, problem in _walk(source, "", token):
            if problem is not None:
                listing.skipped.append((path, problem))
                recognised = True
                continue
            listing.zipped |= SEPARATOR in path
            member = path.rpartition(SEPARATOR)[2]
            if SEPARATOR in path and unsafe_member(member):
                listing.skipped.append(
                    (path, "refused: the zip entry's path is absolute or has ..")
                )
                continue
            placed = _classify(parts)
            if placed is None:
                continue
            recognised = True
            split, label = placed
            class_folders |= label is not None
            name = member.rsplit("/", 1)[-1]
            rel = path
            if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                listing.skipped.append((rel, "not an image file name"))
                continue
            if split == "train" and label is None:
                label = label_from_name(name)
                if label is None:
                    listing.skipped.append((rel, "name is not cat.N or dog.N"))
                    continue
            listing.samples.append(Sample(split, rel, label))
            if len(listing.samples) % _PROGRESS_EVERY == 0:
                token.raise_if_cancelled()
                yield Progress(
                    len(listing.samples), None, f"Listed {len(listing.samples):,} images"
                )
    except SourceError as error:
        raise JobError(f"Cannot read {root}: {error.detail}") from None
    finally:
        source.close()
    if not recognised and not listing.samples:
        raise JobError(
            f"{root} does not look like the Dogs vs. Cats data: it has no train/ folder and no "
            f"cats/ or dogs/ folders. Download the data with\n  {KAGGLE_DOWNLOAD}\n"
            "and open the folder that holds train.zip and test.zip (or train/ and test/ "
            "once unzipped), or the downloaded zip itself."
        )
    if not listing.samples:
        problems = "".join(f"\n  {path}: {reason}" for path, reason in listing.skipped[:5])
        raise JobError(f"No images were found in {root}.{problems}")
    listing.layout = "class-folders" if class_folders else "kaggle"
    listing.samples.sort(key=lambda s: (s.split != "train", _natural_key(s.path)))
    yield Progress(len(listing.samples), len(listing.samples), listing.summary())
    return listing


def _natural_key(path: str) -> tuple[object, ...]:
    """Sort 'cat.2.jpg' before 'cat.10.jpg'."""
    parts = _DIGITS.split(path)
    parts[1::2] = [int(p) for p in parts[1::2]]
    return tuple(parts)
