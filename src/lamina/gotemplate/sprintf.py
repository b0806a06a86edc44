"""Go's fmt.Sprintf / Sprint / Sprintln over the values of values.py.

Verbs %v %+v %#v %T %s %q %d %b %o %O %x %X %c %U %e %E %f %F %g %G %t %%, flags
`+ - # 0 space`, width and precision (also `*`), and Go's error forms for a
wrong verb (`%!d(string=x)`), a missing argument and extra arguments."""

from __future__ import annotations

from lamina.gotemplate.values import GoStruct, format_float_v, sort_keys, sprint_value, type_name
from lamina.quoting import go_quote


def sprint(args) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(sprint_value(a))
    return "".join(out)


def sprintln(args) -> str:
    return " ".join(sprint_value(a) for a in args) + "\n"


class _Spec:
    __slots__ = ("plus", "minus", "sharp", "zero", "space", "width", "prec", "verb")

    def __init__(self):
        self.plus = self.minus = self.sharp = self.zero = self.space = False
        self.width = self.prec = None
        self.verb = ""


def sprintf(fmt: str, args) -> str:
    out, argi, i, n = [], 0, 0, len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = _Spec()
        while i < n and fmt[i] in "+-# 0":
            c = fmt[i]
            spec.plus |= c == "+"
            spec.minus |= c == "-"
            spec.sharp |= c == "#"
            spec.zero |= c == "0"
            spec.space |= c == " "
            i += 1
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                spec.width = args[argi]
                if spec.width < 0:
                    spec.minus, spec.width = True, -spec.width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            s = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > s:
                spec.width = int(fmt[s:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    spec.prec = max(args[argi], 0) if args[argi] >= 0 else None
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                s = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[s:i]) if i > s else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec.verb = fmt[i]
        i += 1
        if spec.verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{spec.verb}(MISSING)")
            continue
        out.append(_format_arg(args[argi], spec))
        argi += 1
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={sprint_value(a)}" if a is not None else "<nil>"
                          for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad(arg, verb: str) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={sprint_value(arg)})"


def _pad(text: str, spec: _Spec, numeric: bool = False) -> str:
    w = spec.width
    if w is None or len(text) >= w:
        return text
    if spec.minus:
        return text + " " * (w - len(text))
    if spec.zero:
        if numeric and text[:1] in "+- ":
            return text[0] + "0" * (w - len(text)) + text[1:]
        return "0" * (w - len(text)) + text
    return " " * (w - len(text)) + text


def _format_arg(arg, spec: _Spec) -> str:
    verb = spec.verb
    if verb == "T":
        return _pad(type_name(arg), spec)
    if verb == "v":
        if spec.sharp:
            return _pad(_go_syntax(arg), spec)
        if isinstance(arg, float):
            return _pad(_sign(format_float_v(arg), spec), spec, True)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return _int(arg, "d", spec)
        if spec.plus and isinstance(arg, GoStruct):
            return _pad("{" + " ".join(f"{k}:{sprint_value(v)}" for k, v in arg.fields.items()) + "}", spec)
        return _pad(sprint_value(arg), spec)
    if isinstance(arg, (list, tuple)) and verb in "sqdboOxXcUeEfFgGt":  # element by element
        return "[" + " ".join(_format_arg(x, spec) for x in arg) + "]"
    if isinstance(arg, dict) and verb in "sqdboOxXcUeEfFgGt":
        return "map[" + " ".join(f"{_format_arg(k, spec)}:{_format_arg(arg[k], spec)}" for k in sort_keys(arg)) + "]"
    if isinstance(arg, bool):
        return _pad("true" if arg else "false", spec) if verb == "t" else _bad(arg, verb)
    if isinstance(arg, int):
        if verb in "dboOxX":
            return _int(arg, verb, spec)
        if verb == "c":
            return _pad(chr(arg) if 0 <= arg <= 0x10FFFF else "\ufffd", spec)
        if verb == "q":
            return _pad(_quote_rune(arg), spec)
        if verb == "U":
            u = f"U+{arg:04X}"
            return _pad(u + (f" '{chr(arg)}'" if spec.sharp and chr(arg).isprintable() else ""), spec)
        if verb in "eEfFgG":
            return _bad(arg, verb)
        return _bad(arg, verb)
    if isinstance(arg, float):
        if verb in "eEfFgG":
            return _pad(_sign(_float(arg, verb, spec.prec), spec), spec, True)
        return _bad(arg, verb)
    if isinstance(arg, str):
        if verb == "s":
            return _pad(arg if spec.prec is None else arg[:spec.prec], spec)
        if verb == "q":
            text = arg if spec.prec is None else arg[:spec.prec]
            if spec.sharp and "`" not in text and all(c.isprintable() or c == "\t" for c in text):
                return _pad("`" + text + "`", spec)
            quoted = go_quote(text)
            if spec.plus:
                quoted = "".join(c if ord(c) < 0x80 else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF
                                                          else f"\\U{ord(c):08x}") for c in quoted)
            return _pad(quoted, spec)
        if verb in "xX":
            data = arg.encode("utf-8", "surrogateescape")
            if spec.prec is not None:
                data = data[:spec.prec]
            parts = [f"{b:02x}" if verb == "x" else f"{b:02X}" for b in data]
            prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
            text = (" " if spec.space else "").join(prefix + p for p in parts) if spec.space \
                else prefix + "".join(parts)
            return _pad(text, spec)
        return _bad(arg, verb)
    if verb == "s" and isinstance(arg, GoStruct):
        return _pad(sprint_value(arg), spec)
    return _bad(arg, verb)


def _sign(text: str, spec: _Spec) -> str:
    if not text.startswith("-"):
        if spec.plus:
            return "+" + text
        if spec.space:
            return " " + text
    return text


def _int(v: int, verb: str, spec: _Spec) -> str:
    neg, a = v < 0, abs(v)
    digits = {"d": str(a), "b": format(a, "b"), "o": format(a, "o"), "O": format(a, "o"),
              "x": format(a, "x"), "X": format(a, "X")}[verb]
    if spec.prec is not None:
        if spec.prec == 0 and a == 0:
            digits = ""
        digits = digits.rjust(spec.prec, "0")
    prefix = ""
    if verb == "O":
        prefix = "0o"
    elif spec.sharp:
        prefix = {"b": "0b", "o": "0" if not digits.startswith("0") else "", "x": "0x", "X": "0X"}.get(verb, "")
    sign = "-" if neg else "+" if spec.plus else " " if spec.space else ""
    body = prefix + digits
    if spec.zero and not spec.minus and spec.prec is None and spec.width and len(sign + body) < spec.width:
        body = prefix + digits.rjust(spec.width - len(sign) - len(prefix), "0")
    return _pad(sign + body, spec)


def _float(f: float, verb: str, prec: int | None) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        return format_float_v(f)
    if verb in "gG":
        if prec is None:
            text = format_float_v(f)
        else:
            text = format(f, f".{max(prec, 1)}g")
            if "e" in text:
                m, e = text.split("e")
                text = f"{m}e{e[0]}{int(e[1:]):02d}"
        return text.upper() if verb == "G" else text
    p = 6 if prec is None else prec
    text = format(f, f".{p}{verb.lower()}")
    return text.upper() if verb in "EF" and verb == "E" else text


def _quote_rune(v: int) -> str:
    if not 0 <= v <= 0x10FFFF:
        v = 0xFFFD
    ch = chr(v)
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return "'" + go_quote(ch)[1:-1] + "'"


def _go_syntax(v) -> str:
    """%#v, near enough for templates: strings quoted, slices and maps typed."""
    if isinstance(v, str):
        return go_quote(v)
    if v is None:
        return "<nil>"
    if isinstance(v, (list, tuple)):
        return type_name(v) + "{" + ", ".join(_go_syntax(x) for x in v) + "}"
    if isinstance(v, dict):
        return type_name(v) + "{" + ", ".join(f"{_go_syntax(k)}:{_go_syntax(v[k])}" for k in sort_keys(v)) + "}"
    return sprint_value(v)
