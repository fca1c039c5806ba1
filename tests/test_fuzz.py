"""Property-based fuzzing of every parser of the user's input: image decoding (both
decoders, every accepted format), the image-size reader, zip listing and reading, the
formula labels file, Kaggle file names, checkpoints and run predictions. Each is fed real
files, mutated (bytes flipped, cut, inserted, size fields overwritten), and hostile
constructions; each must either give a usable result or its own clear error, never another
exception.

A short run in CI (LABELSCOPE_FUZZ_EXAMPLES, 40 a property by default); for a release, run
`LABELSCOPE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py` (docs/benchmarks.md).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core import checkpoints
from core.formula.dataset import parse_label, read_folder
from core.formula.grammar import GrammarError
from core.image_sizes import MAX_PIXELS, header_size
from core.images import ImageProblem, decode, sniff_format
from core.jobs import CancelToken, JobError, drive
from core.pets.dataset import label_from_name, list_dataset
from core.pets.image_decoding import decode_pet
from core.pets.sources import Source, SourceError
from tests.hostile_data import image_bombs

EXAMPLES = int(os.environ.get("LABELSCOPE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _encoded(suffix: str, shape: tuple[int, ...] = (23, 31, 3)) -> bytes:
    image = np.random.default_rng(len(suffix)).integers(0, 255, shape, dtype=np.uint8)
    ok, data = cv2.imencode(suffix, image)
    assert ok
    return data.tobytes()


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (19, 11), 3).save(out, "GIF")
    return out.getvalue()


SEEDS = [
    _encoded(".png"),
    _encoded(".png", (17, 9, 4)),
    _encoded(".jpg"),
    _encoded(".bmp"),
    _encoded(".tif"),
    _encoded(".webp"),
    _gif(),
    *image_bombs().values(),
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed file after a few random edits: bytes flipped or inserted, a cut, or a 16- or
    32-bit field overwritten with a large value (where sizes and lengths live)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "big16", "big32"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "big16":
            data[at : at + 2] = struct.pack(">H", draw(st.integers(0x4000, 0xFFFF)))
        else:
            data[at : at + 4] = struct.pack("<I", draw(st.integers(1 << 15, (1 << 32) - 1)))
    return bytes(data)


def _usable(image: np.ndarray) -> None:
    assert image.dtype == np.uint8 and image.ndim in (2, 3)
    assert image.shape[0] * image.shape[1] <= MAX_PIXELS


@FUZZ
@given(mutated(SEEDS))
def test_decode_gives_an_image_or_an_image_problem(data: bytes):
    for gray in (False, True):
        try:
            _usable(decode(data, "fuzzed", gray=gray))
        except ImageProblem as problem:
            assert problem.kind and problem.detail


@FUZZ
@given(mutated(SEEDS), st.sampled_from([None, 64, 256]))
def test_decode_pet_gives_an_image_or_an_image_problem(data: bytes, side: int | None):
    try:
        _usable(decode_pet(data, "fuzzed", max_side=side).image)
    except ImageProblem as problem:
        assert problem.kind and problem.detail


@FUZZ
@given(st.one_of(mutated(SEEDS), st.binary(max_size=200)))
def test_the_size_reader_never_raises(data: bytes):
    fmt = sniff_format(data[:16])
    if fmt is not None:
        size = header_size(data, fmt)
        assert size is None or (size[0] >= 0 and size[1] >= 0)


def _kaggle_zip() -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("test/1.jpg", _encoded(".jpg"))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/cat.1.jpg", _encoded(".jpg"))
        archive.writestr("train/dog.2.png", _encoded(".png"))
        archive.writestr("../evil/cat.3.jpg", b"x")
        archive.writestr("test.zip", inner.getvalue(), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


@FUZZ
@given(mutated([_kaggle_zip()]))
def test_a_damaged_zip_lists_and_reads_or_says_why(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "dogs-vs-cats.zip"
        root.write_bytes(data)
        try:
            listing = drive(
                list_dataset(root, CancelToken(), cache_dir=Path(folder) / "cache"),
                CancelToken(),
            )
        except JobError as error:
            assert error.message
            return
        source = Source(root, Path(folder) / "cache")
        try:
            for sample in listing.samples:
                try:
                    decode_pet(source.read(sample.path), sample.path, max_side=64)
                except (SourceError, ImageProblem) as problem:
                    assert problem.detail
        finally:
            source.close()


@FUZZ
@given(st.text(max_size=40))
def test_formula_labels_parse_or_say_why(text: str):
    try:
        shown, value = parse_label(text)
    except (GrammarError, ValueError) as error:
        assert str(error)
    else:
        assert isinstance(shown, str) and isinstance(value, int)


@FUZZ
@given(st.binary(max_size=300))
def test_a_labels_file_of_any_bytes_is_read_or_refused(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "labels.txt").write_bytes(data)
        (root / "0.png").write_bytes(_encoded(".png"))
        try:
            report = drive(read_folder(root, CancelToken()), CancelToken())
        except JobError as error:
            assert error.message
        else:
            assert all(item.path.is_relative_to(root) for item in report.items)


@FUZZ
@given(st.text(max_size=30))
def test_kaggle_names_give_a_label_or_none(name: str):
    assert label_from_name(name) in (None, "cat", "dog")


def _checkpoint() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = checkpoints.save(
            Path(folder) / "c.pt", {"model": {"w": np.zeros(3)}, "step": 1}, "test"
        )
        return path.read_bytes()


@FUZZ
@given(mutated([_checkpoint()]))
def test_a_damaged_checkpoint_loads_or_is_refused(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.pt"
        path.write_bytes(data)
        try:
            checkpoints.load(path, "test")
        except checkpoints.CheckpointError as error:
            assert error.message


def _predictions() -> bytes:
    out = io.BytesIO()
    np.savez(
        out,
        val_ids=np.arange(4),
        val_p=np.full(4, 0.5),
        test_ids=np.arange(3),
        test_p=np.full(3, 0.5),
    )
    return out.getvalue()


@FUZZ
@given(mutated([_predictions()]))
def test_damaged_predictions_load_or_are_refused(data: bytes):
    from core.pets.runs import load_predictions

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "predictions.npz"
        path.write_bytes(data)
        try:
            found = load_predictions(path)
        except JobError as error:
            assert error.message
        else:
            assert {"val_ids", "val_p", "test_ids", "test_p"} <= set(found)


def test_a_predictions_file_declaring_a_huge_array_is_refused(tmp_path: Path):
    """An .npy header claiming 10¹² values in a tiny file: refused before allocating."""
    from core.pets.runs import load_predictions

    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    path = tmp_path / "predictions.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("val_p.npy", npy.getvalue() + bytes(64))
    with pytest.raises(JobError, match="damaged"):
        load_predictions(path)
