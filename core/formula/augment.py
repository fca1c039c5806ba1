"""Training-time augmentation of formula images (RGB uint8 in, RGB uint8 out).

Small geometric jitter, elastic distortion, blur, noise, other resolutions and widths, so
that a 120×40 photo reads like a 180×60 original; small print without anti-aliasing
(`small_print`); uneven light (`lighting`); loose crops, a formula on a larger sheet of
its paper (`reframe`); and what users do to real images before they read them (`clean`):
global, Otsu and adaptive thresholding, strokes thickened or thinned, median and Gaussian
filters, opening and closing, speckle left after binarising, JPEG, other ink and paper
colours; and the app's own optional steps (`app_steps`: median, Gaussian, opening,
closing, deskew), so that turning one on in the Read tab shows the model nothing new.
Never a flip, never a large rotation: they turn 6 into 9 and + into ×.

Each operation is one OpenCV call (the library the field uses for these); no augmentation
library offers Otsu or adaptive thresholding as a transform, and torchvision's v2
transforms work on tensors, which would mean converting every image twice per step.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.formula import preprocess


def _affine(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    angle = rng.uniform(-3, 3)
    scale = rng.uniform(0.9, 1.08)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[0, 1] += rng.uniform(-0.15, 0.15)  # shear: slanted writing
    matrix[:, 2] += (rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.06, 0.06) * h)
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _elastic(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    sigma, alpha = rng.uniform(4, 7), rng.uniform(1.5, 3.5) * h / 60
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dx *= alpha / (np.abs(dx).max() + 1e-6)
    dy *= alpha / (np.abs(dy).max() + 1e-6)
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, x + dx, y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _resolution(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down to a lower resolution and back: what a small or distant image loses."""
    h, w = image.shape[:2]
    factor = rng.uniform(0.4, 0.8)
    small = cv2.resize(
        image, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def small_print(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Printed small without anti-aliasing (or binarised at that size), then scaled up as a
    reader does: the line `SMALL_PRINT` px high, each pixel ink or paper (Otsu's
    threshold), back at its size by linear or nearest-neighbour interpolation."""
    h, w = image.shape[:2]
    height = int(rng.integers(SMALL_PRINT[0], SMALL_PRINT[1] + 1))
    size = (max(8, round(w * height / h)), height)
    small = cv2.resize(_to_gray(image), size, interpolation=cv2.INTER_AREA)
    _, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    up = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR
    return cv2.cvtColor(cv2.resize(binary, (w, h), interpolation=up), cv2.COLOR_GRAY2RGB)


#: The share of training images (at strength 1) that `small_print` prints small.
SMALL_PRINT_SHARE = 0.08
#: `small_print`'s line heights in pixels: a screenshot of 8–12 pt text (8 pt on a 96 dpi
#: screen is 11 px).
SMALL_PRINT = (11, 26)


def lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven light, as on a photo of a page: the image darkened towards one side or
    corner, linearly, down to 55–90 % of its brightness there."""
    h, w = image.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    along = (x - w / 2) * np.cos(angle) + (y - h / 2) * np.sin(angle)
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    low = rng.uniform(0.55, 0.9)
    field = low + (1 - low) * along
    if image.ndim == 3:
        field = field[..., None]
    return np.clip(image * field, 0, 255).astype(np.uint8)


#: The share of training images (at strength 1) that `reframe` puts on a larger sheet.
REFRAME_SHARE = 0.15
#: `reframe`'s margins as multiples of the image's height: each side drawn on its own,
#: left and right up to `REFRAME_SIDE`, top and bottom up to `REFRAME_TOP`; a third of the
#: time all of them up to `REFRAME_WIDE` times larger (a formula small on a page).
REFRAME_SIDE, REFRAME_TOP, REFRAME_WIDE = 2.5, 1.2, 3.0


def reframe(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`image` on a larger sheet of its own paper (its border's median colour): the loose
    crop a user makes of a page or a screenshot. The default *Crop or pad margins* step then
    trims it as it trims a user's image, so the model learns the framing that step gives
    rather than only the generator's own."""
    height = image.shape[0]
    scale = rng.uniform(1.0, REFRAME_WIDE) if rng.random() < 1 / 3 else 1.0
    left, right = (round(height * scale * rng.uniform(0, REFRAME_SIDE)) for _ in range(2))
    top, bottom = (round(height * scale * rng.uniform(0, REFRAME_TOP)) for _ in range(2))
    return preprocess.pad_with_paper(image, (top, bottom, left, right))


def _stretch(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(
        image, (max(16, round(w * rng.uniform(0.75, 1.3))), h), interpolation=cv2.INTER_LINEAR
    )


def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0, rng.uniform(3, 12), image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _gray(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


# ----------------------------------------------------------- what users do to real images
def _to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _odd(value: float) -> int:
    return int(value) // 2 * 2 + 1


#: How far from the ink towards the paper a near-paper global threshold may sit (share of
#: the way): "everything that is not white is ink", which keeps the pale halo of blurred or
#: antialiased strokes and every noise dot, and makes the strokes much thicker.
NEAR_PAPER = (0.75, 0.99)


def near_paper(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A global threshold close to the paper's level (`NEAR_PAPER`); Otsu's instead where
    that would make most of the image ink (noisy paper)."""
    ink, _, paper, _ = preprocess.levels(gray)
    level = ink + rng.uniform(*NEAR_PAPER) * (paper - ink)
    _, binary = cv2.threshold(gray, level, 255, cv2.THRESH_BINARY)
    if (binary == 0).mean() > 0.4:
        return preprocess.binarize_otsu(gray)
    return binary


def threshold(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Black ink on white by one of: a global threshold anywhere between the ink and the
    paper, one close to the paper (`near_paper`), Otsu's, or a Gaussian-weighted adaptive
    one of random block size and offset."""
    gray = _to_gray(image)
    method = rng.choice(4, p=[0.25, 0.2, 0.25, 0.3])
    if method == 0:
        otsu, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        level = float(np.clip(otsu + rng.uniform(-45, 45), 40, 235))
        _, binary = cv2.threshold(gray, level, 255, cv2.THRESH_BINARY)
    elif method == 1:
        binary = near_paper(gray, rng)
    elif method == 2:
        binary = preprocess.binarize_otsu(gray)
    else:
        block = _odd(rng.uniform(11, 61))
        binary = cv2.adaptiveThreshold(
            gray,
            255,
            cv2.ADAPTIVE_THRESH_GAUSSIAN_C,
            cv2.THRESH_BINARY,
            block,
            float(rng.uniform(3, 20)),
        )
    return binary


def thicken(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes thickened (ink is dark: the paper eroded) by a 2, 3 or (rarely) 4 px square
    or a 2×3 rectangle."""
    if rng.random() < 0.3:
        size = (2, 3)[:: rng.choice([1, -1])]
    else:
        side = int(rng.choice([2, 3, 4], p=[0.5, 0.35, 0.15]))
        size = (side, side)
    return cv2.erode(image, np.ones(size, np.uint8))


def thin(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes thinned by a 2 or 3 px square."""
    size = 3 if rng.random() < 0.4 else 2
    return cv2.dilate(image, np.ones((size, size), np.uint8))


def speckle(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dots of ink (1–3 px) on the paper and a few holes in the ink, as thresholding a
    noisy image leaves them."""
    out = image.copy()
    h, w = out.shape[:2]
    count = int(rng.integers(5, 10 + h * w // 300))
    ys, xs = rng.integers(0, h, count), rng.integers(0, w, count)
    sizes = rng.integers(1, 4, count)
    dark = rng.random(count) < 0.8
    for y, x, size, ink in zip(ys, xs, sizes, dark, strict=True):
        out[y : y + size, x : x + size] = 0 if ink else 255
    return out


def recolour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The grey levels mapped from black–white onto a random ink and paper colour."""
    gray = _to_gray(image).astype(np.float32)[:, :, None] / 255.0
    ink = rng.uniform(0, 150, 3)
    paper = rng.uniform(190, 255, 3)
    return np.clip(ink + (paper - ink) * gray, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(20, 80))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return image
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def clean(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a user's cleaning does to a formula image: sometimes a filter first, then
    thresholding, then sometimes thicker or thinner strokes, speckle, an opening or a
    closing. Returns gray uint8, ink 0 and paper 255."""
    gray = _to_gray(image)
    if rng.random() < 0.25:
        gray = cv2.medianBlur(gray, int(rng.choice([3, 5])))
    elif rng.random() < 0.15:
        gray = cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.5, 1.2))
    binary = threshold(gray, rng)
    stroke = rng.random()
    if stroke < 0.45:
        binary = thicken(binary, rng)
    elif stroke < 0.6:
        binary = thin(binary, rng)
    if rng.random() < 0.4:
        binary = speckle(binary, rng)
    morph = rng.random()
    kernel = np.ones((2, 2), np.uint8)
    if morph < 0.15:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
    elif morph < 0.3:
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    elif morph < 0.4:
        binary = cv2.medianBlur(binary, 3)
    return binary


#: The share of training images (at strength 1) that go through `clean`.
CLEAN_SHARE = 0.45

#: The Read and Folder tabs' optional steps that keep an image a photo of ink on paper
#: (binarising is `clean`'s part; cropping is what the default step does to loose images),
#: and how often `app_steps` picks each: the median least, since it can wipe out a thin
#: printed asterisk that the label still names.
APP_STEPS = {"median": 0.1, "gaussian": 0.2, "open": 0.25, "close": 0.3, "deskew": 0.15}
#: The share of the other training images that go through `app_steps`.
APP_STEP_SHARE = 0.15


def app_steps(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two of the optional steps a user can turn on before reading, applied as the
    app applies them (after the grayscale step, in the pipeline's order), so that turning
    one on does not show the model an image it never saw. Returns gray uint8."""
    names, weights = list(APP_STEPS), list(APP_STEPS.values())
    count = int(rng.integers(1, 3))
    chosen = set(rng.choice(names, size=count, replace=False, p=weights).tolist())
    image = preprocess.to_gray(image)
    for step in preprocess.STEPS:
        if step.name in chosen:
            image = step.apply(image)
    return image


def augment(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A randomly altered copy; each change happens with probability ∝ `strength`."""

    def maybe(p: float) -> bool:
        return rng.random() < p * strength

    if maybe(0.6):
        image = _affine(image, rng)
    if maybe(0.25):
        image = _elastic(image, rng)
    if maybe(SMALL_PRINT_SHARE):
        image = small_print(image, rng)
    elif maybe(0.3):
        image = _resolution(image, rng)
    if maybe(0.3):
        image = _stretch(image, rng)
    if maybe(REFRAME_SHARE):  # after the distortions, which are sized to the formula
        image = reframe(image, rng)
    if maybe(0.2):
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.0))
    if maybe(0.2):
        image = _noise(image, rng)
    if maybe(0.12):
        image = lighting(image, rng)
    if maybe(CLEAN_SHARE):
        binary = clean(image, rng)
        image = recolour(binary, rng) if maybe(0.3) else cv2.cvtColor(binary, cv2.COLOR_GRAY2RGB)
    elif maybe(APP_STEP_SHARE):
        image = cv2.cvtColor(app_steps(image, rng), cv2.COLOR_GRAY2RGB)
    elif maybe(0.15):
        image = _gray(image)
    elif maybe(0.1):
        image = recolour(image, rng)
    if maybe(0.1):
        image = cv2.medianBlur(image, int(rng.choice([3, 5])))
    if maybe(0.15):
        image = jpeg(image, rng)
    return image
