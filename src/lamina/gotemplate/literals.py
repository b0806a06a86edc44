"""Go literal syntax used inside actions: strconv.Unquote and the numbers the
template parser accepts (text/template/parse/node.go newNumber)."""

from __future__ import annotations

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def unquote(s: str) -> str:
    """strconv.Unquote for "...", `...` and '.' literals; ValueError if invalid."""
    if len(s) < 2 or s[0] != s[-1]:
        raise ValueError(s)
    q, body = s[0], s[1:-1]
    if q == "`":
        if "`" in body:
            raise ValueError(s)
        return body.replace("\r", "")
    if q not in "\"'" or "\n" in body:
        raise ValueError(s)
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == q:
            raise ValueError(s)
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ValueError(s)
        e = body[i]
        if e in _SIMPLE:
            out.append(_SIMPLE[e])
            i += 1
        elif e == q:
            out.append(q)
            i += 1
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 1:i + 1 + n]
            if len(digits) != n or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(s)
            code = int(digits, 16)
            if e == "x":
                out.append(chr(code))  # a byte: Go strings are bytes, ours are text
            else:
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise ValueError(s)
                out.append(chr(code))
            i += 1 + n
        elif e in "01234567":
            digits = body[i:i + 3]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError(s)
            out.append(chr(int(digits, 8)))
            i += 3
        else:
            raise ValueError(s)
    text = "".join(out)
    if q == "'" and len(text) != 1:
        raise ValueError(s)
    return text


def parse_number(text: str):
    """The value of a number token: int for integer syntax (and character
    constants), float for a fraction or exponent; ValueError with Go's message."""
    if text.startswith("'"):
        try:
            return ord(unquote(text))
        except ValueError:
            raise ValueError(f"malformed character constant: {text}") from None
    if text.endswith("i"):
        raise ValueError(f"complex constants are not supported: {text}")  # docker never needs them
    body = text.lstrip("+-")
    low = body.lower()
    is_hex = low.startswith("0x")
    try:
        if "." not in low and not (not is_hex and "e" in low) and "p" not in low:
            if not _underscores_ok(body):
                raise ValueError
            if len(body) > 1 and body[0] == "0" and body[1].isdigit():
                return int(text.replace("_", ""), 8)  # Go's leading-zero octal
            return int(text.replace("_", ""), 0)
        if is_hex:
            return float.fromhex(text.replace("_", ""))
        return float(text.replace("_", "")) if _underscores_ok(body) else _fail()
    except ValueError:
        raise ValueError(f"illegal number syntax: {_quote(text)}") from None


def _fail():
    raise ValueError


def _underscores_ok(body: str) -> bool:
    return "_" not in body or (body[:2].lower() in ("0x", "0b", "0o") or body[0] != "0") and "__" not in body


def _quote(s: str) -> str:
    from lamina.quoting import go_quote

    return go_quote(s)
