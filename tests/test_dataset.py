"""Listing the Dogs vs. Cats data: layouts, labels from names, skipped files, errors."""

import zipfile
from pathlib import Path

import pytest

from core.jobs import Cancelled, CancelToken, JobError, drive
from core.pets.dataset import label_from_name, list_dataset
from core.pets.sources import Source, SourceError
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


def test_links_in_a_loop_or_nowhere_are_reported_not_followed(tmp_path: Path):
    _touch(tmp_path, "train/cat.1.jpg", "train/dog.2.jpg", "test/1.jpg")
    (tmp_path / "train" / "self").symlink_to("self")  # a link to itself
    (tmp_path / "train" / "loop").symlink_to(".")  # back up to its own folder
    (tmp_path / "train" / "dog.3.jpg").symlink_to("gone.jpg")  # dangling
    (tmp_path / "test" / "2.jpg").symlink_to(tmp_path / "train" / "dog.2.jpg")  # a good link
    listing = _list(tmp_path)
    assert [s.path for s in listing.samples] == [
        "train/cat.1.jpg", "train/dog.2.jpg", "test/1.jpg", "test/2.jpg"
    ]  # fmt: skip
    skipped = dict(listing.skipped)
    assert "cannot be followed" in skipped["train/self"]
    assert skipped["train/loop"] == "a link to a folder already listed"
    assert skipped["train/dog.3.jpg"] == "a link to something that does not exist"


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


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _train_test_zips(folder: Path) -> tuple[Path, Path]:
    train = _zip(
        folder / "train.zip",
        {"train/cat.1.jpg": b"\xff\xd8cat1", "train/dog.2.jpg": b"\xff\xd8dog2"},
    )
    test = _zip(folder / "test.zip", {"test/1.jpg": b"\xff\xd8t1", "test/2.jpg": b"\xff\xd8t2"})
    return train, test


def _read_all(root: Path, listing, cache_dir: Path | None = None) -> dict[str, bytes]:
    source = Source(root, cache_dir)
    try:
        return {s.path: source.read(s.path) for s in listing.samples}
    finally:
        source.close()


def test_kaggle_zips_are_read_in_place(tmp_path: Path):
    _train_test_zips(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    listing = _list(tmp_path)
    assert listing.zipped and listing.layout == "kaggle"
    assert listing.counts() == {"cat": 1, "dog": 1, "test": 2}
    data = _read_all(tmp_path, listing)
    assert data["train.zip!train/cat.1.jpg"] == b"\xff\xd8cat1"
    assert data["test.zip!test/2.jpg"] == b"\xff\xd8t2"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted


def test_unpacked_folder_wins_over_its_zip(tmp_path: Path):
    _train_test_zips(tmp_path)
    _touch(tmp_path, "train/cat.7.jpg")
    listing = _list(tmp_path)
    assert [s.path for s in listing.samples if s.split == "train"] == ["train/cat.7.jpg"]
    assert listing.counts()["test"] == 2  # test.zip still read: no test/ folder


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_the_competition_zip(tmp_path: Path, method: int):
    inner = tmp_path / "inner"
    inner.mkdir()
    train, test = _train_test_zips(inner)
    outer = _zip(
        tmp_path / "dogs-vs-cats-redux-kernels-edition.zip",
        {
            "train.zip": train.read_bytes(),
            "test.zip": test.read_bytes(),
            "sample_submission.csv": b"id,label\n",
        },
        method,
    )
    cache = tmp_path / "cache"
    listing = drive(list_dataset(outer, CancelToken(), cache), CancelToken())
    assert listing.counts() == {"cat": 1, "dog": 1, "test": 2}
    assert _read_all(outer, listing, cache)["train.zip!train/dog.2.jpg"] == b"\xff\xd8dog2"
    copies = list((cache / "zips").glob("*")) if cache.exists() else []
    # a stored inner zip is read in place; a compressed one is copied once to the cache
    assert len(copies) == (0 if method == zipfile.ZIP_STORED else 2)
    # the folder the download went to, holding the competition zip: the same images, and
    # `pets info` reads it as the app does
    download = tmp_path / "download"
    download.mkdir()
    outer.rename(download / outer.name)
    listing = drive(list_dataset(download, CancelToken(), cache), CancelToken())
    assert listing.counts() == {"cat": 1, "dog": 1, "test": 2}
    if method == zipfile.ZIP_STORED:  # read in place: no cache needed
        assert drive(list_dataset(download, CancelToken()), CancelToken()).counts()["test"] == 2
    from core.cli import main

    assert main(["pets", "info", str(download), "--check"]) in (0, 1)  # the JPEGs are stubs
    assert main(["pets", "info", str(download / outer.name), "--json"]) == 0


def test_unsafe_zip_entries_are_refused(tmp_path: Path):
    _zip(
        tmp_path / "train.zip",
        {
            "train/cat.1.jpg": b"\xff\xd8",
            "train/../../cat.2.jpg": b"\xff\xd8",
            "/train/dog.3.jpg": b"\xff\xd8",
        },
    )
    listing = _list(tmp_path)
    assert [s.path for s in listing.samples] == ["train.zip!train/cat.1.jpg"]
    reasons = dict(listing.skipped)
    assert "absolute or has .." in reasons["train.zip!train/../../cat.2.jpg"]
    assert "absolute or has .." in reasons["train.zip!/train/dog.3.jpg"]
    with pytest.raises(SourceError):
        Source(tmp_path).read("train.zip!train/../../cat.2.jpg")


def test_a_broken_zip_is_a_clear_error(tmp_path: Path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(JobError, match=r"Cannot open .*zip"):
        _list(tmp_path / "broken.zip")
    (tmp_path / "train.zip").write_bytes(b"nonsense")
    with pytest.raises(JobError, match=r"No images(.|\n)*train.zip: not a readable zip"):
        _list(tmp_path)
