"""Decoding pet photos: every kind of bad input gets a reason, none stops a job; thumbnails
are cached on disk and re-decoded when the file changes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.images import ImageProblem
from core.jobs import CancelToken, drive
from core.pets.image_decoding import decode_pet
from core.pets.sources import Source
from core.pets.thumbnails import DiskCache, ThumbnailLoader, check_images, make_thumbnail
from tests.conftest import shared_data
from tests.pets_data import BAD_FILES, make_pets


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pets(tmp_path_factory.mktemp("pets"), bad=True)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_input_gets_a_clear_reason(bad_folder: Path, name: str):
    expected = BAD_FILES[name]
    data = (bad_folder / "train" / name).read_bytes()
    if " " in expected or expected == "greyscale":  # usable, with a note
        decoded = decode_pet(data, name, 96)
        assert expected in decoded.notes
        assert decoded.image.ndim == 3 and decoded.image.shape[2] == 3
        assert max(decoded.image.shape[:2]) <= 96
    else:
        with pytest.raises(ImageProblem) as caught:
            decode_pet(data, name, 96)
        assert caught.value.kind == expected
        assert caught.value.detail


def test_exif_rotation_and_transparency_are_applied(bad_folder: Path):
    rotated = decode_pet((bad_folder / "train" / "cat.907.jpg").read_bytes())
    assert (rotated.width, rotated.height) == (120, 60)  # as stored
    assert rotated.image.shape[:2] == (120, 60)  # as shown: turned upright
    transparent = decode_pet((bad_folder / "train" / "dog.904.png").read_bytes())
    assert transparent.image.mean() > 100  # half-transparent over white, not over black


def test_reduced_jpeg_decoding_keeps_the_aspect(bad_folder: Path):
    decoded = decode_pet((bad_folder / "train" / "cat.2.jpg").read_bytes(), max_side=96)
    assert (decoded.width, decoded.height) == (499, 375)
    h, w = decoded.image.shape[:2]
    assert w == 96 and abs(h - 96 * 375 / 499) <= 2


def test_check_job_finds_every_problem_and_goes_on(bad_folder: Path):
    source = Source(bad_folder)
    names = sorted(p.relative_to(bad_folder).as_posix() for p in bad_folder.rglob("*.*"))
    seen = []
    problems = drive(
        check_images(source, names, CancelToken(), on_batch=seen.extend, workers=2),
        CancelToken(),
    )
    kinds = {p.path.split("/")[-1]: p.facts.problem_kind for p in problems}
    assert kinds == {n: k for n, k in BAD_FILES.items() if " " not in k and k != "greyscale"}
    assert len(seen) == len(names)
    notes = {t.path.split("/")[-1]: t.facts.notes for t in seen if t.facts.notes}
    assert notes["dog.905.jpg"] == "CMYK colours (converted to RGB)"


def test_disk_cache_is_keyed_by_size_and_stamp(tmp_path: Path):
    root = make_pets(tmp_path / "data", cats=1, dogs=0, tests=0)
    source = Source(root)
    cache = DiskCache(tmp_path / "cache.sqlite")
    first = make_thumbnail(source, "train/cat.0.jpg", 96, cache)
    assert first.image is not None and first.facts.width == 320
    cached = cache.get("train/cat.0.jpg", first.stamp, 96)
    assert cached is not None and cached.image.shape == first.image.shape
    assert cache.get("train/cat.0.jpg", first.stamp, 160) is None
    # the file changes: a new stamp, so it is decoded again
    from tests.pets_data import jpeg_bytes, photo

    (root / "train" / "cat.0.jpg").write_bytes(jpeg_bytes(photo(50, 40, 3)))
    again = make_thumbnail(source, "train/cat.0.jpg", 96, cache)
    assert again.stamp != first.stamp and again.facts.width == 50


def test_damaged_cache_is_replaced(tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"garbage" * 1000)
    cache = DiskCache(path)
    assert cache.get("x", "y", 96) is None


def test_loader_delivers_on_its_threads_and_closes(tmp_path: Path):
    root = make_pets(tmp_path, cats=4, dogs=4, tests=0)
    done = threading.Event()
    results = []

    def ready(thumb):
        results.append((thumb.path, threading.current_thread().name))
        if len(results) == 8:
            done.set()

    loader = ThumbnailLoader(Source(root), ready, workers=2)
    for path in sorted(p.relative_to(root).as_posix() for p in (root / "train").iterdir()):
        loader.request(path, 96)
    assert done.wait(30)
    loader.close()
    assert all(name.startswith("thumbnails") for _, name in results)
    assert not any(t.is_alive() for t in loader._threads)


def test_real_outliers_decode():
    root = shared_data("dogs_vs_cats")
    for path in sorted((root / "outliers").rglob("*.jpg"))[:10]:
        decoded = decode_pet(path.read_bytes(), path.name, 160)
        assert max(decoded.image.shape[:2]) <= 160


def test_check_job_can_be_cancelled(tmp_path: Path):
    from core.jobs import Cancelled

    root = make_pets(tmp_path, cats=300, dogs=0, tests=0)
    names = sorted(p.relative_to(root).as_posix() for p in (root / "train").iterdir())
    token = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        drive(
            check_images(Source(root), names, token, on_batch=seen.append, workers=2),
            token,
            lambda progress: token.cancel() if progress.done >= 256 else None,
        )
    assert len(seen) == 1  # stopped after the first batch of 256
