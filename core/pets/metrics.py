"""How good P(dog) predictions are: the competition's log loss (clipped as submissions are,
and plain), accuracy, confusion matrix, ROC AUC, reliability, a fitted temperature, and
where a score would place on the final public leaderboard."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

#: Submissions clip P(dog) to this range: one confident mistake costs at most −ln 0.005.
CLIP = (0.005, 0.995)
_EPS = 1e-15  # sklearn's clip for the plain log loss (a prediction of exactly 0 or 1)


def log_loss(y: np.ndarray, p: np.ndarray, clip: tuple[float, float] | None = CLIP) -> float:
    """Mean binary log loss of P(dog) `p` for labels `y` (1 = dog), with `p` clipped to
    `clip` first (None: only kept off exactly 0 and 1)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    low, high = clip if clip is not None else (_EPS, 1 - _EPS)
    p = np.clip(p, low, high)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass(frozen=True)
class Evaluation:
    count: int
    log_loss_clipped: float
    log_loss: float
    accuracy: float
    auc: float | None  # None when the split holds one class only
    confusion: tuple[tuple[int, int], tuple[int, int]]  # rows: true cat, dog; cols: predicted

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def evaluate(y: np.ndarray, p: np.ndarray) -> Evaluation:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    predicted = (np.asarray(p) >= 0.5).astype(int)
    confusion = tuple(
        tuple(int(np.sum((y == t) & (predicted == q))) for q in (0, 1)) for t in (0, 1)
    )
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    return Evaluation(
        len(y),
        log_loss(y, p),
        log_loss(y, p, clip=None),
        float(np.mean(predicted == y)) if len(y) else float("nan"),
        auc,
        confusion,  # type: ignore[arg-type]
    )


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted P(dog), share of dogs, count) per equal-width bin that has images."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            out.append((float(p[inside].mean()), float(y[inside].mean()), int(inside.sum())))
    return out


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_temperature(y: np.ndarray, p: np.ndarray) -> float:
    """The T > 0 that minimises the log loss of sigmoid(logit(p) / T) on (y, p)."""
    from scipy.optimize import minimize_scalar

    z = logit(p)
    found = minimize_scalar(
        lambda log_t: log_loss(y, sigmoid(z / np.exp(log_t)), clip=None),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(found.x))


def apply_temperature(p: np.ndarray, temperature: float) -> np.ndarray:
    return sigmoid(logit(p) / temperature)


@lru_cache(maxsize=1)
def leaderboard() -> np.ndarray:
    """The competition's final public leaderboard scores, best first."""
    from assets import ASSETS_DIR

    with (ASSETS_DIR / "kaggle" / "leaderboard.csv").open(newline="") as handle:
        return np.array(sorted(float(r["score"]) for r in csv.DictReader(handle)))


@dataclass(frozen=True)
class Placement:
    rank: int  # the rank the score would have had (1 = first)
    teams: int  # the leaderboard's teams and this score

    @property
    def top_percent(self) -> float:
        return 100 * self.rank / self.teams

    def describe(self) -> str:
        return (
            f"would place {self.rank:,} of {self.teams:,} on the final public leaderboard "
            f"(top {self.top_percent:.1f} %)"
        )


def placement(score: float) -> Placement:
    """Where a log loss would have placed: ties go to the new score."""
    scores = leaderboard()
    return Placement(int(np.searchsorted(scores, score, side="left")) + 1, len(scores) + 1)
