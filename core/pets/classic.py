"""The classic baseline the lecture compares deep learning with: hand-made features (a colour
histogram and a histogram of oriented gradients) and scikit-learn's linear SVM,
k-nearest neighbours or random forest."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from core.images import ImageProblem
from core.jobs import CancelToken, JobError, Progress
from core.pets.image_decoding import decode_pet
from core.pets.sources import Source, SourceError

MODELS = {
    "svm": "linear SVM (probabilities by Platt scaling)",
    "knn": "k-nearest neighbours (k = 15)",
    "forest": "random forest (300 trees)",
}
_SIDE = 64


def hog(grey: np.ndarray, cell: int = 8, bins: int = 9) -> np.ndarray:
    """Histogram of oriented gradients (Dalal and Triggs): unsigned orientations in `bins`
    per `cell`-pixel cell, weighted by gradient magnitude; 2×2-cell blocks with stride one
    cell, L2-Hys normalised. 64×64 grey → 7 × 7 blocks × 36 = 1,764 values."""
    image = grey.astype(np.float32)
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=1)
    magnitude, angle = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    which = ((angle % 180) / (180 / bins)).astype(np.int64) % bins
    rows, cols = image.shape[0] // cell, image.shape[1] // cell
    ys, xs = np.indices((rows * cell, cols * cell))
    index = ((ys // cell) * cols + xs // cell) * bins + which[: rows * cell, : cols * cell]
    weights = magnitude[: rows * cell, : cols * cell].ravel()
    cells = np.bincount(index.ravel(), weights, rows * cols * bins).reshape(rows, cols, bins)
    blocks = np.concatenate(
        [cells[:-1, :-1], cells[1:, :-1], cells[:-1, 1:], cells[1:, 1:]], axis=2
    )
    for _ in range(2):  # L2, clip at 0.2, L2 again
        blocks = blocks / np.sqrt((blocks**2).sum(axis=2, keepdims=True) + 1e-6)
        blocks = np.minimum(blocks, 0.2)
    return blocks.ravel().astype(np.float32)


def describe(path: str, data: bytes) -> np.ndarray:
    """An image's features: an 8×8×8 HSV colour histogram (512) and HOG on 64×64 grey
    (1,764), 2,276 float32 values."""
    image = decode_pet(data, path, min_side=_SIDE).image
    small = cv2.resize(image, (_SIDE, _SIDE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    colour = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 8], [0, 180, 0, 256, 0, 256]).ravel()
    colour /= max(colour.sum(), 1.0)
    gradients = hog(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    return np.concatenate([colour, gradients]).astype(np.float32)


def features(
    source: Source, paths: Sequence[str], token: CancelToken, workers: int | None = None
) -> Iterator[Progress]:
    """Job: the features of every path (threads decode in parallel); returns (n, 2276)."""
    workers = workers or max(1, min(8, os.cpu_count() or 1))

    def one(path: str) -> np.ndarray:
        try:
            return describe(path, source.read(path))
        except (ImageProblem, SourceError, KeyError) as error:
            raise JobError(f"{path} cannot be read: {error}") from error

    out: list[np.ndarray] = []
    chunk = 256
    with ThreadPoolExecutor(workers, thread_name_prefix="hog") as pool:
        for start in range(0, len(paths), chunk):
            token.raise_if_cancelled()
            out += list(pool.map(one, paths[start : start + chunk]))
            done = min(start + chunk, len(paths))
            yield Progress(done, len(paths), f"Colour and HOG features: {done:,} of {len(paths):,}")
    return np.stack(out) if out else np.zeros((0, 2276), dtype=np.float32)


def make_model(name: str, seed: int = 0, samples: int = 1_000_000):
    """An unfitted scikit-learn pipeline for `name` (a key of MODELS), for `samples`
    training images (k-NN takes fewer neighbours when there are fewer images)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if name == "svm":
        svm = LinearSVC(C=0.01, max_iter=5000, random_state=seed)
        return make_pipeline(StandardScaler(), CalibratedClassifierCV(svm, cv=3))
    if name == "knn":
        return make_pipeline(
            StandardScaler(), KNeighborsClassifier(min(15, samples), weights="distance")
        )
    if name == "forest":
        return RandomForestClassifier(300, n_jobs=-1, random_state=seed, min_samples_leaf=2)
    raise JobError(f"Unknown classic model {name!r}; choose one of {', '.join(MODELS)}.")
