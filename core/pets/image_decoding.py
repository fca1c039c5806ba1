"""Decoding a pet photo at the size it is shown, and saying plainly what is odd about it.

JPEGs are decoded at a reduced scale by libjpeg's DCT scaling (Pillow's `draft`), which is
what makes 37,500 thumbnails fast. Anything that stops an image from being used becomes an
ImageProblem with a kind and a reason; things that are merely unusual (transparency, CMYK,
greyscale, an EXIF rotation) become notes shown as badges.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.image_sizes import MAX_PIXELS, describe_limit
from core.images import ImageProblem, check_size

_ORIENTATION = 0x0112
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass(frozen=True)
class Decoded:
    """An RGB image (reduced when asked), the original's size and what is odd about it."""

    image: np.ndarray
    width: int
    height: int
    notes: tuple[str, ...]


def decode_pet(
    data: bytes, path: str = "<memory>", max_side: int | None = None, min_side: int | None = None
) -> Decoded:
    """Decode encoded bytes to RGB uint8, EXIF orientation applied, transparency drawn on
    white, and reduced so that its longest side is at most `max_side` (if given). With
    `min_side`, a JPEG is decoded at the smallest DCT scale whose sides stay at least that
    long (the caller resizes exactly).

    Raises ImageProblem (kinds: empty, not-an-image, too-large, truncated, undecodable).
    """
    if not data:
        raise ImageProblem(path, "empty", "the file is empty (0 bytes)")
    check_size(data, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged metadata: what matters is raised below
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageProblem(path, "not-an-image", "this is not an image file") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            found = re.search(r"\((\d+) pixels\)", str(error))
            size = f"{int(found.group(1)):,} pixels" if found else "the image"
            raise ImageProblem(path, "too-large", _too_large(size)) from None
        except (OSError, ValueError, SyntaxError, struct.error, EOFError) as error:
            # damaged headers break Pillow's readers in many ways
            raise ImageProblem(path, "undecodable", f"cannot be opened ({error})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:  # a size Pillow finds that the header did not show
        raise ImageProblem(path, "too-large", describe_limit(width, height))
    notes = []
    if image.mode == "CMYK":
        notes.append("CMYK colours (converted to RGB)")
    elif image.mode in _GREY_MODES:
        notes.append("greyscale")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        notes.append("transparent (drawn on white)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged EXIF block only loses the rotation
        orientation = _orientation(image)
    if orientation not in (0, 1):
        notes.append("rotated by its EXIF orientation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Corrupt EXIF data" and the like: noise here
        try:
            if (max_side or min_side) and image.format == "JPEG":
                side = min_side or max_side
                image.draft("RGB", (side, side))
            image.load()
            image = ImageOps.exif_transpose(image) if orientation not in (0, 1) else image
            image = _to_rgb(image)
            if max_side and max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=None)
            array = np.asarray(image)
        except OSError as error:
            text = str(error)
            if "truncated" in text or "broken data stream" in text:
                raise ImageProblem(path, "truncated", "the file is truncated") from None
            raise ImageProblem(path, "undecodable", f"the image data is damaged ({text})") from None
        except (ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise ImageProblem(
                path, "undecodable", f"the image data is damaged ({error})"
            ) from None
    return Decoded(array, width, height, tuple(notes))


def _too_large(size: str) -> str:
    return (
        f"{size} is over the {MAX_PIXELS // 1_000_000} megapixel limit "
        "(a guard against decompression bombs)"
    )


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block only loses the rotation
        return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "F"):
        image = ImageOps.autocontrast(image.convert("L"))  # wide greyscale: fit into 8 bits
    return image if image.mode == "RGB" else image.convert("RGB")
