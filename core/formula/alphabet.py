"""The formula alphabet: 16 symbols plus the CTC blank, which is class 0."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SYMBOLS = "0123456789+-*()="
BLANK = 0
BLANK_CHAR = "·"  # how the blank is drawn in heatmaps and alignments
NUM_CLASSES = len(SYMBOLS) + 1  # 17

_INDEX = {symbol: i + 1 for i, symbol in enumerate(SYMBOLS)}


class AlphabetError(ValueError):
    """Text holds a symbol outside the alphabet, or an index is out of range."""


def encode(text: str) -> list[int]:
    """Class indices (1…16) of `text`; spaces are ignored.

    >>> encode("(1-9)=-8")
    [13, 2, 12, 10, 14, 16, 12, 9]
    """
    indices = []
    for position, char in enumerate(text):
        if char == " ":
            continue
        try:
            indices.append(_INDEX[char])
        except KeyError:
            raise AlphabetError(
                f"{char!r} at position {position + 1} of {text!r} is not a formula symbol; "
                f"the symbols are {SYMBOLS}"
            ) from None
    return indices


def decode(indices: Iterable[int]) -> str:
    """The text of class indices; blanks (0) are skipped, repeats are kept."""
    chars = []
    for index in indices:
        index = int(index)
        if index == BLANK:
            continue
        if not 0 < index < NUM_CLASSES:
            raise AlphabetError(f"class index {index} is outside 0…{NUM_CLASSES - 1}")
        chars.append(SYMBOLS[index - 1])
    return "".join(chars)


def label_of(index: int) -> str:
    """The symbol drawn for a class index, the blank included."""
    return BLANK_CHAR if index == BLANK else SYMBOLS[index - 1]


def labels() -> Sequence[str]:
    """All 17 class labels in index order, for plot axes."""
    return [label_of(i) for i in range(NUM_CLASSES)]
