"""CTC probability, gradient, alignment and decoding against brute force and torch."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.formula import ctc, decoding
from core.formula.alphabet import SYMBOLS
from core.formula.grammar import parse


def _random_log_probs(rng, steps, classes=17, sharpness=1.5):
    logits = rng.normal(size=(steps, classes)) * sharpness
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def _restricted(rng, steps, symbols):
    """Log-posteriors over the blank and the first `symbols` symbols only."""
    small = _random_log_probs(rng, steps, symbols + 1)
    full = np.full((steps, 17), -1e9)
    full[:, : symbols + 1] = small
    return full, small


def _collapse(path):
    out, previous = [], None
    for c in path:
        if c != previous and c != 0:
            out.append(SYMBOLS[c - 1])
        previous = c
    return "".join(out)


def _brute_force(small):
    """log p of every labelling, and the best path, by enumerating all paths."""
    steps, classes = small.shape
    probs, best_path, best_score = {}, None, -np.inf
    for path in itertools.product(range(classes), repeat=steps):
        score = float(sum(small[t, c] for t, c in enumerate(path)))
        text = _collapse(path)
        probs[text] = np.logaddexp(probs.get(text, -np.inf), score)
        if score > best_score:
            best_path, best_score = path, score
    return probs, best_path, best_score


@pytest.fixture(params=["compiled", "python"])
def search(request, monkeypatch):
    """Run a test with the compiled search, then with the Python one it stands in for."""
    if request.param == "compiled":
        if not decoding.compiled_search():
            pytest.skip("the compiled beam search is not built here (no C compiler)")
    else:
        monkeypatch.setattr(decoding, "_beam", None)
    return request.param


@pytest.mark.parametrize(
    ("steps", "symbols", "seed"), [(4, 3, 0), (5, 2, 1), (6, 3, 2), (7, 2, 3), (7, 3, 4)]
)
def test_against_brute_force(steps, symbols, seed, search):
    rng = np.random.default_rng(seed)
    full, small = _restricted(rng, steps, symbols)
    probs, best_path, best_score = _brute_force(small)
    for text, value in probs.items():
        assert ctc.log_prob(full, text) == pytest.approx(value, abs=1e-9)
    assert np.logaddexp.reduce(list(probs.values())) == pytest.approx(0, abs=1e-9)
    true_best = max(probs, key=probs.get)
    found = decoding.beam_search(
        full, beam_width=1000, nbest=len(probs), min_log_prob=None, prune=None
    )
    assert found[0].text == true_best
    assert found[0].log_prob == pytest.approx(probs[true_best], abs=1e-9)
    for hypothesis in found:  # a beam this wide keeps every path: all probabilities exact
        assert hypothesis.log_prob == pytest.approx(probs[hypothesis.text], abs=1e-9)
    greedy = decoding.greedy(full)
    assert greedy.text == _collapse(best_path)
    assert greedy.log_prob == pytest.approx(best_score, abs=1e-9)


def _torch_loss_and_grad(log_probs, labels):
    logits = torch.tensor(log_probs, dtype=torch.float64, requires_grad=True)
    targets = (
        torch.tensor([labels], dtype=torch.long)
        if labels
        else torch.zeros((1, 0), dtype=torch.long)
    )
    value = torch.nn.functional.ctc_loss(
        logits.log_softmax(-1)[:, None],
        targets,
        torch.tensor([len(log_probs)]),
        torch.tensor([len(labels)]),
        blank=0,
        reduction="sum",
    )
    value.backward()
    return value.item(), logits.grad.numpy()


@pytest.mark.parametrize(
    ("steps", "labels"),
    [
        (20, [3, 5, 7]),
        (30, [2, 2, 2, 9, 9]),  # repeats need blanks between them
        (12, []),  # the empty label: all blanks
        (5, [4, 4, 4]),  # T equal to the minimum needed: 3 symbols + 2 blanks
        (3, [1, 2, 3]),  # minimum without repeats
        (45, [13, 8, 12, 10, 14, 12, 5, 16, 12, 13, 3]),  # (7-9)-4=-12 shaped
    ],
)
def test_loss_and_gradient_equal_torch(steps, labels):
    log_probs = _random_log_probs(np.random.default_rng(steps), steps)
    loss, grad = _torch_loss_and_grad(log_probs, labels)
    assert ctc.loss(log_probs, labels) == pytest.approx(loss, abs=1e-5)
    assert np.abs(ctc.gradient(log_probs, labels) - grad).max() < 1e-5


def test_text_that_does_not_fit_is_impossible():
    log_probs = _random_log_probs(np.random.default_rng(0), 4)
    assert ctc.log_prob(log_probs, "111") == -np.inf  # needs 5 steps
    with pytest.raises(ValueError, match="at least 5 time steps"):
        ctc.occupancy(log_probs, "111")


def _check_topology(path, text):
    ext = ctc.extended([SYMBOLS.index(c) + 1 for c in text])
    assert path[0] in (0, 1) and path[-1] in (len(ext) - 1, len(ext) - 2)
    for a, b in itertools.pairwise(path):
        assert b - a in (0, 1, 2)
        if b - a == 2:
            assert ext[b] != 0 and ext[b] != ext[a]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.text(alphabet="0123456789+-*()=", min_size=1, max_size=6))
def test_occupancy_rows_sum_to_one_and_viterbi_respects_ctc(seed, text):
    steps = 2 * len(text) + 3
    log_probs = _random_log_probs(np.random.default_rng(seed), steps)
    gamma = ctc.occupancy(log_probs, text)
    assert gamma.shape == (steps, 2 * len(text) + 1)
    assert np.allclose(gamma.sum(axis=1), 1)
    path = ctc.viterbi(log_probs, text)
    _check_topology(path, text)
    spans = ctc.spans(path, len(text))
    assert all(s < e for s, e in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def _peaky(seed, text, steps=45):
    """Posteriors like a trained model's: the text's symbols in order, mostly blanks."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(steps, 17)) * 1.0
    logits[:, 0] += 7
    slots = np.sort(rng.choice(np.arange(1, steps - 1), size=len(text), replace=False))
    for t, c in zip(slots, text, strict=True):
        logits[t, SYMBOLS.index(c) + 1] += 12
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 30), st.integers(1, 8))
def test_nbest_sorted_unique_and_a_distribution(seed, width, nbest):
    log_probs = _random_log_probs(np.random.default_rng(seed), 12, sharpness=2)
    found = decoding.beam_search(log_probs, beam_width=width, nbest=nbest)
    texts = [h.text for h in found]
    assert len(texts) == len(set(texts)) <= min(width, nbest)
    values = [h.log_prob for h in found]
    assert values == sorted(values, reverse=True)
    assert np.exp(values).sum() <= 1 + 1e-9
    for h in found:  # never more than the exact probability
        assert h.log_prob <= ctc.log_prob(log_probs, h.text) + 1e-9


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["(4*8)+8", "6*(3+7)=76", "5-6+2", "12=12"]))
def test_grammar_constrained_results_parse(seed, text):
    log_probs = _peaky(seed, text)
    noise = np.random.default_rng(seed).normal(size=log_probs.shape) * 2
    noisy = log_probs + noise
    noisy -= np.log(np.exp(noisy).sum(axis=1, keepdims=True))
    for h in decoding.beam_search(noisy, beam_width=8, nbest=5, grammar=True):
        parse(h.text)
    only_equations = decoding.beam_search(noisy, 8, 5, grammar="equation")
    assert all("=" in h.text for h in only_equations)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 12))
def test_permissive_grammar_equals_the_plain_search(seed, width):
    log_probs = _random_log_probs(np.random.default_rng(seed), 10, sharpness=2)
    plain = decoding.beam_search(log_probs, width, 5, spans=False)
    permissive = decoding.beam_search(log_probs, width, 5, decoding.Permissive(), spans=False)
    assert [(h.text, h.log_prob) for h in plain] == [(h.text, h.log_prob) for h in permissive]


@pytest.mark.skipif(not decoding.compiled_search(), reason="the compiled search is not built")
@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 10**6),
    st.integers(0, 40),
    st.sampled_from([2, 5, 17]),
    st.integers(1, 60),
    st.sampled_from([None, -12.0, -4.0, -1.0]),
    st.sampled_from([None, 10.0, 2.0]),
    st.booleans(),
)
def test_compiled_search_equals_the_python_search(
    seed, steps, classes, width, min_log_prob, prune, peaky
):
    """Same texts, same order, same log-probabilities to the last bit, whatever the options;
    with a small alphabet too, and with nothing to read (T = 0)."""
    rng = np.random.default_rng(seed)
    log_probs = _random_log_probs(rng, steps, classes, sharpness=4 if peaky else 1.5)
    if peaky:
        log_probs[:, 0] += 6
        log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    options = {"min_log_prob": min_log_prob, "prune": prune, "spans": False}
    compiled = decoding.beam_search(log_probs, width, 50, **options)
    python = decoding.beam_search(log_probs, width, 50, compiled=False, **options)
    assert [(h.text, h.log_prob) for h in compiled] == [(h.text, h.log_prob) for h in python]


@pytest.mark.skipif(not decoding.compiled_search(), reason="the compiled search is not built")
@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 50), st.booleans())
def test_compiled_spans_equal_the_python_viterbi(seed, steps, peaky):
    """Each n-best reading's symbol spans and confidences, compiled, are those of the
    Python Viterbi alignment; repeated symbols (which need a blank between) included."""
    rng = np.random.default_rng(seed)
    log_probs = _random_log_probs(rng, steps, sharpness=4 if peaky else 1.5)
    found = decoding.beam_search(log_probs, 8, 5, spans=False)
    texts = [h.text for h in found] + ["11", "(7*7)"[: max(1, steps // 2)]]
    for text in texts:
        if not text or 2 * len(text) - 1 > steps:
            continue
        hypothesis = decoding.Hypothesis(text, 0.0)
        compiled = decoding.with_spans(hypothesis, log_probs)
        python = decoding.with_spans(hypothesis, log_probs, compiled=False)
        assert [(s.symbol, s.start, s.end) for s in compiled.symbols] == [
            (s.symbol, s.start, s.end) for s in python.symbols
        ]
        assert np.allclose(
            [s.confidence for s in compiled.symbols], [s.confidence for s in python.symbols]
        )
    from core.formula import _beam

    with pytest.raises(ValueError, match="classes"):
        _beam.viterbi_spans(np.zeros((4, 17)), bytes([0]))
    assert _beam.viterbi_spans(np.full((2, 17), -np.inf), bytes([1])) is None


def test_compiled_search_refuses_what_it_cannot_read():
    if not decoding.compiled_search():
        pytest.skip("the compiled search is not built")
    from core.formula import _beam

    good = np.zeros((3, 17))
    with pytest.raises(ValueError, match="2-D float64"):
        _beam.beam_search(np.zeros((3, 17), np.float32), SYMBOLS, 5, 5, -12.0, 10.0)
    with pytest.raises(ValueError, match="2-D float64"):
        _beam.beam_search(np.zeros(17), SYMBOLS, 5, 5, -12.0, 10.0)
    with pytest.raises(ValueError, match="alphabet"):
        _beam.beam_search(good, SYMBOLS[:3], 5, 5, -12.0, 10.0)
    with pytest.raises(ValueError, match="at least 1"):
        _beam.beam_search(good, SYMBOLS, 0, 5, -12.0, 10.0)
    with pytest.raises(ValueError, match="contiguous"):
        _beam.beam_search(np.zeros((17, 3)).T, SYMBOLS, 5, 5, -12.0, 10.0)
    # the wrapper converts whatever it is given
    uniform = np.log(np.full((17, 4), 1 / 17, np.float32)).T  # float32, not contiguous
    assert decoding.beam_search(uniform)[0].text in SYMBOLS


def test_peaky_posteriors_read_right_with_spans():
    log_probs = _peaky(3, "(7*8)*9=504")
    best = decoding.beam_search(log_probs)[0]
    assert best.text == "(7*8)*9=504" == decoding.greedy(log_probs).text
    assert [s.symbol for s in best.symbols] == list(best.text)
    assert all(0.5 < s.confidence <= 1 for s in best.symbols)
    batch = decoding.beam_search_batch(np.stack([log_probs, log_probs], axis=1))
    assert [b[0].text for b in batch] == [best.text] * 2


def test_truth_weight_reranks_equations():
    """Two readings nearly as likely: the weight prefers the one that holds."""
    log_probs = _peaky(5, "2+2=5")
    t = next(i for i in range(45) if log_probs[i].argmax() == SYMBOLS.index("5") + 1)
    log_probs[t, SYMBOLS.index("4") + 1] = log_probs[t, SYMBOLS.index("5") + 1] - 0.2
    log_probs -= np.logaddexp.reduce(log_probs, axis=1, keepdims=True)
    plain = decoding.beam_search(log_probs, grammar=decoding.FormulaGrammar("equation"))
    assert plain[0].text == "2+2=5"
    reranked = decoding.beam_search(
        log_probs, grammar=decoding.FormulaGrammar("equation", truth_weight=1.0)
    )
    assert reranked[0].text == "2+2=4"


def test_edit_distance():
    assert decoding.edit_distance("(4*8)+8", "(4*8)+8") == 0
    assert decoding.edit_distance("(4*8)+8", "4*8+8") == 2
    assert decoding.edit_distance("", "12") == 2


def test_temperature_scaling_recovers_an_overconfident_model():
    """Posteriors sharpened by 3 are fitted back to about 1/3, and the ECE drops."""
    from core.formula import calibration

    rng = np.random.default_rng(0)
    items, sharpened = [], []
    for i in range(40):
        text = "".join(rng.choice(list("0123456789+-*"), size=5))
        log_probs = _peaky(i, text, steps=24)
        noisy = log_probs + rng.normal(size=log_probs.shape) * 2.5
        noisy -= np.logaddexp.reduce(noisy, axis=1, keepdims=True)
        items.append((noisy, text))
        sharpened.append((calibration.scale(noisy, 1 / 3), text))
    fitted = calibration.fit_temperature(sharpened)
    assert 2.0 < fitted < 4.5
    assert calibration.nll(sharpened, fitted) < calibration.nll(sharpened, 1.0)

    def ece(temperature):
        readings = [calibration.confidence(lp, temperature) for lp, _ in sharpened]
        return calibration.expected_calibration_error(
            [c for _, c in readings],
            [r == t for (r, _), (_, t) in zip(readings, sharpened, strict=True)],
        )

    assert ece(fitted) < ece(1.0)


def test_expected_calibration_error():
    from core.formula.calibration import expected_calibration_error

    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0, 1.0], [False, False]) == pytest.approx(1.0)
