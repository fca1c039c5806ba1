"""Hostile input the tests and `benchmarks.hostile` make: decompression bombs in every format
Labelscope accepts, headers that lie, and zip bombs. All are small on disk."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np

BOMB_SIDE = 20_000  # 400 megapixels: gigabytes once decoded


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bomb(width: int = BOMB_SIDE, height: int = BOMB_SIDE) -> bytes:
    """A real, valid grey PNG of width × height black pixels (about 400 KB at 20,000²)."""
    packer = zlib.compressobj(9)
    row = b"\x00" + bytes(width)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def small_jpeg(side: int = 16) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((side, side, 3), 128, np.uint8))
    assert ok
    return encoded.tobytes()


def jpeg_bomb(width: int = BOMB_SIDE, height: int = BOMB_SIDE) -> bytes:
    """A small JPEG whose frame header claims width × height (the decoder would allocate it
    and fill what the data lacks)."""
    data = bytearray(small_jpeg())
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def lying_jpeg(width: int = 8_000, height: int = 8_000) -> bytes:
    """`jpeg_bomb` with stray bytes before its frame header: libjpeg skips them (with a
    warning) and finds the large frame, while a strict reader of the segments stops."""
    data = jpeg_bomb(width, height)
    at = data.find(b"\xff\xc0")
    return data[:at] + b"\x00\x00stray" + data[at:]


def bmp_bomb(width: int = BOMB_SIDE, height: int = BOMB_SIDE) -> bytes:
    """A BMP header claiming width × height with almost no pixel data."""
    header = struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    body = header + bytes(64)
    return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, 54) + body


def gif_bomb(width: int = BOMB_SIDE, height: int = BOMB_SIDE, screen: int = 10) -> bytes:
    """A GIF whose logical screen is `screen` pixels square but whose one frame claims
    width × height: a header that lies about the size."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", screen, screen, 0, 0, 0)
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x4c\x01\x00\x3b"
    )


def tiff_bomb(width: int = BOMB_SIDE, height: int = BOMB_SIDE, pages: int = 2) -> bytes:
    """A little-endian TIFF whose first page is 8 × 8 and whose last claims width × height."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    sizes = [(8, 8)] * (pages - 1) + [(width, height)]
    for k, (w, h) in enumerate(sizes):
        offset = len(out)
        entries = [
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 1, 8),
            (259, 3, 1, 1),
            (262, 3, 1, 1),
            (273, 4, 1, 0),
            (277, 3, 1, 1),
            (278, 4, 1, h),
            (279, 4, 1, 64),
        ]
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            out += struct.pack("<HHII", tag, kind, count, value)
        last = k == len(sizes) - 1
        out += struct.pack("<I", 0 if last else offset + 2 + 12 * len(entries) + 4)
    return bytes(out) + bytes(64)


def webp_bomb(width: int = 16_383, height: int = 16_383) -> bytes:
    """A lossless WebP header claiming width × height (the format's largest side)."""
    bits = (width - 1) | ((height - 1) << 14) | (1 << 28)
    body = b"\x2f" + struct.pack("<I", bits) + bytes(16)
    chunk = b"VP8L" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def image_bombs() -> dict[str, bytes]:
    """name → bytes for one bomb of each accepted format, and the headers that lie."""
    return {
        "bomb.png": png_bomb(),
        "bomb.jpg": jpeg_bomb(),
        "lying.jpg": lying_jpeg(),
        "bomb.bmp": bmp_bomb(),
        "lying.gif": gif_bomb(),
        "bomb.tif": tiff_bomb(),
        "bomb.webp": webp_bomb(),
    }


def zip_bomb(path: Path, inflated: int = 2 << 30, name: str = "train/cat.1.jpg") -> Path:
    """A zip whose member `name` declares (and would inflate to) `inflated` bytes of zeros,
    written without ever holding them: a few MB on disk for gigabytes."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/cat.0.jpg", small_jpeg())
        with archive.open(name, "w", force_zip64=inflated > 0xFFFFFFFF) as member:
            written = 0
            while written < inflated:
                step = min(len(chunk), inflated - written)
                member.write(chunk[:step])
                written += step
    return path


def many_entries_zip(path: Path, entries: int) -> Path:
    """A zip of `entries` empty members named like Kaggle's photos."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(entries):
            archive.writestr(f"train/cat.{i}.jpg", b"")
    return path


def competition_zip_with_bomb(path: Path, inflated: int = 64 << 20) -> Path:
    """The competition zip's shape (train.zip and test.zip inside one zip), its train.zip
    deflated so it must be copied out, and declaring `inflated` bytes of zeros."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("test/1.jpg", small_jpeg())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("test.zip", inner.getvalue(), compress_type=zipfile.ZIP_STORED)
        with archive.open("train.zip", "w") as member:
            chunk = bytes(1 << 20)
            for _ in range(inflated >> 20):
                member.write(chunk)
    return path
