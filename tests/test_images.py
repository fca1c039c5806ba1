"""Decoding the user's images: good files decode, every bad one is a named problem."""

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.images import ImageProblem, decode, read_image, sniff_format
from tests.conftest import shared_data


def _encode(suffix: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    assert ok
    return data.tobytes()


@pytest.fixture
def picture() -> np.ndarray:
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :, 2] = 255  # red in OpenCV's BGR order
    image[10:20, 10:50] = (0, 255, 0)
    return image


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp"])
def test_decodes_to_rgb(tmp_path: Path, picture, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(_encode(suffix, picture))
    image = read_image(path)
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert image[0, 0, 0] > 200 and image[0, 0, 2] < 60  # red comes first: RGB
    assert read_image(path, gray=True).shape == (40, 60)


def test_file_is_only_read(tmp_path: Path, picture):
    path = tmp_path / "x.png"
    data = _encode(".png", picture)
    path.write_bytes(data)
    mtime = path.stat().st_mtime_ns
    read_image(path)
    assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"", "empty"),
        (b"<html>not an image</html>", "not-an-image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "truncated"),
    ],
)
def test_bad_bytes_are_named(tmp_path: Path, content, kind):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageProblem) as info:
        read_image(path)
    assert info.value.kind == kind
    assert "bad.jpg" in str(info.value)


def test_truncated_jpeg_and_png(tmp_path: Path, picture):
    for suffix in (".jpg", ".png"):
        data = _encode(suffix, picture)
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageProblem) as info:
            read_image(path)
        assert info.value.kind == "truncated"


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(ImageProblem) as info:
        read_image(tmp_path / "nope.jpg")
    assert info.value.kind == "missing"
    with pytest.raises(ImageProblem) as info:
        read_image(tmp_path)
    assert info.value.kind == "unreadable"


def _on_transparent_page(ink: tuple[int, int, int], hidden: tuple[int, int, int]) -> Image:
    """A bar of `ink`, its edges half opaque, on a transparent page whose colour is `hidden`."""
    image = Image.new("RGBA", (60, 40), (*hidden, 0))
    ImageDraw.Draw(image).rectangle((10, 10, 49, 29), fill=(*ink, 255))
    ImageDraw.Draw(image).rectangle((9, 9, 50, 30), outline=(*ink, 128))
    return image


@pytest.mark.parametrize("hidden", [(0, 0, 0), (255, 255, 255), (200, 30, 30)])
def test_dark_ink_on_a_transparent_page_is_drawn_on_white(tmp_path: Path, hidden):
    path = tmp_path / "formula.png"
    _on_transparent_page((0, 0, 0), hidden).save(path)
    image = read_image(path)
    assert image.shape == (40, 60, 3)
    assert (image[0, 0] == 255).all() and (image[20, 30] == 0).all()
    assert 120 <= image[9, 30, 0] <= 135  # half opaque: halfway from the ink to the paper
    assert read_image(path, gray=True)[0, 0] == 255


def test_light_ink_on_a_transparent_page_is_drawn_on_black(tmp_path: Path):
    path = tmp_path / "dark-mode.png"
    _on_transparent_page((255, 255, 255), (255, 255, 255)).save(path)
    image = read_image(path)
    assert (image[0, 0] == 0).all() and (image[20, 30] == 255).all()


def test_a_transparent_colour_in_a_palette_is_paper(tmp_path: Path):
    path = tmp_path / "formula.gif"
    _on_transparent_page((0, 0, 0), (0, 0, 0)).save(path, transparency=0)
    assert Image.open(path).mode == "P"
    image = read_image(path)
    assert (image[0, 0] == 255).all() and (image[20, 30] == 0).all()


def test_a_damaged_transparent_image_is_undecodable():
    buffer = io.BytesIO()
    _on_transparent_page((0, 0, 0), (0, 0, 0)).save(buffer, "PNG")
    data = buffer.getvalue()
    damaged = data[:60] + bytes(len(data) - 76) + data[-16:]
    with pytest.raises(ImageProblem) as info:
        decode(damaged, "formula.png")
    assert info.value.kind == "undecodable"


def test_garbage_with_a_valid_header_is_undecodable():
    data = b"\x89PNG\r\n\x1a\n" + b"\x13" * 200 + b"IEND\xaeB`\x82"
    with pytest.raises(ImageProblem) as info:
        decode(data, "fake.png")
    assert info.value.kind == "undecodable"


def test_sniff_format():
    assert sniff_format(b"\xff\xd8\xff\xdb") == "JPEG"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_format(b"hello") is None


def test_real_kaggle_images_decode():
    folder = shared_data("dogs_vs_cats", "train")
    for name in ("cat.0.jpg", "dog.0.jpg"):
        image = read_image(folder / name)
        assert image.ndim == 3 and min(image.shape[:2]) >= 40
