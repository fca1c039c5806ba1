"""Preprocessing a formula image, as steps a GUI can show one by one.

Every step takes and returns a numpy image: uint8 until `normalize`, which gives the
float32 array in [0, 1] (ink dark, paper light) that the model reads. `STEPS` lists them in
pipeline order; `run` applies the enabled ones and keeps each intermediate image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import cv2
import numpy as np

#: The recogniser's input height (CRNNConfig.height): a 180×60 image is read at 96×32.
MODEL_HEIGHT = 32


#: An image all of whose grey levels are below this one (it looks black) but not all equal
#: is stretched to the full range first: a mask saved with the values 0 and 1, or 16-bit
#: data that uses only its low bits.
DARK_RANGE = 32


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale with dark ink on light paper: light-on-dark images are inverted, those
    whose median and edges are both dark. The paper is most of an image and lies around
    the formula; bold writing cut out to its ink can cover more than half of it, but not
    its edges. An image that looks black but holds two or more levels (`DARK_RANGE`) is
    stretched to black and white first."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    low, high = cv2.minMaxLoc(gray)[:2]
    if high < DARK_RANGE and high > low:
        gray = cv2.convertScaleAbs(gray, alpha=255 / (high - low), beta=-low * 255 / (high - low))
    if float(np.median(gray)) < 128 and float(np.median(edges(gray))) < 128:
        gray = 255 - gray
    return gray


def edges(image: np.ndarray, width: int = 2) -> np.ndarray:
    """The pixels of an image's outer `width` rows and columns (channels kept), or all of
    them in an image too small to have an inside."""
    h, w = image.shape[:2]
    if h <= 2 * width or w <= 2 * width:
        return image.reshape(-1, *image.shape[2:])
    inner = slice(width, h - width)
    parts = (image[:width], image[h - width :], image[inner, :width], image[inner, w - width :])
    return np.concatenate([part.reshape(-1, *image.shape[2:]) for part in parts])


#: `median`'s window is 5 px where the strokes are at least this wide, 3 px where thinner.
MEDIAN_WIDE_STROKES = 4.2


def median(image: np.ndarray, size: int | None = None) -> np.ndarray:
    """Median filter with a window that fits the strokes (or `size` px): 5 px where they
    are at least `MEDIAN_WIDE_STROKES` wide (the Baidu drawing's are 4.4–7 px), which removes
    its noise dots (3 px blobs) and keeps the strokes; 3 px on thinner strokes (printed text,
    pen lines), which a 5 px window wipes out, with an asterisk's arms that the label still
    names."""
    if size is None:
        width = stroke_width(binarize_otsu(image))  # 0: no stroke found, nothing to keep
        size = 3 if 0 < width < MEDIAN_WIDE_STROKES else 5
    return cv2.medianBlur(image, size)


def gaussian(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


#: `remove_lines` erases horizontal runs of ink at least this many times the image's height
#: long (a minus or an equals sign is shorter than the height) ...
LINE_LENGTH = 1.0
#: ... that reach across at least this share of the ink's width: a rule, an underline or a
#: border spans the formula, while the strokes of a bold formula whose symbols have run
#: together only join some of them.
LINE_REACH = 0.9
#: ... with paper beyond them along this share of their length on one side, and this share
#: on the other (`_rule_like`).
RULE_SIDES = (0.8, 0.2)
#: ... and, where horizontal lines were found, vertical runs at least this share of the
#: height long where they end, as thick as they are: the sides of a frame.
FRAME_SIDE = 0.6
#: Pixels this share of the way from the paper to the darkest count as line (faint rules too).
LINE_INK = 0.25
#: Where a line runs along a stroke (the bar of a `+` or `4`, a minus on a rule), the stroke's
#: pixels this share of the paper-to-darkest range darker than the line's own grey are kept:
#: rules, borders and lined paper are often grey, the writing black.
DARKER_THAN_RULE = 0.2
#: A thin run of ink (`GREY_RULE_THICKNESS` of the height, 2 px at least) whose lighter
#: quarter is at least this share of the way from the darkest to the paper is a grey rule,
#: even where the glyphs crowd it on both sides (a rule through a bold line of writing):
#: writing is black where its strokes run together.
GREY_RULE = 0.4
GREY_RULE_THICKNESS = 0.06


def remove_lines(image: np.ndarray) -> np.ndarray:
    """Ruled lines, underlines and frames erased to the paper: a screenshot of a table cell,
    a formula on lined paper or in a box. Lines are long straight runs of ink
    (`LINE_LENGTH`) across the formula (`LINE_REACH`) with paper beyond them
    (`RULE_SIDES`) or thin and grey (`GREY_RULE`); where a symbol's stroke crosses a line,
    the stroke is kept. A frame's sides count only with its top or bottom (`FRAME_SIDE`),
    so that a tall digit at the edge of a tight crop stays. Images without lines are
    returned as they are."""
    gray = _gray(image)
    height, width = gray.shape
    length = max(8, round(LINE_LENGTH * height))
    if width <= length:
        return image
    # the levels from every other pixel of every other row: a threshold needs no more
    cumulative = np.cumsum(np.bincount(gray[::2, ::2].ravel(), minlength=256))
    paper = _rank(cumulative, 50)
    darkest = _rank(cumulative, 0.5)
    if paper - darkest < MIN_CONTRAST:
        return image
    level = paper - LINE_INK * (paper - darkest)
    dark = cv2.threshold(gray, np.ceil(level) - 1, 1, cv2.THRESH_BINARY_INV)[1]
    kernel = np.ones((1, length), np.uint8)
    runs = cv2.erode(dark, kernel)
    if not runs.any():  # most images: no run of ink that long
        return image
    runs = cv2.dilate(runs, kernel)
    inked = np.nonzero(dark.any(axis=0))[0]
    reach = LINE_REACH * (inked[-1] + 1 - inked[0])
    count, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    long = [
        i
        for i in range(1, count)
        if stats[i, cv2.CC_STAT_WIDTH] >= reach
        and (_rule_like(dark, stats[i]) or _grey_rule(gray, labels == i, paper, darkest))
    ]
    if not long:
        return image
    on_lines = np.isin(labels, long)
    lines = on_lines.astype(np.uint8)
    thickness = int(stats[long, cv2.CC_STAT_HEIGHT].max())
    first, last = (int(c) for c in np.nonzero(lines.any(axis=0))[0][[0, -1]])
    crossing = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((thickness + 4, 1), np.uint8))
    lines = cv2.dilate(lines, np.ones((3, 1), np.uint8)) & (1 - crossing)  # soft edges too
    # a frame's sides: as thick as its top or bottom, where they end
    sides = cv2.morphologyEx(
        dark, cv2.MORPH_OPEN, np.ones((max(3, round(FRAME_SIDE * height)), 1), np.uint8)
    )
    x = np.arange(width)
    ends = ((x >= first - 1) & (x <= first + thickness)) | (
        (x >= last - thickness) & (x <= last + 1)
    )
    sides = cv2.dilate(sides * ends[None, :].astype(np.uint8), np.ones((1, 3), np.uint8))
    erase = (lines | sides) > 0
    rule = float(np.median(gray[on_lines]))  # the lines' own grey
    erase &= gray >= rule - DARKER_THAN_RULE * (paper - darkest)
    out = gray.copy()
    out[erase] = round(paper)
    return out


def _rule_like(dark: np.ndarray, box: np.ndarray) -> bool:
    """Whether a long run of ink (`box`: x, y, width, height) is a thin line with paper on
    both sides (`RULE_SIDES`) rather than the edge of a bold formula's joined strokes: the
    rows 2 px beyond it are paper along most of it on one side and along some of it on the
    other (rows beyond the image count as paper)."""
    x, y, width, height = (int(v) for v in box[:4])
    shares = []
    for row in (y - 2, y + height + 1):
        inside = 0 <= row < dark.shape[0]
        shares.append(1.0 - float(dark[row, x : x + width].mean()) if inside else 1.0)
    return max(shares) >= RULE_SIDES[0] and min(shares) >= RULE_SIDES[1]


def _grey_rule(gray: np.ndarray, run: np.ndarray, paper: float, darkest: float) -> bool:
    """Whether a long run of ink (`run`, a mask) is a thin line of grey (`GREY_RULE`)."""
    rows = np.nonzero(run.any(axis=1))[0]
    if rows[-1] + 1 - rows[0] > max(2, round(GREY_RULE_THICKNESS * gray.shape[0])):
        return False
    return float(np.percentile(gray[run], 75)) >= darkest + GREY_RULE * (paper - darkest)


def binarize_otsu(image: np.ndarray) -> np.ndarray:
    """Ink 0, paper 255, at the threshold Otsu's method picks."""
    _, binary = cv2.threshold(_gray(image), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return binary


#: `binarize` takes Otsu's ink for noise dots alone when none of its blobs is this share of
#: the image's height tall (a symbol is about half of it or more, a dot a few pixels).
DOTS_ONLY = 0.25


def binarize(image: np.ndarray) -> np.ndarray:
    """Ink 0, paper 255: the *Binarise (Otsu)* step. Otsu's threshold; where its ink is
    noise dots alone (`DOTS_ONLY`), Otsu's threshold again over the pixels it called paper,
    which splits the writing from the paper, and the dots stay ink.

    Otsu's method splits the histogram into two classes. The Baidu drawing pastes pale
    writing under noise dots of full colour, and there the split falls between the dots and
    the rest: the formula turned to paper (2 % of captcha images)."""
    gray = _gray(image)
    level, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if _tallest_blob(binary) >= DOTS_ONLY * gray.shape[0]:
        return binary
    rest = gray[gray > level]
    if rest.size == 0 or int(rest.max()) - int(rest.min()) < MIN_CONTRAST:
        return binary  # paper alone beside the dots
    second, _ = cv2.threshold(rest.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    _, writing = cv2.threshold(gray, second, 255, cv2.THRESH_BINARY)
    return writing if _tallest_blob(writing) >= DOTS_ONLY * gray.shape[0] else binary


def _tallest_blob(binary: np.ndarray) -> int:
    """The height in pixels of the tallest connected blob of ink (0) in a binary image."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((binary == 0).astype(np.uint8), 8)
    return int(stats[1:, cv2.CC_STAT_HEIGHT].max()) if count > 1 else 0


def binarize_adaptive(image: np.ndarray, block: int = 31, offset: int = 10) -> np.ndarray:
    """A threshold per neighbourhood: for uneven lighting (photos, scans)."""
    return cv2.adaptiveThreshold(
        _gray(image), 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, offset
    )


def opening(image: np.ndarray, size: int = 2) -> np.ndarray:
    """Removes specks of ink smaller than the kernel (ink is dark, so: close the paper).

    In a black-and-white image (every pixel 0 or 255, as the *Binarise* steps leave it)
    only the specks go: a blob of ink stays whole where any of it survives the opening or
    where it is longer than the kernel on a side, so that the 1 px parts of a thin stroke,
    or a thin minus, are not cut away. (After Otsu, a plain 2×2 opening broke up the
    handwriting fonts' strokes: 14 of 105 such images read wrong, 1 with this rule.)"""
    kernel = np.ones((size, size), np.uint8)
    opened = cv2.morphologyEx(image, cv2.MORPH_CLOSE, kernel)
    if image.ndim != 2 or not ((image == 0) | (image == 255)).all():
        return opened
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (image == 0).astype(np.uint8), connectivity=8
    )
    kept = np.zeros(count, bool)
    kept[np.unique(labels[opened == 0])] = True
    kept |= np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) > size + 1
    kept[0] = False  # the paper
    return np.where(kept[labels], 0, 255).astype(np.uint8)


def closing(image: np.ndarray, size: int = 2) -> np.ndarray:
    """Fills small gaps in strokes (ink is dark, so: open the paper)."""
    kernel = np.ones((size, size), np.uint8)
    return cv2.morphologyEx(image, cv2.MORPH_OPEN, kernel)


def _gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else to_gray(image)


#: A blob is ink on its own when it covers 0.2 % of the image; where the largest blob is under
#: five times that but at least MIN_SYMBOL px long (a formula set small on a large page), when
#: it covers this share of the largest. Noise dots alone (a threshold that lost pale glyphs)
#: are shorter, and leave the image as it is.
SHARE_OF_LARGEST = 0.2
MIN_SYMBOL = 10


def _blobs(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dark connected blobs (Otsu): their label image, their stats (without the
    background) and whether each is large enough to be ink on its own."""
    binary = binarize_otsu(image) == 0
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), 8)
    stats = stats[1:]
    areas = stats[:, cv2.CC_STAT_AREA]
    floor = 0.002 * binary.size
    if len(areas):
        biggest = stats[int(areas.argmax())]
        long_side = max(biggest[cv2.CC_STAT_WIDTH], biggest[cv2.CC_STAT_HEIGHT])
        if areas.max() < 5 * floor and long_side >= MIN_SYMBOL:  # a small formula on a page
            floor = SHARE_OF_LARGEST * areas.max()
    return labels, stats, areas >= max(2, floor)


def ink_mask(image: np.ndarray) -> np.ndarray:
    """Boolean mask of ink, without connected blobs too small to be part of a symbol."""
    labels, _, large = _blobs(image)
    return np.concatenate([[False], large])[labels]


Box = tuple[int, int, int, int]


def ink_box(image: np.ndarray, grow: bool = True) -> Box | None:
    """The formula's bounding box (top, bottom, left, right; bottom and right exclusive), or
    None without ink: the box of the blobs large enough to be ink on their own, and with
    `grow` also of the smaller strokes that sit on its line (their middle inside its rows, at
    most a line's height beyond its sides, twice as long as wide and a quarter of the line's
    height long), so that a minus or a 1 at either end is kept and noise dots are not."""
    boxes = _ink_boxes(image)
    return None if boxes is None else boxes[1] if grow else boxes[0]


def _span(
    top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray, chosen: np.ndarray
) -> Box:
    """The box around the chosen blobs."""
    return (
        int(top[chosen].min()),
        int(bottom[chosen].max()),
        int(left[chosen].min()),
        int(right[chosen].max()),
    )


def _ink_boxes(image: np.ndarray) -> tuple[Box, Box, Box | None] | None:
    """`ink_box` without and with `grow`, and the box of the tall blobs (at least half the
    image's height: digits and brackets, not signs or dots; None without any), from one
    pass over the blobs."""
    _, stats, large = _blobs(image)
    if not large.any():
        return None
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    tall = large & (2 * stats[:, cv2.CC_STAT_HEIGHT] >= image.shape[0])
    symbols = _span(top, bottom, left, right, tall) if tall.any() else None
    core = _span(top, bottom, left, right, large)
    box = core
    middle = (top + bottom) / 2
    long_side = np.maximum(right - left, bottom - top)
    stroke = long_side >= 2 * np.minimum(right - left, bottom - top)  # a dot is round
    inside = large.copy()
    while True:
        reach = box[1] - box[0]
        on_line = (middle >= box[0]) & (middle <= box[1]) & (long_side >= reach / 4)
        near = (right >= box[2] - reach) & (left <= box[3] + reach)
        joining = on_line & near & stroke & ~inside
        if not joining.any():
            return core, box, symbols
        inside |= joining
        box = (
            min(box[0], int(top[joining].min())),
            max(box[1], int(bottom[joining].max())),
            min(box[2], int(left[joining].min())),
            max(box[3], int(right[joining].max())),
        )


def deskew(image: np.ndarray, max_angle: float = 10.0) -> np.ndarray:
    """Rotates a tilted line level, by the angle of the ink's minimum-area rectangle;
    leaves it alone when the estimate exceeds `max_angle` (then it is not a tilt)."""
    mask = ink_mask(image)
    points = np.column_stack(np.nonzero(mask)[::-1]).astype(np.float32)
    if len(points) < 10:
        return image
    (cx, cy), (w, h), angle = cv2.minAreaRect(points)
    if w < h:
        angle -= 90
    angle = (angle + 45) % 90 - 45
    if abs(angle) < 0.5 or abs(angle) > max_angle:
        return image
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    border = 255 if image.ndim == 2 else (255, 255, 255)
    return cv2.warpAffine(
        image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderValue=border
    )


#: Paper `crop_to_ink` leaves around the ink (a share of its height), and the least width
#: to height of its result (as the training images are).
CROP_MARGIN, CROP_ASPECT = 0.15, 2.0


def crop_to_ink(
    image: np.ndarray, margin: float = CROP_MARGIN, min_aspect: float = CROP_ASPECT
) -> np.ndarray:
    """Crops to the formula (`ink_box`, looked for again around the box first found:
    `_look_again`) and pads with paper: `margin` of the ink's height on each side, and
    wider when needed so the result is at least `min_aspect` times as wide as high (as the
    training images are)."""
    box = ink_box(image)
    return image if box is None else _crop_and_pad(*_look_again(image, box), margin, min_aspect)


def _crop_and_pad(image: np.ndarray, box: Box, margin: float, min_aspect: float) -> np.ndarray:
    top, bottom, left, right = box
    crop = image[top:bottom, left:right]
    pad = max(2, round(margin * (bottom - top)))
    height = crop.shape[0] + 2 * pad
    extra = max(0, round(min_aspect * height) - (crop.shape[1] + 2 * pad))
    paper = 255 if image.ndim == 2 else (255, 255, 255)
    return cv2.copyMakeBorder(
        crop, pad, pad, pad + extra // 2, pad + extra - extra // 2, cv2.BORDER_CONSTANT, value=paper
    )


#: `trim_margins` crops when the ink's bounding box covers less of the image than this. The
#: images the recogniser was trained on are mostly filled far more (a median of 0.6), a
#: user's loose crop far less (a median of 0.15); 0.3 was chosen on one seed of
#: benchmarks/formula_margins.py and measured on another (docs/benchmarks.md).
LOOSE_SHARE = 0.3
#: ... or when the formula is less tall than this share of the image: paper above and below
#: it makes its glyphs small at the model's height, where paper at its sides changes little.
#: The training images' formulas are mostly taller (a median of 0.66–0.88 of the height by
#: style); 0.5 read 300 images of each style as drawn as before and with a user's margins
#: better (seed 515151 of benchmarks/formula_margins.py; measured on another, in
#: docs/benchmarks.md).
LOW_SHARE = 0.5
#: ... and then keeps this share of its height of paper above and below it (the training
#: images' median margin), its sides as they are.
LOW_MARGIN = 0.25


#: A formula cut out to its ink gets `TIGHT_PAD` of its height of paper around it: the
#: training images have margins, and a bold minus filling a tight crop's height could be
#: read as `=`. Cut out means its symbols (the blobs at least half the image's height:
#: digits and brackets) reach within `TIGHT_EDGE` of the height (or 2 px) of its top and
#: bottom and within `TIGHT_SIDE` of its right, and its ink within `TIGHT_SIDE` of its
#: left; noise dots at the edges do not count.
TIGHT_EDGE, TIGHT_SIDE, TIGHT_PAD = 0.05, 0.25, 0.1


def trim_margins(image: np.ndarray, share: float | None = None) -> np.ndarray:
    """Crop to the ink (`crop_to_ink`) only when the image is loosely cropped: the box of its
    blobs large enough to be ink covers less than `share` of it (the formula looked for
    again around that box, `_look_again`). Cut the paper above and
    below a formula less tall than `LOW_SHARE` of the image to `LOW_MARGIN`. Pad an image
    cut out to its ink with its own paper (`TIGHT_PAD`). Any other image is left as it is,
    since cropping one the model already reads well costs accuracy."""
    boxes = _ink_boxes(image)
    if boxes is None:
        return image
    (top, bottom, left, right), grown, symbols = boxes
    height, width = image.shape[:2]
    covered = (bottom - top) * (right - left) / (height * width)
    if covered < (LOOSE_SHARE if share is None else share):
        return _crop_and_pad(*_look_again(image, grown), CROP_MARGIN, CROP_ASPECT)
    tall = grown[1] - grown[0]
    if tall < LOW_SHARE * height:
        pad = round(LOW_MARGIN * tall)
        return image[max(0, grown[0] - pad) : min(height, grown[1] + pad)]
    if symbols is not None:
        edge, side = max(2.0, TIGHT_EDGE * height), max(2.0, TIGHT_SIDE * height)
        first, last, _, end = symbols  # a formula ends in a digit or a bracket
        start = grown[2]  # and may start with a minus
        if first <= edge and last >= height - edge and start <= side and end >= width - side:
            return pad_with_paper(image, max(1, round(TIGHT_PAD * height)))
    return image


#: A loose image's formula is looked for again in the part of the image around the box first
#: found, this many times the box's height beyond it at the sides and above and below.
AGAIN_SIDES, AGAIN_ROWS = 1.5, 0.5


def _look_again(image: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    """The part of `image` around `box` (`AGAIN_SIDES`, `AGAIN_ROWS`) and the formula's box
    found in it. On a large sheet a blob must cover more pixels to count as ink, so pale or
    thin glyphs at a formula's ends (a captcha's, a pen's) can be left out of the first box;
    in the part around it they count as they do in the image as drawn."""
    top, bottom, left, right = box
    reach = bottom - top
    rows = max(0, top - round(AGAIN_ROWS * reach)), bottom + round(AGAIN_ROWS * reach)
    cols = max(0, left - round(AGAIN_SIDES * reach)), right + round(AGAIN_SIDES * reach)
    part = image[rows[0] : rows[1], cols[0] : cols[1]]
    boxes = _ink_boxes(part)
    return (part, boxes[1]) if boxes is not None else (image, box)


def pad_with_paper(image: np.ndarray, pad: int | tuple[int, int, int, int]) -> np.ndarray:
    """`image` with `pad` px on every side (or (top, bottom, left, right) px) in the colour
    of its paper (its edges' median)."""
    top, bottom, left, right = (pad,) * 4 if isinstance(pad, int) else pad
    paper = np.median(edges(image, 1), axis=0)
    value = float(paper) if image.ndim == 2 else tuple(float(v) for v in paper)
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)


#: `thin_bold` thins a binary image's strokes while they are wider than this share of its
#: height: 3.5 px at the model's 32. The training styles' images binarised as drawn have
#: strokes of 2.1–3.2 px in the median, and 95 % of the captcha ones at most 3.2 px (99 %:
#: 3.8); thickened as training thickens them, 4.3 px in the median (300 images of each
#: style from seed 11, not a benchmark seed).
BOLD_SHARE = 3.5 / 32
#: ... and never thins strokes narrower than this (in pixels of the image): a small
#: image's 4 px strokes would break up.
MIN_BOLD_WIDTH = 6.0
_SQUARE = np.ones((3, 3), np.uint8)


def is_binary(gray: np.ndarray) -> bool:
    """Whether a uint8 gray image is black and white: at least 97 % of its pixels within
    40 levels of black or of white, with some of each."""
    counts = np.bincount(gray.ravel(), minlength=256)
    dark, light = int(counts[:41].sum()), int(counts[215:].sum())
    return dark > 0 and light > 0 and dark + light >= 0.97 * gray.size


def stroke_width(binary: np.ndarray) -> float:
    """The typical stroke width of a binary image's ink (dark), in pixels: twice the median
    distance to the paper along the strokes' middle lines, over blobs big enough to be part
    of a symbol (noise dots are left out). 0 where there is no such blob."""
    ink = (binary < 128).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(40, 0.002 * ink.size)
    distance = cv2.distanceTransform(ink, cv2.DIST_L2, 5)
    middle = (distance >= cv2.dilate(distance, _SQUARE)) & keep[labels] & (distance > 0)
    return 2.0 * float(np.median(distance[middle])) if middle.any() else 0.0


def _bolder_than_training(binary: np.ndarray) -> bool:
    width = stroke_width(binary)
    return width >= MIN_BOLD_WIDTH and width > BOLD_SHARE * binary.shape[0]


def is_bold(image: np.ndarray) -> bool:
    """Whether `thin_bold` thins the image once the grayscale step has made it dark ink on
    light paper: black and white, its strokes bolder than the training images'."""
    gray = to_gray(image)
    return is_binary(gray) and _bolder_than_training(gray)


def thin_bold(image: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Thins the strokes of a black-and-white image that a user thickened (or a threshold
    left fat), one pixel a side per round, until they are no wider than `BOLD_SHARE` of the
    height; parts thinner than that round's cut (a minus, an asterisk's arms, noise dots)
    are kept as they are. Any other image is returned unchanged."""
    gray = _gray(image)
    if not is_binary(gray):
        return image
    for _ in range(rounds):
        if not _bolder_than_training(gray):
            break
        ink = (gray < 128).astype(np.uint8)
        core = cv2.erode(ink, _SQUARE)
        thin_parts = ink & (1 - cv2.dilate(core, _SQUARE))
        gray = np.where((core | thin_parts) > 0, 0, 255).astype(np.uint8)
    return gray


def resize_to_height(image: np.ndarray, height: int = MODEL_HEIGHT) -> np.ndarray:
    """Scales to `height` keeping the aspect ratio."""
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    interpolation = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def stretch_widths(image: np.ndarray, shares: Iterable[float], least: int = 1) -> list[np.ndarray]:
    """The image at each of `shares` of its width (at least `least` pixels), its height
    kept. An image whose bold strokes *Thin bold strokes* thins (`is_bold`, found once)
    stays black and white (nearest neighbour), so that the step thins each width as it
    thins the image; any other is resampled."""
    bold = is_bold(image)
    stretched = []
    for share in shares:
        width = max(least, round(image.shape[1] * share))
        if bold:
            interpolation = cv2.INTER_NEAREST
        else:
            interpolation = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_LINEAR
        stretched.append(cv2.resize(image, (width, image.shape[0]), interpolation=interpolation))
    return stretched


#: `normalize`: the ink level is this percentile of the pixels darker than the paper.
INK_PERCENTILE = 20.0
#: `normalize` puts the ink level at least this many grey levels below the paper.
MIN_CONTRAST = 16.0


def _rank(cumulative: np.ndarray, percent: float) -> int:
    """The grey level at `percent` of a cumulative histogram (nearest rank)."""
    total = cumulative[-1]
    return int(np.searchsorted(cumulative, max(1.0, percent / 100.0 * total)))


def levels(gray: np.ndarray) -> tuple[float, float, float, float]:
    """(ink, darkest 0.5 %, paper, brightest 0.5 %) grey levels of a uint8 image, from
    its histogram.

    The paper is the median (it is most of the image) and its spread the median absolute
    deviation; the pixels clearly darker than it are ink, and the ink level is their
    `INK_PERCENTILE`th percentile (the darkest 0.5 % where there is hardly any ink). It is
    robust to specks darker than the writing: the captcha drawing pastes each glyph through
    a mask of its own luminance, so dark ink comes out pale while the noise dots keep the
    full colour; the darkest pixels are then dots, and the glyphs' own level is what
    counts."""
    counts = np.bincount(gray.ravel(), minlength=256)
    cumulative = np.cumsum(counts)
    paper = _rank(cumulative, 50)
    darkest, high = _rank(cumulative, 0.5), _rank(cumulative, 99.5)
    deviations = np.bincount(np.abs(np.arange(256) - paper), weights=counts, minlength=256)
    spread = _rank(np.cumsum(deviations), 50)
    cut = int(np.ceil(paper - max(3.0, 6.0 * spread)))
    dark = cumulative[cut - 1] if cut > 0 else 0
    ink = _rank(cumulative[:cut], INK_PERCENTILE) if dark >= 0.005 * gray.size else darkest
    return float(ink), float(darkest), float(paper), float(high)


def normalize(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1], stretched so the ink is 0 and the paper 1 (pale coloured text and
    black ink then look alike to the model). Anything darker than the ink level
    (`levels`, but at least `MIN_CONTRAST` below the paper) is 0, and so is the darkest
    half percent of the image. An image with less than `MIN_CONTRAST` between its darkest
    and brightest half percent holds no ink: it is all paper."""
    gray = _gray(image)
    if gray.dtype != np.uint8:
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    ink, darkest, paper, high = levels(gray)
    low = max(darkest, min(ink, paper - MIN_CONTRAST))
    if high - darkest < MIN_CONTRAST:  # no ink: a blank page, its noise not stretched
        return np.ones(gray.shape, np.float32)
    table = np.clip((np.arange(256, dtype=np.float32) - low) / (high - low), 0, 1)
    return table[gray]


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    apply: Callable[[np.ndarray], np.ndarray]
    default: bool  # on in the model's own pipeline
    #: what turning the step on costs, as measured (`COSTS`); "" where it reads as well
    cost: str = ""
    #: how the step decides what it does to an image, where its title does not say
    tip: str = ""

    @property
    def help(self) -> str:
        """A toggle's tooltip: how the step decides, then what it costs."""
        cost = f"Changes what the model sees: {self.cost}" if self.cost else ""
        return "\n".join(part for part in (self.tip, cost) if part)


#: Optional steps that read worse than the default on some benchmark style, as the app
#: reads (second look and referee included), with the measured accuracy: what
#: `python -m benchmarks.formula_robustness` prints under "Optional steps against the
#: default" (1,000 images a style, seed 737373; docs/benchmarks.md). The Read tab says so
#: when one is on. Steps not named here read at least as well on every style.
MEASURED_COSTS: dict[str, str] = {
    "median": "the default model reads 99.1 % of captcha images (99.6 % without it), 98.8 % "
    "of mixed styles (99.3 %)",
    "gaussian": "the default model reads 99.3 % of captcha images (99.6 % without it), "
    "99.2 % of mixed styles (99.3 %), 99.8 % of printed ones (99.9 %)",
    "otsu": "the default model reads 99.4 % of captcha images (99.6 % without it), 99.8 % "
    "of printed ones (99.9 %)",
    "adaptive": "the default model reads 98.4 % of captcha images (99.6 % without it), "
    "99.6 % of printed ones (99.9 %)",
    "open": "the default model reads 99.4 % of captcha images (99.6 % without it)",
    "close": "the default model reads 99.4 % of captcha images (99.6 % without it)",
    "deskew": "the default model reads 99.5 % of captcha images (99.6 % without it), 99.1 % "
    "of mixed styles (99.3 %)",
    "crop": "the default model reads 99.2 % of captcha images (99.6 % without it), 98.8 % of "
    "mixed styles (99.3 %)",
}
#: When a costly step is worth turning on all the same.
COST_NOTES: dict[str, str] = {
    "otsu": "useful only where the image's own contrast is the problem",
    "adaptive": "for uneven lighting only",
    "deskew": "the model reads tilts of a few degrees as they are",
    "crop": "Crop or pad margins, on by default, crops only loose images",
}
#: What the Read tab says a costly step does: its figures, then when it is worth it.
COSTS: dict[str, str] = {
    name: "; ".join(part for part in (figures, COST_NOTES.get(name, "")) if part)
    for name, figures in MEASURED_COSTS.items()
}

STEPS: tuple[Step, ...] = (
    Step("gray", "Grayscale", to_gray, True),
    Step(
        "lines",
        "Remove ruled lines",
        remove_lines,
        True,
        tip=f"Erases straight lines at least {LINE_LENGTH:g}× the image's height long "
        f"across {LINE_REACH:.0%} of the formula (rules, grey ones through the writing too, "
        "underlines, a table cell's borders) and the sides of a frame, keeping the strokes "
        "that cross them; images without them are left as they are",
    ),
    Step(
        "median",
        "Median filter",
        median,
        False,
        tip="5 px, which removes the Baidu images' noise dots; 3 px where the strokes are "
        "thinner than about 4 px, so that they survive",
    ),
    Step("gaussian", "Gaussian blur", gaussian, False),
    Step(
        "otsu",
        "Binarise (Otsu)",
        binarize,
        False,
        tip="Otsu's threshold; where that leaves only noise dots darker than pale writing, "
        "Otsu's threshold again between the writing and the paper",
    ),
    Step("adaptive", "Binarise (adaptive)", binarize_adaptive, False),
    Step(
        "open",
        "Opening",
        opening,
        False,
        tip="Removes specks of ink smaller than 2×2 px; in a black-and-white image (after "
        "Binarise) only the specks, keeping every stroke whole",
    ),
    Step("close", "Closing", closing, False),
    Step("deskew", "Deskew", deskew, False),
    Step(
        "trim",
        "Crop or pad margins",
        trim_margins,
        True,
        tip=f"Crops only images whose ink covers less than {LOOSE_SHARE * 100:.0f} % of them"
        f"; cuts the paper above and below a formula less tall than {LOW_SHARE * 100:.0f} % of"
        " its image; pads images cut out to their ink",
    ),
    Step("crop", "Crop to ink and pad", crop_to_ink, False),
    Step(
        "bold",
        "Thin bold strokes",
        thin_bold,
        True,
        tip="Only black-and-white images whose strokes are bolder than the training images' "
        "(over about a ninth of the height, as thickened ones are); thin parts are kept",
    ),
    Step("resize", "Resize to model height", resize_to_height, True),
    Step("normalize", "Normalise", normalize, True),
)
STEPS = tuple(replace(step, cost=COSTS.get(step.name, "")) for step in STEPS)
STEP_NAMES = tuple(step.name for step in STEPS)
DEFAULT = frozenset(step.name for step in STEPS if step.default)
#: What a drawing on the canvas goes through: it has no margins or noise of its own, and
#: its strokes are as wide as the pen the user chose.
CANVAS = (DEFAULT - {"bold"}) | {"crop"}
#: The model cannot read without these: they are never turned off.
ALWAYS = frozenset({"resize", "normalize"})
#: Steps a user may turn on: the pipeline's optional ones.
OPTIONAL = tuple(name for name in STEP_NAMES if name not in DEFAULT)
#: Default steps a user may turn off.
REMOVABLE = tuple(name for name in STEP_NAMES if name in DEFAULT - ALWAYS)


def named(steps: Iterable[str]) -> str:
    """The titles of `steps` in pipeline order, joined by arrows (the Read tab's summary)."""
    steps = set(steps)
    return " → ".join(step.title for step in STEPS if step.name in steps)


def chosen(on: Iterable[str] = (), off: Iterable[str] = ()) -> frozenset[str]:
    """The default pipeline with the optional steps `on` turned on and the default steps
    `off` turned off (`OPTIONAL`, `REMOVABLE`); ValueError naming the choices otherwise."""
    on, off = set(on), set(off)
    if wrong := sorted(on - set(OPTIONAL)):
        raise ValueError(f"{', '.join(wrong)}: the steps to add are {', '.join(OPTIONAL)}")
    if wrong := sorted(off - set(REMOVABLE)):
        raise ValueError(f"{', '.join(wrong)}: the steps to leave out are {', '.join(REMOVABLE)}")
    return frozenset((DEFAULT | on) - off)


def costly(enabled: Iterable[str], defaults: Iterable[str] = DEFAULT) -> list[str]:
    """What each enabled step outside `defaults` with a measured cost does to accuracy, one
    sentence a step ("Median filter changes what the model sees: ..."), in pipeline order."""
    enabled, defaults = set(enabled), set(defaults)
    return [
        f"{step.title} changes what the model sees: {step.cost}"
        for step in STEPS
        if step.cost and step.name in enabled and step.name not in defaults
    ]


def run(
    image: np.ndarray, enabled: Iterable[str] = DEFAULT, height: int = MODEL_HEIGHT
) -> list[tuple[Step, np.ndarray]]:
    """Apply the enabled steps in pipeline order, resizing to `height`; each step with the
    image it produced."""
    enabled = set(enabled)
    unknown = enabled - set(STEP_NAMES)
    if unknown:
        raise ValueError(f"unknown steps {sorted(unknown)}; steps are {', '.join(STEP_NAMES)}")
    results = []
    for step in STEPS:
        if step.name not in enabled:
            continue
        image = resize_to_height(image, height) if step.name == "resize" else step.apply(image)
        results.append((step, image))
    return results


def for_model(
    image: np.ndarray, enabled: Iterable[str] = DEFAULT, height: int = MODEL_HEIGHT
) -> np.ndarray:
    """The float32 (height, W) array in [0, 1], ink dark, that the pipeline ends with."""
    steps = run(image, set(enabled) | {"normalize"}, height)
    return steps[-1][1]


def from_canvas(drawing: np.ndarray, height: int = MODEL_HEIGHT) -> np.ndarray:
    """A mouse drawing (dark strokes on white, any size) as the model expects it."""
    return for_model(drawing, CANVAS, height)
