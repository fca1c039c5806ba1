"""CTC in log space, as the lecture derives it.

For a text l, the extended label l' puts a blank before, between and after its symbols
(length S = 2L + 1). The forward variable α_t(s) is the probability of all path prefixes
that reach state s at time t; the backward variable β_t(s) that of all path suffixes
from state s at time t (both include y_t(l'_s), as in Graves). Then

    p(l | x) = α_{T-1}(S-1) + α_{T-1}(S-2)
    α_t(s) β_t(s) / y_t(l'_s) = the probability of the paths through s at time t
    ∂(−ln p) / ∂u_t(k) = y_t(k) − (1/p) Σ_{s: l'_s = k} α_t(s) β_t(s) / y_t(k)

for the unnormalised outputs u (y = softmax(u)). Every function takes `log_probs`, a numpy
array (T, 17) of natural-log posteriors, blank at index 0, and works on whole rows of
states at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.formula.alphabet import BLANK, BLANK_CHAR, SYMBOLS, encode

NEG_INF = -np.inf


def extended(labels: list[int] | np.ndarray) -> np.ndarray:
    """The blank-interleaved label: [blank, l1, blank, l2, …, blank]."""
    ext = np.full(2 * len(labels) + 1, BLANK, dtype=np.int64)
    ext[1::2] = labels
    return ext


def _skip_allowed(ext: np.ndarray) -> np.ndarray:
    """Where a path may jump from s-2 to s: onto a symbol that differs from the one before."""
    allowed = np.zeros(len(ext), bool)
    allowed[2:] = (ext[2:] != BLANK) & (ext[2:] != ext[:-2])
    return allowed


def _labels(text: str | list[int] | np.ndarray) -> np.ndarray:
    return np.asarray(encode(text) if isinstance(text, str) else text, dtype=np.int64)


def min_steps(labels: np.ndarray) -> int:
    """Fewest time steps a labelling needs: one per symbol, plus a blank between repeats."""
    return len(labels) + int(np.sum(labels[1:] == labels[:-1])) if len(labels) else 0


def forward(log_probs: np.ndarray, text: str | list[int]) -> np.ndarray:
    """log α, shape (T, 2L + 1)."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    ext = extended(_labels(text))
    emit = log_probs[:, ext]  # (T, S): log y_t(l'_s)
    skip = _skip_allowed(ext)
    alpha = np.full(emit.shape, NEG_INF)
    alpha[0, 0] = emit[0, 0]
    if len(ext) > 1:
        alpha[0, 1] = emit[0, 1]
    for t in range(1, len(emit)):
        previous = alpha[t - 1]
        total = previous.copy()
        total[1:] = np.logaddexp(total[1:], previous[:-1])
        total[2:] = np.where(skip[2:], np.logaddexp(total[2:], previous[:-2]), total[2:])
        alpha[t] = total + emit[t]
    return alpha


def backward(log_probs: np.ndarray, text: str | list[int]) -> np.ndarray:
    """log β, shape (T, 2L + 1)."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    ext = extended(_labels(text))
    emit = log_probs[:, ext]
    skip = _skip_allowed(ext)
    beta = np.full(emit.shape, NEG_INF)
    beta[-1, -1] = emit[-1, -1]
    if len(ext) > 1:
        beta[-1, -2] = emit[-1, -2]
    for t in range(len(emit) - 2, -1, -1):
        following = beta[t + 1]
        total = following.copy()
        total[:-1] = np.logaddexp(total[:-1], following[1:])
        # a jump from s to s+2 is allowed where it is allowed into s+2
        total[:-2] = np.where(skip[2:], np.logaddexp(total[:-2], following[2:]), total[:-2])
        beta[t] = total + emit[t]
    return beta


def _total(alpha: np.ndarray) -> float:
    """log p from the last row of α: ending on the last symbol or on the final blank."""
    if alpha.shape[1] == 1:
        return float(alpha[-1, 0])
    return float(np.logaddexp(alpha[-1, -1], alpha[-1, -2]))


def log_prob(log_probs: np.ndarray, text: str | list[int]) -> float:
    """The exact log p(text | x); −inf when the text cannot fit in T steps."""
    return _total(forward(log_probs, text))


def loss(log_probs: np.ndarray, text: str | list[int]) -> float:
    """The CTC loss −ln p(text | x)."""
    return -log_prob(log_probs, text)


def _fitting_labels(log_probs: np.ndarray, text: str | list[int]) -> np.ndarray:
    """The text's class indices; ValueError when it cannot fit in the time steps."""
    labels = _labels(text)
    if len(log_probs) < min_steps(labels):
        raise ValueError(
            f"{len(labels)} symbols need at least {min_steps(labels)} time "
            f"steps; there are {len(log_probs)}"
        )
    return labels


def _state_log_posteriors(
    log_probs: np.ndarray, text: str | list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """log of α_t(s) β_t(s) / (y_t(l'_s) p): the probability of passing state s at time t,
    given the text; and the extended label."""
    labels = _fitting_labels(log_probs, text)
    ext = extended(labels)
    alpha, beta = forward(log_probs, labels), backward(log_probs, labels)
    total = _total(alpha)
    emit = np.asarray(log_probs, dtype=np.float64)[:, ext]
    return alpha + beta - emit - total, ext


def occupancy(log_probs: np.ndarray, text: str | list[int]) -> np.ndarray:
    """γ_t(s): the posterior of being in state s of the extended label at time t, given
    the text; (T, 2L + 1), each row normalised to sum to 1."""
    log_gamma, _ = _state_log_posteriors(log_probs, text)
    gamma = np.exp(log_gamma - log_gamma.max(axis=1, keepdims=True))
    return gamma / gamma.sum(axis=1, keepdims=True)


def gradient(log_probs: np.ndarray, text: str | list[int]) -> np.ndarray:
    """∂(−ln p(text|x)) / ∂u, (T, classes), for outputs u with log_probs = log_softmax(u)."""
    log_gamma, ext = _state_log_posteriors(log_probs, text)
    y = np.exp(np.asarray(log_probs, dtype=np.float64))
    targets = np.zeros_like(y)
    np.add.at(targets, (slice(None), ext), np.exp(log_gamma))  # Σ over states with label k
    return y - targets


def viterbi(log_probs: np.ndarray, text: str | list[int]) -> np.ndarray:
    """The most probable path through the extended label: its state index at each step."""
    labels = _fitting_labels(log_probs, text)
    ext = extended(labels)
    emit = np.asarray(log_probs, dtype=np.float64)[:, ext]
    skip = _skip_allowed(ext)
    states = len(ext)
    score = np.full(emit.shape, NEG_INF)
    back = np.zeros(emit.shape, dtype=np.int64)
    score[0, 0] = emit[0, 0]
    if states > 1:
        score[0, 1] = emit[0, 1]
    index = np.arange(states)
    for t in range(1, len(emit)):
        previous = score[t - 1]
        stay = previous
        step = np.concatenate([[NEG_INF], previous[:-1]])
        jump = np.where(skip, np.concatenate([[NEG_INF, NEG_INF], previous[:-2]]), NEG_INF)
        options = np.stack([stay, step, jump])  # from s, s-1, s-2
        choice = options.argmax(axis=0)
        score[t] = options[choice, index] + emit[t]
        back[t] = index - choice
    last = states - 1 if states == 1 or score[-1, -1] >= score[-1, -2] else states - 2
    path = np.empty(len(emit), dtype=np.int64)
    path[-1] = last
    for t in range(len(emit) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def spans(path: np.ndarray, length: int) -> list[tuple[int, int]]:
    """For each of the text's `length` symbols, the time steps [start, end) the path spends
    on it (state 2i + 1)."""
    result = []
    for i in range(length):
        steps = np.nonzero(path == 2 * i + 1)[0]
        result.append((int(steps[0]), int(steps[-1]) + 1))
    return result


@dataclass(frozen=True)
class Alignment:
    """How a text lines up with the time steps: everything the alignment heatmap shows."""

    text: str
    states: tuple[str, ...]  # the extended label, blanks as BLANK_CHAR
    gamma: np.ndarray  # (T, 2L + 1) occupancy, rows summing to 1
    path: np.ndarray  # (T,) the Viterbi state at each step
    log_prob: float  # exact log p(text | x)
    spans: tuple[tuple[int, int], ...]  # each symbol's [start, end) steps on the path


def alignment(log_probs: np.ndarray, text: str) -> Alignment:
    """Occupancy, forced alignment and exact probability of `text` in one go; ValueError
    (with the reason) for a text outside the alphabet or too long for the time steps."""
    text = text.replace(" ", "")
    labels = _fitting_labels(log_probs, text)
    log_gamma, ext = _state_log_posteriors(log_probs, labels)
    gamma = np.exp(log_gamma - log_gamma.max(axis=1, keepdims=True))
    gamma /= gamma.sum(axis=1, keepdims=True)
    path = viterbi(log_probs, labels)
    states = tuple(BLANK_CHAR if c == BLANK else SYMBOLS[c - 1] for c in ext)
    return Alignment(
        text,
        states,
        gamma,
        path,
        log_prob(log_probs, labels),
        tuple(spans(path, len(labels))),
    )
