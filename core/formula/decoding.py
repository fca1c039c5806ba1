"""Reading text out of CTC posteriors.

`log_probs` everywhere is a numpy array (T, 17) of natural-log posteriors, blank at index
0, then the alphabet's order `0123456789+-*()=`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.formula.alphabet import BLANK, SYMBOLS

try:  # the compiled search (core/formula/_beam.c), built by the install where it can be
    from core.formula import _beam
except ImportError:
    _beam = None


def compiled_search() -> bool:
    """Whether the unconstrained beam search runs compiled (else in Python)."""
    return _beam is not None


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


# ---------------------------------------------------------------------- beam search
class Constraint:
    """What a constrained search may read: an automaton over the alphabet.

    The formula grammar (`FormulaGrammar`) is the one the app uses; `Permissive` allows
    everything, so the constrained search with it is the plain search.
    """

    initial: object = None

    def allowed(self, state: object) -> str:
        raise NotImplementedError

    def step(self, state: object, symbol: str) -> object:
        raise NotImplementedError

    def can_end(self, state: object) -> bool:
        raise NotImplementedError


class Permissive(Constraint):
    initial = ()

    def allowed(self, state: object) -> str:
        return SYMBOLS

    def step(self, state: object, symbol: str) -> object:
        return ()

    def can_end(self, state: object) -> bool:
        return True


class FormulaGrammar(Constraint):
    """Only prefixes of valid formulas survive; at the end only complete ones.

    `form` is "any", "expression" or "equation". With `truth_weight` > 0, the n-best are
    re-ranked by log-probability + truth_weight for equations that hold.
    """

    def __init__(
        self, form: str = "any", truth_weight: float = 0.0, max_digits: int | None = None
    ) -> None:
        from core.formula import grammar

        if form not in ("any", "expression", "equation"):
            raise ValueError("form is 'any', 'expression' or 'equation'")
        self._grammar = grammar
        self.form, self.truth_weight, self.max_digits = form, truth_weight, max_digits
        self.initial = grammar.INITIAL

    def allowed(self, state: object) -> str:
        return self._grammar.allowed(state, self.max_digits)

    def step(self, state: object, symbol: str) -> object:
        return self._grammar.step(state, symbol, self.max_digits)

    def can_end(self, state: object) -> bool:
        return state.can_end(self.form)


_SYMBOL_INDEX = {s: i + 1 for i, s in enumerate(SYMBOLS)}
_NEG = -math.inf


def _logaddexp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) on Python floats."""
    if a == _NEG:
        return b
    if b == _NEG:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def _add(beams: dict[str, list], prefix: str, log_b: float, log_nb: float, state: object) -> None:
    entry = beams.get(prefix)
    if entry is None:
        beams[prefix] = [log_b, log_nb, state]
    else:
        entry[0] = _logaddexp(entry[0], log_b)
        entry[1] = _logaddexp(entry[1], log_nb)


def _as_constraint(grammar: Constraint | str | bool | None) -> Constraint | None:
    if grammar is None or grammar is False:
        return None
    if grammar is True:
        return FormulaGrammar()
    if isinstance(grammar, str):
        return FormulaGrammar(grammar)
    return grammar


def beam_search(
    log_probs: np.ndarray,
    beam_width: int = 10,
    nbest: int = 5,
    grammar: Constraint | str | bool | None = None,
    min_log_prob: float | None = -12.0,
    spans: bool = True,
    prune: float | None = 10.0,
    compiled: bool = True,
) -> list[Hypothesis]:
    """CTC prefix beam search; the `nbest` most probable labellings, best first.

    Each prefix keeps two log-probabilities: of its paths ending in a blank and of those
    ending in its last symbol, so that a repeated symbol is only a new symbol after a
    blank. Classes below `min_log_prob` at a step are skipped, and prefixes more than
    `prune` nats below the best are dropped after each step (None: neither), and so are
    prefixes no path can produce (probability 0). With a
    `grammar` (a Constraint, True for the formula grammar, or a form name), only prefixes
    it allows survive and only complete formulas are returned. `log_prob` of each result is
    its probability summed over the paths the beam kept: exact when the beam is wide
    enough, a lower bound otherwise. With `spans`, each result gets its symbols' time spans
    from the Viterbi alignment. Without a grammar the search runs compiled where `_beam` is
    built; `compiled=False` runs the Python search it stands in for (the same results).
    """
    log_probs = np.ascontiguousarray(log_probs, dtype=np.float64)
    constraint = _as_constraint(grammar)
    if constraint is None and compiled and _beam is not None:
        found = _beam.beam_search(
            log_probs,
            SYMBOLS[: log_probs.shape[1] - 1],
            beam_width,
            nbest,
            -math.inf if min_log_prob is None else min_log_prob,
            math.inf if prune is None else prune,
        )
        results = [Hypothesis(text, log_prob) for text, log_prob in found]
    else:
        results = _python_search(log_probs, beam_width, nbest, constraint, min_log_prob, prune)
    if spans:
        results = [with_spans(h, log_probs) for h in results]
    return results


def _python_search(
    log_probs: np.ndarray,
    beam_width: int,
    nbest: int,
    constraint: Constraint | None,
    min_log_prob: float | None,
    prune: float | None,
) -> list[Hypothesis]:
    """The `nbest` best of the Python search, complete under the constraint, re-ranked by
    its truth weight."""
    beams = _prefix_search(log_probs, beam_width, constraint, min_log_prob, prune)
    results = []
    for prefix, (log_b, log_nb, state) in beams.items():
        if constraint is not None and not constraint.can_end(state):
            continue
        if (log_prob := _logaddexp(log_b, log_nb)) > _NEG:
            results.append(Hypothesis(prefix, log_prob))
    results.sort(key=lambda h: -h.log_prob)
    weight = getattr(constraint, "truth_weight", 0.0)
    if weight:
        results.sort(key=lambda h: -(h.log_prob + weight * _holds(h.text)))
    return results[:nbest]


def _prefix_search(
    log_probs: np.ndarray,
    beam_width: int,
    constraint: Constraint | None,
    min_log_prob: float | None,
    prune: float | None,
) -> dict[str, list]:
    """The search in Python: the final beam, prefix → [log p ending in blank, log p ending
    in the last symbol, automaton state]. `_beam.c` does the same without a constraint."""
    beams: dict[str, list] = {"": [0.0, _NEG, constraint.initial if constraint else None]}
    for t in range(len(log_probs)):
        row = log_probs[t].tolist()  # Python floats: scalar numpy math is slow here
        if min_log_prob is None:
            candidates = range(1, len(row))
        else:
            candidates = [
                c for c in np.nonzero(log_probs[t] >= min_log_prob)[0].tolist() if c != BLANK
            ]
        blank = row[BLANK]
        if not candidates:
            # Nothing new can start here (most steps of a trained model): every prefix
            # stays, so update the beam in place instead of rebuilding and sorting it.
            for prefix, entry in beams.items():
                log_b, log_nb = entry[0], entry[1]
                entry[0] = _logaddexp(log_b, log_nb) + blank
                entry[1] = log_nb + row[_SYMBOL_INDEX[prefix[-1]]] if prefix else _NEG
            continue
        following: dict[str, list] = {}
        for prefix, (log_b, log_nb, state) in beams.items():
            total = _logaddexp(log_b, log_nb)
            _add(following, prefix, total + blank, _NEG, state)  # a blank: prefix stays
            last = prefix[-1:]
            if last:  # the last symbol again, without a blank: still the same prefix
                _add(following, prefix, _NEG, log_nb + row[_SYMBOL_INDEX[last]], state)
            allowed = constraint.allowed(state) if constraint else None
            for c in candidates:
                symbol = SYMBOLS[c - 1]
                if allowed is not None and symbol not in allowed:
                    continue
                new_state = constraint.step(state, symbol) if constraint else None
                # a repeat needs a blank in between: only the blank-ending paths extend
                source = log_b if symbol == last else total
                _add(following, prefix + symbol, _NEG, source + row[c], new_state)
        scored = [
            (score, prefix)
            for prefix, entry in following.items()
            if (score := _logaddexp(entry[0], entry[1])) > _NEG  # impossible: dropped
        ]
        if not scored:
            return {}
        if len(scored) > beam_width:
            scored.sort(reverse=True)
            scored = scored[:beam_width]
        if prune is not None:
            floor = max(score for score, _ in scored) - prune
            scored = [(score, prefix) for score, prefix in scored if score >= floor]
        beams = {prefix: following[prefix] for _, prefix in scored}

    return beams


def _holds(text: str) -> bool:
    from core.formula.grammar import GrammarError, parse

    try:
        return bool(parse(text).is_true)
    except GrammarError:
        return False


def with_spans(hypothesis: Hypothesis, log_probs: np.ndarray, compiled: bool = True) -> Hypothesis:
    """The hypothesis with each symbol's time span from the Viterbi forced alignment and
    its confidence (the symbol's highest posterior within the span): compiled where `_beam`
    is built, the same path as `ctc.viterbi` either way."""
    from core.formula import ctc

    if not hypothesis.text:
        return hypothesis
    text = hypothesis.text
    found = None
    if compiled and _beam is not None and len(text) <= len(log_probs):
        labels = bytes(_SYMBOL_INDEX[symbol] for symbol in text)
        found = _beam.viterbi_spans(np.ascontiguousarray(log_probs, np.float64), labels)
    if found is None:  # not built, or no path fits: the reference (which says why)
        path = ctc.viterbi(log_probs, text)
        found = [
            (start, end, float(log_probs[start:end, _SYMBOL_INDEX[symbol]].max()))
            for symbol, (start, end) in zip(text, ctc.spans(path, len(text)), strict=True)
        ]
    symbols = tuple(
        SymbolSpan(symbol, start, end, math.exp(best))
        for symbol, (start, end, best) in zip(text, found, strict=True)
    )
    return Hypothesis(text, hypothesis.log_prob, symbols)


def beam_search_batch(
    log_probs: np.ndarray, lengths: np.ndarray | None = None, **options: object
) -> list[list[Hypothesis]]:
    """Beam search for each item of a batch (T, N, C) as the model returns it."""
    log_probs = np.asarray(log_probs)
    return [
        beam_search(log_probs[: int(lengths[n]) if lengths is not None else None, n], **options)
        for n in range(log_probs.shape[1])
    ]
