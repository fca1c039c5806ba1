"""A sequence confidence that means something: temperature scaling of the posteriors,
fitted on labelled images, and the expected calibration error that shows whether it helps.

Dividing log-posteriors by T and renormalising equals dividing the network's logits by T,
so a recogniser's log_probs can be recalibrated after the fact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.formula import ctc
from core.formula.decoding import beam_search


def scale(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    """log_softmax(log_probs / T) along the class axis."""
    scaled = np.asarray(log_probs, dtype=np.float64) / temperature
    return scaled - np.logaddexp.reduce(scaled, axis=-1, keepdims=True)


def nll(items: Sequence[tuple[np.ndarray, str]], temperature: float) -> float:
    """Mean −ln p(true text | x) at a temperature."""
    return float(np.mean([ctc.loss(scale(lp, temperature), text) for lp, text in items]))


def fit_temperature(
    items: Sequence[tuple[np.ndarray, str]],
    low: float = 0.3,
    high: float = 5.0,
    iterations: int = 40,
) -> float:
    """The temperature that minimises the CTC negative log-likelihood of the true texts
    (golden-section search; the loss is unimodal in T in practice)."""
    ratio = (np.sqrt(5) - 1) / 2
    a, b = np.log(low), np.log(high)  # search log T: the scale is multiplicative
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(items, np.exp(c)), nll(items, np.exp(d))
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(items, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(items, np.exp(d))
    return float(np.exp((a + b) / 2))


def confidence(
    log_probs: np.ndarray, temperature: float = 1.0, beam_width: int = 10
) -> tuple[str, float]:
    """The top reading and its probability: the exact p(text|x) at the temperature."""
    scaled = scale(log_probs, temperature)
    best = beam_search(scaled, beam_width, 1, spans=False)
    if not best:
        return "", 0.0
    return best[0].text, float(np.exp(ctc.log_prob(scaled, best[0].text)))


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """Σ over equal-width confidence bins of |accuracy − mean confidence| × bin share."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidences, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(correct[mask].mean() - confidences[mask].mean())
    return float(error)
