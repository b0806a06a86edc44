"""Go's text forms of values, as docker reads and prints them.

Reading: strconv.ParseInt (HEALTHCHECK --retries) and time.ParseDuration (its
durations), with BuildKit's error wording.  Printing: `%q` / `%v` of string lists,
time.Duration.String() and `%q` of an int, which the classic builder's history
text shows (`HEALTHCHECK &{["CMD-SHELL" "x"] "30s" ...}`).
"""

from __future__ import annotations

import re
from typing import Sequence

from lamina.errors import InstructionError
from lamina.quoting import go_quote
from lamina.units import go_duration  # noqa: F401 - printed in history text; its home is units

# --------------------------------------------------------------------- reading


def go_int(text: str) -> int:
    """strconv.ParseInt(text, 10, 32)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise InstructionError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    if not -(1 << 31) <= int(text) < 1 << 31:
        raise InstructionError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return int(text)


_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9,
          "m": 60 * 10**9, "h": 3600 * 10**9}  # fmt: skip
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_duration(text: str) -> int:
    """"1h30m", "1.5s", "-300ms" -> nanoseconds, as Go's time.ParseDuration."""
    invalid = InstructionError(f"time: invalid duration {go_quote(text)}")
    s, neg = text, text[:1] == "-"
    s = s[1:] if s[:1] in ("-", "+") else s
    if s == "0":
        return 0
    total, pos = 0, 0
    while pos < len(s) or not s:
        m = _DURATION_PART.match(s, pos)
        whole, frac, unit = m[1], m[2] or "", m[3]  # type: ignore[index]
        if not s or not (whole or frac):  # no digits at all: "", ".s", "-"
            raise invalid
        if not unit:
            raise InstructionError(f"time: missing unit in duration {go_quote(text)}")
        if unit not in _UNITS:
            raise InstructionError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(text)}")
        pos, factor = m.end(), _UNITS[unit]
        frac = frac[:18]  # Go stops adding precision before it overflows int64
        if int(whole or "0") > (1 << 63) // factor:
            raise invalid
        value = int(whole or "0") * factor
        if frac and int(frac):
            value += int(float(int(frac)) * (factor / 10 ** len(frac)))
        total += value
        if total > (1 << 63) - (0 if neg else 1):
            raise invalid
    return -total if neg else total


# --------------------------------------------------------------------- printing


def go_quote_list(items: Sequence[str]) -> str:
    """`fmt.Sprintf("%q", []string{...})` -> `["a" "b"]`."""
    return "[" + " ".join(go_quote(s) for s in items) + "]"


def go_list(items: Sequence[str]) -> str:
    """`fmt.Sprintf("%v", []string{...})` -> `[a b]`."""
    return "[" + " ".join(items) + "]"


def go_quote_rune(n: int) -> str:
    """Go's %q of an int is a quoted rune: 3 -> '\\x03'."""
    if 0 <= n < 0x20 or n == 0x7F:
        return f"'\\x{n:02x}'"
    ch = chr(n) if 0 <= n <= 0x10FFFF else "\ufffd"
    return "'\\''" if ch == "'" else f"'{ch}'"
