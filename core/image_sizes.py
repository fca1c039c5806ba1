"""An image's size read from its own header, for every format Labelscope accepts, before any
decoder runs: the guard against decompression bombs (a 438 KB PNG can hold 20,000 × 20,000
pixels) must not depend on a decoder that gives up on exactly the largest images.

Each reader returns the largest size any part of the file claims (every GIF frame, every
TIFF page, a WebP's canvas and its bitstream), or None where the header is too damaged to
say; the decoders' own limits (`core.images.MAX_PIXELS` is given to OpenCV and Pillow too)
catch what a damaged or lying header hides.
"""

from __future__ import annotations

import struct

#: Larger images are refused before decoding: a small file can hold a huge image (a
#: 438 KB PNG of 20,000 × 20,000 pixels) that would take gigabytes to decode.
MAX_PIXELS = 60_000_000

_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0–SOF15, not DHT/JPG/DAC
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257
_MAX_TIFF_PAGES = 4096


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) that the header of `data`, an image of format `fmt` (as
    `core.images.sniff_format` names it), claims; the largest over its frames or pages."""
    reader = _READERS.get(fmt)
    if reader is None:
        return None
    try:
        return reader(data)
    except (struct.error, IndexError, ValueError):
        return None


def too_large(size: tuple[int, int] | None) -> bool:
    return size is not None and size[0] * size[1] > MAX_PIXELS


def describe_limit(width: int, height: int) -> str:
    """The sentence that refuses an image of `width` × `height` pixels."""
    return (
        f"the image is {width:,} × {height:,} pixels ({width * height / 1e6:,.0f} megapixels), "
        f"more than the {MAX_PIXELS // 1_000_000} million that are decoded safely"
    )


def png_chunks_fit(data: bytes) -> bool:
    """Whether every chunk of a PNG holds no more than the file has left. OpenCV's reader
    allocates what a chunk's length claims before reading it, so a 50-byte file claiming a
    2 GB chunk costs 2 GB; such a file is damaged anyway."""
    at = 8
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if at + 12 + length > len(data):
            return False
        if data[at + 4 : at + 8] == b"IEND":
            return True
        at += 12 + length
    return at == len(data)


def _png(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> tuple[int, int] | None:
    """The frame header (SOFn) before the first scan, found by walking the segments so that
    an EXIF thumbnail's own header is skipped, as libjpeg reads it."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or a scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    (info,) = struct.unpack("<I", data[14:18])
    if info == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _gif(data: bytes) -> tuple[int, int] | None:
    """The logical screen, widened by every frame that reaches beyond it."""
    width, height, flags = struct.unpack("<HHB", data[6:11])
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while i < len(data):
        block = data[i]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            i = _skip_sub_blocks(data, i + 2)
        elif block == 0x2C:  # image descriptor
            left, top, w, h, local = struct.unpack("<HHHHB", data[i + 1 : i + 10])
            width, height = max(width, left + w), max(height, top + h)
            i += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            i = _skip_sub_blocks(data, i + 1)  # after the LZW code size
        else:
            break
    return width, height


def _skip_sub_blocks(data: bytes, i: int) -> int:
    while i < len(data):
        size = data[i]
        i += 1 + size
        if size == 0:
            break
    return i


def _tiff(data: bytes) -> tuple[int, int] | None:
    """The largest page: every image file directory of the chain (loops stopped)."""
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    seen: set[int] = set()
    width = height = 0
    found = False
    while offset and offset not in seen and len(seen) < _MAX_TIFF_PAGES:
        seen.add(offset)
        (count,) = struct.unpack(order + "H", data[offset : offset + 2])
        for k in range(count):
            start = offset + 2 + 12 * k
            tag, kind = struct.unpack(order + "HH", data[start : start + 4])
            if tag not in (_TIFF_WIDTH, _TIFF_LENGTH):
                continue
            fmt = "H" if kind == 3 else "I"
            (value,) = struct.unpack(
                order + fmt, data[start + 8 : start + 8 + struct.calcsize(fmt)]
            )
            found = True
            if tag == _TIFF_WIDTH:
                width = max(width, value)
            else:
                height = max(height, value)
        end = offset + 2 + 12 * count
        (offset,) = struct.unpack(order + "I", data[end : end + 4])
    return (width, height) if found else None


def _webp(data: bytes) -> tuple[int, int] | None:
    """The larger of the extended header's canvas and the first bitstream's own size."""
    width = height = 0
    found = False
    i = 12
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        (length,) = struct.unpack("<I", data[i + 4 : i + 8])
        body = data[i + 8 : i + 8 + min(length, 32)]
        size = None
        if kind == b"VP8X":
            w = 1 + int.from_bytes(body[4:7], "little")
            h = 1 + int.from_bytes(body[7:10], "little")
            size = (w, h)
        elif kind == b"VP8 ":
            w, h = struct.unpack("<HH", body[6:10])
            size = (w & 0x3FFF, h & 0x3FFF)
        elif kind == b"VP8L":
            (bits,) = struct.unpack("<I", body[1:5])
            size = (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
        if size is not None:
            found = True
            width, height = max(width, size[0]), max(height, size[1])
            if kind != b"VP8X":
                break
        i += 8 + length + (length & 1)
    return (width, height) if found else None


_READERS = {
    "PNG": _png,
    "JPEG": _jpeg,
    "BMP": _bmp,
    "GIF": _gif,
    "TIFF": _tiff,
    "WEBP": _webp,
}
