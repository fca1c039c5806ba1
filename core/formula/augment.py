"""Training-time augmentation of formula images (RGB uint8 in, RGB uint8 out).

Small geometric jitter, elastic distortion, blur, noise, colour / grey / binarised
variants, and other resolutions and widths, so that a 120×40 photo reads like a 180×60
original. Never a flip, never a large rotation: they turn 6 into 9 and + into ×.
"""

from __future__ import annotations

import cv2
import numpy as np


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


def _binary(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return cv2.cvtColor(binary, cv2.COLOR_GRAY2RGB)


def augment(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A randomly altered copy; each change happens with probability ∝ `strength`."""

    def maybe(p: float) -> bool:
        return rng.random() < p * strength

    if maybe(0.6):
        image = _affine(image, rng)
    if maybe(0.25):
        image = _elastic(image, rng)
    if maybe(0.3):
        image = _resolution(image, rng)
    if maybe(0.3):
        image = _stretch(image, rng)
    if maybe(0.2):
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.0))
    if maybe(0.2):
        image = _noise(image, rng)
    if maybe(0.15):
        image = _gray(image)
    elif maybe(0.1):
        image = _binary(image)
    return image
