"""Synthetic formula images: three glyph sources mixed by weights, all seedable.

- "captcha": the drawing steps of the modified `captcha` 0.2.2 that made the Baidu set —
  each glyph cropped, rotated within ±30° and warped (the minus neither resized nor warped,
  so it stays thin), pasted with a mask of its luminance × 1.97 (which is why the real text
  looks pale), overlapping by up to a quarter of the average width, squeezed back to the
  image width, noise dots in the text colour, a final smoothing filter; with free
  look-alikes of the 15 fonts the real set used.
- "fonts": handwriting-style fonts, gently rotated, uneven in size, spacing and baseline.
- "strokes": each symbol drawn as jittered pen strokes of random width, as a mouse would.
- "printed": a line typeset in one printed typeface, as a document or a screen shows it,
  a quarter of the lines with spaces around the operators and `=` (`3 + 4 = 7`).
  The captcha style also draws with these typefaces part of the time, so that `+`, `*` and
  `-` are learnt in many designs, rotated and warped too.

Whole font families (`fonts.UNSEEN_FONTS`) are kept out of every style: no training or
validation image is drawn with them, so reading them measures fonts never seen.

Never a flip, and never a rotation of the whole line beyond a few degrees: they turn 6 into
9 and change the operators. Each image takes its own `random.Random`, so output depends on
the seed and the image's index only, never on how the work is split between processes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.formula.alphabet import SYMBOLS
from core.formula.fonts import digit_height_per_point, font_paths
from core.formula.fonts import font as typeface
from core.formula.strokes import SHAPES, strokes_for

STYLES = ("captcha", "fonts", "strokes", "printed")
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "captcha": 0.45,
    "fonts": 0.2,
    "strokes": 0.15,
    "printed": 0.2,
}
#: The share of captcha images whose glyphs come from the printed typefaces as well.
CAPTCHA_PRINTED_SHARE = 0.3
HEIGHT = 60
WIDTH = 180
_MASK_TABLE = [min(255, int(i * 1.97)) for i in range(256)]
#: The share of printed lines set with spaces around their operators (`spaced`).
SPACED_SHARE = 0.25
#: The share of printed lines cropped to their ink: the line fills the height.
TIGHT_SHARE = 0.15
#: The share of printed lines emboldened by 1 px, or 2 px at large sizes: as heavy as the
#: bold faces the printed typefaces (regular weights) lack.
BOLD_SHARE = 0.2
#: The share of printed lines slanted as an italic face is, and the slant (x per y).
SLANT_SHARE = 0.15
SLANT = (0.1, 0.25)
#: The share of printed lines typeset in small print, `SMALL_PRINT` px high (as a
#: screenshot of 8–10 pt text), then scaled up to the image's height as a reader does.
SMALL_PRINT_SHARE = 0.1
SMALL_PRINT = (14, 26)
#: Glyphs the captcha style neither resizes nor warps. The real set did so for the minus;
#: "=" (absent from it) would otherwise be stretched into a block.
_THIN = frozenset("-=")


def auto_width(text: str, height: int = HEIGHT) -> int:
    """180 px at height 60, as the real set; wider for long texts, at least 22 px a symbol."""
    return max(round(WIDTH * height / HEIGHT), round(22 * height / HEIGHT * len(text)))


def _pale(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(238, 255), rng.randint(238, 255), rng.randint(238, 255))


def _ink(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 200), rng.randint(0, 200), rng.randint(0, 200))


def _dots(image: Image.Image, rng: random.Random, color: tuple[int, ...], number: int) -> None:
    """Short thick dashes in the text colour, as captcha's create_noise_dots draws them."""
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(number):
        x, y = rng.randint(0, width), rng.randint(0, height)
        draw.line(((x, y), (x - 1, y - 1)), fill=color, width=3)


# ----------------------------------------------------------------------------- captcha
def _captcha_glyph(
    char: str, rng: random.Random, fonts: Sequence[Path], color: tuple[int, int, int]
) -> Image.Image:
    font = typeface(rng.choice(fonts), rng.randint(35, 55))
    _, _, w, h = font.getbbox(char)  # captcha 0.2.2 used draw.textsize: the box from the origin
    dx, dy = rng.randint(0, 4), rng.randint(0, 6)
    glyph = Image.new("RGBA", (w + dx, h + dy))
    ImageDraw.Draw(glyph).text((dx, dy), char, font=font, fill=color)
    glyph = glyph.crop(glyph.getbbox())
    angle = rng.uniform(-10, 10) if char == "=" else rng.uniform(-30, 30)
    glyph = glyph.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    if char in _THIN:
        return glyph  # neither resized nor warped: the minus stays thin
    dx, dy = w * rng.uniform(0.1, 0.3), h * rng.uniform(0.2, 0.3)
    x1, y1 = int(rng.uniform(-dx, dx)), int(rng.uniform(-dy, dy))
    x2, y2 = int(rng.uniform(-dx, dx)), int(rng.uniform(-dy, dy))
    w2, h2 = w + abs(x1) + abs(x2), h + abs(y1) + abs(y2)
    quad = (x1, y1, -x1, h2 - y2, w2 + x2, h2 + y2, w2 - x2, -y1)
    glyph = glyph.resize((w2, h2))
    return glyph.transform((w, h), Image.Transform.QUAD, quad)


def render_captcha(text: str, rng: random.Random, width: int, height: int) -> Image.Image:
    fonts = font_paths("captcha")
    if rng.random() < CAPTCHA_PRINTED_SHARE:
        fonts = fonts + font_paths("printed")
    background, color = _pale(rng), _ink(rng)
    glyphs = [_captcha_glyph(c, rng, fonts, color) for c in text]
    text_width = sum(g.size[0] for g in glyphs)
    canvas_width = max(text_width, width)
    image = Image.new("RGB", (canvas_width, height), background)
    average = int(text_width / len(text))
    overlap = int(0.25 * average)
    offset = int(average * 0.1)
    for glyph in glyphs:
        w, h = glyph.size
        mask = glyph.convert("L").point(_MASK_TABLE)
        image.paste(glyph, (offset, int((height - h) / 2)), mask)
        offset += w + rng.randint(-overlap, 0)
    if canvas_width > width:
        image = image.resize((width, height))
    _dots(image, rng, color, rng.randint(15, 35))
    return image.filter(ImageFilter.SMOOTH)


# ------------------------------------------------------------------------------- fonts
def render_fonts(text: str, rng: random.Random, width: int, height: int) -> Image.Image:
    """Handwriting fonts: one font per image (sometimes one per symbol), uneven symbols."""
    fonts = font_paths("handwriting")
    background = _pale(rng) if rng.random() < 0.7 else (255, 255, 255)
    color = _ink(rng) if rng.random() < 0.5 else tuple(rng.randint(0, 70) for _ in range(3))
    per_symbol = rng.random() < 0.3
    base_font = rng.choice(fonts)
    digit_height = rng.uniform(0.45, 0.7) * height  # what a digit should measure
    base_size = digit_height * 1.4  # a rough font size, for spacing
    glyphs = []
    for char in text:
        path = rng.choice(fonts) if per_symbol else base_font
        size = digit_height / digit_height_per_point(path) * rng.uniform(0.88, 1.12)
        font = typeface(path, max(8, round(size)))
        left, top, right, bottom = font.getbbox(char)
        pad = 6
        glyph = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
        ImageDraw.Draw(glyph).text((pad - left, pad - top), char, font=font, fill=255)
        glyph = glyph.rotate(rng.uniform(-10, 10), Image.Resampling.BILINEAR, expand=True)
        glyph = glyph.crop(glyph.getbbox())
        # keep where the glyph sits on the line: the operators are not as tall as digits
        ascent = font.getmetrics()[0]
        glyphs.append((glyph, top - ascent, ascent))
    spacing = [round(base_size * rng.uniform(-0.05, 0.15)) for _ in glyphs]
    text_width = sum(g.size[0] for g, _, _ in glyphs) + sum(spacing[:-1])
    canvas_width = max(text_width + 8, width)
    alpha = Image.new("L", (canvas_width, height), 0)
    x = (canvas_width - text_width) // 2 if text_width + 8 < width else 4
    baseline = height * rng.uniform(0.45, 0.55)
    for (glyph, offset_from_ascent, ascent), gap in zip(glyphs, spacing, strict=True):
        y = round(
            baseline
            - ascent * 0.5
            + offset_from_ascent
            + ascent * 0.5
            - glyph.size[1] / 2
            + rng.uniform(-0.05, 0.05) * height
        )
        y = min(max(y, 0), max(height - glyph.size[1], 0))
        alpha.paste(
            Image.composite(glyph, alpha.crop((x, y, x + glyph.size[0], y + glyph.size[1])), glyph),
            (x, y),
        )
        x += glyph.size[0] + gap
    if canvas_width > width:
        alpha = alpha.resize((width, height), Image.Resampling.LANCZOS)
    image = Image.new("RGB", alpha.size, background)
    image.paste(Image.new("RGB", alpha.size, color), (0, 0), alpha)
    if rng.random() < 0.5:
        _dots(image, rng, color, rng.randint(5, 30))
    return image


# ----------------------------------------------------------------------------- printed
def spaced(text: str, rng: random.Random) -> str:
    """`text` as documents often set it: one or two spaces around `=` and, mostly, around
    the binary operators too (`(4 * 8) + 8 = 40`); a sign (`=-12`, `(-3`) stays by its
    number. The spaces are only drawn: the label stays `text`."""
    operators = "+-*=" if rng.random() < 0.75 else "="
    gap = " " * (1 if rng.random() < 0.8 else 2)
    out = []
    for index, char in enumerate(text):
        after = text[index - 1] if index else ""
        binary = char == "=" or after.isdigit() or after == ")"
        out.append(f"{gap}{char}{gap}" if char in operators and binary else char)
    return "".join(out)


def render_printed(
    text: str,
    rng: random.Random,
    width: int,
    height: int,
    fonts: Sequence[Path] | None = None,
) -> Image.Image:
    """A line typeset in one typeface (from `fonts`, by default the printed ones), with the
    font's own spacing: dark or coloured ink on white or tinted paper, any size from small
    to filling the height, sometimes letter-spaced, emboldened (`BOLD_SHARE`, as heavy as a
    bold face) or slanted (`SLANT_SHARE`, as an italic face), aligned left or centred;
    `TIGHT_SHARE` of the lines cropped to the ink, as a user's crop or a screenshot of a
    formula is. `text` may hold spaces (`spaced`)."""
    path = rng.choice(list(fonts) if fonts else font_paths("printed"))
    digit_height = rng.uniform(0.35, 0.72) * height
    size = max(8, round(digit_height / digit_height_per_point(path)))
    tracking_share = rng.uniform(0.05, 0.3) if rng.random() < 0.2 else 0.0
    bold = rng.randint(1, max(1, size // 28)) if size >= 20 and rng.random() < BOLD_SHARE else 0
    slant = rng.uniform(*SLANT) if rng.random() < SLANT_SHARE else 0.0
    lean = math.ceil(slant * height / 2)  # how far the slant moves the top and bottom
    tight = rng.random() < TIGHT_SHARE
    font, advances, text_width, top, bottom = _set_line(text, path, size, tracking_share, bold)
    if tight:  # the line fills the height, 0–2 px from its edges
        edge = rng.randint(0, 2)
        size = max(8, round(size * (height - 2 * edge) / (bottom - top)))
        while True:  # from that size down until the line fits
            line = _set_line(text, path, size, tracking_share, bold)
            font, advances, text_width, top, bottom = line
            if bottom - top <= height or size <= 8:
                break
            size -= 1
        margin = rng.randint(0, 3) + lean
    else:
        margin = max(round(height * rng.uniform(0.05, 0.2)), lean)
    canvas_width = max(text_width + 2 * margin, width)
    alpha = Image.new("L", (canvas_width, height), 0)
    draw = ImageDraw.Draw(alpha)
    if rng.random() < 0.6 or text_width + 2 * margin >= width:
        x = (canvas_width - text_width) // 2
    else:
        x = margin
    shift = 0.0 if tight else rng.uniform(-0.08, 0.08) * height
    y = round((height - (bottom - top)) / 2 - top + shift)
    if advances:
        for char, advance in zip(text, advances, strict=True):
            draw.text((x, y), char, font=font, fill=255, stroke_width=bold, stroke_fill=255)
            x += advance
    else:
        draw.text((x, y), text, font=font, fill=255, stroke_width=bold, stroke_fill=255)
    if slant:  # the top leans right, the middle stays
        shear = (1, slant, -slant * height / 2, 0, 1, 0)
        affine = Image.Transform.AFFINE
        alpha = alpha.transform(alpha.size, affine, shear, Image.Resampling.BILINEAR)
    if canvas_width > width:
        alpha = alpha.resize((width, height), Image.Resampling.LANCZOS)
    if rng.random() < 0.3 and not tight:
        alpha = alpha.rotate(rng.uniform(-2, 2), Image.Resampling.BILINEAR)
    background = (255, 255, 255) if rng.random() < 0.5 else _pale(rng)
    dark = rng.random() < 0.7
    color = tuple(rng.randint(0, 80) for _ in range(3)) if dark else _ink(rng)
    image = Image.new("RGB", alpha.size, background)
    image.paste(Image.new("RGB", alpha.size, color), (0, 0), alpha)
    return image


def _set_line(
    text: str, path: Path, size: int, tracking_share: float, bold: int
) -> tuple[object, list[int], int, int, int]:
    """The font at `size`; each symbol's advance when letter-spaced (else none); the line's
    width; the top and bottom of its ink (spaces have none)."""
    font = typeface(path, size)
    boxes = [font.getbbox(c, stroke_width=bold) for c in text]
    inked = [box for c, box in zip(text, boxes, strict=True) if c != " "]
    advances: list[int] = []
    if tracking_share:
        tracking = round(size * tracking_share)
        advances = [round(font.getlength(c)) + tracking for c in text]
        text_width = sum(advances[:-1]) + boxes[-1][2]
    else:
        text_width = round(font.getlength(text)) + 2 * bold
    return font, advances, text_width, min(b[1] for b in inked), max(b[3] for b in inked)


# ----------------------------------------------------------------------------- strokes
def _smooth(points: np.ndarray, per_segment: int = 4) -> np.ndarray:
    """Catmull-Rom through the points, so jittered polylines become pen-like curves."""
    if len(points) < 3:
        return points
    padded = np.vstack([points[0], points, points[-1]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.vstack(out)


def stroke_layout(
    text: str, rng: random.Random, height: float, min_width: int = 0
) -> tuple[list[np.ndarray], int, int]:
    """`text` as pen strokes centred on a line `height` pixels high and at least
    `min_width` wide: each stroke an (n, 2) float array of smoothed points (x, y); the pen
    width; the line's width. Draws the stroke style and, in the tests, the canvas."""
    line_height = height * rng.uniform(0.75, 0.95)
    pen = max(2, round(rng.uniform(0.035, 0.11) * height))
    slant = rng.uniform(-0.25, 0.2)
    symbols = []
    x = 0.0
    for char in text:
        rel_width, top, bottom = SHAPES[char]
        size = line_height * rng.uniform(0.85, 1.12)
        box_w = rel_width * size
        y0 = (height - line_height) / 2 + top * line_height + rng.uniform(-0.05, 0.05) * height
        box_h = (bottom - top) * size
        if char in "-":
            box_h = 0.0
        symbols.append((char, x, y0, box_w, box_h))
        x += box_w + pen + size * rng.uniform(0.04, 0.22)
    width = max(int(x + 2 * pen + 8), min_width)
    left = (width - x) / 2
    strokes = []
    for char, sx, sy, bw, bh in symbols:
        for stroke in strokes_for(rng, char):
            points = np.array(
                [
                    (left + sx + px * bw + slant * (0.5 - py) * bh, sy + py * bh)
                    for px, py in stroke
                ],
                np.float32,
            )
            strokes.append(_smooth(points))
    return strokes, pen, width


def render_strokes(text: str, rng: random.Random, width: int, height: int) -> Image.Image:
    """Pen strokes drawn at twice the size with anti-aliasing, then reduced."""
    scale = 2
    h = height * scale
    strokes, pen, canvas_w = stroke_layout(text, rng, h, width * scale)
    ink_mask = np.zeros((h, canvas_w), np.uint8)
    for points in strokes:
        cv2.polylines(
            ink_mask,
            [np.round(points * 4).astype(np.int32)],
            False,
            255,
            thickness=pen,
            lineType=cv2.LINE_AA,
            shift=2,
        )
    ink_mask = cv2.resize(ink_mask, (width, height), interpolation=cv2.INTER_AREA)
    background = np.array(_pale(rng) if rng.random() < 0.6 else (255, 255, 255), np.float32)
    color = np.array(
        tuple(rng.randint(0, 90) for _ in range(3)) if rng.random() < 0.7 else _ink(rng), np.float32
    )
    alpha = ink_mask.astype(np.float32)[:, :, None] / 255.0
    pixels = background * (1 - alpha) + color * alpha
    return Image.fromarray(pixels.round().astype(np.uint8), "RGB")


# ------------------------------------------------------------------------------ finish
def _degrade(image: Image.Image, rng: random.Random) -> Image.Image:
    """What scans and screenshots add: a small tilt, blur, JPEG artefacts."""
    if rng.random() < 0.3:
        background = image.getpixel((0, 0))
        image = image.rotate(rng.uniform(-3, 3), Image.Resampling.BILINEAR, fillcolor=background)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    if rng.random() < 0.3:
        array = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(30, 85)])
        if ok:
            image = Image.fromarray(
                cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            )
    return image


_RENDERERS = {
    "captcha": render_captcha,
    "fonts": render_fonts,
    "strokes": render_strokes,
    "printed": render_printed,
}


def choose_style(rng: random.Random, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> str:
    names = [s for s in STYLES if weights.get(s, 0) > 0]
    if not names:
        raise ValueError("at least one style needs a positive weight")
    return rng.choices(names, [weights[s] for s in names])[0]


def render(
    text: str,
    rng: random.Random,
    style: str = "captcha",
    height: int = HEIGHT,
    width: int | None = None,
) -> np.ndarray:
    """Draw `text` in a style; an RGB uint8 array of `height` × `width` (auto when None)."""
    unknown = set(text) - set(SYMBOLS)
    if unknown or not text:
        raise ValueError(f"cannot draw {text!r}: only {SYMBOLS} are drawn")
    if style not in _RENDERERS:
        raise ValueError(f"unknown style {style!r}; use one of {', '.join(STYLES)}")
    drawn = text
    if style == "printed" and rng.random() < SPACED_SHARE:
        drawn = spaced(text, rng)
    width = width or auto_width(drawn, height)
    if style == "printed" and rng.random() < SMALL_PRINT_SHARE:
        small = rng.randint(*SMALL_PRINT)
        image = render_printed(drawn, rng, max(8, round(width * small / height)), small)
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    else:
        image = _RENDERERS[style](drawn, rng, width, height)
    if style != "captcha":  # the captcha style already looks as the real set does
        image = _degrade(image, rng)
    array = np.asarray(image.convert("RGB"))
    assert array.shape == (height, width, 3), (array.shape, height, width)
    return array


def rng_for(seed: int, index: int) -> random.Random:
    """The generator for image `index` of a run seeded with `seed`."""
    return random.Random(f"labelscope-formula:{seed}:{index}")
