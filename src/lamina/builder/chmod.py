"""COPY/ADD --chmod: octal or symbolic modes, as BuildKit reads them."""

from __future__ import annotations

from typing import Callable

from lamina.errors import BuildError


def parse_chmod(text: str) -> Callable[[int, bool], int]:
    """Octal (`755`) or symbolic (`u=rwX,go=rX`, `+x`) like chmod(1) / BuildKit 1.14."""
    if text and all(c in "01234567" for c in text):
        value = int(text, 8)
        if value > 0o7777:
            raise BuildError(f"invalid chmod parameter: {text}")
        return lambda bits, is_dir: value
    clauses = []
    for clause in text.split(","):
        i = 0
        who = ""
        while i < len(clause) and clause[i] in "ugoa":
            who += clause[i]
            i += 1
        ops = clause[i:]
        if not ops or ops[0] not in "+-=":
            raise BuildError(f"invalid chmod parameter: {text}")
        parsed = []
        while ops:
            op, ops = ops[0], ops[1:]
            perms = ""
            while ops and ops[0] not in "+-=":
                if ops[0] not in "rwxXst":
                    raise BuildError(f"invalid chmod parameter: {text}")
                perms += ops[0]
                ops = ops[1:]
            parsed.append((op, perms))
        clauses.append((who or "a", parsed))

    def apply(bits: int, is_dir: bool) -> int:
        for who, ops in clauses:
            mask = 0
            for w in who:
                mask |= {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o6777}[w]
            for op, perms in ops:
                value = 0
                for p in perms:
                    if p == "r":
                        value |= 0o444
                    elif p == "w":
                        value |= 0o222
                    elif p == "x" or (p == "X" and (is_dir or bits & 0o111)):
                        value |= 0o111
                    elif p == "s":
                        value |= 0o6000
                    elif p == "t":
                        value |= 0o1000
                value &= mask | (0o1000 if "t" in perms and ("o" in who or "a" in who) else 0)
                if op == "+":
                    bits |= value
                elif op == "-":
                    bits &= ~value
                else:
                    bits = (bits & ~(mask & 0o7777)) | value
        return bits & 0o7777

    return apply
