"""Template functions: Go's builtins (text/template/funcs.go) and the ones the
docker CLI adds (cli/templates: json, join, split, title, lower, upper, pad,
truncate), with Go's comparison rules and error texts."""

from __future__ import annotations

from lamina.gotemplate.execute import Func, FuncError
from lamina.gotemplate.values import (
    MISSING, OMITTED, GoMap, GoStruct, JSONNumber, NilMap, NilSlice, SafeText, StructDict, truth, type_name,
)

_BAD_CMP = "incompatible types for comparison"
_BAD_CMP_TYPE = "invalid type for comparison"


def _kind(v) -> str:
    """basicKind: bool, int, float, string, or an error for anything else."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return ""


def _nil(v) -> bool:
    return v is None or v is MISSING


def eq(arg1, *rest):
    if not rest:
        raise FuncError("missing argument for comparison")
    k1 = _kind(arg1)
    for arg in rest:
        k2 = _kind(arg)
        if k1 != k2:
            if not _nil(arg1) and not _nil(arg):
                raise FuncError(_BAD_CMP)
            truth_ = False
        elif k1:
            truth_ = arg1 == arg
        else:
            if _nil(arg1) or _nil(arg):
                truth_ = _nil(arg1) == _nil(arg)
            elif isinstance(arg1, (list, dict, tuple)) or isinstance(arg, (list, dict, tuple)):
                raise FuncError(f"non-comparable type {_show(arg1)}: {type_name(arg1)}")
            else:
                truth_ = arg1 is arg
        if truth_:
            return True
    return False


def _show(v) -> str:
    from lamina.gotemplate.values import sprint_value

    return sprint_value(v)


def lt(a, b):
    k1, k2 = _kind(a), _kind(b)
    if not k1 or not k2:
        raise FuncError(_BAD_CMP_TYPE)
    if k1 != k2:
        raise FuncError(_BAD_CMP)
    if k1 == "bool":
        raise FuncError(_BAD_CMP_TYPE)
    return a < b


def le(a, b):
    return lt(a, b) or eq(a, b)


def gt(a, b):
    return not le(a, b)


def ge(a, b):
    return not lt(a, b)


def not_(v):
    return not truth(v)


def _index_arg(i, cap: int) -> int:
    if _nil(i):
        raise FuncError("cannot index slice/array with nil")
    if isinstance(i, bool) or not isinstance(i, int):
        raise FuncError(f"cannot index slice/array with type {type_name(i)}")
    if i < 0 or i > cap:
        raise FuncError(f"index out of range: {i}")
    return i


def index(item, *indexes):
    if _nil(item):
        raise FuncError("index of untyped nil")
    for i in indexes:
        if isinstance(item, (list, tuple, str)):
            seq = item.encode("utf-8", "surrogateescape") if isinstance(item, str) else item  # Go indexes bytes
            x = _index_arg(i, len(seq))
            if x == len(seq):  # past indexArg's bound: reflect's own panic text
                raise FuncError(f"reflect: {'string' if isinstance(item, str) else 'slice'} index out of range")
            item = seq[x]
        elif isinstance(item, dict):
            if _nil(i):
                raise FuncError("value is nil; should be of type string")
            if not isinstance(i, str):
                raise FuncError(f"value has type {type_name(i)}; should be string")
            item = item[i] if i in item else (item.zero if isinstance(item, GoMap) else None)
        elif item is None:
            raise FuncError("index of nil pointer")
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def slice_(item, *indexes):
    if _nil(item):
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
    elif not isinstance(item, (list, tuple)):
        raise FuncError(f"can't slice item of type {type_name(item)}")
    idx = [0, len(item), len(item)]
    for n, i in enumerate(indexes):
        idx[n] = _index_arg(i, len(item))
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    return item[idx[0]:idx[1]]


def len_(item):
    if _nil(item):
        raise FuncError("len of nil pointer" if item is None else "len of untyped nil")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogateescape"))
    if isinstance(item, (list, tuple, dict)):
        return len(item)
    raise FuncError(f"len of type {type_name(item)}")


def call(name: str, fn, *args):
    if _nil(fn):
        raise FuncError("call of nil")
    f = fn.fn if isinstance(fn, Func) else fn
    if not callable(f):
        raise FuncError(f"non-function {name} of type {type_name(fn)}")
    return f(*args)


def _eval_args(args) -> str:
    from lamina.gotemplate.sprintf import sprint

    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint([None if a is MISSING else a for a in args])


def html_escape(*args) -> str:
    s = _eval_args(args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\0", "\ufffd"))


def js_escape(*args) -> str:
    """template.JSEscapeString: quotes and backslash escaped, `<>&=` and what is not
    printable as \\uXXXX."""
    out = []
    for ch in _eval_args(args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def urlquery(*args) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_eval_args(args), safe="-_.~")


def _sprintf(fmt, *args):
    from lamina.gotemplate.sprintf import sprintf

    return sprintf(fmt, [None if a is MISSING else a for a in args])


def _print(*args):
    from lamina.gotemplate.sprintf import sprint

    return sprint(list(args))


def _println(*args):
    from lamina.gotemplate.sprintf import sprintln

    return sprintln(list(args))


# ------------------------------------------------------------------ docker's functions

def to_json(v) -> str:
    """docker's `json`: an encoding/json Encoder with SetEscapeHTML(false): map keys
    sorted, structs in field order, `<>&` kept, except in what a formatter context's
    own MarshalJSON wrote (json.Marshal: escaped)."""
    from lamina.leanjson import go_dumps  # Go's escapes (and C1 controls, for the terminal)

    return SafeText(go_dumps(_jsonable(v), html=isinstance(v, GoStruct)))


def _empty(v) -> bool:
    """encoding/json's `omitempty` test: false, 0, "", nil, an empty slice or map."""
    if isinstance(v, StructDict):
        return False  # a struct is never empty
    return v is None or (isinstance(v, (int, float, str, list, tuple, dict)) and not v)


def _jsonable(v):
    if isinstance(v, GoStruct):
        return _jsonable(v.to_json())
    if isinstance(v, (NilMap, NilSlice)):
        return None
    if isinstance(v, StructDict):
        return {str(k): _jsonable(x) for k, x in v.items()
                if x is not OMITTED and not (k in v.omitempty and _empty(x))}
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if v is MISSING:
        return None
    if isinstance(v, JSONNumber):
        return float(v) if any(c in v for c in ".eE") else int(v)
    if v is None or isinstance(v, (str, int, float)):
        return v
    return str(v)  # not JSON's: a Go value would marshal as its text at best


def _title(s: str) -> str:
    """strings.Title: upper-case the first letter of each word (after a separator)."""
    out, prev_sep = [], True
    for ch in s:
        out.append(ch.upper() if prev_sep else ch)
        prev_sep = not (ch.isalnum() or ch == "_") if ord(ch) < 0x80 else (ch.isspace() or not (ch.isalpha()
                                                                                         or ch.isdigit()))
    return "".join(out)


def _split(s: str, sep: str) -> list:
    if sep == "":
        return list(s)
    return s.split(sep)


def _pad(s: str, prefix: int, suffix: int) -> str:
    return s if s == "" else " " * prefix + s + " " * suffix


def _truncate(s: str, n: int) -> str:
    data = s.encode("utf-8", "surrogateescape")
    return s if len(data) < n else data[:n].decode("utf-8", "surrogateescape")


BUILTINS = {
    "and": Func(None, ("value",), "value"),
    "or": Func(None, ("value",), "value"),
    "not": Func(not_, ("value",)),
    "eq": Func(eq, ("value",), "value"),
    "ne": Func(lambda a, b: not eq(a, b), ("value", "value")),
    "lt": Func(lt, ("value", "value")),
    "le": Func(le, ("value", "value")),
    "gt": Func(gt, ("value", "value")),
    "ge": Func(ge, ("value", "value")),
    "index": Func(index, ("value",), "value"),
    "slice": Func(slice_, ("value",), "value"),
    "len": Func(len_, ("value",)),
    "call": Func(call, ("value",), "value"),
    "html": Func(html_escape, (), "any"),
    "js": Func(js_escape, (), "any"),
    "urlquery": Func(urlquery, (), "any"),
    "print": Func(_print, (), "any"),
    "println": Func(_println, (), "any"),
    "printf": Func(_sprintf, ("string",), "any"),
}

DOCKER = {
    "json": Func(to_json, ("any",)),
    "split": Func(_split, ("string", "string")),
    "join": Func(lambda a, sep: sep.join(a or ()), ("[]string", "string")),
    "title": Func(_title, ("string",)),
    "lower": Func(str.lower, ("string",)),
    "upper": Func(str.upper, ("string",)),
    "pad": Func(_pad, ("string", "int", "int")),
    "truncate": Func(_truncate, ("string", "int")),
}

# docker's HeaderFunctions: the same names, applied to the header text for `table`.
HEADER = {
    "json": Func(lambda v: v, ("string",)),
    "split": Func(lambda v, _s: v, ("string", "string")),
    "join": Func(lambda v, _s: v, ("string", "string")),
    "title": Func(lambda v: v, ("string",)),
    "lower": Func(lambda v: v, ("string",)),
    "upper": Func(lambda v: v, ("string",)),
    "pad": Func(lambda v, _a, _b: v, ("string", "int", "int")),
    "truncate": Func(lambda v, _n: v, ("string", "int")),
}
