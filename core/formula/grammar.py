"""The language of formulas, an exact evaluator, and an incremental automaton.

    expression := term (("+" | "-") term)*
    term       := factor ("*" factor)*
    factor     := number | "(" expression ")"
    number     := "0" | [1-9][0-9]*
    equation   := expression "=" ["-"] number

Unary minus appears only in an equation's value, the one place a result can be negative.
Numbers have no leading zeros. The evaluator is a recursive-descent parser over integers:
exact, and never `eval()`.

The automaton (`State`, `step`, `allowed`) reads one symbol at a time; a grammar-constrained
CTC beam search keeps one state per prefix, so a step is a dictionary look-up after the
first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from core.formula.alphabet import SYMBOLS

DIGITS = "0123456789"
OPERATORS = "+-*"


class GrammarError(ValueError):
    """Text that is not a valid expression or equation; `position` is 0-based."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        where = f"at position {position + 1}" if position < len(text) else "at the end"
        super().__init__(f"{text!r}: {reason} {where}")


# ------------------------------------------------------------------------- automaton
# What the last symbol was; the rest of the state is the parenthesis depth, whether we are
# after "=", and how many digits the current number has.
START, OPEN, NUMBER, ZERO, OPERATOR, CLOSE, EQUALS, MINUS = range(8)


class State(NamedTuple):
    """Where the automaton is after a prefix. Hashable, so prefixes can share states."""

    last: int = START
    depth: int = 0
    value: bool = False  # after "="
    digits: int = 0  # digits of the number being read

    @property
    def complete_expression(self) -> bool:
        """The prefix is a whole expression."""
        return not self.value and self.depth == 0 and self.last in (NUMBER, ZERO, CLOSE)

    @property
    def complete_equation(self) -> bool:
        """The prefix is a whole equation."""
        return self.value and self.last in (NUMBER, ZERO)

    def can_end(self, form: str = "any") -> bool:
        """Whether text may end here: form is "expression", "equation" or "any"."""
        if form == "expression":
            return self.complete_expression
        if form == "equation":
            return self.complete_equation
        return self.complete_expression or self.complete_equation


INITIAL = State()


@cache
def step(state: State, symbol: str, max_digits: int | None = None) -> State | None:
    """The state after reading `symbol`, or None if the grammar forbids it there."""
    last, depth, value, digits = state
    if symbol in DIGITS:
        if last in (NUMBER,):
            if max_digits is not None and digits >= max_digits:
                return None
            return State(NUMBER, depth, value, digits + 1)
        if last in (START, OPEN, OPERATOR, EQUALS) or (last == MINUS and symbol != "0"):
            return State(ZERO if symbol == "0" else NUMBER, depth, value, 1)
        return None
    if value:  # after "=": only an optional minus, then the number
        if symbol == "-" and last == EQUALS:
            return State(MINUS, depth, value, 0)
        return None
    if symbol in OPERATORS:
        return State(OPERATOR, depth, value, 0) if last in (NUMBER, ZERO, CLOSE) else None
    if symbol == "(":
        return State(OPEN, depth + 1, value, 0) if last in (START, OPEN, OPERATOR) else None
    if symbol == ")":
        if depth > 0 and last in (NUMBER, ZERO, CLOSE):
            return State(CLOSE, depth - 1, value, 0)
        return None
    if symbol == "=":
        if depth == 0 and last in (NUMBER, ZERO, CLOSE):
            return State(EQUALS, 0, True, 0)
        return None
    return None


@cache
def allowed(state: State, max_digits: int | None = None) -> str:
    """The symbols that may follow `state`, in alphabet order."""
    return "".join(s for s in SYMBOLS if step(state, s, max_digits) is not None)


def run(text: str, max_digits: int | None = None) -> State:
    """The state after `text`; raises GrammarError at the first symbol that cannot come."""
    state = INITIAL
    for position, symbol in enumerate(text):
        following = step(state, symbol, max_digits)
        if following is None:
            raise GrammarError(text, position, _why(state, symbol))
        state = following
    return state


def _why(state: State, symbol: str) -> str:
    if symbol not in SYMBOLS:
        return f"{symbol!r} is not a formula symbol"
    if state.value:
        return f"{symbol!r} cannot follow in the value after '='"
    if symbol == ")" and state.depth == 0:
        return "')' closes no '('"
    if symbol == "=" and state.depth > 0:
        return "'=' inside parentheses"
    if symbol in DIGITS and state.last == ZERO:
        return "a number cannot start with 0"
    return f"{symbol!r} cannot follow {_LAST_NAMES[state.last]}"


_LAST_NAMES = {
    START: "the start",
    OPEN: "'('",
    NUMBER: "a number",
    ZERO: "a number",
    OPERATOR: "an operator",
    CLOSE: "')'",
    EQUALS: "'='",
    MINUS: "'-'",
}


def accepts(text: str, form: str = "any") -> bool:
    """Whether `text` is a complete expression ("expression"), equation ("equation"), or
    either ("any")."""
    try:
        return run(text).can_end(form)
    except GrammarError:
        return False


# ------------------------------------------------------------------------ evaluator
class _Parser:
    """Recursive descent over the grammar above, computing exact integers."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, reason: str) -> GrammarError:
        return GrammarError(self.text, self.pos, reason)

    def expression(self) -> int:
        value = self.term()
        while self.peek() and self.peek() in "+-":
            operator = self.peek()
            self.pos += 1
            right = self.term()
            value = value + right if operator == "+" else value - right
        return value

    def term(self) -> int:
        value = self.factor()
        while self.peek() == "*":
            self.pos += 1
            value *= self.factor()
        return value

    def factor(self) -> int:
        if self.peek() == "(":
            self.pos += 1
            value = self.expression()
            if self.peek() != ")":
                raise self.fail("expected ')'")
            self.pos += 1
            return value
        return self.number()

    def number(self) -> int:
        start = self.pos
        while self.peek() and self.peek() in DIGITS:
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits:
            raise self.fail("expected a number or '('")
        if len(digits) > 1 and digits[0] == "0":
            raise GrammarError(self.text, start, "a number cannot start with 0")
        return int(digits)


def evaluate(expression: str) -> int:
    """The exact integer value of an expression such as '(4*8)+8'."""
    parser = _Parser(expression)
    value = parser.expression()
    if parser.pos != len(expression):
        raise parser.fail(f"unexpected {parser.peek()!r}")
    return value


@dataclass(frozen=True)
class Formula:
    """A parsed expression or equation."""

    text: str
    expression: str
    value: int  # the expression's true value
    written: int | None  # the value written after "=", for an equation

    @property
    def is_equation(self) -> bool:
        return self.written is not None

    @property
    def is_true(self) -> bool | None:
        """For an equation, whether it holds; None for a bare expression."""
        return None if self.written is None else self.written == self.value


def parse(text: str) -> Formula:
    """Parse an expression or an equation; raises GrammarError with where and why."""
    state = run(text)
    if not state.can_end():
        raise _incomplete(text, state)
    expression, _, written = text.partition("=")
    value = evaluate(expression)
    return Formula(text, expression, value, int(written) if written else None)


def _incomplete(text: str, state: State) -> GrammarError:
    if not text:
        return GrammarError(text, 0, "the text is empty")
    if state.depth:
        return GrammarError(text, len(text), f"{state.depth} '(' not closed")
    return GrammarError(text, len(text), "the formula is incomplete")
