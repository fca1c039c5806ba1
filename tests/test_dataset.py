"""Listing the Dogs vs. Cats data: layouts, labels from names, skipped files, errors."""

from pathlib import Path

import pytest

from core.jobs import Cancelled, CancelToken, JobError, drive
from core.pets.dataset import label_from_name, list_dataset
from tests.conftest import shared_data


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff")


def _list(root):
    return drive(list_dataset(root, CancelToken()), CancelToken())


def test_label_from_name():
    assert label_from_name("cat.123.jpg") == "cat"
    assert label_from_name("DOG.7.JPG") == "dog"
    assert label_from_name("123.jpg") is None
    assert label_from_name("catdog.1.jpg") is None


def test_kaggle_layout(tmp_path: Path):
    _touch(
        tmp_path,
        "train/cat.10.jpg",
        "train/cat.2.jpg",
        "train/dog.1.jpg",
        "train/notes.txt",
        "train/bird.1.jpg",
        "test1/1.jpg",
        "test1/2.jpg",
    )
    listing = _list(tmp_path)
    assert listing.layout == "kaggle"
    assert listing.counts() == {"cat": 2, "dog": 1, "test": 2}
    train = [s.path for s in listing.samples if s.split == "train"]
    assert train == ["train/cat.2.jpg", "train/cat.10.jpg", "train/dog.1.jpg"]
    assert dict(listing.skipped) == {
        "train/notes.txt": "not an image file name",
        "train/bird.1.jpg": "name is not cat.N or dog.N",
    }
    assert "3 labelled images (2 cats, 1 dogs), 2 test images" in listing.summary()


def test_class_folders(tmp_path: Path):
    _touch(tmp_path, "cats/a.jpg", "Dogs/b.png", "dogs_extra/c.jpg")
    listing = _list(tmp_path)
    assert listing.layout == "class-folders"
    assert {(s.path, s.label) for s in listing.samples} == {
        ("cats/a.jpg", "cat"),
        ("Dogs/b.png", "dog"),
    }


def test_folder_without_the_data_says_how_to_get_it(tmp_path: Path):
    _touch(tmp_path, "holiday/photo.jpg")
    with pytest.raises(JobError, match="kaggle competitions download"):
        _list(tmp_path)
    with pytest.raises(JobError, match="not a folder"):
        _list(tmp_path / "missing")
    (tmp_path / "train").mkdir(parents=True, exist_ok=True)
    with pytest.raises(JobError, match="No images"):
        _list(tmp_path / "holiday" / "..")


def test_listing_can_be_cancelled(tmp_path: Path):
    _touch(tmp_path, *(f"train/cat.{i}.jpg" for i in range(4500)))
    token = CancelToken()
    with pytest.raises(Cancelled):
        drive(list_dataset(tmp_path, token), token, lambda p: token.cancel())


def test_real_kaggle_sample():
    root = shared_data("dogs_vs_cats")
    listing = _list(root)
    assert listing.counts() == {"cat": 500, "dog": 500, "test": 150}
