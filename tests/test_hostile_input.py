"""Hostile and huge input: decompression bombs in every accepted format and headers that
lie, zip bombs, a store closed under a running job, two scans of one dataset at once."""

from __future__ import annotations

import resource
import zipfile
from pathlib import Path

import pytest

from core.cli import main
from core.image_sizes import header_size
from core.images import ImageProblem, decode, read_image, sniff_format
from core.jobs import CancelToken, JobError, drive
from core.locks import Busy, exclusive
from core.pets import sources
from core.pets.dataset import list_dataset
from core.pets.image_decoding import decode_pet
from core.pets.labelstore import LabelStore
from core.pets.sources import Source, SourceError
from core.pets.store_connection import StoreClosed
from tests.hostile_data import (
    competition_zip_with_bomb,
    image_bombs,
    many_entries_zip,
    png_bomb,
    small_jpeg,
    zip_bomb,
)
from tests.pets_data import make_pets


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("name", sorted(image_bombs()))
def test_every_bomb_is_refused_before_decoding(tmp_path: Path, name: str):
    """The formula reader's and the Pets decoder's entries refuse each bomb with its size in
    the message, without allocating the image (a 20,000² image is 1.2 GB as RGB)."""
    data = image_bombs()[name]
    path = tmp_path / name
    path.write_bytes(data)
    before = _peak_mb()
    for attempt in (
        lambda: read_image(path),
        lambda: read_image(path, gray=True),
        lambda: decode_pet(data, name),
        lambda: decode_pet(data, name, max_side=256),
    ):
        with pytest.raises(ImageProblem) as caught:
            attempt()
        assert caught.value.kind == "too-large"
        assert "megapixels" in caught.value.detail or "larger than" in caught.value.detail
    assert _peak_mb() - before < 300


def test_the_header_reader_finds_every_claimed_size():
    sizes = {
        name: header_size(data, sniff_format(data[:16])) for name, data in image_bombs().items()
    }
    assert sizes["bomb.png"] == sizes["bomb.jpg"] == sizes["bomb.bmp"] == (20_000, 20_000)
    assert sizes["lying.gif"] == (20_000, 20_000)  # a 10 × 10 screen, a 20,000² frame
    assert sizes["bomb.tif"] == (20_000, 20_000)  # an 8 × 8 first page, a huge second one
    assert sizes["bomb.webp"] == (16_383, 16_383)
    assert sizes["lying.jpg"] is None  # stray bytes stop a strict reader; Pillow reads on
    assert header_size(small_jpeg(), "JPEG") == (16, 16)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".webp"])
def test_real_images_pass_the_guard(tmp_path: Path, suffix: str):
    import cv2
    import numpy as np

    image = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(suffix, image)
    assert ok
    data = encoded.tobytes()
    assert header_size(data, sniff_format(data[:16])) == (53, 37)
    assert decode(data).shape == (37, 53, 3)


def test_the_guard_sits_at_the_limit():
    assert decode(png_bomb(7_745, 7_745), gray=True).shape == (7_745, 7_745)  # 59.98 MP
    with pytest.raises(ImageProblem, match="60 million"):
        decode(png_bomb(7_746, 7_746))


def test_a_zip_bomb_member_is_refused_by_name_and_the_rest_is_used(tmp_path: Path, capsys):
    root = zip_bomb(tmp_path / "bomb.zip", inflated=40 << 20)
    source = Source(root)
    with pytest.raises(SourceError) as caught:
        source.read("train/cat.1.jpg")
    assert caught.value.kind == "too-large" and "train/cat.1.jpg" in caught.value.detail
    assert "zip bomb" in caught.value.detail
    assert source.read("train/cat.0.jpg")[:3] == b"\xff\xd8\xff"
    source.close()
    assert main(["pets", "info", str(root), "--check"]) == 1
    out = capsys.readouterr().out
    assert "train/cat.1.jpg: too-large: refused: train/cat.1.jpg would inflate" in out


def test_a_member_declaring_gigabytes_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_MEMBER_BYTES", 8 << 20)
    root = tmp_path / "big.zip"
    with zipfile.ZipFile(root, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("train/dog.1.jpg", small_jpeg() + bytes(9 << 20))
    with pytest.raises(SourceError, match="would inflate to 9 MB"):
        Source(root).read("train/dog.1.jpg")


def test_a_zip_with_too_many_entries_is_refused_before_listing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_ENTRIES", 500)
    root = many_entries_zip(tmp_path / "many.zip", 501)
    with pytest.raises(Exception, match="lists 501 entries"):
        drive(list_dataset(root, CancelToken()), CancelToken())
    assert main(["pets", "info", str(root)]) == 1


def test_an_inner_zip_too_large_to_copy_is_skipped_with_its_name(tmp_path: Path):
    root = competition_zip_with_bomb(tmp_path / "dogs-vs-cats.zip")
    listing = drive(list_dataset(root, CancelToken(), cache_dir=tmp_path / "cache"), CancelToken())
    assert [s.path for s in listing.samples] == ["test.zip!test/1.jpg"]
    [(path, reason)] = listing.skipped
    assert path == "train.zip" and "zip bomb" in reason
    assert not list((tmp_path / "cache").rglob("*.zip"))  # nothing was copied out


def test_a_job_writing_to_a_closed_store_is_cancelled(tmp_path: Path):
    root = make_pets(tmp_path / "pets", cats=2, dogs=2, tests=0)
    listing = drive(list_dataset(root, CancelToken()), CancelToken())
    store = LabelStore.open(listing)
    store.set_label([0], "dog")
    store.close()
    assert store.closed
    with pytest.raises(StoreClosed):
        store.set_scores("x", [0], [1.0])
    with pytest.raises(StoreClosed):
        store.scans()
    store.close()  # twice is harmless
    again = LabelStore.open(listing)
    assert again.effective_label(0) == "dog"
    again.close()


def test_a_second_holder_of_a_lock_is_told_who_holds_it(tmp_path: Path):
    lock = tmp_path / "scan-x.lock"

    def second() -> None:
        with exclusive(lock, "a scan with X"):
            pass

    # flock locks belong to the open file: a second open in this process conflicts too
    busy = pytest.raises(Busy, match=r"A scan with X is already running .*process \d+")
    with exclusive(lock, "a scan with X"), busy:
        second()
    with exclusive(lock, "a scan with X"):  # free again once released
        pass


def _edited_store(tmp_path: Path) -> tuple[LabelStore, object]:
    root = make_pets(tmp_path / "pets", cats=30, dogs=30, tests=0)
    listing = drive(list_dataset(root, CancelToken()), CancelToken())
    store = LabelStore.open(listing)
    for row in range(0, 40, 2):
        store.set_label([row], "dog" if store.label[row] == 1 else "cat")
    store.set_excluded([1, 3, 5], True)
    return store, listing


def _damage(path: Path, at: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(at, min(len(data), at + length), 7):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_damaged_store_is_rebuilt_from_its_backup_and_what_is_readable(tmp_path: Path):
    """Pages of the store overwritten on disk: the file is kept aside, the new store starts
    from the backup made when the store was last closed, and nothing acknowledged is lost."""
    store, listing = _edited_store(tmp_path)
    path = store.path
    labels, excluded = store.label.copy(), store.excluded.copy()
    store.close()
    _damage(path, 3 * 4096, 4096)
    again = LabelStore.open(listing)
    assert again.recovery is not None
    text = again.recovery.describe()
    assert "malformed" in text and "kept aside as labelscope.sqlite.damaged-" in text
    assert (again.label == labels).all() and (again.excluded == excluded).all()
    assert again.undo_text() == "Exclude 3 images"
    assert again.integrity_check() == "ok"
    assert list(path.parent.glob("labelscope.sqlite.damaged-*"))
    again.close()


def test_a_half_copied_store_without_a_backup_says_what_was_lost(tmp_path: Path):
    store, listing = _edited_store(tmp_path)
    path = store.path
    store.close()
    path.with_name(path.name + ".backup").unlink()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = LabelStore.open(listing)  # opens: the images are all there, the edits are not
    assert len(again) == 60 and not again.excluded.any()
    assert "Unreadable in the damaged file: changes, edits" in again.recovery.describe()
    again.close()


def test_a_full_disk_keeps_the_previous_state_and_says_so(tmp_path: Path):
    store, _listing = _edited_store(tmp_path)
    labels = store.label.copy()
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
    with pytest.raises(JobError, match=r"Not saved: the disk holding .* is full"):
        store.set_note(50, "x" * 200_000)
    assert (store.label == labels).all() and not store.noted[50]  # what is saved
    assert store.note(50) == "" and store.undo_text() == "Exclude 3 images"
    store._db.execute(f"PRAGMA max_page_count = {pages * 100}")  # space again
    store.set_note(50, "saved now")
    store.close()


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path: Path, monkeypatch):
    import errno
    import os

    import torch

    from core import checkpoints

    target = tmp_path / "last.pt"
    checkpoints.save(target, {"step": 1}, "test")

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(checkpoints.CheckpointError, match=r"disk is full.*previous one is intact"):
        checkpoints.save(target, {"step": 2, "weights": torch.zeros(1000)}, "test")
    assert checkpoints.load(target, "test")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_second_scan_process_is_told_who_scans_and_resumes_after(tmp_path: Path):
    """Two `pets scan` processes on one dataset: the one that finds the scan lock taken
    says which process holds it and exits 1, with no traceback; once it is free, a scan
    runs (and scores nothing twice: it resumes from what the other stored)."""
    import os
    import subprocess
    import sys

    from core.pets.labelstore import store_location

    root = make_pets(tmp_path / "pets", cats=3, dogs=3, tests=0)
    lock = store_location(root).with_name("scan-efficientnet_lite0.lock")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "core.cli", "pets", "scan", str(root), "--offline"]
    with exclusive(lock, "a scan with EfficientNet-Lite0"):
        busy = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert busy.returncode == 1, busy.stderr
    assert f"already running on this dataset (process {os.getpid()}" in busy.stderr
    assert "Traceback" not in busy.stderr
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Scanned 6 images" in done.stdout


def test_what_coverage_guided_fuzzing_found_stays_fixed(tmp_path: Path):
    """Inputs libFuzzer found (benchmarks/fuzz_coverage.py): a 50-byte PNG whose second chunk
    claims 2 GB (OpenCV allocates what a chunk claims), a JPEG whose size no reader finds,
    a zip entry with no name, a zip end record pointing past any file."""
    import base64
    import zipfile

    chunk_bomb = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAkAAAARCAYAAGnRx82CgcAAAElFTkSuTQtgwYI="
    )
    before = _peak_mb()
    with pytest.raises(ImageProblem, match="claims more data than the file holds"):
        decode(chunk_bomb)
    assert _peak_mb() - before < 300
    garbled = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00" + b"\xff" * 24 + b"\xff\xd9"
    with pytest.raises(ImageProblem):
        decode(garbled)

    nameless = tmp_path / "nameless.zip"
    with zipfile.ZipFile(nameless, "w") as archive:
        archive.writestr("train/cat.1.jpg", small_jpeg())
        archive.writestr(zipfile.ZipInfo(""), b"")
    source = Source(nameless)
    assert "train/cat.1.jpg" in list(source.container("").names())
    source.close()

    far = tmp_path / "far.zip"
    with zipfile.ZipFile(far, "w") as archive:
        archive.writestr("train/cat.1.jpg", small_jpeg())
    data = bytearray(far.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end - 20 : end - 16] = b"PK\x06\x07"  # a zip64 locator pointing 2⁶³ bytes away
    data[end - 12 : end - 4] = (1 << 63).to_bytes(8, "little")
    far.write_bytes(bytes(data))
    try:
        Source(far).close()
    except SourceError as error:
        assert error.detail
