"""Decoding the user's images robustly: every failure becomes an ImageProblem that says
what is wrong with which file, never a crash. Files are only ever read."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np

from core import CV2_LIMITED
from core.image_sizes import MAX_PIXELS, describe_limit, header_size, png_chunks_fit, too_large

#: Leading bytes of the formats OpenCV decodes for us.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


class ImageProblem(Exception):
    """An image that cannot be used, and why. `kind` is one of: missing, unreadable, empty,
    not-an-image, truncated, undecodable, too-large, wrong-shape."""

    def __init__(self, path: Path | str, kind: str, detail: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self.detail = detail
        super().__init__(f"{self.path.name}: {detail}")


def sniff_format(head: bytes) -> str | None:
    """The image format from a file's first bytes, or None if it is not one we know."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def read_bytes(path: Path | str) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise ImageProblem(path, "missing", "the file does not exist") from error
    except IsADirectoryError as error:
        raise ImageProblem(path, "unreadable", "this is a folder, not an image") from error
    except OSError as error:
        raise ImageProblem(path, "unreadable", f"cannot be read ({error.strerror})") from error
    return data


def decode(data: bytes, path: Path | str = "<memory>", *, gray: bool = False) -> np.ndarray:
    """Decode encoded image bytes to an RGB (or gray) uint8 array, EXIF orientation applied
    and transparency drawn on paper (`flatten`).

    Raises ImageProblem for empty data, non-images, truncated JPEG/PNG files and anything
    OpenCV refuses.
    """
    if not data:
        raise ImageProblem(path, "empty", "the file is empty (0 bytes)")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise ImageProblem(path, "not-an-image", "this is not an image file (unknown contents)")
    if fmt == "JPEG" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageProblem(path, "truncated", "the JPEG file is truncated (no end marker)")
    if fmt == "PNG" and b"IEND" not in data[-16:]:
        raise ImageProblem(path, "truncated", "the PNG file is truncated (no end chunk)")
    if fmt == "PNG" and not png_chunks_fit(data):
        raise ImageProblem(
            path,
            "undecodable",
            "the PNG data cannot be decoded: a chunk claims more data than the file holds",
        )
    check_size(data, path, fmt)
    if _transparent(data):
        image = flatten(_decode_rgba(data, path, fmt))
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if gray else image
    flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    except cv2.error as error:  # the decoder's own size limit (see core/__init__.py)
        if "MAX_IMAGE_PIXELS" in str(error):
            raise ImageProblem(path, "too-large", _hidden_size()) from None
        raise ImageProblem(path, "undecodable", f"the {fmt} data cannot be decoded") from None
    if image is None or image.size == 0:
        raise ImageProblem(path, "undecodable", f"the {fmt} data cannot be decoded")
    if not gray:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def check_size(data: bytes, path: Path | str = "<memory>", fmt: str | None = None) -> None:
    """Refuse, before any decoder runs, an image whose header claims more than MAX_PIXELS
    (the largest of its frames or pages). Every decoding entry, formula and Pets, calls it."""
    fmt = fmt or sniff_format(data[:16])
    size = header_size(data, fmt) if fmt else None
    if size is None:  # a header damaged past our reading: Pillow's reading of it, if any
        size = _pillow_size(data, path)
    if size is None and not CV2_LIMITED:  # nothing would stop OpenCV from decoding a bomb
        raise ImageProblem(
            path, "undecodable", f"the {fmt or 'image'} header is damaged: its size cannot be read"
        )
    if size is not None and too_large(size):
        raise ImageProblem(path, "too-large", describe_limit(*size))


def _pillow_size(data: bytes, path: Path | str) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:
        raise ImageProblem(path, "too-large", _hidden_size()) from None
    except Exception:  # nothing Pillow can read either: the decoder's own limit decides
        return None


def _hidden_size() -> str:
    return (
        "the image is larger than its header says, more than the "
        f"{MAX_PIXELS // 1_000_000} million pixels that are decoded safely"
    )


def flatten(rgba: np.ndarray) -> np.ndarray:
    """An RGBA image as RGB: its transparent parts drawn on white paper, or on black where
    what is opaque is light (white ink on a transparent page, made for a dark background).

    Formulas exported by typesetting and plotting tools are often ink on a transparent
    page whose hidden colour is black, so dropping the alpha channel (what OpenCV does)
    leaves black ink on black.
    """
    alpha = rgba[..., 3:].astype(np.float32) / 255
    colour = rgba[..., :3].astype(np.float32)
    weight = float(alpha.sum())
    brightness = float((colour.mean(axis=2, keepdims=True) * alpha).sum())
    light = weight > 0 and brightness > 127.5 * weight
    paper = 0.0 if light else 255.0
    return np.rint(colour * alpha + paper * (1 - alpha)).astype(np.uint8)


def _decode_rgba(data: bytes, path: Path | str, fmt: str) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                if too_large(image.size):  # a frame the header did not show
                    raise ImageProblem(path, "too-large", describe_limit(*image.size))
                return np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))
    except ImageProblem:
        raise
    except Image.DecompressionBombError:
        raise ImageProblem(path, "too-large", _hidden_size()) from None
    except Exception as error:  # Pillow's errors for damaged data are of many kinds
        raise ImageProblem(path, "undecodable", f"the {fmt} data cannot be decoded") from error


def _transparent(data: bytes) -> bool:
    """Whether the image has transparency, from its header (Pillow reads only that)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa")
                return alpha or "transparency" in image.info
    except Exception:  # a header Pillow cannot read (or an image it finds too large): OpenCV
        return False


def read_image(path: Path | str, *, gray: bool = False) -> np.ndarray:
    """Read and decode an image file: RGB (H, W, 3) or gray (H, W) uint8."""
    return decode(read_bytes(path), path, gray=gray)
