"""Pet datasets the tests make: real JPEGs of varied sizes, and a folder holding every kind
of bad input the app must survive."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: name in train/ → (badge kind or note expected, how it is made)
BAD_FILES = {
    "cat.900.jpg": "truncated",
    "cat.901.jpg": "empty",
    "cat.902.jpg": "not-an-image",
    "dog.903.jpg": "too-large",
    "dog.904.png": "transparent (drawn on white)",
    "dog.905.jpg": "CMYK colours (converted to RGB)",
    "cat.906.jpg": "greyscale",
    "cat.907.jpg": "rotated by its EXIF orientation",
}


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth random picture (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80, **options)
    return buffer.getvalue()


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width × height pixels, a few hundred kilobytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    packer = zlib.compressobj(1)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def make_pets(root: Path, cats: int = 6, dogs: int = 6, tests: int = 4, bad: bool = False) -> Path:
    """A Kaggle-layout folder of real JPEGs (train/cat.N.jpg, train/dog.N.jpg, test/N.jpg);
    with `bad`, the files of BAD_FILES too."""
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    sizes = [(320, 240), (180, 300), (499, 375), (64, 50)]
    for i in range(cats):
        w, h = sizes[i % 4]
        (root / "train" / f"cat.{i}.jpg").write_bytes(jpeg_bytes(photo(w, h, i)))
    for i in range(dogs):
        w, h = sizes[(i + 1) % 4]
        (root / "train" / f"dog.{i}.jpg").write_bytes(jpeg_bytes(photo(w, h, 100 + i)))
    for i in range(tests):
        (root / "test" / f"{i + 1}.jpg").write_bytes(jpeg_bytes(photo(200, 150, 200 + i)))
    if bad:
        write_bad_files(root / "train")
    return root


def write_bad_files(folder: Path) -> None:
    good = jpeg_bytes(photo(120, 80, 7))
    (folder / "cat.900.jpg").write_bytes(good[: len(good) // 2])
    (folder / "cat.901.jpg").write_bytes(b"")
    (folder / "cat.902.jpg").write_text("This is a text file, not a photo.\n")
    (folder / "dog.903.jpg").write_bytes(huge_png())
    rgba = photo(90, 60, 8).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 128))
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    (folder / "dog.904.png").write_bytes(buffer.getvalue())
    (folder / "dog.905.jpg").write_bytes(jpeg_bytes(photo(100, 70, 9).convert("CMYK")))
    (folder / "cat.906.jpg").write_bytes(jpeg_bytes(photo(100, 70, 10).convert("L")))
    rotated = photo(120, 60, 11)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90°: 60 wide, 120 tall
    (folder / "cat.907.jpg").write_bytes(jpeg_bytes(rotated, exif=exif.tobytes()))
