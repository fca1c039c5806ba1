"""Random formulas to draw: the Baidu level-1 expressions, general expressions, and
equations whose written value is right only sometimes, so a model must read it."""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.formula.grammar import evaluate

FORMS = ("level1", "general", "equation", "mixed")
#: Longest equation drawn: '(7*8)*9=504' is 11; longer ones become unreadable at 60 px.
MAX_EQUATION_LENGTH = 14
_PRECEDENCE = {"+": 1, "-": 1, "*": 2}


@dataclass(frozen=True)
class Sample:
    """What is drawn (`text`) and the true value of its expression."""

    text: str
    value: int

    def label_line(self, file_name: str) -> str:
        """A line of a Baidu labels file: 'i.png (4*8)+8 40', or the equation alone."""
        if "=" in self.text:
            return f"{file_name} {self.text}"
        return f"{file_name} {self.text} {self.value}"


def level1(rng: random.Random) -> str:
    """Three single digits and two operators from + - *, in one of the three shapes
    'd o d o d', '(d o d) o d', 'd o (d o d)', equally likely."""
    a, b, c = (str(rng.randint(0, 9)) for _ in range(3))
    p, q = rng.choice("+-*"), rng.choice("+-*")
    shape = rng.randrange(3)
    if shape == 0:
        return f"{a}{p}{b}{q}{c}"
    if shape == 1:
        return f"({a}{p}{b}){q}{c}"
    return f"{a}{p}({b}{q}{c})"


def _number(rng: random.Random, max_digits: int) -> str:
    digits = rng.randint(1, max_digits)
    if digits == 1:
        return str(rng.randint(0, 9))
    return str(rng.randint(10 ** (digits - 1), 10**digits - 1))


def _tree(rng: random.Random, operators: int, max_digits: int) -> object:
    if operators == 0:
        return _number(rng, max_digits)
    left = rng.randint(0, operators - 1)
    return (
        rng.choice("+-*"),
        _tree(rng, left, max_digits),
        _tree(rng, operators - 1 - left, max_digits),
    )


def _render(node: object, rng: random.Random, extra_parens: float) -> tuple[str, int]:
    """Text and precedence (3 for atoms) of a tree, with the parentheses it needs and, with
    probability `extra_parens`, some it does not."""
    if isinstance(node, str):
        return node, 3
    operator, left, right = node
    precedence = _PRECEDENCE[operator]
    left_text, left_prec = _render(left, rng, extra_parens)
    right_text, right_prec = _render(right, rng, extra_parens)
    if left_prec < precedence or (left_prec < 3 and rng.random() < extra_parens):
        left_text = f"({left_text})"
    # a - (b + c) and a - (b - c) need theirs; so does a * (b + c)
    needs = right_prec < precedence or (right_prec == precedence and operator == "-")
    if needs or (right_prec < 3 and rng.random() < extra_parens):
        right_text = f"({right_text})"
    return f"{left_text}{operator}{right_text}", precedence


def general(
    rng: random.Random,
    max_operators: int = 4,
    max_digits: int = 3,
    max_length: int = 12,
    extra_parens: float = 0.2,
) -> str:
    """1…`max_operators` operators, numbers of 1…`max_digits` digits, nested parentheses;
    at most `max_length` symbols."""
    while True:
        operators = rng.randint(1, max_operators)
        text, _ = _render(_tree(rng, operators, max_digits), rng, extra_parens)
        if len(text) <= max_length:
            return text


def wrong_value(rng: random.Random, value: int) -> int:
    """A plausible mistake: off by a little, two digits swapped, or the sign flipped."""
    while True:
        kind = rng.randrange(3)
        if kind == 0:
            candidate = value + rng.choice([-1, 1]) * rng.randint(1, 10)
        elif kind == 1:
            digits = list(str(abs(value)))
            if len(digits) < 2:
                continue
            i = rng.randrange(len(digits) - 1)
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
            if digits[0] == "0":
                continue
            candidate = int("".join(digits)) * (-1 if value < 0 else 1)
        else:
            if value == 0:
                continue
            candidate = -value
        if candidate != value:
            return candidate


def equation(rng: random.Random, expression: str, p_true: float = 0.5) -> str:
    """'expression=value' with the right value with probability `p_true`."""
    value = evaluate(expression)
    written = value if rng.random() < p_true else wrong_value(rng, value)
    return f"{expression}={written}"


def sample(rng: random.Random, form: str = "level1", p_true: float = 0.5) -> Sample:
    """One formula of a form: "level1" (Baidu level 1), "general", "equation" (with a
    level-1 or a general left side), or "mixed" (each of those, equally often)."""
    if form == "mixed":
        form = rng.choice(("level1", "general", "equation"))
    if form == "level1":
        text = level1(rng)
    elif form == "general":
        text = general(rng)
    elif form == "equation":
        while True:
            left = level1(rng) if rng.random() < 0.5 else general(rng, max_length=9)
            text = equation(rng, left, p_true)
            if len(text) <= MAX_EQUATION_LENGTH:
                break
    else:
        raise ValueError(f"unknown form {form!r}; use one of {', '.join(FORMS)}")
    return Sample(text, evaluate(text.partition("=")[0]))
