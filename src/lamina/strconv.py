"""Go's strconv integer parsing, with Go's error texts: one parser for every place
docker reads an integer with ParseInt or Atoi (resource flags, the `exited` filter,
log-opt max-file, resize sizes, user and group ids).  It imports nothing: the run
path, the monitor and the log options all use it."""

from __future__ import annotations


def parse_int(text: str, func: str = "ParseInt") -> int:
    """strconv.ParseInt(text, 10, 64), with Go's error text; ValueError.  `func="Atoi"`
    is strconv.Atoi (the same parse on 64-bit Go, its errors named Atoi): lamina's one
    parser for both (runtime/rootfs.atoi is its "is it a number?" form).

    As Go, not as Python's int(), which takes `1_0`, spaces and non-ASCII digits, and
    refuses 4300 digits with its own error: Go reads digits left to right, so digits
    past uint64 are "out of range" even before a bad character, a bad character
    before that "invalid syntax"."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    end = next((i for i, c in enumerate(digits) if c not in "0123456789"), len(digits))
    significant = digits[:end].lstrip("0")
    if len(significant) > 20 or (significant and int(significant) >= 1 << 64):
        raise ValueError(f'strconv.{func}: parsing "{text}": value out of range')
    if not digits or end < len(digits):
        raise ValueError(f'strconv.{func}: parsing "{text}": invalid syntax')
    value = int(significant or "0") * (-1 if text[0] == "-" else 1)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f'strconv.{func}: parsing "{text}": value out of range')
    return value
