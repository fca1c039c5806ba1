"""Printed formulas as other software sets them: every face of the unseen font families
(regular, bold, italic, their other widths and optical sizes) typeset by Pillow directly,
black on white with a plain margin, not by the printed style's renderer, then changed the
way screens, scans and users change them.

    python -m benchmarks.formula_printed [--baseline OLD.pt] [--model NEW.pt] [--count 500]
        [--seed 5151] [--unseen-fonts FOLDER] [--without STEP] [--padded]

The faces are every font file of the families in `core.formula.fonts.UNSEEN_FONTS` found
where Debian installs them (or under `--unseen-fonts`): no style draws with any of them.
Formulas come from seed 5151 (`--seed`: another draw of the same variants), one in three
each of level 1, general and equations, and the face cycles through the files. `VARIANTS`
names the changes: as set at 40 px, spaced around the operators, light on dark, coloured,
in small print (14 px, read scaled up), large (120 px), JPEG of quality 25, cut to the
ink, tilted and blurred, binarised with Otsu's threshold; and with lines: in a frame (a
table cell), ruled above and below (a table row), underlined, boxed on a page, on ruled
paper; smaller print (12 px), small print without anti-aliasing (16 px), lit unevenly by
a lamp. Every model reads the same images with its default steps; `--without STEP` reads
the first without that default step (the pipeline before it), `--padded` its batches as
one padded tensor (before each image read as alone).
"""

from __future__ import annotations

import argparse
import io
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.formula_robustness import add_without, read_all, readers
from benchmarks.harness import machine
from core.formula import expressions, fonts
from core.formula.recognizer import SHIPPED_MODEL

SEED = 5151
FORMS = ("level1", "general", "equation")


def typeset(text: str, path: Path, size: int, pad: int, ink=0, paper=255) -> Image.Image:
    """`text` in the font file at `size`, `pad` px of paper around its box."""
    face = ImageFont.truetype(str(path), size)
    left, top, right, bottom = face.getbbox(text)
    mode = "L" if isinstance(ink, int) else "RGB"
    image = Image.new(mode, (right - left + 2 * pad, bottom - top + 2 * pad), paper)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=face, fill=ink)
    return image


def _rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image


def spaced(text: str) -> str:
    """One space each side of `+ * =` and of a minus that is not a sign."""
    out = []
    for index, char in enumerate(text):
        binary = char in "+*=" or (char == "-" and index > 0 and text[index - 1] not in "(=")
        out.append(f" {char} " if binary else char)
    return "".join(out).strip()


def _jpeg(text: str, path: Path, rng: random.Random) -> np.ndarray:
    data = io.BytesIO()
    typeset(text, path, 32, 8).convert("RGB").save(data, "JPEG", quality=25)
    return np.asarray(Image.open(data).convert("RGB"))


def _tilted(text: str, path: Path, rng: random.Random) -> np.ndarray:
    gray = np.asarray(typeset(text, path, 40, 14))
    h, w = gray.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-3, 3), 1.0)
    gray = cv2.warpAffine(gray, matrix, (w, h), borderValue=255)
    return _rgb(cv2.GaussianBlur(gray, (3, 3), 0.8))


def _binarised(text: str, path: Path, rng: random.Random) -> np.ndarray:
    gray = np.asarray(typeset(text, path, 36, 10))
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return _rgb(binary)


def _framed(text: str, path: Path, rng: random.Random) -> np.ndarray:
    """In a 1–3 px frame of dark or mid grey at the image's edge: a table cell's borders."""
    gray = np.asarray(typeset(text, path, 40, 10)).copy()
    shade, width = rng.choice([0, 90, 150]), rng.randint(1, 3)
    cv2.rectangle(gray, (0, 0), (gray.shape[1] - 1, gray.shape[0] - 1), shade, width)
    return _rgb(gray)


def _ruled(text: str, path: Path, rng: random.Random) -> np.ndarray:
    """A 1–2 px rule above and below, across the whole image: a row of a table."""
    gray = np.asarray(typeset(text, path, 40, 10)).copy()
    shade, width = rng.choice([0, 90, 150]), rng.randint(1, 2)
    gray[:width], gray[-width:] = shade, shade
    return _rgb(gray)


def _underlined(text: str, path: Path, rng: random.Random) -> np.ndarray:
    """Underlined: a 2 px line 1–3 px below the lowest ink, as long as the formula."""
    gray = np.asarray(typeset(text, path, 40, 12)).copy()
    rows, cols = np.nonzero(gray < 128)
    top = rows.max() + rng.randint(1, 3)
    gray[top : top + 2, cols.min() : cols.max() + 1] = 0
    return _rgb(gray)


def _boxed(text: str, path: Path, rng: random.Random) -> np.ndarray:
    """In a 2 px box with 8 px inside it, on a page 4–15 px beyond it."""
    gray = np.asarray(typeset(text, path, 40, 8))
    gray = cv2.copyMakeBorder(gray, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)
    margin = rng.randint(4, 15)
    return _rgb(cv2.copyMakeBorder(gray, *(margin,) * 4, cv2.BORDER_CONSTANT, value=255))


def _on_ruled_paper(text: str, path: Path, rng: random.Random) -> np.ndarray:
    """On ruled paper: grey rules 22 px apart, one of them on the formula's baseline, the
    others through it."""
    gray = np.asarray(typeset(text, path, 40, 16)).copy()
    base = gray.shape[0] - 16 + rng.randint(-1, 2)
    for row in [*range(base % 22, gray.shape[0], 22), base]:
        gray[row] = np.minimum(gray[row], 150)
    return _rgb(gray)


def _aliased(text: str, path: Path, size: int) -> np.ndarray:
    """Typeset without anti-aliasing: each pixel ink or paper, as old screens and some
    exporters draw small text."""
    face = ImageFont.truetype(str(path), size)
    left, top, right, bottom = face.getbbox(text)
    image = Image.new("L", (right - left + 8, bottom - top + 8), 255)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    draw.text((4 - left, 4 - top), text, font=face, fill=0)
    return _rgb(image)


def _lamp_lit(text: str, path: Path, rng: random.Random) -> np.ndarray:
    """Lit by a lamp: brightness falling off with the distance from a point above the
    page, to 55–75 % at the farthest corner (training darkens along a straight line)."""
    gray = np.asarray(typeset(text, path, 40, 10)).astype(np.float32)
    h, w = gray.shape
    cx, cy = rng.uniform(0, w), rng.uniform(-h, 0)
    y, x = np.mgrid[0:h, 0:w]
    distance = np.hypot(x - cx, y - cy)
    low = rng.uniform(0.55, 0.75)
    light = 1 - (1 - low) * (distance - distance.min()) / np.ptp(distance)
    return _rgb(np.clip(gray * light, 0, 255).astype(np.uint8))


VARIANTS: dict[str, Callable[[str, Path, random.Random], np.ndarray]] = {
    "as set, 40 px": lambda t, p, r: _rgb(typeset(t, p, 40, 10)),
    "spaced": lambda t, p, r: _rgb(typeset(spaced(t), p, 40, 10)),
    "light on dark": lambda t, p, r: _rgb(typeset(t, p, 40, 10, (230,) * 3, (30, 33, 40))),
    "coloured": lambda t, p, r: _rgb(typeset(t, p, 40, 10, (20, 40, 160), (255, 250, 210))),
    "small print, 14 px": lambda t, p, r: _rgb(typeset(t, p, 14, 3)),
    "large, 120 px": lambda t, p, r: _rgb(typeset(t, p, 120, 30)),
    "JPEG quality 25": _jpeg,
    "cut to the ink": lambda t, p, r: _rgb(typeset(t, p, 48, 1)),
    "tilted and blurred": _tilted,
    "binarised (Otsu)": _binarised,
    "in a frame": _framed,
    "ruled above and below": _ruled,
    "underlined": _underlined,
    "boxed, on a page": _boxed,
    "on ruled paper": _on_ruled_paper,
    "small print, 12 px": lambda t, p, r: _rgb(typeset(t, p, 12, 3)),
    "no anti-aliasing, 16 px": lambda t, p, r: _aliased(t, p, 16),
    "lit by a lamp": _lamp_lit,
}


def faces(*folders: Path) -> list[Path]:
    """Every font file of the unseen families under `folders` (by default Debian's)."""
    found = fonts.installed(*folders)
    return [found[name] for name in sorted(found) if name.startswith(fonts.UNSEEN_PREFIXES)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a model to compare against, read first")
    parser.add_argument("--model", action="append", help="models to read (default shipped)")
    parser.add_argument("--count", type=int, default=500, help="formulas a variant")
    parser.add_argument("--seed", type=int, default=SEED, help="the formulas' and variants' seed")
    parser.add_argument("--unseen-fonts", type=Path, help="folder holding the unseen fonts")
    add_without(parser)
    options = parser.parse_args()
    files = faces(*([options.unseen_fonts] if options.unseen_fonts else []))
    if not files:
        parser.exit(1, "No unseen font family found: see assets/fonts/README.md.\n")
    paths = [*([options.baseline] if options.baseline else []), *(options.model or [SHIPPED_MODEL])]
    recognizers, names = readers(
        paths, options.without, options.padded, options.one_look, options.no_referee
    )
    print(
        f"{machine()} · {len(files)} font files · {options.count} formulas a variant, "
        f"seed {options.seed}\n"
    )
    print("| variant | " + " | ".join(names) + " | errors of the last |")
    print("| --- | " + " | ".join("---:" for _ in names) + " | --- |")
    for variant, make in VARIANTS.items():
        rng = random.Random(options.seed)
        images, truths = [], []
        for index in range(options.count):
            text = expressions.sample(rng, FORMS[index % 3]).text
            images.append(make(text, files[index % len(files)], rng))
            truths.append(text)
        cells, errors = [], Counter()
        for recognizer in recognizers:
            reads = read_all(recognizer, images)
            right = sum(read == truth for read, truth in zip(reads, truths, strict=True))
            cells.append(f"{right / len(truths):.1%}")
            errors = Counter(f"`{t}` → `{r}`" for t, r in zip(truths, reads, strict=True) if t != r)
        worst = ", ".join(e for e, _ in errors.most_common(3))
        print(f"| {variant} | " + " | ".join(cells) + f" | {worst} |")


if __name__ == "__main__":
    main()
