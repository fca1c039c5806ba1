"""The formula grammar, automaton and evaluator against independent references."""

import ast
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.formula import alphabet, expressions, grammar

_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Constant)


def reference_value(expression: str) -> int | None:
    """Python's own parser, limited to what our grammar allows; None when it is not."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            return None
        if isinstance(node, ast.Constant) and type(node.value) is not int:
            return None
    if " " in expression or not expression:
        return None
    return _eval(tree.body)


def _eval(node: ast.AST) -> int:
    if isinstance(node, ast.Constant):
        return node.value
    left, right = _eval(node.left), _eval(node.right)
    return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]


def test_alphabet_round_trip_and_errors():
    assert alphabet.NUM_CLASSES == 17 and alphabet.BLANK == 0
    text = "(1-9)-4=-12"
    assert alphabet.decode(alphabet.encode(text)) == text
    assert alphabet.decode([0, 2, 0, 2, 0]) == "11"  # blanks skipped, repeats kept
    assert alphabet.labels()[0] == alphabet.BLANK_CHAR and alphabet.labels()[16] == "="
    with pytest.raises(alphabet.AlphabetError, match="'/' at position 2"):
        alphabet.encode("8/2")
    with pytest.raises(alphabet.AlphabetError, match="outside"):
        alphabet.decode([17])


@pytest.mark.parametrize(
    "text",
    [
        "(4*8)+8",
        "7+3*0",
        "5-6+2",
        "(1-9)-4=-12",
        "6*(3+7)=76",
        "((2))",
        "0",
        "10*0=0",
        "123-45*6=-147",
        "1=-5",
    ],
)
def test_accepts_valid(text):
    assert grammar.accepts(text)
    grammar.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "(1+2",
        "1+2)",
        "()",
        "1+*2",
        "1+",
        "*1",
        "1=2=3",
        "=3",
        "1=",
        "(1=2)",
        "05+1",
        "1=-0",
        "-1+2",
        "1=(2)",
        "1=2+3",
        "1--2",
        "(+1)",
        "12(3)",
        "(1)(2)",
        "1=007",
    ],
)
def test_rejects_malformed(text):
    assert not grammar.accepts(text)
    with pytest.raises(grammar.GrammarError):
        grammar.parse(text)


def test_error_says_where_and_why():
    with pytest.raises(grammar.GrammarError) as info:
        grammar.parse("1+*2")
    assert info.value.position == 2 and "cannot follow an operator" in str(info.value)
    with pytest.raises(grammar.GrammarError, match="not closed"):
        grammar.parse("((1+2)")
    with pytest.raises(grammar.GrammarError, match="closes no"):
        grammar.parse("1+2)")


def test_equation_truth():
    true = grammar.parse("(1-9)-4=-12")
    assert true.is_equation and true.is_true and true.value == -12
    false = grammar.parse("6*(3+7)=76")
    assert false.written == 76 and false.value == 60 and false.is_true is False
    assert grammar.parse("(4*8)+8").is_true is None


def test_evaluator_agrees_with_python_on_10000_random_expressions():
    rng = random.Random(7)
    for i in range(10_000):
        text = expressions.level1(rng) if i % 2 else expressions.general(rng)
        assert grammar.evaluate(text) == reference_value(text), text


def test_level1_values_and_shapes():
    rng = random.Random(3)
    texts = [expressions.level1(rng) for _ in range(6000)]
    values = [grammar.evaluate(t) for t in texts]
    assert min(values) >= -81 and max(values) <= 729
    shapes = [("(" in t[:1]) + 2 * (t.endswith(")")) for t in texts]
    for shape in (0, 1, 2):  # d o d o d, (d o d) o d, d o (d o d): each about a third
        assert 1800 < shapes.count(shape) < 2200


def test_sampled_formulas_are_all_valid_and_equations_often_false():
    rng = random.Random(11)
    for form in expressions.FORMS:
        for _ in range(500):
            sample = expressions.sample(rng, form)
            formula = grammar.parse(sample.text)
            assert formula.value == sample.value
    equations = [grammar.parse(expressions.sample(rng, "equation", 0.5).text) for _ in range(2000)]
    true_share = sum(f.is_true for f in equations) / len(equations)
    assert 0.45 < true_share < 0.55
    assert max(len(f.text) for f in equations) <= expressions.MAX_EQUATION_LENGTH


def test_wrong_values_are_plausible_and_wrong():
    rng = random.Random(5)
    for value in [0, 7, -3, 12, 504, -81, 729]:
        for _ in range(50):
            wrong = expressions.wrong_value(rng, value)
            assert wrong != value
            assert abs(wrong) <= max(10 * abs(value), abs(value) + 10)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789+-*()", max_size=10))
def test_automaton_and_python_agree_on_any_string(text):
    """Accepted by the automaton ⇔ a valid expression by Python's parser (restricted)."""
    reference = reference_value(text)
    if re.search(r"(?<![0-9])0[0-9]", text):
        reference = None  # Python takes "00" as 0; numbers here have no leading zeros
    assert grammar.accepts(text, "expression") == (reference is not None)
    if reference is not None:
        assert grammar.evaluate(text) == reference


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_walking_the_automaton_gives_parsable_text(data):
    """Text built one allowed symbol at a time parses whenever the automaton may end."""
    state, text = grammar.INITIAL, ""
    for _ in range(data.draw(st.integers(1, 14))):
        choices = grammar.allowed(state)
        if not choices:
            break
        symbol = data.draw(st.sampled_from(choices))
        state = grammar.step(state, symbol)
        text += symbol
        assert grammar.run(text) == state
    if state.can_end():
        formula = grammar.parse(text)
        assert formula.value == reference_value(formula.expression)
    else:
        with pytest.raises(grammar.GrammarError):
            grammar.parse(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(expressions.FORMS))
def test_every_prefix_of_a_valid_text_is_allowed(seed, form):
    text = expressions.sample(random.Random(seed), form).text
    state = grammar.INITIAL
    for symbol in text:
        assert symbol in grammar.allowed(state)
        state = grammar.step(state, symbol)
    assert state.can_end()


def test_max_digits_limits_numbers():
    assert grammar.step(grammar.run("12"), "3", max_digits=2) is None
    assert grammar.step(grammar.run("12"), "3") is not None
