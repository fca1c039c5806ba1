"""Reading text out of CTC posteriors.

`log_probs` everywhere is a numpy array (T, 17) of natural-log posteriors, blank at index
0, then the alphabet's order `0123456789+-*()=`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.formula.alphabet import BLANK, SYMBOLS


@dataclass(frozen=True)
class SymbolSpan:
    """One read symbol: the time steps [start, end) it was read at and how sure."""

    symbol: str
    start: int
    end: int
    confidence: float  # the highest posterior of the symbol within its span


@dataclass(frozen=True)
class Hypothesis:
    text: str
    log_prob: float  # greedy: of the best path; beam search: of the labelling
    symbols: tuple[SymbolSpan, ...] = ()

    @property
    def prob(self) -> float:
        return float(np.exp(self.log_prob))


def greedy(log_probs: np.ndarray) -> Hypothesis:
    """Best-path decoding: the most probable class at each step, repeats merged, blanks
    dropped. `log_prob` is the log-probability of that path."""
    log_probs = np.asarray(log_probs)
    best = log_probs.argmax(axis=1)
    path_log_prob = float(log_probs[np.arange(len(best)), best].sum())
    symbols = []
    t = 0
    while t < len(best):
        end = t + 1
        while end < len(best) and best[end] == best[t]:
            end += 1
        if best[t] != BLANK:
            confidence = float(np.exp(log_probs[t:end, best[t]].max()))
            symbols.append(SymbolSpan(SYMBOLS[best[t] - 1], t, end, confidence))
        t = end
    return Hypothesis("".join(s.symbol for s in symbols), path_log_prob, tuple(symbols))


def greedy_batch(log_probs: np.ndarray, lengths: np.ndarray | None = None) -> list[str]:
    """Greedy texts of a batch: log_probs (T, N, C) as the model returns them."""
    best = np.asarray(log_probs).argmax(axis=2)  # (T, N)
    texts = []
    for n in range(best.shape[1]):
        path = best[: int(lengths[n]) if lengths is not None else None, n]
        keep = np.ones(len(path), bool)
        keep[1:] = path[1:] != path[:-1]
        texts.append("".join(SYMBOLS[c - 1] for c in path[keep] if c != BLANK))
    return texts


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
